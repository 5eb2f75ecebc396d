"""The scheduler's stored copy of a run's output outlives the agent (spec 13 Log viewer, 16)."""

from __future__ import annotations

import json
import re
import shutil
import signal
from pathlib import Path

from tests.e2e.harness import Cluster, task_json, wait_until

# FIRST, 12 lines of 1 MiB, LAST: 12 MiB and more on stdout, so the stored copy is cut.
BIG = (
    "python3 -c \"import sys; w = sys.stdout.write; w('FIRST\\n'); "
    "[w(str(i % 10) * (1024 * 1024 - 1) + '\\n') for i in range(12)]; w('LAST\\n')\"; "
    "echo oops >&2"
)


def test_task_run_logs_prints_the_stored_copy_after_the_agent_is_gone(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.start_scheduler()
    agent = cluster.start_agent("agent-a", "q1")
    out = tmp_path / "out"
    out.mkdir()
    task = task_json(1101, "loud", "q1", BIG, out)
    (tmp_path / "t.json").write_text(json.dumps(task))
    cluster.ctl("tasks", "create", "-f", str(tmp_path / "t.json"))
    res = cluster.ctl("events", "force-run", "1101")
    match = re.search(r"Run ID: (\S+)", res.stdout)
    assert match, res.stdout
    run_id = match.group(1)
    run = cluster.wait_final(run_id, timeout=90)
    assert (run.state, run.return_code) == ("SUCCESS", 0)
    # The agent goes for good: killed, its home and the run's output files deleted.
    agent.kill(signal.SIGKILL)
    shutil.rmtree(cluster.home / "agents" / "agent-a")
    shutil.rmtree(out)
    wait_until("agent-a offline", lambda: not _online(cluster, "agent-a"), timeout=60)

    # Pages of two lines (a line here is 1 MiB; a reply of the CLI stays under 4 MiB).
    pages = []
    for page in range(1, 20):
        args = ("--stream", "stdout", "--per-page", "2", "--page", str(page), "-o", "json")
        reply = json.loads(cluster.ctl("scheduler", "task-run-logs", run_id, *args).stdout)
        pages.extend(reply["stdout"]["lines"])
        if page * 2 >= reply["stdout"]["total_lines"]:
            break
    assert reply["stdout"]["truncated"] is True
    assert pages[0] == "FIRST" and pages[-1] == "LAST"
    cuts = [line for line in pages if line.startswith("[... ")]
    total = 6 + 12 * 1024 * 1024 + 5
    assert cuts == [f"[... {total - 10 * 1024 * 1024} bytes cut ...]"]
    # 10 MiB stored, the marker on a line of its own, the last line's newline not a line
    assert len("\n".join(pages).encode()) == 10 * 1024 * 1024 - 1 + len(cuts[0]) + 2
    logs = cluster.ctl("scheduler", "task-run-logs", run_id, "--stream", "stderr").stdout
    assert "oops" in logs
    # The default page holds the whole 10 MiB copy: over gRPC's default 4 MiB, which the CLI
    # once refused with a raw "Received message larger than max".
    whole = json.loads(
        cluster.ctl("scheduler", "task-run-logs", run_id, "-o", "json", timeout=120).stdout
    )
    assert whole["stdout"]["lines"][0] == "FIRST" and whole["stdout"]["lines"][-1] == "LAST"


def _online(cluster: Cluster, name: str) -> bool:
    cluster.agents.pop(name, None)  # gone on purpose: not an agent that crashed under test
    return cluster.agent_online(name)

"""What the CLI shows, through real processes (spec 7.1, 12; issue 11): timed-out runs, days of
the week, empty log panels, agents online first, the agent's help."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.harness import BIN, Cluster, task_json, wait_until

pytestmark = pytest.mark.e2e


def create(
    cluster: Cluster, tmp_path: Path, tid: int, name: str, cmd: str, **extra: object
) -> None:
    path = tmp_path / f"{tid}.json"
    path.write_text(json.dumps(task_json(tid, name, "q1", cmd, tmp_path, **extra)))
    cluster.ctl("tasks", "create", "-f", str(path))


def force_run(cluster: Cluster, tid: int) -> str:
    match = re.search(r"Run ID: (\S+)", cluster.ctl("events", "force-run", str(tid)).stdout)
    assert match
    return match.group(1)


def test_timed_out_runs_days_of_week_and_empty_log_panels(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler()
    cluster.start_agent("agent-a", "q1")
    create(cluster, tmp_path, 3001, "slow", "sleep 30", max_run_time=1)
    create(cluster, tmp_path, 3002, "quiet", "true")
    slow, quiet = force_run(cluster, 3001), force_run(cluster, 3002)
    run = cluster.wait_final(slow, timeout=30)
    assert (run.state, run.reason) == ("TERMINATED", "timed out")
    table = cluster.ctl("scheduler", "task-runs", "--tid", "3001").stdout
    (row,) = [line for line in table.splitlines() if "slow" in line]
    assert "Timed Out" in row and "TERMINATED" not in row
    listed = json.loads(cluster.ctl("scheduler", "task-runs", "--tid", "3001", "-o", "json").stdout)
    assert [r["state"] for r in listed] == ["TERMINATED"], "records keep the state's name"

    cluster.wait_final(quiet)
    logs = cluster.ctl("scheduler", "task-run-logs", quiet).stdout
    assert logs.count("Page 1 of 1 (0 total lines)") == 2, logs
    assert "(no output)" in logs

    cluster.ctl("groups", "create", "-n", "weekdays", "-z", "UTC", "--day-of-week", "1111100",
                "--trigger-times", "03:17")  # fmt: skip
    panel = cluster.ctl("groups", "get", "-n", "weekdays").stdout
    assert re.search(r"Day Of Week\s+MON,TUE,WED,THU,FRI\b", panel), panel


def test_agents_list_puts_online_agents_first(cluster: Cluster) -> None:
    cluster.start_scheduler()
    cluster.start_agent("aa-gone", "q1")
    cluster.start_agent("zz-here", "q1")
    cluster.agents.pop("aa-gone").stop()
    wait_until("aa-gone to be offline", lambda: not cluster.agent_online("aa-gone"))
    out = cluster.ctl("agents", "list").stdout
    assert out.splitlines()[0] == "1 online, 1 offline"
    assert out.index("zz-here") < out.index("aa-gone")
    listed = json.loads(cluster.ctl("agents", "list", "-o", "json").stdout)
    assert [(a["name"], a["status"]) for a in listed] == [("zz-here", "online"),
                                                          ("aa-gone", "offline")]  # fmt: skip


def test_agent_help_shows_its_real_default_server() -> None:
    res = subprocess.run([str(BIN / "easytask-agentd"), "-h"], capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "200"}, check=True)  # fmt: skip
    assert "default 127.0.0.1:7070)" in res.stdout
    assert "None" not in res.stdout

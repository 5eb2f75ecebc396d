"""Hostile definitions and network cuts with real processes (issue 7).

A task planted in the store behind the scheduler's back (direct SQLite write) with text no
agent can take fails on its own while the queue keeps its timing; a follower attached across a
cut between agent and scheduler prints the command's output byte for byte.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from easytask.rpc.v1 import api_pb2 as pb
from tests.e2e.harness import BIN, Cluster, task_json, wait_until
from tests.e2e.proxy import CutProxy

pytestmark = pytest.mark.e2e


def _plant(db: Path, tid: int, **fields: str) -> None:
    """Rewrite a stored definition the way a bad migration or a hand edit would."""
    with sqlite3.connect(db) as conn:
        (text,) = conn.execute("SELECT definition FROM tasks WHERE tid = ?", (tid,)).fetchone()
        definition = json.loads(text)
        definition.update(fields)
        conn.execute("UPDATE tasks SET definition = ? WHERE tid = ?", (json.dumps(definition), tid))


def _create(cluster: Cluster, tmp_path: Path, task: dict[str, object]) -> None:
    path = tmp_path / f"{task['name']}.json"
    path.write_text(json.dumps(task))
    cluster.ctl("tasks", "create", "-f", str(path))


def _connected_since(cluster: Cluster, name: str) -> str:
    agents = cluster.api().ListAgents(pb.ListAgentsRequest(), metadata=cluster.metadata())
    return next(a.connected_since for a in agents.agents if a.name == name)


def test_planted_bad_tasks_fail_alone_and_the_queue_keeps_its_time(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.start_scheduler()
    out = tmp_path / "out"
    _create(cluster, tmp_path, task_json(1001, "good", "q1", "echo on-time", out,
                                         trigger_times="09:00"))  # fmt: skip
    _create(cluster, tmp_path, task_json(1002, "surrogate", "q1", "echo x", out))
    _create(cluster, tmp_path, task_json(1003, "nul", "q1", "echo y", out))
    cluster.stop_all()
    db = cluster.home / "easytask.db"
    _plant(db, 1002, cmd="echo \udfff")
    _plant(db, 1003, stdout=str(out / "nul\x00.out"))

    # The scheduler's clock 10 s before the good task's 09:00 on an ordinary day.
    target = datetime(2027, 3, 10, 9, 0, tzinfo=UTC)
    cluster.start_scheduler("--clock-offset", f"{target.timestamp() - 10 - time.time():.3f}")
    log = cluster.scheduler.output() if cluster.scheduler else ""
    assert "task 1002 (surrogate) made inactive at load: cmd must be valid Unicode text" in log
    assert "task 1003 (nul) made inactive at load: stdout must not contain NUL" in log
    listed = cluster.ctl("tasks", "get", "1003", "-o", "json").stdout
    assert json.loads(listed)["active"] is False

    cluster.start_agent("agent-a", "q1")
    since = _connected_since(cluster, "agent-a")
    # A forced run ignores `active`: both bad definitions reach the queue right before 09:00.
    bad = {}
    for tid in (1002, 1003):
        res = cluster.ctl("events", "force-run", str(tid))
        bad[tid] = res.stdout.split("Run ID: ")[1].split()[0]
    surrogate = cluster.wait_final(bad[1002])
    assert (surrogate.state, surrogate.reason) == (
        "FAILED",
        "cannot encode run order: cmd must be valid Unicode text (lone surrogate U+DFFF at 5)",
    )
    nul = cluster.wait_final(bad[1003])
    assert (nul.state, nul.reason) == ("FAILED", "cannot start: embedded NUL in stdout")

    def nine_oclock() -> list[pb.Run]:
        # Earlier days' slots, passed over by the shifted clock, are SKIPPED as missed.
        return [r for r in cluster.runs(1001) if r.scheduled_utc == "2027-03-10T09:00:00.000Z"]

    runs = wait_until("the 09:00 run of the good task", nine_oclock, timeout=30)
    good = cluster.wait_final(runs[0].run_id)
    assert good.state == "SUCCESS"
    done = next(c.at for c in cluster.run(good.run_id).transitions if c.to_state == "SUCCESS")
    late = datetime.fromisoformat(done) - target
    assert late.total_seconds() <= 1.0, f"SUCCESS {late} after its trigger time"
    assert (out / "good.out").read_text() == "on-time\n"
    # The agent's stream stayed up throughout: same connection, no reconnect in its log.
    assert _connected_since(cluster, "agent-a") == since
    assert "stream ended" not in cluster.agents["agent-a"].output()


def test_follow_across_a_cut_between_agent_and_scheduler_is_byte_identical(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.start_scheduler()
    proxy = CutProxy(("127.0.0.1", cluster.port))
    try:
        cluster.start_agent("agent-a", "q1", "--server", proxy.address)
        cmd = 'for i in $(seq 1 800); do echo "line $i of the output"; sleep 0.005; done'
        _create(cluster, tmp_path, task_json(1001, "chatty", "q1", cmd, tmp_path / "out"))
        res = cluster.ctl("events", "force-run", "1001")
        run_id = res.stdout.split("Run ID: ")[1].split()[0]
        cluster.wait_state(run_id, {"RUNNING"})
        argv = [str(BIN / "easytaskctl"), "--server", cluster.server,
                "scheduler", "task-run-logs", run_id, "--follow"]  # fmt: skip
        follower = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cluster.env
        )
        time.sleep(0.5)
        cutter = threading.Thread(target=proxy.cut, args=(20.0,))
        cutter.start()  # the command ends during the cut; its result and output come after
        cutter.join()
        stdout, stderr = follower.communicate(timeout=90)
    finally:
        proxy.close()
    expected = "".join(f"line {i} of the output\n" for i in range(1, 801)).encode()
    assert follower.returncode == 0, stderr.decode()
    assert stdout == expected
    assert b"Run finished: SUCCESS" in stderr
    assert (tmp_path / "out" / "chatty.out").read_bytes() == expected


def test_after_a_40_s_silent_cut_the_next_run_is_dispatched_within_5_s(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The scheduler gives up on the silent agent at 30 s and ends its stream: no half-open
    session is left to swallow the next run once the link heals (issue 8)."""
    cluster.start_scheduler()
    proxy = CutProxy(("127.0.0.1", cluster.port))
    try:
        cluster.start_agent("agent-a", "q1", "--server", proxy.address)
        _create(cluster, tmp_path, task_json(1001, "after", "q1", "echo after", tmp_path / "o"))
        proxy.cut(40.0, reset=False)
        healed = time.monotonic()
        res = cluster.ctl("events", "force-run", "1001")
        run_id = res.stdout.split("Run ID: ")[1].split()[0]
        cluster.wait_state(run_id, {"STARTED", "RUNNING", "SUCCESS"}, timeout=20)
        dispatched = time.monotonic() - healed
        # The bug kept the run until the 30 s heartbeat timeout; 5 s leaves room for a loaded
        # machine and still tells the two apart.
        assert dispatched <= 5.0, f"dispatched {dispatched:.1f} s after the link healed"
        assert cluster.wait_final(run_id).state == "SUCCESS"
    finally:
        proxy.close()

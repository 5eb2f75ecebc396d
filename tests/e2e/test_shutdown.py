"""SIGTERM loses nothing: what fired before it is stored, what was due after it is caught up
once at the next start, and the log holds no error (issue 8)."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from easytask.rpc.v1 import api_pb2 as pb
from tests.e2e.harness import Cluster, task_json, wait_until
from tests.support.slack import SLACK

pytestmark = pytest.mark.e2e
TASKS = 1000
BEFORE_BURST = 3000  # tasks due just after the SIGTERM
# From the scheduler's start to the burst: set-up of 3,000 tasks fits (~5 s idle), with room
# for a loaded machine.
LEAD_SECONDS = 20 * SLACK
TARGET = datetime(2027, 3, 10, 9, 0, tzinfo=UTC)


def _slot_runs(db: Path) -> list[tuple[int, str, str]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT tid, state, reason FROM runs WHERE scheduled_ms = ?",
            (int(TARGET.timestamp() * 1000),),
        ).fetchall()
    return [(int(t), str(s), str(r)) for t, s, r in rows]


def test_sigterm_just_before_a_burst_loses_nothing(cluster: Cluster, tmp_path: Path) -> None:
    offset = TARGET.timestamp() - LEAD_SECONDS - time.time()
    cluster.start_scheduler("--clock-offset", f"{offset:.3f}")
    ledger = tmp_path / "ledger"
    tasks = [
        task_json(1001 + i, f"burst-{i}", "q1", f'echo "$EASYTASK_RUN_ID" >> {ledger}',
                  tmp_path / "out", trigger_times="09:00", stdout="/dev/null",
                  stderr="/dev/null")
        for i in range(BEFORE_BURST)
    ]  # fmt: skip
    reply = cluster.api().ImportTasks(
        pb.ImportTasksRequest(json=json.dumps({"tasks": tasks})), metadata=cluster.metadata()
    )
    assert not reply.errors and reply.created == BEFORE_BURST
    cluster.start_agent("agent-a", "q1")
    due_wall = TARGET.timestamp() - offset
    left = due_wall - 1.8 - time.time()
    assert left > 0, "set-up took too long to stop before the burst"
    time.sleep(left)
    assert cluster.scheduler is not None
    cluster.scheduler.kill(signal.SIGTERM)
    log = cluster.scheduler.output()
    triggered = log.count("Task Triggered")
    assert len(_slot_runs(cluster.home / "easytask.db")) == triggered
    assert " ERROR " not in log and "Traceback" not in log, log[-3000:]
    with sqlite3.connect(cluster.home / "easytask.db") as conn:
        (agents,) = conn.execute("SELECT COUNT(*) FROM agents WHERE name = 'agent-a'").fetchone()
    assert agents == 1

    # The next start catches the slot up once per task (misfire run_once, within the grace).
    cluster.start_scheduler("--clock-offset", f"{offset:.3f}")

    def all_final() -> bool:
        runs = _slot_runs(cluster.home / "easytask.db")
        return len(runs) >= BEFORE_BURST and all(s in ("SUCCESS", "FAILED") for _, s, _ in runs)

    wait_until("every task's 09:00 run to end", all_final, timeout=120)
    runs = _slot_runs(cluster.home / "easytask.db")
    assert sorted(t for t, _, _ in runs) == list(range(1001, 1001 + BEFORE_BURST))
    assert {s for _, s, _ in runs} == {"SUCCESS"}
    assert not [r for _, _, r in runs if "missed" in r]
    lines = ledger.read_text().split()
    assert len(lines) == BEFORE_BURST == len(set(lines))


def test_sigterm_while_results_stream_in_loses_and_repeats_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A burst of 1,000 runs; SIGTERM while their results arrive; restart. Every run ends in
    exactly one final state and no command ran twice (each appends its run id to a ledger)."""
    offset = TARGET.timestamp() - 8 - time.time()
    cluster.start_scheduler("--clock-offset", f"{offset:.3f}")
    ledger = tmp_path / "ledger"
    tasks = [
        task_json(1001 + i, f"burst-{i}", "q1", f'echo "$EASYTASK_RUN_ID" >> {ledger}; sleep 0.2',
                  tmp_path / "out", trigger_times="09:00", stdout="/dev/null",
                  stderr="/dev/null")
        for i in range(TASKS)
    ]  # fmt: skip
    reply = cluster.api().ImportTasks(
        pb.ImportTasksRequest(json=json.dumps({"tasks": tasks})), metadata=cluster.metadata()
    )
    assert not reply.errors and reply.created == TASKS
    cluster.start_agent("agent-a", "q1")
    db = cluster.home / "easytask.db"

    def midway() -> bool:
        done = [s for _, s, _ in _slot_runs(db) if s == "SUCCESS"]
        return 50 <= len(done) < TASKS - 200

    wait_until("the burst's results to be streaming in", midway, timeout=60)
    assert cluster.scheduler is not None
    cluster.scheduler.kill(signal.SIGTERM)
    log = cluster.scheduler.output()
    assert " ERROR " not in log and "Traceback" not in log, log[-3000:]
    stopped_with = sum(1 for _, s, _ in _slot_runs(db) if s == "SUCCESS")
    assert stopped_with < TASKS, "the burst ended before the stop: nothing was tested"

    cluster.start_scheduler("--clock-offset", f"{offset:.3f}")

    def all_final() -> bool:
        runs = _slot_runs(db)
        return len(runs) >= TASKS and all(s in ("SUCCESS", "FAILED") for _, s, _ in runs)

    wait_until("every run of the burst to end", all_final, timeout=120)
    runs = _slot_runs(db)
    assert sorted(t for t, _, _ in runs) == list(range(1001, 1001 + TASKS))  # one run per task
    assert {s for _, s, _ in runs} == {"SUCCESS"}
    with sqlite3.connect(db) as conn:
        finals = conn.execute(
            "SELECT run_id, COUNT(*) FROM run_transitions WHERE to_state IN "
            "('SUCCESS', 'FAILED', 'TERMINATED', 'REJECTED') GROUP BY run_id"
        ).fetchall()
    assert len(finals) == TASKS and {n for _, n in finals} == {1}
    lines = ledger.read_text().split()
    assert len(lines) == TASKS == len(set(lines))

"""Misfire policies across a real scheduler restart (the scheduler's clock is shifted)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.e2e.harness import Cluster, task_json, wait_until

pytestmark = pytest.mark.e2e

DAY = datetime(2027, 4, 7, tzinfo=UTC)  # a Wednesday


def offset_to(hh: int, mm: int) -> str:
    target = DAY.replace(hour=hh, minute=mm)
    return f"{target.timestamp() - time.time():.3f}"


def test_each_policy_settles_the_slots_missed_while_down(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler("--clock-offset", offset_to(9, 59))
    times = {"trigger_times": "10:00,10:10,10:20"}
    tasks = [
        task_json(3001, "once", "q1", "echo once", tmp_path, **times),
        task_json(3002, "skipper", "q1", "true", tmp_path, misfire_policy="skip", **times),
        task_json(3003, "all", "q1", "echo all", tmp_path, misfire_policy="run_all",
                  misfire_grace=1000, **times),
        task_json(3004, "stale", "q1", "true", tmp_path, misfire_grace=60, **times),
    ]  # fmt: skip
    for t in tasks:
        path = tmp_path / f"{t['tid']}.json"
        path.write_text(json.dumps(t))
        cluster.ctl("tasks", "create", "-f", str(path))
    assert cluster.scheduler is not None
    cluster.scheduler.stop()  # graceful: the last heartbeat tick is just after 09:59

    cluster.start_scheduler("--clock-offset", offset_to(10, 25))
    cluster.start_agent("agent-a", "q1")

    def settled(tid: int, count: int) -> list[tuple[str, str, str]] | None:
        runs = cluster.runs(tid)
        if len(runs) < count or any(r.state not in ("SUCCESS", "SKIPPED") for r in runs):
            return None
        return [(r.local_time, r.state, r.reason) for r in runs]

    missed = "missed while scheduler was down"
    assert wait_until("run_once", lambda: settled(3001, 3)) == [
        ("10:00", "SKIPPED", missed),
        ("10:10", "SKIPPED", missed),
        ("10:20", "SUCCESS", ""),
    ]
    assert wait_until("skip", lambda: settled(3002, 3)) == [
        ("10:00", "SKIPPED", missed),
        ("10:10", "SKIPPED", missed),
        ("10:20", "SKIPPED", missed),
    ]
    assert wait_until("run_all", lambda: settled(3003, 3)) == [
        ("10:00", "SKIPPED", missed),
        ("10:10", "SUCCESS", ""),
        ("10:20", "SUCCESS", ""),
    ]
    assert wait_until("grace exceeded", lambda: settled(3004, 3)) == [
        ("10:00", "SKIPPED", missed),
        ("10:10", "SKIPPED", missed),
        ("10:20", "SKIPPED", missed),
    ]
    catch_up = cluster.runs(3001)[-1]
    assert (
        catch_up.run_id == f"default:3001:{int(DAY.replace(hour=10, minute=20).timestamp())}000:1"
    )
    first = cluster.run(catch_up.run_id).transitions[0]
    assert (first.to_state, first.reason) == ("TRIGGER", "catch-up after scheduler downtime")
    assert (tmp_path / "all.out").read_text() == "all\nall\n"

    # A further restart finds every slot settled: nothing runs or is recorded twice.
    cluster.scheduler.stop()
    cluster.start_scheduler("--clock-offset", offset_to(10, 26))
    cluster.wait_final(catch_up.run_id)
    assert [len(cluster.runs(tid)) for tid in (3001, 3002, 3003, 3004)] == [3, 3, 3, 3]
    assert (tmp_path / "once.out").read_text() == "once\n"


def test_group_misfire_policy_applies_to_whole_occurrences(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.start_scheduler("--clock-offset", offset_to(9, 59))
    cluster.ctl("groups", "create", "-n", "batch", "-z", "UTC", "--day-of-week", "1111111",
                "--trigger-times", "10:00,10:10,10:20")  # fmt: skip
    for tid, name, dep in ((3101, "first", ""), (3102, "second", "S:first")):
        task = {"tid": tid, "name": name, "cmd": f"echo {name}", "run_on_host": "q1",
                "stdout": str(tmp_path / f"{name}.out"), "stderr": str(tmp_path / "e"),
                "task_group": "batch", "dependency": dep}  # fmt: skip
        path = tmp_path / f"{tid}.json"
        path.write_text(json.dumps(task))
        cluster.ctl("tasks", "create", "-f", str(path))
    assert cluster.scheduler is not None
    cluster.scheduler.stop()
    cluster.start_scheduler("--clock-offset", offset_to(10, 25))
    cluster.start_agent("agent-a", "q1")

    def settled(tid: int) -> list[tuple[str, str, str]] | None:
        runs = cluster.runs(tid)
        if len(runs) < 3 or any(r.state not in ("SUCCESS", "SKIPPED") for r in runs):
            return None
        return [(r.local_time, r.state, r.reason) for r in runs]

    missed = "missed while scheduler was down"
    expected = [
        ("10:00", "SKIPPED", missed),
        ("10:10", "SKIPPED", missed),
        ("10:20", "SUCCESS", ""),
    ]
    assert wait_until("first", lambda: settled(3101)) == expected
    assert wait_until("second", lambda: settled(3102)) == expected
    assert (tmp_path / "second.out").read_text() == "second\n"

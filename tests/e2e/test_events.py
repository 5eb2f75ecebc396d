"""Operator events through the CLI against real processes: each event's effect on live runs and
its audit record (spec 10, 12)."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Cluster, pid_alive, task_json, wait_until

pytestmark = pytest.mark.e2e

USER = "easytask_superuser"
DAY = datetime(2027, 4, 7, tzinfo=UTC)  # a Wednesday


def create(cluster: Cluster, tmp_path: Path, tid: int, name: str, cmd: str, **extra: Any) -> None:
    path = tmp_path / f"{tid}.json"
    path.write_text(json.dumps(task_json(tid, name, "q1", cmd, tmp_path, **extra)))
    cluster.ctl("tasks", "create", "-f", str(path))


def force_run(cluster: Cluster, tid: int) -> str:
    match = re.search(r"Run ID: (\S+)", cluster.ctl("events", "force-run", str(tid)).stdout)
    assert match
    return match.group(1)


def refused(cluster: Cluster, *args: str) -> str:
    """Run an event that must fail: exit 1, nothing on stdout; returns stderr."""
    res = cluster.ctl("events", *args, check=False)
    assert (res.returncode, res.stdout) == (1, ""), (res.returncode, res.stdout, res.stderr)
    return res.stderr


def events(cluster: Cluster, *filters: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = json.loads(
        cluster.ctl("events", "list", *filters, "-o", "json").stdout
    )
    return listed


def task_status(cluster: Cluster, tid: int) -> tuple[bool, str]:
    (task,) = [t for t in json.loads(cluster.ctl("tasks", "list", "-o", "json").stdout)
               if t["tid"] == tid]  # fmt: skip
    return task["active"], task["task_status"]


def upcoming(cluster: Cluster, tid: int) -> list[dict[str, Any]]:
    out = cluster.ctl("scheduler", "upcoming", "--task", str(tid), "-o", "json").stdout
    entries: list[dict[str, Any]] = json.loads(out)
    return entries


def test_terminate_and_modify_status_act_on_live_runs_and_are_audited(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.start_scheduler()
    cluster.start_agent("agent-a", "q1")
    create(cluster, tmp_path, 4001, "sleeper", "sleep 30", retry_attempts=2)
    flaky = 'echo attempt $EASYTASK_ATTEMPT; test "$EASYTASK_ATTEMPT" -ge 2'
    create(cluster, tmp_path, 4002, "flaky", flaky)

    # A RUNNING run cannot be modified; terminating it kills the process, with no retry.
    run_id = force_run(cluster, 4001)
    running = cluster.wait_state(run_id, {"RUNNING"})
    assert running.has_pid and pid_alive(running.pid)
    err = refused(cluster, "modify-status", "4001", "--status", "SUCCESS")
    assert err == "Error: run is in progress; terminate it first\n"
    assert cluster.run(run_id).state == "RUNNING"
    res = cluster.ctl("events", "terminate", "4001")
    assert res.stdout == "Task 4001 terminated.\n"
    run = cluster.wait_final(run_id, timeout=15)
    assert (run.state, run.reason) == ("TERMINATED", f"terminated by {USER}")
    assert not pid_alive(running.pid)
    assert [r.run_id for r in cluster.runs(4001)] == [run_id]

    # Terminating what is no longer running is refused, and recorded as such.
    today = run.run_date
    assert refused(cluster, "terminate", "4001") == (
        f"Error: no running run for task 4001 on {today}\n"
    )
    err = refused(cluster, "terminate", "4001", "--run-id", run_id)
    assert err == f"Error: run {run_id} of task 4001 is not running\n"

    # FAILED -> SUCCESS by hand, then ACTIVE: a new attempt that runs (and succeeds).
    failed_id = force_run(cluster, 4002)
    failed = cluster.wait_final(failed_id)
    assert (failed.state, failed.reason) == ("FAILED", "exit code 1")
    res = cluster.ctl("events", "modify-status", "4002", "--status", "success")
    assert res.stdout == "Task 4002 status modified to SUCCESS.\n"
    modified = cluster.run(failed_id)
    assert (modified.state, modified.reason) == ("SUCCESS", f"status modified by {USER}")
    last = modified.transitions[-1]
    assert (last.from_state, last.to_state) == ("FAILED", "SUCCESS")
    res = cluster.ctl("events", "modify-status", "4002", "--status", "ACTIVE")
    assert res.stdout == "Task 4002 status modified to ACTIVE.\n"
    second_id = failed_id[: failed_id.rindex(":")] + ":2"
    second = cluster.wait_final(second_id)
    assert (second.state, second.attempt) == ("SUCCESS", 2)
    assert [c.to_state for c in second.transitions][:2] == ["ACTIVE", "TRIGGER"]
    assert (tmp_path / "flaky.out").read_text() == "attempt 1\nattempt 2\n"

    # The audit trail: who sent what, from where, with which outcome; newest first.
    log = events(cluster)
    assert [(e["event"], e["target"], e["status"]) for e in log] == [
        ("MODIFY_TASK_STATUS", "4002", "SUCCESS"),
        ("MODIFY_TASK_STATUS", "4002", "SUCCESS"),
        ("FORCE_RUN_TASK", "4002", "SUCCESS"),
        ("TERMINATE_TASK", "4001", "FAILURE"),
        ("TERMINATE_TASK", "4001", "FAILURE"),
        ("TERMINATE_TASK", "4001", "SUCCESS"),
        ("MODIFY_TASK_STATUS", "4001", "FAILURE"),
        ("FORCE_RUN_TASK", "4001", "SUCCESS"),
    ]
    assert {(e["origin"], e["published_by"], e["acked_by"]) for e in log} == {
        ("CLI", USER, "default")
    }
    assert log[4]["message"] == f"no running run for task 4001 on {today}"
    assert log[0]["args"] == {"status": "ACTIVE", "run_id": second_id}
    assert all(e["created_at"] <= e["acked_at"] for e in log)

    table = cluster.ctl("events", "list", "--status", "failure").stdout
    assert table.splitlines()[0].split() == [
        "ID", "Event", "Target", "Status", "Origin", "Published", "By", "Time"
    ]  # fmt: skip
    assert table.count("FAILURE") == 3 and "SUCCESS" not in table
    assert table.rstrip().endswith("Page 1 of 1 (3 total items)")
    paged = cluster.ctl("events", "list", "--event-name", "terminate-task", "--per-page", "2")
    assert paged.stdout.rstrip().endswith("Page 1 of 2 (3 total items)")
    assert [e["id"] for e in events(cluster, "--origin", "cli", "--task-name", "4001")] == [
        e["id"] for e in log[3:]
    ]

    terminated = log[5]
    got = json.loads(cluster.ctl("events", "get", str(terminated["id"]), "-o", "json").stdout)
    assert got == terminated and got["args"] == {"run_id": run_id}
    panel = cluster.ctl("events", "get", str(terminated["id"])).stdout
    assert f"Event {terminated['id']} (TERMINATE_TASK)" in panel
    assert json.dumps({"run_id": run_id}) in panel and "Task 4001 terminated." in panel

    ack = cluster.ctl("events", "ack", str(log[3]["id"]), "-t", "5").stdout.splitlines()
    assert ack == ["Status ACKNOWLEDGED", f"ACK Time {log[3]['acked_at']}", "Scheduler default"]
    assert re.fullmatch(r"ACK Time \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", ack[1])
    assert refused(cluster, "ack", "999999", "--timeout", "1") == "Error: event 999999 not found\n"


def test_enable_disable_debug_and_refresh_events(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler()
    create(cluster, tmp_path, 4010, "nightly", "true")
    assert task_status(cluster, 4010)[0] is True
    assert len(upcoming(cluster, 4010)) == 1

    res = cluster.ctl("events", "disable", "4010")
    assert res.stdout == "Task 4010 disabled on scheduler.\n"
    assert task_status(cluster, 4010) == (False, "PASSIVE")
    assert "PASSIVE" in cluster.ctl("tasks", "list").stdout
    assert upcoming(cluster, 4010) == []

    res = cluster.ctl("events", "enable", "-n", "nightly")
    assert res.stdout == "Task 4010 enabled on scheduler.\n"
    active, status = task_status(cluster, 4010)
    assert active is True and status in ("IDLE", "ACTIVE")
    (slot,) = upcoming(cluster, 4010)
    assert slot["local_run"].endswith("03:17")

    def debug() -> bool:
        flag: bool = json.loads(cluster.ctl("scheduler", "health", "-o", "json").stdout)["debug"]
        return flag

    assert cluster.ctl("events", "debug", "on").stdout == "Enabled scheduler in DEBUG mode\n"
    assert debug() is True
    assert cluster.ctl("events", "debug", "off").stdout == "Disabled scheduler DEBUG mode\n"
    assert debug() is False

    res = cluster.ctl("events", "refresh-task", "4010")
    assert res.stdout == "Task definition refreshed for task 4010 (nightly).\n"
    assert cluster.ctl("events", "refresh-graph").stdout == "Dependency graph refreshed.\n"
    assert cluster.ctl("events", "refresh-calendar").stdout == "Holiday calendars refreshed.\n"
    assert len(upcoming(cluster, 4010)) == 1

    assert refused(cluster, "disable", "999999") == "Error: task 999999 not found\n"
    assert refused(cluster, "enable", "--group", "1") == "Error: group 1 not found\n"
    assert refused(cluster, "refresh-group", "1") == "Error: group 1 not found\n"

    log = events(cluster)
    assert [(e["event"], e["target"], e["status"], e["message"]) for e in log] == [
        ("REFRESH_TASK_GROUP_DEFINITION", "group 1", "FAILURE", "group 1 not found"),
        ("ENABLE_TASK", "group 1", "FAILURE", "group 1 not found"),
        ("DISABLE_TASK", "999999", "FAILURE", "task 999999 not found"),
        ("REFRESH_CALENDAR", None, "SUCCESS", "Holiday calendars refreshed."),
        ("REFRESH_GRAPH", None, "SUCCESS", "Dependency graph refreshed."),
        ("REFRESH_TASK_DEFINITION", "4010", "SUCCESS",
         "Task definition refreshed for task 4010 (nightly)."),
        ("DISABLE_DEBUG", None, "SUCCESS", "Disabled scheduler DEBUG mode"),
        ("ENABLE_DEBUG", None, "SUCCESS", "Enabled scheduler in DEBUG mode"),
        ("ENABLE_TASK", "4010", "SUCCESS", "Task 4010 enabled on scheduler."),
        ("DISABLE_TASK", "4010", "SUCCESS", "Task 4010 disabled on scheduler."),
    ]  # fmt: skip
    assert {(e["origin"], e["published_by"]) for e in log} == {("CLI", USER)}


def offset_to(hh: int, mm: int, ss: int) -> str:
    target = DAY.replace(hour=hh, minute=mm, second=ss)
    return f"{target.timestamp() - time.time():.3f}"


def freeze_then_reach_ten(
    cluster: Cluster, tmp_path: Path, freezes: dict[int, tuple[str, ...]]
) -> dict[int, Any]:
    """Create a 10:00 task per tid and freeze it while the scheduler's clock reads 09:00, then
    restart the scheduler just before 10:00: the freezes are stored, so there is no race with
    the trigger time. Returns each task's fired (FROZEN) run."""
    cluster.start_scheduler("--clock-offset", offset_to(9, 0, 0))
    for tid, flags in freezes.items():
        create(cluster, tmp_path, tid, f"thaw{tid}", f"echo thawed {tid}", trigger_times="10:00")
        res = cluster.ctl("events", "freeze", str(tid), *flags)
        assert res.stdout == f"Task {tid} frozen for date 20270407.\n"
    assert cluster.scheduler is not None
    cluster.scheduler.stop()
    cluster.start_scheduler("--clock-offset", offset_to(9, 59, 58))
    cluster.start_agent("agent-a", "q1")
    fired = {}
    for tid in freezes:
        (run,) = wait_until(f"the 10:00 slot of {tid}", partial(cluster.runs, tid), timeout=15)
        assert (run.run_date, run.local_time, run.state) == ("20270407", "10:00", "FROZEN")
        assert run.reason == "frozen by operator"
        fired[tid] = run
    return fired


def test_freeze_holds_the_slot_when_it_fires_and_unfreeze_runs_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    slot = ("--run-date", "2027-04-07", "--trigger-time", "10:00")
    fired = freeze_then_reach_ten(cluster, tmp_path, {4020: (), 4021: slot})
    (slot_freeze,) = events(cluster, "--event-name", "FREEZE_TASK", "--per-page", "1")
    assert slot_freeze["args"] == {"run_date": "20270407", "trigger_time": "10:00"}
    assert task_status(cluster, 4020) == (True, "FROZEN")
    assert not (tmp_path / "thaw4020.out").exists()

    res = cluster.ctl("events", "unfreeze", "4020")
    assert res.stdout == "Task 4020 unfrozen for date 20270407.\n"
    res = cluster.ctl("events", "unfreeze", "4021", "--trigger-time", "10:00")
    assert res.stdout == "Task 4021 unfrozen for date 20270407.\n"
    for tid, run in fired.items():
        done = cluster.wait_final(run.run_id)
        assert done.state == "SUCCESS"
        assert [c.to_state for c in done.transitions] == [
            "FROZEN", "UNFREEZE", "ACTIVE", "TRIGGER", "STARTED", "RUNNING", "SUCCESS"
        ]  # fmt: skip
        assert done.transitions[1].reason == f"unfrozen by {USER}"
        assert (tmp_path / f"thaw{tid}.out").read_text() == f"thawed {tid}\n"
    assert refused(cluster, "unfreeze", "4020") == "Error: no freeze for task 4020 on 20270407\n"


def test_unfreeze_that_releases_nothing_is_not_reported_as_success(
    cluster: Cluster, tmp_path: Path
) -> None:
    fired = freeze_then_reach_ten(cluster, tmp_path, {4040: ("--trigger-time", "10:00")})
    res = cluster.ctl("events", "unfreeze", "4040", check=False)  # the date, not the slot
    if res.returncode == 0:  # the event's changes are committed when the call returns
        assert cluster.run(fired[4040].run_id).state != "FROZEN"
    else:
        assert res.stderr == "Error: no freeze for task 4040 on 20270407\n"
        assert cluster.run(fired[4040].run_id).state == "FROZEN"


def test_events_list_filters_by_task_name(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler()
    create(cluster, tmp_path, 4030, "named", "true")
    cluster.ctl("events", "disable", "4030")
    assert [e["event"] for e in events(cluster, "--task-name", "named")] == ["DISABLE_TASK"]

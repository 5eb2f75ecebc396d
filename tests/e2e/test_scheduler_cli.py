"""Issue 11's missing commands through the CLI with real processes: task-statuses, state-codes,
scheduler logs, --group filters, frozen slots in upcoming, health with the dashboard."""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.harness import Cluster, task_json, wait_until

pytestmark = pytest.mark.e2e


def create(cluster: Cluster, tmp_path: Path, task: dict[str, object]) -> None:
    path = tmp_path / f"t{task['tid']}.json"
    path.write_text(json.dumps({k: v for k, v in task.items() if v is not None}))
    cluster.ctl("tasks", "create", "-f", str(path))


def test_task_statuses_and_state_codes(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler()
    cluster.start_agent("agent-a", "q1")
    create(cluster, tmp_path, task_json(3001, "ran", "q1", "exit 0", tmp_path))
    create(cluster, tmp_path, task_json(3002, "off", "q1", "exit 0", tmp_path, active=False))
    create(cluster, tmp_path, task_json(3003, "never", "q1", "exit 0", tmp_path))
    cluster.ctl("events", "force-run", "3001")
    wait_until("run of 3001 final", lambda: [r.state for r in cluster.runs(3001)] == ["SUCCESS"])

    listed = json.loads(cluster.ctl("scheduler", "task-statuses", "-o", "json").stdout)
    by_tid = {r["tid"]: r for r in listed}
    assert by_tid[3001]["last_result"] == "SUCCESS"
    assert by_tid[3001]["status"] in {"IDLE", "ACTIVE"}  # final: back to its schedule
    assert by_tid[3002] == {"tid": 3002, "name": "off", "status": "PASSIVE", "last_result": None}
    assert by_tid[3003]["last_result"] is None
    table = cluster.ctl("scheduler", "task-statuses", "--per-page", "2").stdout
    assert "Last Result" in table and "Page 1 of 2 (3 total items)" in table
    paged = json.loads(cluster.ctl("scheduler", "task-statuses", "-p", "2", "--per-page", "2",
                                   "-o", "json").stdout)  # fmt: skip
    assert [r["tid"] for r in paged] == [3003]

    assert "display: Unfrozen" in cluster.ctl("scheduler", "state-codes", "-o", "yaml").stdout
    codes = json.loads(cluster.ctl("scheduler", "state-codes", "-o", "json").stdout)
    assert [c["code"] for c in codes] == list(range(15))
    assert codes[3] == {"code": 3, "state": "SUCCESS", "letter": "S", "display": "Success"}
    assert codes[14]["display"] == "Unfrozen" and codes[13]["state"] == "PASSIVE"
    table = cluster.ctl("scheduler", "state-codes").stdout
    for header in ("Code", "State", "Letter", "Display", "Restarting"):
        assert header in table


def test_scheduler_logs_record_start_stop_restart_and_crash(cluster: Cluster) -> None:
    first = cluster.start_scheduler().pid
    assert cluster.scheduler is not None
    cluster.scheduler.stop()
    second = cluster.start_scheduler().pid
    assert cluster.scheduler is not None
    cluster.scheduler.kill(signal.SIGKILL)  # no clean stop
    third = cluster.start_scheduler().pid

    entries = json.loads(cluster.ctl("scheduler", "logs", "-o", "json").stdout)
    actions = [(e["action"], e["pid"]) for e in reversed(entries)]
    assert actions == [
        ("STARTED", first), ("STOPPED", first), ("RESTARTED", second), ("CRASHED", second),
        ("STARTED", third),
    ]  # fmt: skip
    assert all(e["host"] for e in entries)
    crashed = json.loads(cluster.ctl("scheduler", "logs", "-a", "crashed", "-o", "json").stdout)
    assert [e["pid"] for e in crashed] == [second]
    assert "no clean stop" in crashed[0]["message"]
    table = cluster.ctl("scheduler", "logs", "--per-page", "2").stdout
    for header in ("ID", "Action", "Host", "PID", "Message", "Time"):
        assert header in table
    assert "Page 1 of 3 (5 total items)" in table
    found = json.loads(cluster.ctl("scheduler", "logs", "-s", "first start", "-o", "json").stdout)
    assert [e["pid"] for e in found] == [first]
    bad = cluster.ctl("scheduler", "logs", "-a", "EXPLODED", check=False)
    assert bad.returncode == 2


def test_group_filters_and_frozen_slots(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler()
    cluster.start_agent("agent-a", "q1")
    res = cluster.ctl("groups", "create", "-n", "etl", "-z", "UTC", "--day-of-week", "1111111",
                      "--trigger-times", "03:17")  # fmt: skip
    assert res.stdout.splitlines()[-1] == "Group inserted successfully (gid 1)"
    create(cluster, tmp_path, task_json(4001, "extract", "q1", "exit 0", tmp_path,
                                        task_group="etl", trigger_times=None, day_of_week=None,
                                        timezone=None))  # fmt: skip
    create(cluster, tmp_path, task_json(4002, "load", "q1", "exit 0", tmp_path, task_group="etl",
                                        dependency="S:extract", trigger_times=None,
                                        day_of_week=None, timezone=None))  # fmt: skip
    create(cluster, tmp_path, task_json(4003, "alone", "q1", "exit 0", tmp_path))

    for ref in ("etl", "1"):
        listed = json.loads(cluster.ctl("tasks", "list", "-g", ref, "-o", "json").stdout)
        assert [t["tid"] for t in listed] == [4001, 4002]
    missing = cluster.ctl("tasks", "list", "-g", "nope", check=False)
    assert missing.returncode == 1 and "nope" in missing.stderr

    cluster.ctl("events", "force-run", "--group", "1")
    cluster.ctl("events", "force-run", "4003")
    wait_until("every run final", lambda: all(
        [r.state for r in cluster.runs(t)] == ["SUCCESS"] for t in (4001, 4002, 4003)
    ) or None, 30)  # fmt: skip
    for ref in ("etl", "1"):
        runs = json.loads(cluster.ctl("scheduler", "task-runs", "-g", ref, "-o", "json").stdout)
        assert sorted(r["tid"] for r in runs) == [4001, 4002]
    table = cluster.ctl("scheduler", "task-runs", "--group", "etl").stdout
    assert "Total: 2" in table and "alone" not in table

    upcoming = json.loads(cluster.ctl("scheduler", "upcoming", "--group", "1", "--hours", "48",
                                      "-o", "json").stdout)  # fmt: skip
    assert len(upcoming) == 2
    assert all(e["gid"] == 1 and e["name"] == "etl" and e["local_run"].endswith("03:17")
               for e in upcoming)  # fmt: skip
    assert cluster.ctl("scheduler", "upcoming", "--group", "9", check=False).returncode == 1

    # A stored freeze of the slot after next: marked in upcoming, the other slot not.
    now = datetime.now(UTC)
    first_day = now.date() if now.strftime("%H:%M") < "03:17" else now.date() + timedelta(days=1)
    frozen = first_day + timedelta(days=1)
    cluster.ctl("events", "freeze", "4003", "--run-date", f"{frozen:%Y%m%d}")
    entries = json.loads(cluster.ctl("scheduler", "upcoming", "--task", "4003", "--hours", "72",
                                     "-o", "json").stdout)  # fmt: skip
    notes = {e["local_run"][:10]: e["note"] for e in entries}
    assert notes[f"{frozen:%Y-%m-%d}"] == "frozen"
    assert notes[f"{first_day:%Y-%m-%d}"] == ""
    table = cluster.ctl("scheduler", "upcoming", "--task", "4003", "--hours", "72").stdout
    assert "frozen" in table


def test_health_checks_the_dashboard(cluster: Cluster) -> None:
    cluster.start_scheduler()
    res = cluster.ctl("health")
    assert res.stdout.splitlines() == ["✔ API reachable", "✔ Dashboard reachable"]
    assert cluster.scheduler is not None
    cluster.scheduler.stop()
    res = cluster.ctl("health", "--timeout", "3", check=False)
    lines = res.stdout.splitlines()
    assert res.returncode == 3
    assert lines[0].startswith("✘ API reachable")
    assert lines[1].startswith("✘ Dashboard reachable")  # its address from <home>/dashboard.url

    cluster.start_scheduler("--http-listen", "")
    res = cluster.ctl("health", check=False)
    assert res.returncode == 3
    assert res.stdout.splitlines() == [
        "✔ API reachable",
        "✘ Dashboard reachable (address unknown: the scheduler reports none)",
    ]


DAY = datetime(2027, 4, 7, tzinfo=UTC)  # a Wednesday


def offset_to(hh: int, mm: int, ss: int = 0) -> str:
    target = DAY.replace(hour=hh, minute=mm, second=ss)
    return f"{target.timestamp() - time.time():.3f}"


def member(tid: int, name: str, queue: str, group: str, tmp_path: Path) -> dict[str, object]:
    return {"tid": tid, "name": name, "cmd": f"echo {name}", "run_on_host": queue,
            "task_group": group, "stdout": str(tmp_path / f"{name}.out"),
            "stderr": str(tmp_path / f"{name}.err")}  # fmt: skip


def test_modify_status_of_a_group_releases_its_dependents(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler("--clock-offset", offset_to(9, 59, 50))
    cluster.start_agent("agent-a", "q1")
    for name, extra in (("up", []), ("down", ["--dependency", "S:up"])):
        cluster.ctl("groups", "create", "-n", name, "-z", "UTC", "--day-of-week", "1111111",
                    "--trigger-times", "10:00", *extra)  # fmt: skip
    create(cluster, tmp_path, member(6001, "stuck", "nowhere", "up", tmp_path))  # no agent
    create(cluster, tmp_path, member(6002, "after", "q1", "down", tmp_path))
    wait_until("up's member waits for an agent",
               lambda: [r.state for r in cluster.runs(6001)] == ["TRIGGER"], 30)  # fmt: skip
    assert [r.state for r in cluster.runs(6002)] == ["IDLE"]  # down waits for S:up

    bad = cluster.ctl("events", "modify-status", "1", "--group", "--status", "ACTIVE",
                      "--run-date", "20270407", check=False)  # fmt: skip
    assert bad.returncode == 1 and "SUCCESS, FAILED, SKIPPED" in bad.stderr
    res = cluster.ctl("events", "modify-status", "1", "--group", "--status", "SUCCESS",
                      "--run-date", "20270407")  # fmt: skip
    assert res.stdout.strip() == "Group 1 status modified to SUCCESS."
    stuck = cluster.runs(6001)[-1]
    assert (stuck.state, stuck.reason) == ("SKIPPED", "status modified by easytask_superuser")
    wait_until("down's member to run", lambda: [r.state for r in cluster.runs(6002)] == ["SUCCESS"],
               30)  # fmt: skip
    groups = {g["name"]: g for g in json.loads(cluster.ctl("groups", "list", "-o", "json").stdout)}
    assert groups["up"]["state"] == "SUCCESS"
    wait_until("down to end SUCCESS", lambda: json.loads(
        cluster.ctl("groups", "get", "2", "-o", "json").stdout)["state"] == "SUCCESS")  # fmt: skip
    none = cluster.ctl("events", "modify-status", "1", "--group", "--status", "FAILED",
                       "--run-date", "20270408", check=False)  # fmt: skip
    assert none.returncode == 1 and "no occurrence of group 1 on 20270408" in none.stderr


def test_caught_up_group_members_carry_the_catch_up_reason(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.start_scheduler("--clock-offset", offset_to(9, 59))
    cluster.ctl("groups", "create", "-n", "batch", "-z", "UTC", "--day-of-week", "1111111",
                "--trigger-times", "10:00")  # fmt: skip
    create(cluster, tmp_path, member(6101, "late", "q1", "batch", tmp_path))
    assert cluster.scheduler is not None
    cluster.scheduler.stop()
    cluster.start_scheduler("--clock-offset", offset_to(10, 2))
    cluster.start_agent("agent-a", "q1")
    run = wait_until("the caught-up member to run", lambda: next(
        (r for r in cluster.runs(6101) if r.state == "SUCCESS"), None), 30)  # fmt: skip
    changes = cluster.run(run.run_id).transitions
    trigger = [c for c in changes if c.to_state == "TRIGGER"]
    assert [c.reason for c in trigger] == ["catch-up after scheduler downtime"]


def test_modify_status_of_a_failed_group_reopens_a_skipped_dependent(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.start_scheduler("--clock-offset", offset_to(9, 59, 50))
    cluster.start_agent("agent-a", "q1")
    for name, extra in (("up", []), ("down", ["--dependency", "S:up"])):
        cluster.ctl("groups", "create", "-n", name, "-z", "UTC", "--day-of-week", "1111111",
                    "--trigger-times", "10:00", *extra)  # fmt: skip
    create(cluster, tmp_path, {**member(6201, "fails", "q1", "up", tmp_path), "cmd": "exit 1"})
    create(cluster, tmp_path, member(6202, "after", "q1", "down", tmp_path))
    skipped = wait_until("down's member skipped", lambda: next(
        (r for r in cluster.runs(6202) if r.state == "SKIPPED"), None), 40)  # fmt: skip
    assert skipped.reason == "dependency can no longer be met: S:up"
    assert [r.state for r in cluster.runs(6201)] == ["FAILED"]

    res = cluster.ctl("events", "modify-status", "1", "--group", "--status", "SUCCESS",
                      "--run-date", "20270407")  # fmt: skip
    assert res.stdout.strip() == "Group 1 status modified to SUCCESS."
    wait_until("down's member to run", lambda: [r.state for r in cluster.runs(6202)] == ["SUCCESS"],
               30)  # fmt: skip
    assert [r.state for r in cluster.runs(6201)] == ["FAILED"]  # its own record is kept
    assert json.loads(cluster.ctl("groups", "get", "1", "-o", "json").stdout)["state"] == "SUCCESS"

"""End-to-end task flow with real processes: CLI -> scheduler -> gRPC -> agent -> final state."""

from __future__ import annotations

import json
import re
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.harness import Cluster, pid_alive, task_json, wait_until

pytestmark = pytest.mark.e2e

SEED = {
    "tid": 1000002, "name": "task2", "task_owner": "admin",
    "cmd": "ls -l ; sleep 120; ls -l ", "run_on_host": "production-server-1",
    "max_run_time": 300, "description": "A Stray task : Run an ls command",
    "retry_attempts": 3, "stderr": "task1.out", "stdout": "task1.err",
    "timezone": "US/Eastern", "active": True, "calendar": "US_HOLIDAYS", "instance": "default",
    "day_of_week": "1111111", "trigger_times": "08:30",
}  # fmt: skip


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def force_run(cluster: Cluster, tid: int) -> str:
    res = cluster.ctl("events", "force-run", str(tid))
    assert f"Force run triggered for task {tid}" in res.stdout
    match = re.search(r"Run ID: (\S+)", res.stdout)
    assert match, res.stdout
    return match.group(1)


def seed_task(out: Path, queue: str, cmd: str) -> dict[str, object]:
    task = dict(SEED, run_on_host=queue, cmd=cmd)
    task["stdout"] = str(out / "task1.err")
    task["stderr"] = str(out / "task1.out")
    return task


def test_seed_example_inserted_and_forced_runs_to_success(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler()
    cluster.start_agent("agent-a", "q-seed")
    task_file = write_json(tmp_path / "task2.json", seed_task(tmp_path, "q-seed", "echo seed-ok"))

    res = cluster.ctl("tasks", "create", "-f", str(task_file))
    assert res.stdout.splitlines()[:2] == [
        "Task validation completed",
        "Task inserted successfully (tid 1000002)",
    ]
    listed = json.loads(cluster.ctl("tasks", "list", "-o", "json").stdout)
    assert [(t["tid"], t["name"]) for t in listed] == [(1000002, "task2")]

    run_id = force_run(cluster, 1000002)
    run = cluster.wait_final(run_id)
    assert (run.state, run.return_code, run.reason) == ("SUCCESS", 0, "")
    assert (tmp_path / "task1.err").read_text() == "seed-ok\n"
    assert list(run.stdout_range) == [0, len("seed-ok\n")]
    states = [c.to_state for c in cluster.run(run_id).transitions]
    assert states == ["TRIGGER", "STARTED", "RUNNING", "SUCCESS"]

    runs = json.loads(
        cluster.ctl("scheduler", "task-runs", "--tid", "1000002", "-o", "json").stdout
    )
    assert [(r["run_id"], r["state"], r["return_code"]) for r in runs] == [(run_id, "SUCCESS", 0)]

    sched_log = (cluster.home / "logs" / "scheduler.log").read_text()
    for step in ("Task Triggered", "Task Validated", "Task Dispatched", "Agent Acknowledgment",
                 "Status Updated", "Execution Result"):  # fmt: skip
        assert re.search(rf"INFO scheduler run={re.escape(run_id)} tid=1000002 task=task2 {step}:",
                         sched_log), step  # fmt: skip
    agent_log = cluster.agents["agent-a"].output()
    for step in ("Task Received", "Command Prepared", "Execution Start", "Execution End",
                 "Return Code"):  # fmt: skip
        assert f"run={run_id} tid=1000002 task=task2 {step}:" in agent_log, step


def test_seed_example_fires_at_its_trigger_time(cluster: Cluster, tmp_path: Path) -> None:
    # Shift the scheduler's clock to 8 s before 08:30 New York time on an ordinary Wednesday.
    target = datetime(2027, 3, 10, 8, 30, tzinfo=ZoneInfo("US/Eastern"))
    offset = target.timestamp() - 8 - time.time()
    cluster.start_scheduler("--clock-offset", f"{offset:.3f}")
    cluster.start_agent("agent-a", "q-seed")
    task = seed_task(tmp_path, "q-seed", "echo fired-on-time")
    cluster.ctl("tasks", "create", "-f", str(write_json(tmp_path / "t.json", task)))

    runs = wait_until("the 08:30 run", lambda: cluster.runs(1000002), timeout=20)
    run = cluster.wait_final(runs[0].run_id)
    assert run.state == "SUCCESS"
    assert (run.run_date, run.local_time, run.timezone) == ("20270310", "08:30", "US/Eastern")
    assert run.scheduled_utc == "2027-03-10T13:30:00.000Z"
    assert run.run_id == "default:1000002:1804685400000:1"
    assert not run.forced
    assert (tmp_path / "task1.err").read_text() == "fired-on-time\n"


def test_failing_command_is_retried_then_ends_failed(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler()
    cluster.start_agent("agent-a", "q1")
    task = task_json(1001, "fails", "q1", "echo attempt $EASYTASK_ATTEMPT; exit 3", tmp_path,
                     retry_attempts=2)  # fmt: skip
    cluster.ctl("tasks", "create", "-f", str(write_json(tmp_path / "t.json", task)))
    first = force_run(cluster, 1001)
    last_id = first[: first.rindex(":")] + ":3"
    last = wait_until("attempt 3", lambda: any(r.run_id == last_id for r in cluster.runs(1001)))
    assert last
    cluster.wait_final(last_id)
    runs = cluster.runs(1001)
    assert [(r.attempt, r.state, r.return_code, r.reason) for r in runs] == [
        (1, "FAILED", 3, "exit code 3"),
        (2, "FAILED", 3, "exit code 3"),
        (3, "FAILED", 3, "exit code 3"),
    ]
    retry_states = [c.to_state for c in cluster.run(runs[1].run_id).transitions]
    assert retry_states[:2] == ["RESTARTING", "TRIGGER"]
    assert (tmp_path / "fails.out").read_text() == "attempt 1\nattempt 2\nattempt 3\n"


def test_max_run_time_terminates_the_process_group(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler()
    cluster.start_agent("agent-a", "q1")
    task = task_json(1002, "too-slow", "q1", "sleep 30 & sleep 30; wait", tmp_path, max_run_time=2)
    cluster.ctl("tasks", "create", "-f", str(write_json(tmp_path / "t.json", task)))
    run_id = force_run(cluster, 1002)
    running = cluster.wait_state(run_id, {"RUNNING"})
    assert running.has_pid and pid_alive(running.pid)
    run = cluster.wait_final(run_id, timeout=20)
    assert (run.state, run.reason) == ("TERMINATED", "timed out")
    assert run.return_code < 0
    assert 1.5 < run.duration < 10
    assert not pid_alive(running.pid)
    assert pid_alive_in_group(running.pid) == []


def pid_alive_in_group(pgid: int) -> list[int]:
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def test_run_waits_in_trigger_until_an_agent_serves_its_queue(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.start_scheduler()
    cluster.start_agent("agent-a", "other-queue")
    task = task_json(1003, "waits", "late-queue", "echo finally", tmp_path)
    cluster.ctl("tasks", "create", "-f", str(write_json(tmp_path / "t.json", task)))
    run_id = force_run(cluster, 1003)
    # Dispatch happens right after the run is committed; with no agent for the queue it stays.
    cluster.wait_state(run_id, {"TRIGGER"})
    flushed = cluster.run(run_id)
    assert flushed.state == "TRIGGER" and flushed.agent == ""
    cluster.start_agent("agent-b", "late-queue")
    run = cluster.wait_final(run_id)
    assert (run.state, run.agent) == ("SUCCESS", "agent-b")
    assert (tmp_path / "waits.out").read_text() == "finally\n"


def test_agent_killed_mid_run_and_restarted_reports_once(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler()
    agent = cluster.start_agent("agent-a", "q1")
    task = task_json(1004, "survivor", "q1", "sleep 2; echo survived; exit 5", tmp_path)
    cluster.ctl("tasks", "create", "-f", str(write_json(tmp_path / "t.json", task)))
    run_id = force_run(cluster, 1004)
    running = cluster.wait_state(run_id, {"RUNNING"})
    agent.kill(signal.SIGKILL)
    assert pid_alive(running.pid), "the command must outlive its agent"
    cluster.start_agent("agent-a", "q1")
    run = cluster.wait_final(run_id, timeout=30)
    assert (run.state, run.return_code, run.reason) == ("FAILED", 5, "exit code 5")
    assert [r.run_id for r in cluster.runs(1004)] == [run_id]
    finals = [c for c in cluster.run(run_id).transitions if c.to_state in ("FAILED", "SUCCESS")]
    assert len(finals) == 1
    assert (tmp_path / "survivor.out").read_text() == "survived\n"


def test_scheduler_killed_mid_run_and_restarted_records_result_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    sched = cluster.start_scheduler()
    cluster.start_agent("agent-a", "q1")
    task = task_json(1005, "outlives-scheduler", "q1", "sleep 2; echo done", tmp_path)
    cluster.ctl("tasks", "create", "-f", str(write_json(tmp_path / "t.json", task)))
    run_id = force_run(cluster, 1005)
    cluster.wait_state(run_id, {"RUNNING"})
    sched.kill(signal.SIGKILL)
    cluster.start_scheduler()
    run = cluster.wait_final(run_id, timeout=30)
    assert (run.state, run.return_code) == ("SUCCESS", 0)
    assert [r.run_id for r in cluster.runs(1005)] == [run_id]
    finals = [c for c in cluster.run(run_id).transitions if c.to_state == "SUCCESS"]
    assert len(finals) == 1
    assert (tmp_path / "outlives-scheduler.out").read_text() == "done\n"
    logs = cluster.ctl("scheduler", "task-run-logs", run_id).stdout
    assert "done" in logs


def test_follow_streams_output_live_until_final(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler()
    cluster.start_agent("agent-a", "q1")
    cmd = "for i in 1 2 3; do echo line$i; sleep 0.4; done; echo bad >&2"
    task = task_json(1006, "chatty", "q1", cmd, tmp_path)
    cluster.ctl("tasks", "create", "-f", str(write_json(tmp_path / "t.json", task)))
    run_id = force_run(cluster, 1006)
    cluster.wait_state(run_id, {"RUNNING"})
    res = cluster.ctl("scheduler", "task-run-logs", run_id, "--follow", timeout=30)
    assert res.stdout == "line1\nline2\nline3\n"
    assert "bad" in res.stderr and "SUCCESS" in res.stderr
    panels = cluster.ctl("scheduler", "task-run-logs", run_id).stdout
    assert "line3" in panels and "bad" in panels


def test_bad_task_file_reports_every_field_error(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler()
    bad = {"tid": 7, "name": "not ok", "cmd": "", "run_on_host": "q1", "stdout": "o",
           "stderr": "e", "timezone": "Mars/Olympus", "day_of_week": "1111111",
           "trigger_times": "25:00", "colour": "red"}  # fmt: skip
    res = cluster.ctl("tasks", "create", "-f", str(write_json(tmp_path / "bad.json", bad)),
                      check=False)  # fmt: skip
    assert res.returncode == 1
    assert "Task inserted" not in res.stdout
    for line in (
        "  tid: tid must be > 1000",
        "  name: name may contain only letters, digits, _ - . and cannot be and/or/not",
        "  cmd: cmd is required",
        "  timezone: Unknown timezone Mars/Olympus",
        "  trigger_times: Bad entry in Trigger Times field",
        "  colour: unknown field",
    ):
        assert line in res.stderr.splitlines(), (line, res.stderr)
    listed = json.loads(cluster.ctl("tasks", "list", "-o", "json").stdout)
    assert listed == []


def test_requests_without_a_valid_token_are_refused(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler()
    res = cluster.ctl("--token", "wrong", "tasks", "list", check=False)
    assert res.returncode == 3
    assert "Error:" in res.stderr
    mode = (cluster.home / "credentials.json").stat().st_mode & 0o777
    assert mode == 0o600


def test_task_update_takes_effect_immediately(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler()
    task = task_json(1007, "movable", "q1", "true", tmp_path, trigger_times="05:00")
    cluster.ctl("tasks", "create", "-f", str(write_json(tmp_path / "t.json", task)))
    now = datetime.now(UTC)
    soon = (now.hour + 1) % 24
    res = cluster.ctl("tasks", "update", "1007", "--trigger-times", f"{soon:02d}:00")
    assert "Task 1007 updated." in res.stdout
    upcoming = json.loads(
        cluster.ctl("scheduler", "upcoming", "--task", "1007", "--count", "1", "-o", "json").stdout
    )
    assert upcoming[0]["next_run_utc"].startswith(f"{soon:02d}:00", 11)

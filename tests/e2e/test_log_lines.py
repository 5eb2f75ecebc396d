"""The scheduler's log file tells each run's whole story (spec 11) with real processes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.e2e.harness import Cluster, wait_until

pytestmark = pytest.mark.e2e

PREFIX = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
STEPS = ["Task Triggered", "Task Validated", "Task Dispatched", "Agent Acknowledgment",
         "Status Updated", "Execution Result"]  # fmt: skip


def scheduler_log(cluster: Cluster) -> str:
    return (cluster.home / "logs" / "scheduler.log").read_text()


def steps_of(log: str, run_id: str) -> list[tuple[str, str]]:
    """(step, details) of each log line of ``run_id``, in order."""
    pattern = re.compile(
        rf" scheduler run={re.escape(run_id)} tid=\d+ task=\S+ ([A-Za-z ]+): (.*)$"
    )
    return [(m[1], m[2]) for line in log.splitlines() if (m := pattern.search(line))]


def create(cluster: Cluster, tmp_path: Path, task: dict[str, object]) -> None:
    path = tmp_path / f"t{task['tid']}.json"
    path.write_text(json.dumps(task))
    cluster.ctl("tasks", "create", "-f", str(path))


def member(tid: int, name: str, out: Path, dep: str = "", **extra: object) -> dict[str, object]:
    return {"tid": tid, "name": name, "cmd": f"echo {name}", "run_on_host": "q1",
            "task_group": "etl", "stdout": str(out / f"{name}.out"),
            "stderr": str(out / f"{name}.err"), "dependency": dep, **extra}  # fmt: skip


def member_runs(cluster: Cluster, tid: int) -> list[str]:
    return [r.run_id for r in cluster.runs(tid) if r.state in {"SUCCESS", "SKIPPED"}]


def run_group(cluster: Cluster, tmp_path: Path, *, debug: bool = False) -> tuple[str, ...]:
    """Force-run group etl (extract; load after S:extract; spare disabled) to its end;
    returns the three member run ids and the scheduler's log."""
    cluster.start_scheduler()
    cluster.start_agent("agent-a", "q1")
    cluster.ctl("groups", "create", "-n", "etl", "-z", "UTC", "--day-of-week", "1111111",
                "--trigger-times", "03:17")  # fmt: skip
    create(cluster, tmp_path, member(6001, "extract", tmp_path))
    create(cluster, tmp_path, member(6002, "load", tmp_path, "S:extract"))
    create(cluster, tmp_path, member(6003, "spare", tmp_path, active=False))
    if debug:
        assert cluster.ctl("events", "debug", "on").stdout == "Enabled scheduler in DEBUG mode\n"
    cluster.ctl("events", "force-run", "--group", "1")
    extract, load, spare = (
        wait_until(f"member {tid} to end", lambda t=tid: member_runs(cluster, t), timeout=60)[0]
        for tid in (6001, 6002, 6003)
    )
    wait_until("load's Execution Result", lambda: "Execution Result" in dict(
        steps_of(scheduler_log(cluster), load)), timeout=30)  # fmt: skip
    if debug:
        assert cluster.ctl("events", "debug", "off").stdout == "Disabled scheduler DEBUG mode\n"
    return extract, load, spare, scheduler_log(cluster)


def test_group_member_runs_log_task_triggered_first_like_single_tasks(
    cluster: Cluster, tmp_path: Path
) -> None:
    extract, load, _, log = run_group(cluster, tmp_path)
    for run_id in (extract, load):
        steps = [step for step, _ in steps_of(log, run_id) if step in STEPS]
        assert [s for i, s in enumerate(steps) if s not in steps[:i]] == STEPS, (run_id, steps)
        triggered = dict(steps_of(log, run_id))["Task Triggered"]
        assert re.fullmatch(
            r"run_date=\d{8} local=\d\d:\d\d:\d\d UTC utc=\d\d:\d\d:\d\d attempt=1 forced=true "
            r"(by=\S+ )?\(group etl occurrence default:g1:\d+\)",
            triggered,
        ), triggered


def test_task_validated_reports_active_freeze_calendar_dependency_and_queue(
    cluster: Cluster, tmp_path: Path
) -> None:
    extract, load, spare, log = run_group(cluster, tmp_path)
    validated = {
        run_id: [d for s, d in steps_of(log, run_id) if s == "Task Validated" and "->" in d][-1]
        for run_id in (extract, load, spare)
    }
    assert validated == {
        extract: "active=yes freeze=none calendar=ignored (forced) dependency=none queue=q1 "
        "-> TRIGGER",
        load: 'active=yes freeze=none calendar=ignored (forced) dependency="S:extract"=true '
        "queue=q1 -> TRIGGER",
        spare: "active=no (forced) freeze=ignored (forced) calendar=ignored (forced) "
        "dependency=ignored (forced) queue=q1 -> SKIPPED (task disabled)",
    }


def test_debug_on_raises_our_loggers_only_not_grpc_internals(
    cluster: Cluster, tmp_path: Path
) -> None:
    _, load, _, log = run_group(cluster, tmp_path, debug=True)
    grpc_lines = [x for x in log.splitlines() if "_cygrpc" in x or "Loaded running loop" in x]
    assert grpc_lines == []
    # DEBUG while it was on: our dependency evaluation, never grpc's internals.
    assert re.search(
        rf"DEBUG scheduler run={re.escape(load)} .* Task Validated: "
        r'dependency="S:extract" not yet true -> PENDING',
        log,
    ), log


def test_an_event_logs_one_line_and_a_forced_run_names_the_checks_it_ignored(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.start_scheduler()
    cluster.start_agent("agent-a", "q1")
    create(cluster, tmp_path, {"tid": 6101, "name": "solo", "cmd": "true", "run_on_host": "q1",
                               "stdout": str(tmp_path / "solo.out"),
                               "stderr": str(tmp_path / "solo.err"), "timezone": "UTC",
                               "day_of_week": "1111111", "trigger_times": "03:17"})  # fmt: skip
    res = cluster.ctl("events", "force-run", "6101", "--run-date", "2026-05-12")
    assert "\nRun date: 20260512" in res.stdout
    run_id = re.search(r"Run ID: (\S+)", res.stdout)
    assert run_id, res.stdout
    cluster.wait_final(run_id[1])

    def logged() -> str:
        text = scheduler_log(cluster)
        return text if "event FORCE_RUN_TASK on 6101" in text else ""

    log = wait_until("the event's log line", logged)

    stray = [line for line in log.splitlines() if not PREFIX.match(line)]
    assert stray == [], stray
    event_lines = [line for line in log.splitlines() if "event FORCE_RUN_TASK on 6101" in line]
    assert any(
        line.endswith("Force run triggered for task 6101 (solo); Run date: 20260512")
        for line in event_lines
    ), event_lines
    # The forced run says which checks it ignored (spec 10: FORCE_RUN_TASK).
    assert dict(steps_of(log, run_id[1]))["Task Validated"] == (
        "active=yes freeze=ignored (forced) calendar=ignored (forced) "
        "dependency=ignored (forced) queue=q1 -> TRIGGER"
    )

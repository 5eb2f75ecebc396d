"""Task groups with real processes: dependency order, F: handlers, groups on groups, `tasks why`."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.e2e.harness import Cluster, wait_until

pytestmark = pytest.mark.e2e

FINAL = {"SUCCESS", "FAILED", "TERMINATED", "SKIPPED", "REJECTED"}


def member(
    tid: int, name: str, cmd: str, out: Path, group: str, dep: str = ""
) -> dict[str, object]:
    return {"tid": tid, "name": name, "cmd": cmd, "run_on_host": "q1", "task_group": group,
            "stdout": str(out / f"{name}.out"), "stderr": str(out / f"{name}.err"),
            "dependency": dep}  # fmt: skip


def create_tasks(cluster: Cluster, tmp_path: Path, tasks: list[dict[str, object]]) -> None:
    for task in tasks:
        path = tmp_path / f"t{task['tid']}.json"
        path.write_text(json.dumps(task))
        cluster.ctl("tasks", "create", "-f", str(path))


def latest(cluster: Cluster, tid: int) -> str:
    runs = cluster.runs(tid)
    return runs[-1].state if runs else "-"


def test_group_of_five_runs_in_dependency_order(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler()
    cluster.start_agent("agent-a", "q1")
    res = cluster.ctl("groups", "create", "-n", "etl", "-z", "UTC", "--day-of-week", "1111111",
                      "--trigger-times", "03:17")  # fmt: skip
    assert res.stdout.splitlines()[-1] == "Group inserted successfully (gid 1)"
    order = tmp_path / "order.txt"
    log = f">> {order}"
    create_tasks(cluster, tmp_path, [
        member(5001, "extract", f"echo extract {log}", tmp_path, "etl"),
        member(5002, "transform_a", f"sleep 2; echo transform_a {log}", tmp_path, "etl",
               "S:extract"),
        member(5003, "transform_b", f"echo transform_b {log}", tmp_path, "etl", "S:extract"),
        member(5004, "load", f"echo load {log}; exit 1", tmp_path, "etl",
               "S:transform_a and S:transform_b"),
        member(5005, "on_fail", f"echo on_fail {log}", tmp_path, "etl", "F:load"),
    ])  # fmt: skip
    listed = json.loads(cluster.ctl("groups", "list", "-o", "json").stdout)
    assert [(g["name"], g["member_count"]) for g in listed] == [("etl", 5)]

    res = cluster.ctl("events", "force-run", "--group", "1")
    assert res.stdout.startswith("Force run triggered for group 1 (etl)\nRun date: ")

    wait_until("load to wait for transform_a", lambda: latest(cluster, 5004) == "PENDING")
    why = cluster.ctl("tasks", "why", "-n", "load").stdout
    assert "✘" in why and "dependency S:transform_a" in why
    assert "transform_a is RUNNING (needs S)" in why or "transform_a is STARTED" in why
    assert "✔" in why and "transform_b is SUCCESS (needs S)" in why
    why_json = json.loads(cluster.ctl("tasks", "why", "-n", "load", "-o", "json").stdout)
    blocking = [c["clause"] for c in why_json["clauses"] if not c["ok"]]
    assert blocking == ["dependency", "dependency S:transform_a"]
    assert why_json["verdict"] == "waiting: S:transform_a and S:transform_b: not yet true"

    members = range(5001, 5006)
    wait_until("every member final", lambda: all(latest(cluster, t) in FINAL for t in members), 30)
    assert [latest(cluster, t) for t in range(5001, 5006)] == [
        "SUCCESS", "SUCCESS", "SUCCESS", "FAILED", "SUCCESS"
    ]  # fmt: skip
    lines = order.read_text().split()
    assert lines[0] == "extract" and lines[-2:] == ["load", "on_fail"]
    assert sorted(lines[1:3]) == ["transform_a", "transform_b"]
    group = wait_until(
        "group FAILED",
        lambda: (g := json.loads(cluster.ctl("groups", "get", "1", "-o", "json").stdout))["state"]
        == "FAILED" and g,
    )  # fmt: skip
    assert group["name"] == "etl"


def test_group_depending_on_two_groups_runs_after_both(cluster: Cluster, tmp_path: Path) -> None:
    day = datetime(2027, 4, 7, 10, 0, tzinfo=UTC)
    cluster.start_scheduler("--clock-offset", f"{day.timestamp() - 20 - time.time():.3f}")
    cluster.start_agent("agent-a", "q1")
    order = tmp_path / "order.txt"
    for name, extra in (("a", []), ("b", []), ("c", ["--dependency", "S:a and S:b"])):
        cluster.ctl("groups", "create", "-n", name, "-z", "UTC", "--day-of-week", "1111111",
                    "--trigger-times", "10:00", *extra)  # fmt: skip
    create_tasks(cluster, tmp_path, [
        member(5101, "ta", f"sleep 1; echo a >> {order}", tmp_path, "a"),
        member(5102, "tb", f"echo b >> {order}", tmp_path, "b"),
        member(5103, "tc", f"echo c >> {order}", tmp_path, "c"),
    ])  # fmt: skip
    wait_until("tc to run", lambda: latest(cluster, 5103) == "SUCCESS", timeout=40)
    assert sorted(order.read_text().split()[:2]) == ["a", "b"]
    assert order.read_text().split()[2] == "c"
    run = cluster.runs(5103)[-1]
    assert (run.run_date, run.local_time, run.group) == ("20270407", "10:00", "c")


def test_import_mixing_valid_and_invalid_records_applies_the_valid_ones(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.start_scheduler()
    cluster.ctl("groups", "create", "-n", "keep", "-z", "UTC", "--day-of-week", "1111111",
                "--trigger-times", "03:17")  # fmt: skip
    before = cluster.ctl("tasks", "export").stdout
    data = {
        "groups": [{"name": "fresh", "timezone": "UTC", "day_of_week": "1111111",
                    "trigger_times": "04:00"}],
        "tasks": [member(5201, "good", "true", tmp_path, "fresh"),
                  member(5202, "bad", "true", tmp_path, "fresh", "S:missing")],
    }  # fmt: skip
    path = tmp_path / "import.json"
    path.write_text(json.dumps(data))
    res = cluster.ctl("tasks", "import", str(path), check=False)
    assert res.returncode == 1
    assert res.stdout.splitlines() == [
        "Import complete: 2 created, 0 updated, 0 unchanged, 0 deleted",
        "Errors:",
        '- Task "bad": dependency: dependency references unknown task missing',
    ]
    # Spec 12: group "fresh" and task "good" are applied; as a record failed, "keep" (absent
    # from the file) is not deleted.
    after = json.loads(cluster.ctl("tasks", "export").stdout)
    assert [g["name"] for g in after["groups"]] == ["keep", "fresh"]
    assert [t["name"] for t in after["tasks"]] == ["good"]
    assert json.loads(before)["groups"] == after["groups"][:1]

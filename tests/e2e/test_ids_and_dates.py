"""Ids are never handed out twice and run dates are real calendar dates, through the CLI
against real processes (spec 2.1, 3, 10, 12; issue 11)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import grpc
import pytest

from easytask.rpc.v1 import api_pb2 as pb
from tests.e2e.harness import Cluster, task_json

pytestmark = pytest.mark.e2e


def create_from(cluster: Cluster, path: Path, record: dict[str, Any], kind: str = "tasks") -> str:
    path.write_text(json.dumps(record))
    res = cluster.ctl(kind, "create", "-f", str(path), check=False)
    return res.stdout + res.stderr


def task_runs(cluster: Cluster, *args: str) -> list[dict[str, Any]]:
    out = cluster.ctl("scheduler", "task-runs", *args, "-o", "json").stdout
    runs: list[dict[str, Any]] = json.loads(out)
    return runs


def test_a_deleted_tid_or_gid_is_never_handed_out_again(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler()
    cluster.start_agent("agent-a", "q1")
    record = task_json(0, "first", "q1", "echo old", tmp_path)
    del record["tid"]
    assert "Task inserted successfully (tid 1001)" in create_from(cluster, tmp_path / "t.json",
                                                                   record)  # fmt: skip
    out = cluster.ctl("events", "force-run", "1001").stdout
    match = re.search(r"Run ID: (\S+)", out)
    assert match
    old_run = cluster.wait_final(match.group(1))
    assert cluster.ctl("tasks", "delete", "1001").stdout == "Task deleted: first (tid 1001)\n"

    record["name"] = "second"
    assert "Task inserted successfully (tid 1002)" in create_from(cluster, tmp_path / "t.json",
                                                                   record)  # fmt: skip
    assert task_runs(cluster, "--tid", "1002") == []
    assert cluster.run(old_run.run_id).tid == 1001, "the old history stays readable by run id"
    # An explicit reuse is refused too: it would mix the deleted task's history in.
    reuse = {**record, "name": "third", "tid": 1001}
    res = create_from(cluster, tmp_path / "t.json", reuse)
    assert "tid: tid already exists" in res

    group = {"name": "g_one", "timezone": "UTC", "day_of_week": "1111111",
             "trigger_times": "03:17"}  # fmt: skip
    assert "(gid 1)" in create_from(cluster, tmp_path / "g.json", group, "groups")
    cluster.ctl("groups", "delete", "1")
    assert "(gid 2)" in create_from(cluster, tmp_path / "g.json", {**group, "name": "g_two"},
                                    "groups")  # fmt: skip

    # The high-water mark survives a restart.
    cluster.ctl("tasks", "delete", "1002")
    assert cluster.scheduler is not None
    cluster.scheduler.stop()
    cluster.start_scheduler()
    record["name"] = "fourth"
    assert "Task inserted successfully (tid 1003)" in create_from(cluster, tmp_path / "t.json",
                                                                   record)  # fmt: skip
    cluster.ctl("groups", "delete", "2")
    assert "(gid 3)" in create_from(cluster, tmp_path / "g.json", {**group, "name": "g_three"},
                                    "groups")  # fmt: skip


def test_a_run_date_must_be_a_real_calendar_date(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler()
    path = tmp_path / "t.json"
    create_from(cluster, path, task_json(1000002, "task2", "q1", "true", tmp_path))
    for args in (
        ("events", "force-run", "1000002", "--run-date", "2026-13-45"),
        ("events", "freeze", "1000002", "--run-date", "20261345"),
        ("events", "unfreeze", "1000002", "--run-date", "2026-02-30"),
        ("events", "modify-status", "1000002", "--status", "SUCCESS", "--run-date", "20250229"),
        ("scheduler", "task-runs", "--run-date", "20261345"),
    ):
        res = cluster.ctl(*args, check=False)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert "run_date must be a calendar date" in res.stderr, res.stderr
    assert cluster.runs(1000002) == [], "no run was made for an impossible date"

    # The API refuses it too (a client in any language), naming the field.
    api, meta = cluster.api(), cluster.metadata()
    with pytest.raises(grpc.RpcError) as info:
        api.ForceRun(pb.ForceRunRequest(ref=pb.TaskRef(tid=1000002), run_date="20261345"),
                     metadata=meta)  # fmt: skip
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "run_date" in (info.value.details() or "")
    reply = api.PublishEvent(
        pb.PublishEventRequest(event="FREEZE_TASK", task=pb.TaskRef(tid=1000002),
                               run_date="20261345"),
        metadata=meta,
    )  # fmt: skip
    assert reply.status == "FAILURE" and "run_date must be a calendar date" in reply.message
    with pytest.raises(grpc.RpcError) as info:
        api.ListRuns(pb.ListRunsRequest(run_date="2026-13-45"), metadata=meta)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    # Both written forms of a real date are one date.
    out = cluster.ctl("events", "freeze", "1000002", "--run-date", "2026-05-12").stdout
    assert out == "Task 1000002 frozen for date 20260512.\n"
    out = cluster.ctl("events", "force-run", "1000002", "--run-date", "2026-05-12").stdout
    assert "Run date: 20260512" in out
    assert [r.run_date for r in cluster.runs(1000002)] == ["20260512"]
    assert len(task_runs(cluster, "--run-date", "2026-05-12")) == 1

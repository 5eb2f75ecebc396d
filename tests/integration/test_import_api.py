"""ImportTasks over gRPC: `atomic` applies nothing when a record fails; unchanged records are
counted as unchanged, not updated (spec 12)."""

from __future__ import annotations

import json

from easytask.rpc.v1 import api_pb2 as pb
from tests.integration.conftest import Harness


def task(tid: int, name: str, **extra: object) -> dict[str, object]:
    return {"tid": tid, "name": name, "cmd": "true", "run_on_host": "q1", "stdout": "o",
            "stderr": "e", "timezone": "UTC", "trigger_times": "03:17", "day_of_week": "1111111",
            **extra}  # fmt: skip


async def names(harness: Harness) -> list[str]:
    exported = await harness.api.ExportTasks(pb.ExportTasksRequest(), metadata=harness.md)
    return [t["name"] for t in json.loads(exported.json)["tasks"]]


async def test_atomic_import_applies_nothing_and_unchanged_is_counted(harness: Harness) -> None:
    bad = {"tasks": [task(3701, "good"), task(3702, "bad", dependency="S:ghost")]}
    reply = await harness.api.ImportTasks(
        pb.ImportTasksRequest(json=json.dumps(bad), atomic=True), metadata=harness.md
    )
    assert [e.name for e in reply.errors] == ["bad"]
    assert await names(harness) == []

    good = {"tasks": [task(3701, "good")]}
    reply = await harness.api.ImportTasks(
        pb.ImportTasksRequest(json=json.dumps(good), atomic=True), metadata=harness.md
    )
    assert [e.message for e in reply.errors] == []
    assert (reply.created, reply.updated, reply.unchanged, reply.deleted) == (1, 0, 0, 0)
    exported = await harness.api.ExportTasks(pb.ExportTasksRequest(), metadata=harness.md)
    reply = await harness.api.ImportTasks(
        pb.ImportTasksRequest(json=exported.json), metadata=harness.md
    )
    assert (reply.created, reply.updated, reply.unchanged, reply.deleted) == (0, 0, 1, 0)
    assert await names(harness) == ["good"]

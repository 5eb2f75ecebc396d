"""Hostile input through the real gRPC API: every call answers with a status naming the problem,
nothing refused reaches the store, one unencodable run never takes its queue down (issue 7)."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any

import grpc
import pytest

from easytask.rpc.errors import FIELD_ERRORS_KEY
from easytask.rpc.v1 import agent_pb2 as apb
from easytask.rpc.v1 import api_pb2 as pb
from tests.integration.conftest import Harness

DEADLINE = 10.0


def field_errors(exc: grpc.aio.AioRpcError) -> list[dict[str, str]]:
    trailers = dict(exc.trailing_metadata() or ())
    payload = trailers.get(FIELD_ERRORS_KEY)
    assert payload, f"no field errors in {exc.code()}: {exc.details()}"
    entries: list[dict[str, str]] = json.loads(payload)
    return entries


def task_doc(**fields: Any) -> dict[str, Any]:
    base = {"name": "good", "cmd": "true", "run_on_host": "q1", "stdout": "/tmp/o",
            "stderr": "/tmp/e", "timezone": "UTC", "day_of_week": "1111111",
            "trigger_times": "12:00"}  # fmt: skip
    base.update(fields)
    return base


async def total_tasks(h: Harness) -> int:
    reply = await h.api.ListTasks(pb.ListTasksRequest(per_page=1), metadata=h.md)
    return reply.total


HOSTILE_TASKS: list[tuple[str, str, str]] = [
    # (id, raw JSON document, field the refusal must name)
    ("surrogate-cmd", json.dumps(task_doc(cmd="echo \udfff")), "cmd"),
    ("surrogate-description", json.dumps(task_doc(description="\udfff")), "description"),
    ("surrogate-timezone", json.dumps(task_doc(timezone="\ud800")), "timezone"),
    ("surrogate-calendar", json.dumps(task_doc(calendar="\udfff")), "calendar"),
    ("surrogate-key", json.dumps({**task_doc(), "\udfff": 1}), "task"),
    ("empty-key", json.dumps({**task_doc(), "": 1}), "task"),
    ("nul-cmd", json.dumps(task_doc(cmd="echo a\x00b")), "cmd"),
    ("nul-stdout", json.dumps(task_doc(stdout="/tmp/o\x00")), "stdout"),
    ("nul-stderr", json.dumps(task_doc(stderr="/tmp/e\x00")), "stderr"),
    ("nul-run-as-user", json.dumps(task_doc(run_as_user="ro\x00ot")), "run_as_user"),
    ("nul-profile", json.dumps(task_doc(profile="p\x00")), "profile"),
    ("deep-array", '{"name": ' + "[" * 3000 + "]" * 3000 + "}", "task"),
    ("deep-object", '{"alert": ' + '{"a":' * 3000 + "1" + "}" * 3001, "task"),
    ("unclosed", '{"cmd": ' + "[" * 5000, "task"),
    ("huge-timezone", json.dumps(task_doc(timezone="Z" * 20000)), "timezone"),
    ("too-large", json.dumps(task_doc(description="x" * (1024 * 1024 + 1))), "task"),
    ("many-unknown-keys", json.dumps({**task_doc(), **{f"k{i}": i for i in range(3000)}}), "k0"),
]


@pytest.mark.parametrize(("doc", "field"), [c[1:] for c in HOSTILE_TASKS],
                         ids=[c[0] for c in HOSTILE_TASKS])  # fmt: skip
async def test_hostile_task_documents_are_refused_naming_the_field(
    harness: Harness, doc: str, field: str
) -> None:
    before = await total_tasks(harness)
    for call, request in (
        (harness.api.CreateTask, pb.CreateTaskRequest(task_json=doc)),
        (harness.api.UpdateTask, pb.UpdateTaskRequest(ref=pb.TaskRef(tid=1001), patch_json=doc)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await call(request, metadata=harness.md, timeout=DEADLINE)
        code = exc.value.code()
        if call is harness.api.UpdateTask and code is grpc.StatusCode.NOT_FOUND:
            continue  # no task 1001: the document was still read first where it must be
        assert code is grpc.StatusCode.INVALID_ARGUMENT, exc.value.details()
        entries = field_errors(exc.value)
        assert field in [e["field"] for e in entries]
        assert all(e["field"] for e in entries)
        assert len(exc.value.details()) <= 4000
    assert await total_tasks(harness) == before


async def test_update_reads_hostile_patches_before_touching_the_task(harness: Harness) -> None:
    task = await harness.create(tid=1001, name="keep", cmd="echo kept")
    for _, doc, field in HOSTILE_TASKS:
        request = pb.UpdateTaskRequest(ref=pb.TaskRef(tid=1001), patch_json=doc)
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await harness.api.UpdateTask(request, metadata=harness.md, timeout=DEADLINE)
        assert exc.value.code() is grpc.StatusCode.INVALID_ARGUMENT, (field, exc.value.details())
        assert field in [e["field"] for e in field_errors(exc.value)]
    stored = await harness.api.GetTask(pb.TaskRef(tid=1001), metadata=harness.md)
    assert json.loads(stored.task_json) == task


async def test_tab_and_newline_in_cmd_are_accepted(harness: Harness) -> None:
    task = await harness.create(tid=1002, cmd="echo a\n\techo b")
    assert task["cmd"] == "echo a\n\techo b"


HOSTILE_GROUPS = [
    ("surrogate-description", json.dumps({"name": "g", "description": "\udfff"}), "description"),
    ("empty-key", json.dumps({"name": "g", "": 1}), "group"),
    ("nul-team", json.dumps({"name": "g", "team": "a\x00"}), "team"),
    ("deep", '{"name": ' + "[" * 3000 + "]" * 3000 + "}", "group"),
]


@pytest.mark.parametrize(("doc", "field"), [c[1:] for c in HOSTILE_GROUPS],
                         ids=[c[0] for c in HOSTILE_GROUPS])  # fmt: skip
async def test_hostile_group_documents_are_refused_naming_the_field(
    harness: Harness, doc: str, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await harness.api.CreateGroup(
            pb.CreateGroupRequest(group_json=doc), metadata=harness.md, timeout=DEADLINE
        )
    assert exc.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field in [e["field"] for e in field_errors(exc.value)]
    groups = await harness.api.ListGroups(pb.ListGroupsRequest(), metadata=harness.md)
    assert groups.total == 0


async def test_control_characters_in_plain_request_fields_are_refused(harness: Harness) -> None:
    md, api = harness.md, harness.api
    cases: list[tuple[Any, Any, str]] = [
        (api.CreateCalendar, pb.CreateCalendarRequest(name="cal\x00"), "name"),
        (
            api.AddHoliday,
            pb.AddHolidayRequest(name="c", start_date="2026-01-01", reason="r\x01"),
            "reason",
        ),
        (api.PublishEvent, pb.PublishEventRequest(event="FORCE_RUN_TASK\x00"), "event"),
        (api.GetTask, pb.TaskRef(name="t\x00"), "name"),
        (api.ListRuns, pb.ListRunsRequest(search="\x1b[31m"), "search"),
        (api.DeleteTask, pb.DeleteTaskRequest(ref=pb.TaskRef(name="x\x00")), "name"),
    ]
    for call, request, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await call(request, metadata=md, timeout=DEADLINE)
        assert exc.value.code() is grpc.StatusCode.INVALID_ARGUMENT, (field, exc.value.details())
        assert [e["field"] for e in field_errors(exc.value)] == [field]
    calendars = await api.ListCalendars(pb.ListCalendarsRequest(), metadata=md)
    assert all("\x00" not in c.name for c in calendars.calendars)


async def test_import_with_hostile_records_reports_them_and_changes_nothing(
    harness: Harness,
) -> None:
    await harness.create(tid=1001, name="keep")
    text = json.dumps({"tasks": [task_doc(tid=1001, name="keep", cmd="\udfff"),
                                 task_doc(tid=1002, name="n\x00")]})  # fmt: skip
    reply = await harness.api.ImportTasks(
        pb.ImportTasksRequest(json=text), metadata=harness.md, timeout=DEADLINE
    )
    messages = [e.message for e in reply.errors]
    assert any(m.startswith("cmd: cmd must be valid Unicode text") for m in messages)
    assert any(m.startswith("name: name must not contain NUL") for m in messages)
    assert (reply.created, reply.updated) == (0, 0)
    stored = await harness.api.GetTask(pb.TaskRef(tid=1001), metadata=harness.md)
    assert json.loads(stored.task_json)["cmd"] == "true"
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await harness.api.ImportTasks(
            pb.ImportTasksRequest(json="[" * 4000), metadata=harness.md, timeout=DEADLINE
        )
    assert exc.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert [e["field"] for e in field_errors(exc.value)] == ["file"]


async def test_unexpected_error_answers_internal_with_an_id_logged_once(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app = harness.service.app
    assert app is not None

    def broken(*args: Any, **kw: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(app, "get_task", broken)
    request = pb.TaskRef(tid=1001)
    with (
        caplog.at_level(logging.ERROR, logger="easytask.rpc.errors"),
        pytest.raises(grpc.aio.AioRpcError) as exc,
    ):
        await harness.api.GetTask(request, metadata=harness.md, timeout=DEADLINE)
    assert exc.value.code() is grpc.StatusCode.INTERNAL
    details = exc.value.details() or ""
    assert details.startswith("internal error ") and "disk on fire" not in details
    error_id = details.split()[2]
    logged = [r for r in caplog.records if error_id in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None
    monkeypatch.undo()
    health = await harness.api.Health(pb.HealthRequest(), metadata=harness.md, timeout=DEADLINE)
    assert health.status == "HEALTHY"


async def test_an_unencodable_run_fails_alone_and_its_queue_keeps_running(
    harness: Harness,
) -> None:
    """A definition planted past validation: its order cannot be encoded for the agent."""
    agent = await harness.agent("a1", ["q1"])
    good = await harness.create(tid=1001, name="good")
    await harness.create(tid=1002, name="bad")
    app = harness.service.app
    assert app is not None
    core = harness.service.core
    assert core is not None
    tasks = core.engine.index.tasks
    tasks[1002] = replace(tasks[1002], cmd="echo \udfff")
    bad_run = await core.actions.force_run(1002, None, "test")
    good_run = await core.actions.force_run(good["tid"], None, "test")
    order = await agent.recv("run")
    assert order.run_id == good_run.run_id
    failed = await harness.wait_state(bad_run.run_id, "FAILED")
    assert failed.reason == (
        "cannot encode run order: cmd must be valid Unicode text (lone surrogate U+DFFF at 5)"
    )
    await agent.send(accepted=apb.RunAccepted(run_id=order.run_id))
    await harness.wait_state(good_run.run_id, "STARTED")
    hub = harness.service.hub
    assert hub is not None
    assert "a1" in hub.sessions and not hub.sessions["a1"].closed

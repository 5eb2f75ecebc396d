"""Task groups at runtime: occurrences, dependency release, F: handlers, group state, events."""

from __future__ import annotations

import json

import grpc
import pytest

from easytask.rpc.v1 import agent_pb2 as apb
from easytask.rpc.v1 import api_pb2 as pb
from tests.integration.conftest import Harness, ScriptedAgent, eventually

NOON_MS = 1780315200000  # 2026-06-01T12:00:00Z


async def create_group(h: Harness, **group: object) -> pb.GroupReply:
    base = {"name": "etl", "timezone": "UTC", "day_of_week": "1111111", "trigger_times": "12:00"}
    base.update(group)
    return await h.api.CreateGroup(
        pb.CreateGroupRequest(group_json=json.dumps(base)), metadata=h.md
    )


async def member(h: Harness, tid: int, name: str, dependency: str = "", group: str = "etl") -> None:
    task = {"tid": tid, "name": name, "cmd": "true", "run_on_host": "q1", "stdout": "/tmp/o",
            "stderr": "/tmp/e", "task_group": group, "dependency": dependency}  # fmt: skip
    await h.api.CreateTask(pb.CreateTaskRequest(task_json=json.dumps(task)), metadata=h.md)


async def complete(agent: ScriptedAgent, expect_tid: int, rc: int = 0) -> str:
    order = await agent.recv("run")
    assert order.tid == expect_tid, f"expected task {expect_tid} to run next, got {order.tid}"
    state = "SUCCESS" if rc == 0 else "FAILED"
    fin = apb.RunFinished(run_id=order.run_id, state=state, has_return_code=True, return_code=rc,
                          pid=7, started_at_ms=NOON_MS, ended_at_ms=NOON_MS + 10,
                          reason="" if rc == 0 else f"exit code {rc}")  # fmt: skip
    batch = apb.AgentBatch(messages=[
        apb.AgentMessage(accepted=apb.RunAccepted(run_id=order.run_id)),
        apb.AgentMessage(finished=fin),
    ])  # fmt: skip
    await agent.send(batch=batch)
    await agent.recv("result_ack")
    return str(order.run_id)


async def states(h: Harness, *tids: int) -> list[tuple[str, str]]:
    out = []
    for tid in tids:
        runs = await h.runs(tid)
        out.append((runs[-1].state, runs[-1].reason) if runs else ("-", ""))
    return out


async def etl(h: Harness) -> None:
    await create_group(h)
    await member(h, 3001, "extract")
    await member(h, 3002, "transform_a", "S:extract")
    await member(h, 3003, "transform_b", "S:extract")
    await member(h, 3004, "load", "S:transform_a and S:transform_b")
    await member(h, 3005, "on_fail", "F:load")


async def test_fan_out_fan_in_and_failure_handler(harness: Harness) -> None:
    await etl(harness)
    agent = await harness.agent("a1", ["q1"])
    await harness.clock.advance(60)
    await complete(agent, 3001)
    first, second = await agent.recv("run"), await agent.recv("run")  # fan-out: both at once
    assert {first.tid, second.tid} == {3002, 3003}
    assert await states(harness, 3004, 3005) == [("PENDING", ""), ("PENDING", "")]
    for order in (first, second):
        fin = apb.RunFinished(run_id=order.run_id, state="SUCCESS", has_return_code=True,
                              started_at_ms=NOON_MS, ended_at_ms=NOON_MS + 5)  # fmt: skip
        await agent.send(accepted=apb.RunAccepted(run_id=order.run_id))
        await agent.send(finished=fin)
        await agent.recv("result_ack")
    await complete(agent, 3004, rc=1)  # fan-in released only after both
    await complete(agent, 3005)  # the F: handler runs because load failed
    group_run = f"default:g1:{NOON_MS}"
    runs = await harness.runs(3001)
    assert runs[0].group_run_id == group_run and runs[0].group == "etl"
    reply = await eventually(
        "group FAILED",
        lambda: _group_state(harness, "FAILED"),
    )
    assert reply.member_count == 5


async def _group_state(h: Harness, want: str) -> pb.GroupReply | None:
    reply = await h.api.GetGroup(pb.GroupRef(gid=1), metadata=h.md)
    return reply if reply.state == want else None


async def test_unmet_dependency_is_skipped_and_group_succeeds(harness: Harness) -> None:
    await etl(harness)
    agent = await harness.agent("a1", ["q1"])
    await harness.clock.advance(60)
    await complete(agent, 3001)
    await complete(agent, 3002)
    await complete(agent, 3003)
    await complete(agent, 3004)
    await eventually("group SUCCESS", lambda: _group_state(harness, "SUCCESS"))
    assert await states(harness, 3005) == [("SKIPPED", "dependency can no longer be met: F:load")]


async def test_modify_status_releases_dependents(harness: Harness) -> None:
    await create_group(harness)
    await member(harness, 3101, "first")
    await member(harness, 3102, "second", "S:first")
    agent = await harness.agent("a1", ["q1"])
    await harness.clock.advance(60)
    await complete(agent, 3101, rc=2)
    await eventually("second skipped", lambda: _skipped(harness, 3102))
    request = pb.PublishEventRequest(
        event="MODIFY_TASK_STATUS", task=pb.TaskRef(tid=3101), run_date="20260601", status="SUCCESS"
    )
    reply = await harness.api.PublishEvent(request, metadata=harness.md)
    assert (reply.status, reply.message) == ("SUCCESS", "Task 3101 status modified to SUCCESS.")
    order = await agent.recv("run")
    assert order.tid == 3102, "FAILED -> SUCCESS releases the dependent"


async def _skipped(h: Harness, tid: int) -> bool:
    return (await states(h, tid))[0][0] == "SKIPPED"


async def test_group_depending_on_two_groups_starts_when_both_succeed(harness: Harness) -> None:
    await create_group(harness, name="a")
    await create_group(harness, name="b", trigger_times="12:00")
    await create_group(harness, name="c", dependency="S:a and S:b", trigger_times="12:00")
    await member(harness, 3201, "ta", group="a")
    await member(harness, 3202, "tb", group="b")
    await member(harness, 3203, "tc", group="c")
    agent = await harness.agent("a1", ["q1"])
    await harness.clock.advance(60)
    got = {(await agent.recv("run")).tid, (await agent.recv("run")).tid}
    assert got == {3201, 3202}
    assert await states(harness, 3203) == [("IDLE", "")]
    reply = await harness.api.GetGroup(pb.GroupRef(name="c"), metadata=harness.md)
    assert reply.state == "PENDING"
    for run_id in [r.run_id for tid in (3201, 3202) for r in await harness.runs(tid)]:
        fin = apb.RunFinished(run_id=run_id, state="SUCCESS", has_return_code=True,
                              started_at_ms=NOON_MS, ended_at_ms=NOON_MS + 5)  # fmt: skip
        await agent.send(accepted=apb.RunAccepted(run_id=run_id))
        await agent.send(finished=fin)
        await agent.recv("result_ack")
    order = await agent.recv("run")
    assert order.tid == 3203


async def test_disabled_group_records_skipped_members(harness: Harness) -> None:
    await create_group(harness)
    await member(harness, 3301, "one")
    reply = await harness.api.PublishEvent(
        pb.PublishEventRequest(event="DISABLE_TASK", group=pb.GroupRef(gid=1)), metadata=harness.md
    )
    assert reply.message == "Group 1 disabled on scheduler."
    await harness.clock.advance(60)
    run = await harness.wait_state(f"default:3301:{NOON_MS}:1", "SKIPPED")
    assert run.reason == "task group disabled"


async def test_force_run_group_opens_a_new_occurrence(harness: Harness) -> None:
    await create_group(harness)
    await member(harness, 3401, "one")
    await member(harness, 3402, "two", "S:one")
    agent = await harness.agent("a1", ["q1"])
    reply = await harness.api.PublishEvent(
        pb.PublishEventRequest(event="FORCE_RUN_TASK", group=pb.GroupRef(gid=1)),
        metadata=harness.md,
    )
    assert reply.status == "SUCCESS", reply.message
    assert reply.message.startswith("Force run triggered for group 1 (etl)\nRun date: ")
    await complete(agent, 3401)
    await complete(agent, 3402)


async def test_group_rules_and_dependency_scope(harness: Harness) -> None:
    await create_group(harness)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await create_group(harness, name="bad", run_frequency="09:00-17:00-60", cmd="x")
    assert "run_frequency: run_frequency defined for task group" in err.value.details()
    assert "cmd: cmd not allowed for task group" in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await member(harness, 3501, "x", "S:nobody")
    assert "dependency references unknown task nobody" in err.value.details()
    await member(harness, 3502, "a")
    await member(harness, 3503, "b", "S:a")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        patch = json.dumps({"dependency": "S:b"})
        await harness.api.UpdateTask(pb.UpdateTaskRequest(ref=pb.TaskRef(tid=3502),
                                     patch_json=patch), metadata=harness.md)  # fmt: skip
    assert "circular dependency detected (a -> b -> a)" in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await harness.api.DeleteGroup(pb.DeleteGroupRequest(ref=pb.GroupRef(gid=1)),
                                      metadata=harness.md)  # fmt: skip
    assert "group has 2 tasks" in err.value.details()
    deleted = await harness.api.DeleteGroup(
        pb.DeleteGroupRequest(ref=pb.GroupRef(gid=1), cascade=True), metadata=harness.md
    )
    assert (deleted.name, deleted.tasks_deleted) == ("etl", 2)


async def test_import_applies_valid_records_and_deletes_nothing_when_one_fails(
    harness: Harness,
) -> None:
    await create_group(harness)
    await member(harness, 3601, "kept")
    before = await harness.api.ExportTasks(pb.ExportTasksRequest(), metadata=harness.md)
    data = {
        "groups": [{"name": "new_group", "timezone": "UTC", "day_of_week": "1111111",
                    "trigger_times": "13:00"}],
        "tasks": [
            {"tid": 3602, "name": "fine", "cmd": "true", "run_on_host": "q1", "stdout": "o",
             "stderr": "e", "task_group": "new_group"},
            {"tid": 3603, "name": "broken", "cmd": "true", "run_on_host": "q1", "stdout": "o",
             "stderr": "e", "task_group": "new_group", "dependency": "S:ghost"},
        ],
    }  # fmt: skip
    reply = await harness.api.ImportTasks(
        pb.ImportTasksRequest(json=json.dumps(data)), metadata=harness.md
    )
    assert [(e.kind, e.name, e.message) for e in reply.errors] == [
        ("task", "broken", "dependency: dependency references unknown task ghost")
    ]
    # Spec 12: the valid records are applied; as one failed, etl and "kept" are not deleted.
    assert (reply.created, reply.updated, reply.deleted) == (2, 0, 0)
    after = json.loads(
        (await harness.api.ExportTasks(pb.ExportTasksRequest(), metadata=harness.md)).json
    )
    assert [g["name"] for g in after["groups"]] == ["etl", "new_group"]
    assert [t["name"] for t in after["tasks"]] == ["kept", "fine"]
    assert before.json != json.dumps(after)

    data["tasks"] = data["tasks"][:1]
    reply = await harness.api.ImportTasks(
        pb.ImportTasksRequest(json=json.dumps(data)), metadata=harness.md
    )
    assert not reply.errors
    # The file is the whole truth: etl and its task "kept" are gone, new_group and "fine" stay.
    assert (reply.created, reply.updated, reply.deleted) == (0, 0, 2)
    exported = json.loads(
        (await harness.api.ExportTasks(pb.ExportTasksRequest(), metadata=harness.md)).json
    )
    assert [g["name"] for g in exported["groups"]] == ["new_group"]
    assert [t["name"] for t in exported["tasks"]] == ["fine"]


async def test_frozen_member_holds_its_occurrence_until_unfrozen(harness: Harness) -> None:
    await create_group(harness)
    await member(harness, 3701, "one")
    await member(harness, 3702, "two", "S:one")

    async def event(name: str) -> pb.EventReply:
        req = pb.PublishEventRequest(event=name, task=pb.TaskRef(tid=3702), run_date="20260601")
        return await harness.api.PublishEvent(req, metadata=harness.md)

    assert (await event("FREEZE_TASK")).message == "Task 3702 frozen for date 20260601."
    agent = await harness.agent("a1", ["q1"])
    await harness.clock.advance(60)
    await complete(agent, 3701)
    assert await states(harness, 3702) == [("FROZEN", "frozen by operator")]
    assert (await harness.api.GetGroup(pb.GroupRef(gid=1), metadata=harness.md)).state == "RUNNING"
    assert (await event("UNFREEZE_TASK")).message == "Task 3702 unfrozen for date 20260601."
    await complete(agent, 3702)  # unfrozen, its dependency already holds: it runs
    await eventually("group SUCCESS", lambda: _group_state(harness, "SUCCESS"))
    run_id = (await harness.runs(3702))[0].run_id
    transitions = [c.to_state for c in (await harness.run(run_id)).transitions]
    assert transitions[:3] == ["FROZEN", "UNFREEZE", "ACTIVE"]


async def _occurrence_state(h: Harness, gid: int) -> str:
    return (await h.api.GetGroup(pb.GroupRef(gid=gid), metadata=h.md)).state


async def test_members_of_a_skipped_occurrence_never_run(harness: Harness) -> None:
    await create_group(harness, name="a")
    await create_group(harness, name="c", dependency="S:a")
    await member(harness, 3801, "ta", group="a")
    await member(harness, 3802, "c1", group="c")
    await member(harness, 3803, "c2", "not S:c1", group="c")
    agent = await harness.agent("a1", ["q1"])
    await harness.clock.advance(60)
    await complete(agent, 3801, rc=1)  # a FAILED: c can no longer start
    await eventually("c skipped", lambda: _is(harness, 2, "SKIPPED"))
    assert await states(harness, 3802, 3803) == [
        ("SKIPPED", "dependency can no longer be met: S:a"),
        ("SKIPPED", "dependency can no longer be met: S:a"),
    ]
    with pytest.raises(TimeoutError):
        await agent.recv("run", timeout=0.3)
    assert await _occurrence_state(harness, 2) == "SKIPPED"


async def _is(h: Harness, gid: int, state: str) -> bool:
    return await _occurrence_state(h, gid) == state


async def test_group_state_follows_operator_changes_after_it_ended(harness: Harness) -> None:
    await create_group(harness)
    await member(harness, 3901, "a")
    await member(harness, 3902, "b")
    agent = await harness.agent("a1", ["q1"])
    await harness.clock.advance(60)
    got = {(await agent.recv("run")).tid, (await agent.recv("run")).tid}
    assert got == {3901, 3902}
    for tid, rc in ((3901, 1), (3902, 0)):
        run_id = (await harness.runs(tid))[0].run_id
        state = "SUCCESS" if rc == 0 else "FAILED"
        fin = apb.RunFinished(run_id=run_id, state=state, has_return_code=True, return_code=rc,
                              started_at_ms=NOON_MS, ended_at_ms=NOON_MS + 5)  # fmt: skip
        await agent.send(accepted=apb.RunAccepted(run_id=run_id))
        await agent.send(finished=fin)
        await agent.recv("result_ack")
    await eventually("group FAILED", lambda: _is(harness, 1, "FAILED"))
    request = pb.PublishEventRequest(
        event="MODIFY_TASK_STATUS", task=pb.TaskRef(tid=3901), run_date="20260601", status="SUCCESS"
    )
    assert (await harness.api.PublishEvent(request, metadata=harness.md)).status == "SUCCESS"
    await eventually("group SUCCESS", lambda: _is(harness, 1, "SUCCESS"))


async def test_renaming_a_group_mid_occurrence_keeps_its_dependencies(harness: Harness) -> None:
    await create_group(harness)
    await member(harness, 4001, "a")
    await member(harness, 4002, "b", "S:a")
    agent = await harness.agent("a1", ["q1"])
    await harness.clock.advance(60)
    order = await agent.recv("run")
    patch = json.dumps({"name": "etl2"})
    await harness.api.UpdateGroup(pb.UpdateGroupRequest(ref=pb.GroupRef(gid=1), patch_json=patch),
                                  metadata=harness.md)  # fmt: skip
    fin = apb.RunFinished(run_id=order.run_id, state="SUCCESS", has_return_code=True,
                          started_at_ms=NOON_MS, ended_at_ms=NOON_MS + 5)  # fmt: skip
    await agent.send(accepted=apb.RunAccepted(run_id=order.run_id))
    await agent.send(finished=fin)
    assert (await agent.recv("run")).tid == 4002


async def test_group_waits_for_a_group_scheduled_later_that_day(harness: Harness) -> None:
    await create_group(harness, name="late", trigger_times="14:00")
    await create_group(harness, name="early", dependency="S:late", trigger_times="12:00")
    await member(harness, 4101, "l", group="late")
    await member(harness, 4102, "e", group="early")
    agent = await harness.agent("a1", ["q1"])
    await harness.clock.advance(60)  # 12:00: early's time has come, late's has not
    assert await _occurrence_state(harness, 2) == "PENDING"
    await harness.clock.advance(2 * 3600)  # 14:00
    await complete(agent, 4101)
    assert (await agent.recv("run")).tid == 4102


async def test_why_judges_the_whole_expression(harness: Harness) -> None:
    await create_group(harness)
    await member(harness, 4201, "a")
    await member(harness, 4202, "slow")
    await member(harness, 4203, "either", "S:a or S:slow")
    agent = await harness.agent("a1", ["q1"])
    await harness.clock.advance(60)
    first, second = await agent.recv("run"), await agent.recv("run")
    done = first if first.tid == 4201 else second
    fin = apb.RunFinished(run_id=done.run_id, state="SUCCESS", has_return_code=True,
                          started_at_ms=NOON_MS, ended_at_ms=NOON_MS + 5)  # fmt: skip
    await agent.send(accepted=apb.RunAccepted(run_id=done.run_id))
    await agent.send(finished=fin)
    assert (await agent.recv("run")).tid == 4203  # S:a alone is enough
    why = await harness.api.ExplainTask(
        pb.ExplainTaskRequest(ref=pb.TaskRef(tid=4203), run_date="20260601"), metadata=harness.md
    )
    clauses = {c.clause: (c.ok, c.detail) for c in why.clauses}
    assert clauses["dependency"] == (True, "S:a or S:slow: holds")
    assert clauses["dependency S:slow"][0] is True  # a false term of a met "or" holds nothing back
    assert not why.verdict.startswith("waiting")

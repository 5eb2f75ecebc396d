"""The scheduler side of the agent protocol, over real gRPC, with a FakeClock."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from easytask.core.errors import ConfigError
from easytask.rpc.v1 import agent_pb2 as apb
from easytask.rpc.v1 import api_pb2 as pb
from easytask.scheduler.service import SchedulerConfig, SchedulerService
from tests.integration.conftest import START, Harness, ScriptedAgent, eventually, running_service
from tests.support.fakeclock import FakeClock

NOON_MS = 1780315200000  # 2026-06-01T12:00:00Z


def finished(run_id: str, state: str = "SUCCESS", rc: int = 0, **kw: object) -> apb.RunFinished:
    return apb.RunFinished(run_id=run_id, state=state, has_return_code=True, return_code=rc,
                           pid=42, started_at_ms=NOON_MS + 100, ended_at_ms=NOON_MS + 600,
                           reason="" if state == "SUCCESS" else f"exit code {rc}",
                           **kw)  # type: ignore[arg-type]  # fmt: skip


async def run_through(agent: ScriptedAgent, run_id: str) -> None:
    await agent.send(accepted=apb.RunAccepted(run_id=run_id))
    await agent.send(started=apb.RunStarted(run_id=run_id, pid=42, started_at_ms=NOON_MS + 100,
                                            stdout_path="/o", stderr_path="/e"))  # fmt: skip


async def test_trigger_time_fires_dispatches_and_records_the_lifecycle(harness: Harness) -> None:
    await harness.create(tid=2001)
    agent = await harness.agent("a1", ["q1"])
    await harness.clock.advance(60)
    order = await agent.recv("run")
    assert order.run_id == f"default:2001:{NOON_MS}:1"
    assert (order.cmd, order.queue, order.run_date, order.local_time) == (
        "true", "q1", "20260601", "12:00",
    )  # fmt: skip
    run = await harness.wait_state(order.run_id, "TRIGGER")
    assert run.agent == "a1" and run.dispatched_at

    await run_through(agent, order.run_id)
    await agent.send(output=apb.OutputChunk(run_id=order.run_id, stream=apb.STDOUT, offset=0,
                                            data=b"hello\n"))  # fmt: skip
    await harness.wait_state(order.run_id, "RUNNING")
    await agent.send(finished=finished(order.run_id, stdout_path="/o", stdout_start=0,
                                       stdout_end=6))  # fmt: skip
    ack = await agent.recv("result_ack")
    assert ack.run_id == order.run_id
    run = await harness.run(order.run_id)
    assert (run.state, run.return_code, run.pid, run.host) == ("SUCCESS", 0, 42, "a1.host")
    assert [c.to_state for c in run.transitions] == ["TRIGGER", "STARTED", "RUNNING", "SUCCESS"]
    assert list(run.stdout_range) == [0, 6]
    logs = await harness.api.GetRunLogs(pb.RunLogsRequest(run_id=order.run_id), metadata=harness.md)
    assert list(logs.stdout.lines) == ["hello"]


async def test_duplicate_result_is_applied_once_and_acked_again(harness: Harness) -> None:
    await harness.create(tid=2002)
    agent = await harness.agent("a1", ["q1"])
    await harness.clock.advance(60)
    order = await agent.recv("run")
    await run_through(agent, order.run_id)
    await agent.send(finished=finished(order.run_id, "FAILED", 2))
    await agent.recv("result_ack")
    await agent.send(finished=finished(order.run_id, "SUCCESS", 0))
    await agent.recv("result_ack")
    run = await harness.run(order.run_id)
    assert (run.state, run.return_code) == ("FAILED", 2)
    assert [c.to_state for c in run.transitions].count("FAILED") == 1
    assert "SUCCESS" not in [c.to_state for c in run.transitions]


async def test_reconnect_without_the_run_means_lost_control(harness: Harness) -> None:
    await harness.create(tid=2003)
    agent = await harness.agent("a1", ["q1"])
    await harness.clock.advance(60)
    order = await agent.recv("run")
    await run_through(agent, order.run_id)
    await harness.wait_state(order.run_id, "RUNNING")
    await agent.close()
    await harness.agent("a1", ["q1"], known=[])
    run = await harness.wait_state(order.run_id, "FAILED")
    assert run.reason == "lost control"


async def test_reconnect_with_the_run_keeps_it_and_asks_for_missing_output(
    harness: Harness,
) -> None:
    await harness.create(tid=2004)
    agent = await harness.agent("a1", ["q1"])
    await harness.clock.advance(60)
    order = await agent.recv("run")
    await run_through(agent, order.run_id)
    await harness.wait_state(order.run_id, "RUNNING")
    await agent.close()
    known = apb.KnownRun(run_id=order.run_id, state="RUNNING", stdout_size=11)
    again = await harness.agent("a1", ["q1"], known=[known])
    resend = await again.recv("resend_output")
    assert (resend.run_id, resend.stream, resend.offset) == (order.run_id, apb.STDOUT, 0)
    await again.send(output=apb.OutputChunk(run_id=order.run_id, stream=apb.STDOUT, offset=0,
                                            data=b"hello world"))  # fmt: skip
    await again.send(finished=finished(order.run_id))
    await again.recv("result_ack")
    run = await harness.run(order.run_id)
    assert run.state == "SUCCESS"
    logs = await harness.api.GetRunLogs(pb.RunLogsRequest(run_id=order.run_id), metadata=harness.md)
    assert list(logs.stdout.lines) == ["hello world"]


async def test_output_gap_asks_for_a_resend_and_duplicates_are_dropped(harness: Harness) -> None:
    await harness.create(tid=2005)
    agent = await harness.agent("a1", ["q1"])
    await harness.clock.advance(60)
    order = await agent.recv("run")
    await run_through(agent, order.run_id)

    def chunk(offset: int, data: bytes) -> apb.OutputChunk:
        return apb.OutputChunk(run_id=order.run_id, stream=apb.STDERR, offset=offset, data=data)

    await agent.send(output=chunk(0, b"abc"))
    await agent.send(output=chunk(5, b"fg"))  # gap: 3..5 missing
    resend = await agent.recv("resend_output")
    assert (resend.stream, resend.offset) == (apb.STDERR, 3)
    await agent.send(output=chunk(0, b"abcde"))  # overlaps what is stored
    await agent.send(output=chunk(5, b"fg"))
    await agent.send(finished=finished(order.run_id))
    await agent.recv("result_ack")
    logs = await harness.api.GetRunLogs(pb.RunLogsRequest(run_id=order.run_id), metadata=harness.md)
    assert list(logs.stderr.lines) == ["abcdefg"]


async def test_failed_attempt_is_retried_after_retry_delay(harness: Harness) -> None:
    await harness.create(tid=2006, retry_attempts=1, retry_delay=60)
    agent = await harness.agent("a1", ["q1"])
    await harness.clock.advance(60)
    first = await agent.recv("run")
    await run_through(agent, first.run_id)
    await agent.send(finished=finished(first.run_id, "FAILED", 1))
    await agent.recv("result_ack")
    second_id = f"default:2006:{NOON_MS}:2"
    await harness.wait_state(second_id, "RESTARTING")
    await harness.clock.advance(59)
    assert (await harness.run(second_id)).state == "RESTARTING"
    await harness.clock.advance(1)
    second = await agent.recv("run")
    assert (second.run_id, second.attempt) == (second_id, 2)
    await run_through(agent, second_id)
    await agent.send(finished=finished(second_id, "FAILED", 1))
    await agent.recv("result_ack")
    await harness.wait_state(second_id, "FAILED")
    assert [(r.attempt, r.state) for r in await harness.runs(2006)] == [
        (1, "FAILED"),
        (2, "FAILED"),
    ]


async def test_unaccepted_run_is_rejected_after_expiry(harness: Harness) -> None:
    await harness.create(tid=2007, task_accept_expiry_time=30)
    await harness.clock.advance(60)
    run_id = f"default:2007:{NOON_MS}:1"
    await harness.wait_state(run_id, "TRIGGER")
    await harness.clock.advance(29)
    assert (await harness.run(run_id)).state == "TRIGGER"
    await harness.clock.advance(2)
    run = await harness.wait_state(run_id, "REJECTED")
    assert run.reason == "not accepted within 30 s"


async def test_dispatch_goes_to_the_least_loaded_agent_then_by_name(harness: Harness) -> None:
    await harness.create(tid=2008, name="first")
    await harness.create(tid=2009, name="second", trigger_times="12:01")
    b = await harness.agent("b", ["q1"])
    a = await harness.agent("a", ["q1"])
    await harness.clock.advance(60)
    assert (await a.recv("run")).tid == 2008  # tie on load: name order
    await harness.clock.advance(60)
    assert (await b.recv("run")).tid == 2009  # a holds one run


async def test_declined_run_is_offered_to_another_agent(harness: Harness) -> None:
    await harness.create(tid=2010)
    a = await harness.agent("a", ["q1"])
    b = await harness.agent("b", ["q1"])
    await harness.clock.advance(60)
    order = await a.recv("run")
    await a.send(declined=apb.RunDeclined(run_id=order.run_id, reason="shutting down"))
    again = await b.recv("run")
    assert again.run_id == order.run_id


async def test_holiday_slot_is_recorded_skipped(harness: Harness) -> None:
    # 2026-07-03 is Independence Day (observed) in US_HOLIDAYS.
    await harness.clock.advance(32 * 86400)  # 2026-07-03T11:59Z
    await harness.create(tid=2011, calendar="US_HOLIDAYS")
    await harness.clock.advance(60)
    run_id = "default:2011:1783080000000:1"
    run = await harness.wait_state(run_id, "SKIPPED")
    assert run.reason == "holiday in calendar US_HOLIDAYS: Independence Day (observed)"


async def test_changed_trigger_time_replaces_the_wheel_entry(harness: Harness) -> None:
    await harness.create(tid=2012, trigger_times="12:30")
    agent = await harness.agent("a1", ["q1"])
    patch = json.dumps({"trigger_times": "12:00"})
    await harness.api.UpdateTask(pb.UpdateTaskRequest(ref=pb.TaskRef(tid=2012), patch_json=patch),
                                 metadata=harness.md)  # fmt: skip
    await harness.clock.advance(60)
    order = await agent.recv("run")
    assert order.run_id == f"default:2012:{NOON_MS}:1"
    await harness.clock.advance(30 * 60)
    with pytest.raises(TimeoutError):
        await agent.recv("run", timeout=0.3)


async def test_malformed_agent_message_is_dropped_and_logged(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await harness.create(tid=2013)
    agent = await harness.agent("a1", ["q1"])
    await harness.clock.advance(60)
    order = await agent.recv("run")
    await run_through(agent, order.run_id)
    with caplog.at_level(logging.WARNING):
        await agent.send(finished=apb.RunFinished(run_id=order.run_id, state="BOGUS"))
        await eventually("the warning", _async(lambda: "malformed" in caplog.text))
    await agent.send(finished=finished(order.run_id))
    await agent.recv("result_ack")
    assert (await harness.run(order.run_id)).state == "SUCCESS"


def _async(fn):  # type: ignore[no-untyped-def]
    async def check():  # type: ignore[no-untyped-def]
        return fn()

    return check


async def test_stream_must_start_with_hello(harness: Harness) -> None:
    agent = ScriptedAgent(harness.port, harness.agent_token, "x", ["q1"])
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{harness.port}")
    from easytask.rpc.v1 import agent_pb2_grpc

    call = agent_pb2_grpc.AgentServiceStub(channel).Connect(
        metadata=(("authorization", f"Bearer {agent.token}"),)
    )
    await call.write(apb.AgentMessage(heartbeat=apb.Heartbeat()))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call.read()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await channel.close()


async def test_wrong_agent_token_is_unauthenticated(harness: Harness) -> None:
    agent = ScriptedAgent(harness.port, "not-the-token", "x", ["q1"])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await agent.connect()
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    await agent.close()
    # The API token is not an agent token either.
    agent = ScriptedAgent(harness.port, harness.api_token, "x", ["q1"])
    with pytest.raises(grpc.aio.AioRpcError):
        await agent.connect()
    await agent.close()


async def test_batched_agent_messages_are_applied_in_order(harness: Harness) -> None:
    await harness.create(tid=2014)
    agent = await harness.agent("a1", ["q1"])
    await harness.clock.advance(60)
    order = await agent.recv("run")
    started = apb.RunStarted(run_id=order.run_id, pid=42, started_at_ms=NOON_MS + 100)
    nested = apb.AgentBatch(messages=[apb.AgentMessage(finished=finished(order.run_id, "FAILED"))])
    batch = apb.AgentBatch(
        messages=[
            apb.AgentMessage(accepted=apb.RunAccepted(run_id=order.run_id)),
            apb.AgentMessage(started=started),
            apb.AgentMessage(batch=nested),  # a batch in a batch is malformed: dropped
            apb.AgentMessage(finished=finished(order.run_id)),
        ]
    )
    await agent.send(batch=batch)
    await agent.recv("result_ack")
    run = await harness.run(order.run_id)
    assert [c.to_state for c in run.transitions] == ["TRIGGER", "STARTED", "RUNNING", "SUCCESS"]


async def test_a_burst_reaches_the_agent_in_batches(harness: Harness) -> None:
    for i in range(20):
        await harness.create(tid=2100 + i, name=f"burst{i}")
    agent = await harness.agent("a1", ["q1"])
    await harness.clock.advance(60)
    seen: list[str] = []
    writes = 0
    async with asyncio.timeout(5):
        while len(seen) < 20:
            msg = await agent.call.read()
            kind = msg.WhichOneof("msg")
            if kind == "batch":
                writes += 1
                seen.extend(
                    m.run.run_id for m in msg.batch.messages if m.WhichOneof("msg") == "run"
                )
            elif kind == "run":
                writes += 1
                seen.append(msg.run.run_id)
    assert sorted(seen) == sorted(f"default:{2100 + i}:{NOON_MS}:1" for i in range(20))
    assert writes < 20, "a burst of orders should share stream writes"


async def test_output_resent_after_a_replayed_result_is_kept(harness: Harness) -> None:
    await harness.create(tid=2015)
    agent = await harness.agent("a1", ["q1"])
    await harness.clock.advance(60)
    order = await agent.recv("run")
    await run_through(agent, order.run_id)
    await harness.wait_state(order.run_id, "RUNNING")
    await agent.close()
    # While away the command finished; the agent says hello, replays the result at once...
    known = apb.KnownRun(run_id=order.run_id, state="SUCCESS", stdout_size=11)
    again = await harness.agent("a1", ["q1"], known=[known])
    await again.send(finished=finished(order.run_id, stdout_path="/o", stdout_start=0,
                                       stdout_end=11))  # fmt: skip
    resend = await again.recv("resend_output")
    await again.recv("result_ack")
    assert (resend.stream, resend.offset) == (apb.STDOUT, 0)
    # ...and only then re-sends the output the scheduler asked for.
    await again.send(output=apb.OutputChunk(run_id=order.run_id, stream=apb.STDOUT, offset=0,
                                            data=b"hello world"))  # fmt: skip
    await again.send(heartbeat=apb.Heartbeat())

    async def stored() -> list[str] | None:
        logs = await harness.api.GetRunLogs(
            pb.RunLogsRequest(run_id=order.run_id), metadata=harness.md
        )
        return list(logs.stdout.lines) or None

    assert await eventually("the late output", stored) == ["hello world"]


async def test_a_run_accepted_by_two_agents_runs_on_the_first_only(harness: Harness) -> None:
    await harness.create(tid=2016)
    a = await harness.agent("a", ["q1"])
    b = await harness.agent("b", ["q1"])
    await harness.clock.advance(60)
    order = await a.recv("run")
    await a.send(accepted=apb.RunAccepted(run_id=order.run_id))
    await harness.wait_state(order.run_id, "STARTED")
    # b accepts the same run (as after a re-offer): the scheduler stops b's copy.
    await b.send(accepted=apb.RunAccepted(run_id=order.run_id))
    kill = await b.recv("kill")
    assert (kill.run_id, kill.reason) == (order.run_id, "run is held by another agent")
    assert (await harness.run(order.run_id)).agent == "a"


async def test_terminate_with_the_agent_offline_ends_now_and_kills_on_return(
    harness: Harness,
) -> None:
    await harness.create(tid=2017)
    agent = await harness.agent("a1", ["q1"])
    await harness.clock.advance(60)
    order = await agent.recv("run")
    await run_through(agent, order.run_id)
    await harness.wait_state(order.run_id, "RUNNING")
    await agent.close()
    await eventually("a1 offline", lambda: _offline(harness, "a1"))
    reply = await harness.api.PublishEvent(
        pb.PublishEventRequest(event="TERMINATE_TASK", task=pb.TaskRef(tid=2017),
                               run_date="20260601"), metadata=harness.md)  # fmt: skip
    assert (reply.status, reply.message) == ("SUCCESS", "Task 2017 terminated.")
    run = await harness.run(order.run_id)
    assert (run.state, run.reason) == (
        "TERMINATED",
        "terminated by easytask_superuser (agent offline)",
    )
    known = apb.KnownRun(run_id=order.run_id, state="RUNNING")
    back = await harness.agent("a1", ["q1"], known=[known])
    kill = await back.recv("kill")
    assert kill.run_id == order.run_id


async def _offline(h: Harness, name: str) -> bool:
    agents = await h.api.ListAgents(pb.ListAgentsRequest(), metadata=h.md)
    return any(a.name == name and a.status == "offline" for a in agents.agents)


async def test_a_second_live_agent_with_a_taken_name_is_refused(harness: Harness) -> None:
    await harness.create(tid=2030)
    first = await harness.agent("a1", ["q1"])
    impostor = ScriptedAgent(harness.port, harness.agent_token, "a1", ["q1"])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await impostor.connect(pid=999)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "agent name 'a1' is already connected from host a1.host (pid 1)" in (
        err.value.details() or ""
    )
    await impostor.close()
    # The first keeps its stream and its runs.
    await harness.clock.advance(60)
    order = await first.recv("run")
    await run_through(first, order.run_id)
    await first.send(finished=finished(order.run_id))
    await first.recv("result_ack")
    assert (await harness.run(order.run_id)).agent == "a1"


async def test_an_agent_is_never_offered_more_than_its_max_runs(harness: Harness) -> None:
    for i in range(5):
        await harness.create(tid=2040 + i, name=f"capped{i}")
    agent = ScriptedAgent(harness.port, harness.agent_token, "a1", ["q1"])
    await agent.connect(max_runs=2)
    harness.agents.append(agent)
    await harness.clock.advance(60)
    first = [await agent.recv("run"), await agent.recv("run")]
    hub = harness.service.hub
    assert hub is not None
    session = hub.sessions["a1"]
    # The other three wait in the scheduler (a read that timed out would end the stream, so
    # the absence of a third order is read off the hub).
    assert (hub.waiting_count(), session.load) == (3, 2)
    # Each result frees one place, and only one more order comes.
    for order in first:
        await run_through(agent, order.run_id)
        await agent.send(finished=finished(order.run_id))
    more = [await agent.recv("run"), await agent.recv("run")]
    assert len({o.run_id for o in first + more}) == 4
    await eventually("one order left waiting", _async(lambda: hub.waiting_count() == 1 or None))
    assert session.load == 2
    assert not [m for m in agent.buffer if m.WhichOneof("msg") == "run"]


def _async(check: Callable[[], bool | None]) -> Callable[[], Awaitable[bool | None]]:
    async def run() -> bool | None:
        return check()

    return run


async def test_heartbeat_and_offline_timeout_are_the_configured_ones(tmp_path: Path) -> None:
    clock = FakeClock(START)
    async with running_service(
        tmp_path / "home", clock, heartbeat_seconds=2, offline_after_seconds=5
    ) as service:
        h = Harness(service, clock, tmp_path / "home")
        agent = ScriptedAgent(h.port, h.agent_token, "a1", ["q1"])
        welcome = await agent.connect()
        assert welcome.heartbeat_seconds == 2
        hub = service.hub
        assert hub is not None
        # The first beat finds the hello; then ceil(5 / 2) = 3 silent beats in a row.
        for _ in range(3):
            await clock.advance(2)
        assert "a1" in hub.sessions
        await clock.advance(2)  # the third silent beat: 6 s of silence >= 5 s
        await eventually("a1 offline", _async(lambda: "a1" not in hub.sessions or None))
        await agent.close()
        await h.channel.close()


def test_an_offline_timeout_shorter_than_two_beats_is_refused(tmp_path: Path) -> None:
    config = SchedulerConfig(home=tmp_path, heartbeat_seconds=10, offline_after_seconds=15)
    with pytest.raises(ConfigError, match=r"--offline-after must be at least twice"):
        SchedulerService(config)
    with pytest.raises(ConfigError, match=r"--heartbeat-seconds must be 1-3600, got 0"):
        SchedulerService(SchedulerConfig(home=tmp_path, heartbeat_seconds=0))

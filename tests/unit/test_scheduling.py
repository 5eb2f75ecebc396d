"""The scheduling core on its own: engine, run lifecycle, groups, hub and agent events wired as
the service wires them, on the memory store and a fake clock. No gRPC, no SQLite, no processes:
each test takes milliseconds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from easytask.core.groups import GroupDef
from easytask.core.models import Run, TaskDef
from easytask.core.protocol import (
    AgentHeartbeat,
    AgentHello,
    KillRun,
    KnownRun,
    RunAccepted,
    RunFinished,
    RunOrder,
    RunResult,
    RunStarted,
    SchedulerHeartbeat,
    SchedulerMessage,
)
from easytask.core.runid import to_ms
from easytask.core.states import RunState
from easytask.scheduler.bus import Bus
from easytask.scheduler.calendars import BuiltinCalendars, CalendarBook
from easytask.scheduler.engine import TICK_SECONDS
from easytask.scheduler.hub import HEARTBEAT_SECONDS, AgentHub, AgentSession
from easytask.scheduler.service import Scheduling, wire
from easytask.store.memory import MemoryStore
from tests.support.fakeclock import FakeClock

S = RunState
START = datetime(2026, 5, 11, 8, 0, tzinfo=UTC)  # a Monday, 08:00 UTC


class Rig:
    def __init__(self, clock: FakeClock, store: MemoryStore, core: Scheduling, hub: AgentHub):
        self.clock, self.store, self.core, self.hub = clock, store, core, hub

    def task(self, tid: int, **kw: Any) -> TaskDef:
        fields: dict[str, Any] = dict(name=f"t{tid}", cmd="true", run_on_host="q1", stdout="o",
                                      stderr="e", timezone="UTC", day_of_week="1111111",
                                      trigger_times="08:01")  # fmt: skip
        fields.update(kw)
        task = TaskDef(tid=tid, **fields)
        self.core.engine.put_task(task, self.clock.now())
        return task

    def agent(self, name: str, known: tuple[KnownRun, ...] = ()) -> AgentSession:
        hello = AgentHello(name, f"{name}.host", ("q1",), "test", 100, known_runs=known)
        return self.hub.connect(hello)

    def run_of(self, tid: int) -> Run:
        runs = [r for r in self.core.runs.live.values() if r.tid == tid]
        assert len(runs) == 1, runs
        return runs[0]

    async def stored(self, run_id: str) -> Run:
        await self.store.flush()
        run = await self.store.find_run(run_id)
        assert run is not None
        return run

    async def finish(self, session: AgentSession, run_id: str, state: S, rc: int = 0) -> None:
        now = to_ms(self.clock.now())
        self.hub.handle(session, RunAccepted(run_id, now))
        self.hub.handle(session, RunStarted(run_id, 4242, now, "/o", "/e"))
        result = RunResult(state.value, "", rc, 4242, now, now)
        self.hub.handle(session, RunFinished(run_id, result))
        await settle()


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def sent(session: AgentSession) -> list[SchedulerMessage]:
    return await asyncio.wait_for(session.outgoing(), 2) or []


def orders(messages: list[SchedulerMessage]) -> list[str]:
    return [m.run_id for m in messages if isinstance(m, RunOrder)]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    clock = FakeClock(START)
    store = MemoryStore()
    hub = AgentHub(clock)
    core = wire(instance="default", store=store, clock=clock, hub=hub,
                calendars=CalendarBook(BuiltinCalendars()), bus=Bus())  # fmt: skip
    hub.bind(core.agent_events)
    await core.engine.load()
    timers = asyncio.create_task(core.engine.run_timers())
    try:
        yield Rig(clock, store, core, hub)
    finally:
        timers.cancel()
        await asyncio.gather(timers, return_exceptions=True)


async def test_a_slot_fires_at_its_instant_and_is_offered_once_stored(rig: Rig) -> None:
    rig.task(1001)
    session = rig.agent("a1")
    await rig.clock.advance(59)
    assert rig.core.runs.live == {}
    await rig.clock.advance(1)
    run = rig.run_of(1001)
    assert run.state is S.TRIGGER and run.scheduled_utc == START + timedelta(minutes=1)
    assert orders(await sent(session)) == [run.run_id]
    assert (await rig.stored(run.run_id)).state is S.TRIGGER
    assert run.agent == "a1" and run.dispatched_at == rig.clock.now()


async def test_accept_start_finish_walks_the_states_and_acks_once_stored(rig: Rig) -> None:
    rig.task(1001)
    session = rig.agent("a1")
    await rig.clock.advance(60)
    run_id = orders(await sent(session))[0]
    await rig.finish(session, run_id, S.SUCCESS)
    changes = await rig.store.transitions(run_id)
    assert [c.to_state for c in changes] == [S.TRIGGER, S.STARTED, S.RUNNING, S.SUCCESS]
    stored = await rig.stored(run_id)
    assert (stored.pid, stored.return_code, stored.host) == (4242, 0, "a1.host")
    assert rig.core.runs.latest[1001] == (run_id, S.SUCCESS)
    assert [type(m).__name__ for m in await sent(session)] == ["ResultAck"]
    assert run_id not in rig.core.runs.live and session.load == 0


async def test_a_failure_with_attempts_left_is_retried_after_its_delay(rig: Rig) -> None:
    rig.task(1001, retry_attempts=1, retry_delay=30)
    session = rig.agent("a1")
    await rig.clock.advance(60)
    first = orders(await sent(session))[0]
    await rig.finish(session, first, S.FAILED, rc=3)
    retry = rig.run_of(1001)
    assert (retry.attempt, retry.state) == (2, S.RESTARTING)
    assert retry.reason == "retry 1 of 1 after FAILED"
    await sent(session)  # the first attempt's ack
    await rig.clock.advance(29)
    assert retry.state is S.RESTARTING
    await rig.clock.advance(1)
    assert orders(await sent(session)) == [retry.run_id]
    await rig.finish(session, retry.run_id, S.FAILED, rc=3)
    assert rig.core.runs.live == {}  # no attempts left


async def test_a_run_no_agent_accepts_is_rejected_at_its_expiry(rig: Rig) -> None:
    rig.task(1001, task_accept_expiry_time=30)
    await rig.clock.advance(60)
    run = rig.run_of(1001)
    await rig.clock.advance(29)
    assert run.state is S.TRIGGER
    await rig.clock.advance(1)
    stored = await rig.stored(run.run_id)
    assert (stored.state, stored.reason) == (S.REJECTED, "not accepted within 30 s")
    session = rig.agent("a1")  # connecting later offers nothing
    assert session.load == 0


async def test_a_run_its_agent_no_longer_knows_fails_with_lost_control(rig: Rig) -> None:
    rig.task(1001)
    session = rig.agent("a1")
    await rig.clock.advance(60)
    run_id = orders(await sent(session))[0]
    rig.hub.handle(session, RunAccepted(run_id, to_ms(rig.clock.now())))
    rig.hub.handle(session, RunStarted(run_id, 1, to_ms(rig.clock.now()), "/o", "/e"))
    rig.hub.disconnect(session)
    rig.agent("a1")  # back, reporting no runs (its host rebooted)
    stored = await rig.stored(run_id)
    assert (stored.state, stored.reason) == (S.FAILED, "lost control")


async def test_a_reconnecting_agent_keeps_its_running_run(rig: Rig) -> None:
    rig.task(1001)
    session = rig.agent("a1")
    await rig.clock.advance(60)
    run_id = orders(await sent(session))[0]
    rig.hub.handle(session, RunAccepted(run_id, to_ms(rig.clock.now())))
    rig.hub.disconnect(session)
    again = rig.agent("a1", (KnownRun(run_id, "RUNNING"),))
    assert (await rig.stored(run_id)).state is S.RUNNING
    assert run_id in again.active


async def test_a_duplicate_result_is_acked_and_changes_nothing(rig: Rig) -> None:
    rig.task(1001)
    session = rig.agent("a1")
    await rig.clock.advance(60)
    run_id = orders(await sent(session))[0]
    await rig.finish(session, run_id, S.SUCCESS)
    await sent(session)
    now = to_ms(rig.clock.now())
    rig.hub.handle(session, RunFinished(run_id, RunResult("FAILED", "late", 9, 4242, now, now)))
    await settle()
    assert [type(m).__name__ for m in await sent(session)] == ["ResultAck"]
    stored = await rig.stored(run_id)
    assert (stored.state, stored.return_code) == (S.SUCCESS, 0)
    assert len(await rig.store.transitions(run_id)) == 4


async def test_runs_go_to_the_least_loaded_agent(rig: Rig) -> None:
    for tid in (1001, 1002, 1003):
        rig.task(tid)
    a1, a2 = rig.agent("a1"), rig.agent("a2")
    await rig.clock.advance(60)
    assert (a1.load, a2.load) == (2, 1)  # ties go by name


async def test_a_terminated_run_on_an_agent_is_killed_there(rig: Rig) -> None:
    rig.task(1001)
    session = rig.agent("a1")
    await rig.clock.advance(60)
    run_id = orders(await sent(session))[0]
    rig.hub.handle(session, RunAccepted(run_id, to_ms(rig.clock.now())))
    rig.core.actions.terminate(rig.core.runs.live[run_id], "alice")
    kills = [m for m in await sent(session) if isinstance(m, KillRun)]
    assert [(k.run_id, k.reason) for k in kills] == [(run_id, "terminated by alice")]


async def nightly_fired(rig: Rig) -> AgentSession:
    """Group "nightly" at 08:01: extract, then load once extract succeeded."""
    group = GroupDef(gid=7, name="nightly", timezone="UTC", trigger_times="08:01",
                     day_of_week="1111111")  # fmt: skip
    rig.core.groups.put_group(group, rig.clock.now())
    rig.task(1001, name="extract", task_group="nightly", trigger_times=None, day_of_week=None)
    rig.task(1002, name="load", task_group="nightly", trigger_times=None, day_of_week=None,
             dependency="S:extract")  # fmt: skip
    session = rig.agent("a1")
    await rig.clock.advance(60)
    await settle()
    return session


async def test_a_group_member_is_released_when_its_dependency_holds(rig: Rig) -> None:
    session = await nightly_fired(rig)
    extract, load = rig.run_of(1001), rig.run_of(1002)
    assert (extract.state, load.state) == (S.TRIGGER, S.PENDING)
    assert orders(await sent(session)) == [extract.run_id]
    await rig.finish(session, extract.run_id, S.SUCCESS)
    assert load.state is S.TRIGGER
    assert load.run_id in orders(await sent(session))
    await rig.finish(session, load.run_id, S.SUCCESS)
    await settle()
    assert rig.core.groups.current_state(7) == "SUCCESS"


async def test_a_failed_dependency_skips_its_member(rig: Rig) -> None:
    session = await nightly_fired(rig)
    await rig.finish(session, rig.run_of(1001).run_id, S.FAILED, rc=1)
    await settle()
    load = await rig.store.runs_of_group_runs(list(rig.core.groups.occurrences))
    by_tid = {r.tid: r for r in load}
    assert by_tid[1002].state is S.SKIPPED
    assert by_tid[1002].reason == "dependency can no longer be met: S:extract"
    assert rig.core.groups.current_state(7) == "FAILED"


async def test_a_frozen_slot_is_recorded_frozen_and_runs_once_unfrozen(rig: Rig) -> None:
    rig.task(1001)
    session = rig.agent("a1")
    rig.core.actions.freeze(1001, "20260511", "", "alice")
    await rig.clock.advance(60)
    run = rig.run_of(1001)
    assert (run.state, run.reason) == (S.FROZEN, "frozen by operator")
    assert await rig.store.load_freezes() != []
    assert rig.core.actions.unfreeze(1001, "20260511", "", "alice") == 1
    assert run.state is S.TRIGGER
    await settle()
    assert orders(await sent(session)) == [run.run_id]
    states = [c.to_state for c in await rig.store.transitions(run.run_id)]
    assert states == [S.FROZEN, S.UNFREEZE, S.ACTIVE, S.TRIGGER]


async def test_start_up_resumes_stored_runs(rig: Rig) -> None:
    """A TRIGGER run stored before a restart is offered again by the next engine."""
    rig.task(1001)
    await rig.clock.advance(60)
    run_id = rig.run_of(1001).run_id
    await rig.store.put_tasks([rig.core.engine.index.tasks[1001]], rig.clock.now())
    hub = AgentHub(rig.clock)
    core = wire(instance="default", store=rig.store, clock=rig.clock, hub=hub,
                calendars=CalendarBook(BuiltinCalendars()), bus=Bus())  # fmt: skip
    hub.bind(core.agent_events)
    await core.engine.load()
    assert core.runs.live[run_id].state is S.TRIGGER
    session = hub.connect(AgentHello("a9", "h", ("q1",), "test", 1))
    assert orders(await sent(session)) == [run_id]


async def test_an_agent_silent_for_three_beats_is_marked_offline(rig: Rig) -> None:
    quiet, chatty = rig.agent("a1"), rig.agent("a2")
    beats = asyncio.create_task(rig.hub.watch_heartbeats())
    await settle()  # the watcher is sleeping on the clock
    try:
        for _ in range(3):  # the hello counts for the first beat; then silent beats 1, 2
            rig.hub.handle(chatty, AgentHeartbeat())
            await rig.clock.advance(HEARTBEAT_SECONDS)
        assert "a1" in rig.hub.sessions
        rig.hub.handle(chatty, AgentHeartbeat())
        await rig.clock.advance(HEARTBEAT_SECONDS)  # the third silent beat
        assert "a1" not in rig.hub.sessions and quiet.closed
        assert "a2" in rig.hub.sessions
        heartbeats = [m for m in await sent(chatty) if isinstance(m, SchedulerHeartbeat)]
        assert len(heartbeats) == 4
    finally:
        beats.cancel()


async def test_a_clock_jump_is_one_beat_not_an_outage(rig: Rig) -> None:
    rig.agent("a1")
    beats = asyncio.create_task(rig.hub.watch_heartbeats())
    await settle()  # the watcher is sleeping on the clock
    try:
        await rig.clock.advance(6 * 3600)  # a suspended machine wakes up
        await rig.clock.advance(HEARTBEAT_SECONDS)
        assert "a1" in rig.hub.sessions
    finally:
        beats.cancel()


async def test_the_alive_mark_is_written_on_the_injected_clock(rig: Rig) -> None:
    ticks = asyncio.create_task(rig.core.engine.run_ticks())
    try:
        await settle()
        assert await rig.store.get_meta("last_tick") == START.isoformat()
        await rig.clock.advance(TICK_SECONDS - 1)
        assert await rig.store.get_meta("last_tick") == START.isoformat()
        await rig.clock.advance(1)
        later = START + timedelta(seconds=TICK_SECONDS)
        assert await rig.store.get_meta("last_tick") == later.isoformat()
    finally:
        ticks.cancel()

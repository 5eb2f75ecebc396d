"""A run's timeline is monotonic whatever the agent's clock says (spec 8; issue 11)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from easytask.core.models import Run
from easytask.core.protocol import RunAccepted, RunFinished, RunResult, RunStarted
from easytask.core.runid import to_ms
from easytask.core.states import RunState as S
from easytask.core.timeline import onto_timeline, out_of_order
from tests.unit.test_scheduling import Rig, orders, rig, sent, settle

__all__ = ["rig"]  # the fixture, used by name

T0 = datetime(2026, 5, 11, 8, 0, tzinfo=UTC)
offsets = st.integers(min_value=-10_000_000, max_value=10_000_000).map(
    lambda us: T0 + timedelta(microseconds=us)
)
lengths = st.integers(min_value=0, max_value=10_000_000).map(lambda us: timedelta(microseconds=us))


@given(offsets, offsets, lengths)
def test_the_agent_times_follow_the_floor_and_keep_their_duration(
    floor: datetime, started: datetime, length: timedelta
) -> None:
    new_start, new_end = onto_timeline(floor, started, started + length)
    assert new_start is not None and new_end is not None
    assert floor <= new_start <= new_end
    assert new_end - new_start == length, "the duration the agent measured is kept"
    if started >= floor:
        assert (new_start, new_end) == (started, started + length), "in order: unchanged"


@given(offsets, offsets)
def test_an_end_without_a_start_is_not_before_the_floor(floor: datetime, ended: datetime) -> None:
    assert onto_timeline(floor, None, ended) == (None, max(floor, ended))


async def test_a_start_sent_with_the_acceptance_by_a_late_clock_comes_after_it(rig: Rig) -> None:
    rig.task(1001)
    session = rig.agent("a1")
    await rig.clock.advance(60)
    run_id = orders(await sent(session))[0]
    await rig.clock.advance(0.005)
    behind = to_ms(rig.clock.now() - timedelta(seconds=2))  # the agent's clock is 2 s late
    rig.hub.handle(session, RunAccepted(run_id, behind))  # one batch: accepted and started
    rig.hub.handle(session, RunStarted(run_id, 42, behind, "/o", "/e"))
    await rig.clock.advance(1)
    rig.hub.handle(session, RunFinished(run_id, RunResult("SUCCESS", "", 0, 42, behind,
                                                          behind + 1500)))  # fmt: skip
    await settle()
    run = await rig.stored(run_id)
    assert run.state is S.SUCCESS
    assert out_of_order(run) == []
    assert run.acked_at is not None and run.started_at == run.acked_at
    assert run.ended_at is not None and run.ended_at - run.started_at == timedelta(seconds=1.5)


async def test_an_offer_again_after_the_acknowledgment_moves_no_step(rig: Rig) -> None:
    rig.task(1001)
    session = rig.agent("a1")
    await rig.clock.advance(60)
    run_id = orders(await sent(session))[0]
    rig.hub.handle(session, RunAccepted(run_id, to_ms(rig.clock.now())))
    dispatched = rig.core.runs.live[run_id].dispatched_at
    await rig.clock.advance(3)
    rig.core.agent_events.run_dispatched(run_id, session)
    run = rig.core.runs.live[run_id]
    assert run.dispatched_at == dispatched and out_of_order(run) == []


def test_out_of_order_names_the_step() -> None:
    run = Run(run_id="r", tid=1, name="t", instance="default", run_date="20260511",
              scheduled_utc=T0, local_time="08:00", timezone="UTC", attempt=1, state=S.SUCCESS,
              queue="q", triggered_at=T0, dispatched_at=T0, acked_at=T0 + timedelta(seconds=1),
              started_at=T0, ended_at=T0 + timedelta(seconds=2), created_at=T0,
              updated_at=T0)  # fmt: skip
    assert [p.split()[0] for p in out_of_order(run)] == ["started_at"]

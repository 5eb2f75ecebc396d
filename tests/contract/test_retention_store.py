"""The retention purge (spec 16: retention 30 days): what goes, what stays, batch by batch."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from easytask.core.models import Run, StateChange
from easytask.core.records import GroupRun, RunFilter
from easytask.core.runid import make_run_id
from easytask.core.states import RunState
from easytask.store.ports import PurgeBatch, Store

NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
CUT = NOW - timedelta(days=30)
S = RunState


def a_run(
    tid: int,
    days_ago: float,
    state: RunState = S.SUCCESS,
    attempt: int = 1,
    group_run_id: str | None = None,
    ended: bool = True,
) -> Run:
    at = NOW - timedelta(days=days_ago)
    return Run(run_id=make_run_id("default", tid, at, attempt), tid=tid, name=f"t{tid}",
               instance="default", run_date=f"{at:%Y%m%d}", scheduled_utc=at, local_time="12:00",
               timezone="UTC", attempt=attempt, state=state, queue="q", created_at=at,
               updated_at=at + timedelta(minutes=5), group_run_id=group_run_id,
               group="g" if group_run_id else None,
               ended_at=at + timedelta(minutes=5) if ended and state.final else None)  # fmt: skip


def an_occurrence(gid: int, days_ago: float, state: str = "SUCCESS") -> GroupRun:
    at = NOW - timedelta(days=days_ago)
    ended = at + timedelta(minutes=10) if state in ("SUCCESS", "FAILED", "SKIPPED") else None
    return GroupRun(group_run_id=f"default:g{gid}:{int(at.timestamp() * 1000)}", gid=gid,
                    name=f"g{gid}", run_date=f"{at:%Y%m%d}", local_time="12:00", scheduled_utc=at,
                    state=state, created_at=at, updated_at=ended or at, ended_at=ended)  # fmt: skip


async def save(store: Store, *runs: Run) -> None:
    for r in runs:
        store.save_run(r, StateChange(r.run_id, None, S.TRIGGER, r.created_at))
        store.save_run(r, StateChange(r.run_id, S.TRIGGER, r.state, r.updated_at))
        store.append_output(r.run_id, "stdout", 0, b"out of " + r.run_id.encode())
        store.append_output(r.run_id, "stderr", 0, b"err")
    await store.flush()


async def purge_all(store: Store, limit: int = 500) -> list[PurgeBatch]:
    batches = [await store.purge_runs(CUT, CUT, None, limit)]
    while batches[-1].cursor is not None:
        batches.append(await store.purge_runs(CUT, CUT, batches[-1].cursor, limit))
    return batches


async def stored_ids(store: Store) -> set[str]:
    runs, _, _ = await store.list_runs(RunFilter(), 0, 10_000)
    return {r.run_id for r in runs}


async def test_finished_runs_past_the_retention_go_with_history_and_output(store: Store) -> None:
    old = [a_run(1001, 40 + i) for i in range(3)]
    recent, latest = a_run(1001, 29), a_run(1001, 1)
    await save(store, *old, recent, latest)
    batches = await purge_all(store)
    assert sum(b.runs for b in batches) == 3
    assert await stored_ids(store) == {recent.run_id, latest.run_id}
    for r in old:
        assert await store.find_run(r.run_id) is None
        assert await store.transitions(r.run_id) == []
        assert await store.read_output_segments(r.run_id, "stdout") == []
        assert await store.read_output_view(r.run_id, "stderr") == (b"", False)
    assert len(await store.transitions(recent.run_id)) == 2
    assert await store.read_output(recent.run_id, "stdout") == b"out of " + recent.run_id.encode()
    assert await store.purge_runs(CUT, CUT, None, 500) == PurgeBatch(0, 0, 0, None)


async def test_by_ended_time_and_never_a_run_that_is_not_final(store: Store) -> None:
    ended_late = replace(a_run(1001, 31), ended_at=CUT + timedelta(hours=1))
    never_started = replace(a_run(1001, 35, S.SKIPPED), ended_at=None)  # its update counts
    stuck = [a_run(1001, 50 + i, state) for i, state in
             enumerate((S.TRIGGER, S.STARTED, S.RUNNING, S.RESTARTING))]  # fmt: skip
    latest = a_run(1001, 0)
    await save(store, ended_late, never_started, *stuck, latest)
    await purge_all(store)
    assert await stored_ids(store) == {ended_late.run_id, latest.run_id} | {r.run_id for r in stuck}
    assert {r.run_id for r in await store.load_live_runs()} == {r.run_id for r in stuck}


async def test_a_tasks_latest_run_and_last_result_stay_however_old(store: Store) -> None:
    # 1001: everything is old; the latest run (a forced run created last, for an earlier
    # slot) and the latest slot's final run both stay: latest state and last result.
    slots = [a_run(1001, 60 + i) for i in range(3)]
    forced = replace(
        a_run(1001, 70), run_id="default:1001:forced:1", created_at=NOW - timedelta(days=50)
    )
    # 1002: its latest run is still running; its latest final run is the last result.
    older, last_final, running = a_run(1002, 90), a_run(1002, 80), a_run(1002, 75, S.RUNNING)
    await save(store, *slots, forced, older, last_final, running)
    before_latest = await store.latest_run_states()
    await purge_all(store)
    assert await stored_ids(store) == {
        forced.run_id,
        slots[0].run_id,
        last_final.run_id,
        running.run_id,
    }
    assert await store.latest_run_states() == before_latest
    assert before_latest[1001][0] == forced.run_id


async def test_runs_of_a_group_occurrence_still_referenced_stay(store: Store) -> None:
    live, recent, done = an_occurrence(1, 45, "RUNNING"), an_occurrence(2, 45), an_occurrence(3, 45)
    recent = replace(recent, ended_at=CUT + timedelta(days=1))
    for g in (live, recent, done):
        store.save_group_run(g)
    members = {
        g.gid: [a_run(2000 + 10 * g.gid + i, 45, group_run_id=g.group_run_id) for i in range(2)]
        for g in (live, recent, done)
    }
    keep_tasks_latest = [a_run(2000 + 10 * g + i, 1) for g in (1, 2, 3) for i in range(2)]
    await save(store, *[r for rs in members.values() for r in rs], *keep_tasks_latest)
    batches = await purge_all(store)
    stored = await stored_ids(store)
    assert {r.run_id for r in members[1] + members[2]} <= stored
    assert not {r.run_id for r in members[3]} & stored
    assert sum(b.group_runs for b in batches) == 1
    assert await store.find_group_run(done.group_run_id) is None
    assert await store.find_group_run(live.group_run_id) is not None
    assert await store.find_group_run(recent.group_run_id) is not None
    # The group's own cut-off can be earlier than the runs' (the engine keeps two days).
    assert (await store.purge_runs(CUT, CUT - timedelta(days=30), None, 500)).runs == 0


async def test_the_purge_goes_in_batches_of_the_limit(store: Store) -> None:
    old = [a_run(1001 + i % 7, 40 + i / 100) for i in range(50)]
    await save(store, *old, *[a_run(1001 + t, 0) for t in range(7)])
    batches = await purge_all(store, limit=8)
    assert [b.examined for b in batches] == [8, 8, 8, 8, 8, 8, 2]
    assert all(b.cursor is not None for b in batches[:-1]) and batches[-1].cursor is None
    assert sum(b.runs for b in batches) == 50
    assert len(await stored_ids(store)) == 7

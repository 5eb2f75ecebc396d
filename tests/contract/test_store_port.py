"""The rest of the store port's contract: meta, slots, events, freezes, groups, agents, order."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from easytask.core.groups import GroupDef
from easytask.core.models import StateChange
from easytask.core.records import AgentRecord, EventFilter, Freeze, GroupRun, RunFilter
from easytask.core.runid import to_ms
from easytask.core.states import RunState
from easytask.store.ports import Store, join_segments
from easytask.store.schema import MIGRATIONS
from easytask.store.sqlite import LATEST_RUN_STATES, SqliteStore
from tests.contract.test_store import T0, run, task

S = RunState


def group(gid: int, name: str) -> GroupDef:
    return GroupDef(gid=gid, name=name, timezone="UTC", trigger_times="08:00")


def occurrence(gid: int, minute: int, state: str = "RUNNING") -> GroupRun:
    at = T0 + timedelta(minutes=minute)
    return GroupRun(f"default:g{gid}:{to_ms(at)}", gid, f"g{gid}", "20260509", "12:30", at,
                    state, at, at)  # fmt: skip


async def test_meta_is_kept_and_replaced(store: Store) -> None:
    assert await store.get_meta("last_tick") is None
    store.set_meta("last_tick", "a")
    await store.set_meta("last_tick", "b")
    assert await store.get_meta("last_tick") == "b"


async def test_a_saved_run_is_a_snapshot_kept_to_the_millisecond(store: Store) -> None:
    r = run(1001, 0)
    r.created_at = r.created_at + timedelta(microseconds=1_234)
    await store.save_run(r)
    r.state = S.SUCCESS  # changed after saving: not stored until saved again
    found = await store.find_run(r.run_id)
    assert found is not None and found.state is S.TRIGGER
    assert found.created_at == T0 + timedelta(milliseconds=1)
    assert await store.run_exists(r.run_id) and not await store.run_exists("nope")


async def test_a_slot_time_is_kept_to_the_rounded_millisecond(store: Store) -> None:
    """Slots are stored as epoch ms (rounded); a forced run's slot has microseconds."""
    r = run(1001, 0)
    r.scheduled_utc = T0 + timedelta(microseconds=1_600)
    await store.save_run(r)
    found = await store.find_run(r.run_id)
    assert found is not None and found.scheduled_utc == T0 + timedelta(milliseconds=2)


async def test_fired_slots_are_those_in_the_half_open_window(store: Store) -> None:
    for minute in (0, 1, 2):
        store.save_run(run(1001, minute))
    await store.save_run(run(1002, 1, attempt=2))
    slots = await store.fired_slots(T0, T0 + timedelta(minutes=1))
    assert slots == {
        (1001, to_ms(T0 + timedelta(minutes=1))),
        (1002, to_ms(T0 + timedelta(minutes=1))),
    }


async def test_latest_state_is_the_last_created_run_per_task(store: Store) -> None:
    first, second = run(1001, 0, S.FAILED), run(1001, 0, S.RESTARTING, attempt=2)
    second.created_at = first.created_at  # a tie: the later row wins
    store.save_run(first)
    await store.save_run(second)
    assert (await store.latest_run_states())[1001] == (second.run_id, S.RESTARTING)
    assert await store.count_runs_since(T0) == 2
    assert await store.count_runs_since(T0 + timedelta(seconds=1)) == 0


async def test_since_filter_keeps_every_run_not_final(store: Store) -> None:
    old_live, old_done = run(1001, -600, S.RUNNING), run(1002, -600, S.SUCCESS)
    store.save_run(old_live)
    store.save_run(old_done)
    await store.save_run(run(1003, 0, S.SUCCESS))
    found, total, _ = await store.list_runs(RunFilter(since=T0), 0, 10)
    assert sorted(r.tid for r in found) == [1001, 1003] and total == 2


async def test_runs_filter_by_date_range_agent_and_group(store: Store) -> None:
    early, mid, late = run(1001, 0), run(1002, 1), run(1003, 2)
    early.run_date, mid.run_date, late.run_date = "20260501", "20260515", "20260531"
    mid.agent, late.agent = "a1", "a2"
    mid.group_run_id = "default:g1:123"
    late.group_run_id = "default:g12:123"  # g1's prefix is "default:g1:", not "default:g1"
    for r in (early, mid, late):
        store.save_run(r)
    await store.flush()

    async def tids(flt: RunFilter) -> list[int]:
        found, total, _ = await store.list_runs(flt, 0, 10)
        assert total == len(found)
        return sorted(r.tid for r in found)

    assert await tids(RunFilter(date_from="20260515")) == [1002, 1003]
    assert await tids(RunFilter(date_to="20260515")) == [1001, 1002]
    assert await tids(RunFilter(date_from="20260502", date_to="20260530")) == [1002]
    assert await tids(RunFilter(agent="a2")) == [1003]
    assert await tids(RunFilter(group_run_prefix="default:g1:")) == [1002]
    assert await tids(RunFilter(group_run_prefix="default:g12:")) == [1003]
    assert await tids(RunFilter(group_run_prefix="default:g")) == [1002, 1003]
    assert await tids(RunFilter(group_run_prefix="\x00")) == []


async def test_writes_are_applied_in_order_and_flush_waits_for_them(store: Store) -> None:
    r = run(1001, 0)
    for state in (S.TRIGGER, S.STARTED, S.RUNNING, S.SUCCESS):
        src = r.state if state is not S.TRIGGER else None
        r.state = state
        store.save_run(r, StateChange(r.run_id, src, state, T0))
    store.append_output(r.run_id, "stdout", 0, b"ok\n")
    barrier = store.barrier()
    await store.flush()
    assert barrier.done()
    found = await store.find_run(r.run_id)
    assert found is not None and found.state is S.SUCCESS
    assert [c.to_state for c in await store.transitions(r.run_id)] == [
        S.TRIGGER, S.STARTED, S.RUNNING, S.SUCCESS,
    ]  # fmt: skip
    assert await store.read_output(r.run_id, "stdout") == b"ok\n"


async def test_events_get_growing_ids_and_filter(store: Store) -> None:
    first = await store.add_event("FORCE_RUN_TASK", "1001", {"run_date": "20260509"},
                                  "SUCCESS", "ok", "cli", "alice", T0, T0, "alice")  # fmt: skip
    second = await store.add_event("FREEZE_RUN", "group 7", {}, "FAILURE", "no", "api",
                                   "bob", T0 + timedelta(seconds=5), None, "")  # fmt: skip
    assert second == first + 1
    got = await store.get_event(first)
    assert got is not None and got.args == {"run_date": "20260509"} and got.acked_by == "alice"
    assert await store.get_event(999) is None
    page, total = await store.find_events(EventFilter(), 0, 10)
    assert [e.id for e in page] == [second, first] and total == 2
    by_status, _ = await store.find_events(EventFilter(status="failure"), 0, 10)
    assert [e.id for e in by_status] == [second]
    by_target, _ = await store.find_events(EventFilter(target="GROUP"), 0, 10)
    assert [e.id for e in by_target] == [second]
    exact, _ = await store.find_events(EventFilter(targets=("1001",)), 0, 10)
    assert [e.id for e in exact] == [first]
    recent, total = await store.find_events(EventFilter(since=T0 + timedelta(seconds=1)), 0, 10)
    assert [e.id for e in recent] == [second] and total == 1


async def test_freezes_are_kept_once_and_removed(store: Store) -> None:
    store.add_freeze(Freeze(1001, "20260509"), "alice", T0)
    store.add_freeze(Freeze(1001, "20260509"), "bob", T0)
    await store.add_freeze(Freeze(1001, "20260509", "08:30"), "alice", T0)
    assert sorted(await store.load_freezes(), key=lambda f: f.trigger_time) == [
        Freeze(1001, "20260509"), Freeze(1001, "20260509", "08:30"),
    ]  # fmt: skip
    await store.remove_freeze(Freeze(1001, "20260509"))
    assert await store.load_freezes() == [Freeze(1001, "20260509", "08:30")]


async def test_groups_round_trip_and_delete(store: Store) -> None:
    await store.put_groups([group(2, "b"), group(1, "a")], T0)
    await store.put_groups([replace(group(1, "a"), description="changed")], T0)
    assert [(g.gid, g.description) for g in await store.load_groups()] == [(1, "changed"), (2, "")]
    await store.delete_groups([2])
    assert [g.gid for g in await store.load_groups()] == [1]


async def test_deleted_tids_and_gids_are_retired_for_good(store: Store) -> None:
    assert await store.retired_ids("task") == set()
    await store.put_tasks([task(1001, "a"), task(1002, "b")], T0)
    await store.put_groups([group(1, "g1"), group(2, "g2")], T0)
    await store.delete_tasks([1002])
    await store.delete_groups([2])
    await store.put_tasks([task(1002, "again")], T0)  # the store keeps ids; refusing is the app's
    assert await store.retired_ids("task") == {1002}
    assert await store.retired_ids("group") == {2}


async def test_retired_ids_survive_a_restart_and_are_backfilled(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    first = await SqliteStore.open(path)
    writer = asyncio.create_task(first.run_writer())
    await first.put_tasks([task(1001, "a")], T0)
    await first.delete_tasks([1001])
    await first.save_run(run(1005, 0))  # history of a task deleted before migration 6
    first.stop_writer()
    await writer
    await first.close()
    before = next(i for i, m in enumerate(MIGRATIONS) if "CREATE TABLE retired_ids" in m)
    with closing(sqlite3.connect(path)) as db:  # a database from before the table
        db.execute("DROP TABLE retired_ids")
        db.execute(f"PRAGMA user_version = {before}")
        db.commit()
    second = await SqliteStore.open(path)
    assert await second.retired_ids("task") == {1005}
    await second.close()


async def test_group_occurrences_update_their_state_and_carry_members(store: Store) -> None:
    g = occurrence(7, 0)
    store.save_group_run(g)
    ended = replace(g, state="SUCCESS", name="renamed", ended_at=T0 + timedelta(minutes=1))
    await store.save_group_run(ended)
    found = await store.find_group_run(g.group_run_id)
    assert found is not None
    assert (found.state, found.name, found.ended_at) == ("SUCCESS", "g7", ended.ended_at)
    member, retry = run(1001, 0, S.FAILED), run(1001, 0, S.SUCCESS, attempt=2)
    for r in (retry, member):
        r.group_run_id = g.group_run_id
        store.save_run(r)
    old_open = occurrence(8, -3000, "PENDING")
    store.save_group_run(old_open)
    await store.save_group_run(occurrence(9, -3000, "FAILED"))  # old and final: not loaded
    loaded = await store.load_group_runs(to_ms(T0 - timedelta(minutes=1)))
    assert [x.group_run_id for x in loaded] == [old_open.group_run_id, g.group_run_id]
    assert loaded[1].members == {1001: retry.run_id}  # the latest attempt
    members = await store.runs_of_group_runs([g.group_run_id])
    assert sorted(r.attempt for r in members) == [1, 2]


async def test_agents_are_replaced_by_name(store: Store) -> None:
    store.save_agent(AgentRecord("b", "h2", ["q"], "1", 2, 2, 100, T0, T0))
    store.save_agent(AgentRecord("a", "h1", ["q"], "1", 1, 2, 100, T0, T0))
    store.save_agent(AgentRecord("a", "h1", ["q", "r"], "2", 3, 2, 100, T0, None))
    await store.flush()
    agents = await store.load_agents()
    assert [(x.name, x.queues, x.pid, x.last_seen) for x in agents] == [
        ("a", ["q", "r"], 3, None), ("b", ["q"], 2, T0),
    ]  # fmt: skip


async def test_output_segments_are_the_stored_pieces_at_their_offsets(store: Store) -> None:
    r = run(1001, 0)
    store.save_run(r)
    store.append_output(r.run_id, "stdout", 0, b"head ")
    store.append_output(r.run_id, "stdout", 5, b"more ")
    store.append_output(r.run_id, "stdout", 5, b"more ")  # a chunk sent again is kept once
    store.append_output(r.run_id, "stdout", 100, b"tail")  # after a cut
    await store.flush()
    assert await store.read_output_segments(r.run_id, "stdout") == [(0, b"head more "),
                                                                     (100, b"tail")]  # fmt: skip
    assert await store.read_output_segments(r.run_id, "stderr") == []
    assert await store.read_output_segments("nope", "stdout") == []


def test_join_segments_keeps_an_overlap_once() -> None:
    assert join_segments([(0, b"abc"), (2, b"cde"), (5, b"f"), (9, b"x"), (9, b"")]) == [
        (0, b"abcdef"), (9, b"x")]  # fmt: skip
    assert join_segments([]) == []


async def test_each_tasks_latest_run_is_found_by_one_index_probe(tmp_path: Path) -> None:
    """latest_run_states runs at every start: with many runs per task it once sorted a task's
    runs for each of them (102 s for 43,000 runs of 10 tasks)."""
    store = await SqliteStore.open(tmp_path / "x.db")
    writer = asyncio.create_task(store.run_writer())
    await asyncio.sleep(0)  # the writer runs
    try:
        for i in range(30):
            store.save_run(run(1001 + i % 3, i))
        await store.flush()
        latest = await store.latest_run_states()
        assert {tid: state for tid, (_, state) in latest.items()} == {
            1001: S.TRIGGER, 1002: S.TRIGGER, 1003: S.TRIGGER
        }  # fmt: skip
        assert latest[1003][0] == run(1003, 29).run_id
    finally:
        store.stop_writer()
        await writer
        await store.close()
    with closing(sqlite3.connect(tmp_path / "x.db")) as db:
        plan = " | ".join(r[3] for r in db.execute(f"EXPLAIN QUERY PLAN {LATEST_RUN_STATES}"))
    assert "SEARCH runs USING COVERING INDEX runs_by_tid_created (tid=?)" in plan, plan
    assert "TEMP B-TREE" not in plan, plan  # no sort of a task's runs

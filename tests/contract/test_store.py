"""The store contract: what the engine and API rely on, over SQLite (a real file) and memory."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from easytask.core.errors import StoreWriteError
from easytask.core.models import Run, StateChange, TaskDef
from easytask.core.records import RunFilter
from easytask.core.runid import make_run_id
from easytask.core.states import RunState
from easytask.store.ports import OUTPUT_HEAD, OUTPUT_TAIL, Store
from easytask.store.sqlite import SqliteStore

T0 = datetime(2026, 5, 9, 12, 30, tzinfo=UTC)


def task(tid: int, name: str) -> TaskDef:
    return TaskDef(tid=tid, name=name, cmd="true", run_on_host="q", stdout="o", stderr="e",
                   timezone="UTC", day_of_week="1111111", trigger_times="08:30")  # fmt: skip


def run(tid: int, minute: int, state: RunState = RunState.TRIGGER, attempt: int = 1) -> Run:
    at = T0 + timedelta(minutes=minute)
    return Run(run_id=make_run_id("default", tid, at, attempt), tid=tid, name=f"t{tid}",
               instance="default", run_date="20260509", scheduled_utc=at, local_time="12:30",
               timezone="UTC", attempt=attempt, state=state, queue="q", created_at=at,
               updated_at=at)  # fmt: skip


async def test_tasks_round_trip_and_delete(store: Store) -> None:
    await store.put_tasks([task(1001, "a"), task(1002, "b")], T0)
    assert [t.name for t in await store.load_tasks()] == ["a", "b"]
    await store.put_tasks([task(1001, "a2")], T0)
    await store.delete_tasks([1002])
    assert [(t.tid, t.name) for t in await store.load_tasks()] == [(1001, "a2")]


async def test_load_marks_definitions_holding_escapes(store: Store) -> None:
    """Stored JSON is ASCII: a control character or surrogate can only be an escape."""
    plain, lines, nul = task(1001, "a"), task(1002, "b"), task(1003, "c")
    lines = replace(lines, cmd="echo a\necho b")
    nul = replace(nul, stdout="o\x00", cmd="echo \udfff")
    await store.put_tasks([plain, lines, nul], T0)
    escaped: set[int] = set()
    loaded = await store.load_tasks(escaped)
    assert escaped == {1002, 1003}
    assert [t.cmd for t in loaded] == ["true", "echo a\necho b", "echo \udfff"]


async def test_run_rows_are_upserted_with_their_history(store: Store) -> None:
    r = run(1001, 0)
    store.save_run(r, StateChange(r.run_id, None, RunState.TRIGGER, T0))
    r.state, r.pid, r.return_code = RunState.SUCCESS, 42, 0
    r.stdout_range = (10, 20)
    r.started_at, r.ended_at = T0, T0 + timedelta(seconds=3)
    await store.save_run(r, StateChange(r.run_id, RunState.TRIGGER, RunState.SUCCESS, T0, "ok"))
    found = await store.find_run(r.run_id)
    assert found is not None
    assert (found.state, found.pid, found.return_code, found.stdout_range) == (
        RunState.SUCCESS, 42, 0, (10, 20),
    )  # fmt: skip
    assert found.duration == 3.0
    assert [(c.from_state, c.to_state, c.reason) for c in await store.transitions(r.run_id)] == [
        (None, RunState.TRIGGER, ""),
        (RunState.TRIGGER, RunState.SUCCESS, "ok"),
    ]
    assert await store.load_live_runs() == []


async def test_list_runs_filters_pages_and_counts(store: Store) -> None:
    for minute in range(5):
        store.save_run(run(1001, minute, RunState.SUCCESS))
    store.save_run(run(1002, 0, RunState.FAILED))
    await store.save_run(run(1002, 1, RunState.RUNNING))
    page, total, stats = await store.list_runs(RunFilter(tid=1001), offset=0, limit=2)
    assert total == 5 and len(page) == 2
    assert page[0].scheduled_utc > page[1].scheduled_utc  # newest first
    _, total, stats = await store.list_runs(RunFilter(), 0, 100)
    assert stats == {"SUCCESS": 5, "FAILED": 1, "RUNNING": 1} and total == 7
    only, _, _ = await store.list_runs(RunFilter(state="failed"), 0, 100)
    assert [r.tid for r in only] == [1002]
    assert [r.state for r in await store.load_live_runs()] == [RunState.RUNNING]
    latest = await store.latest_run_states()
    assert latest[1002][1] is RunState.RUNNING


async def test_search_escapes_like_wildcards(store: Store) -> None:
    a, b = run(1001, 0), run(1002, 0)
    a.name, b.name = "load_x", "loadyx"
    store.save_run(a)
    await store.save_run(b)
    found, _, _ = await store.list_runs(RunFilter(search="d_x"), 0, 10)
    assert [r.name for r in found] == ["load_x"]


async def test_output_chunks_append_in_order_and_ignore_duplicates(store: Store) -> None:
    store.append_output("r1", "stdout", 0, b"hello ")
    store.append_output("r1", "stdout", 6, b"world")
    store.append_output("r1", "stdout", 6, b"WORLD")  # same offset again: ignored
    store.append_output("r1", "stderr", 0, b"err")
    await store.flush()
    assert await store.read_output("r1", "stdout") == b"hello world"
    assert await store.output_sizes(["r1"]) == {("r1", "stdout"): 11, ("r1", "stderr"): 3}


async def test_disk_full_keeps_run_writes_queued_until_space_returns(
    sqlite_store: SqliteStore,
) -> None:
    store = sqlite_store
    await store.put_tasks([task(1001, "a")], T0)
    db = store._wdb  # simulate a full disk at the SQLite layer
    async with db.execute("PRAGMA page_count") as cur:
        row = await cur.fetchone()
    assert row is not None
    await db.execute(f"PRAGMA max_page_count = {row[0]}")

    big = run(1001, 0)
    big.reason = "x" * 200_000  # needs new pages
    pending = store.save_run(big)
    with pytest.raises(StoreWriteError, match="full"):
        await store.put_tasks([task(1002, "b" * 100)] * 1, T0)
    assert not pending.done(), "a run state change must not be dropped"
    assert store.writer.failing
    assert [t.tid for t in await store.load_tasks()] == [1001], "nothing half-written"

    await db.execute("PRAGMA max_page_count = 1073741823")
    await asyncio.wait_for(pending, 10)
    stored = await store.find_run(big.run_id)
    assert stored is not None and stored.reason == big.reason
    assert not store.writer.failing


async def test_migrations_are_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    first = await SqliteStore.open(path)
    await first.close()
    second = await SqliteStore.open(path)
    assert await second.get_meta("nothing") is None
    await second.close()


async def test_stored_output_keeps_head_and_tail_and_marks_the_cut(store: Store) -> None:
    chunk = 64 * 1024
    total = OUTPUT_HEAD + OUTPUT_TAIL + 3 * 1024 * 1024  # 13 MiB written
    for offset in range(0, total, chunk):
        store.append_output("big", "stdout", offset, bytes([offset // chunk % 251]) * chunk)
    await store.flush()
    raw = await store.read_output("big", "stdout")
    assert len(raw) == OUTPUT_HEAD + OUTPUT_TAIL  # exactly 10 MiB: 5 MiB head, 5 MiB tail
    view, cut = await store.read_output_view("big", "stdout")
    assert cut
    head_end = view.index(b"\n[... ")
    assert head_end == OUTPUT_HEAD
    marker = view[head_end : view.index(b"...]\n") + 5]
    assert marker == b"\n[... " + str(total - len(raw)).encode() + b" bytes cut ...]\n"
    assert view.endswith(bytes([(total // chunk - 1) % 251]) * chunk)  # the last chunk is kept
    small, small_cut = await store.read_output_view("none", "stdout")
    assert (small, small_cut) == (b"", False)


async def test_reading_from_an_offset_skips_what_was_cut(store: Store) -> None:
    store.append_output("r", "stderr", 0, b"abc")
    store.append_output("r", "stderr", 3, b"def")
    store.append_output("r", "stderr", 100, b"xyz")  # a cut between 6 and 100
    await store.flush()
    assert await store.read_output_from("r", "stderr", 0) == (b"abcdefxyz", 103)
    assert await store.read_output_from("r", "stderr", 4) == (b"efxyz", 103)
    assert await store.read_output_from("r", "stderr", 50) == (b"xyz", 103)
    assert await store.read_output_from("r", "stderr", 103) == (b"", 103)

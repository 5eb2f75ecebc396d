"""Lifecycle store contract (`scheduler logs`): entries round-trip, newest first, filtered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from easytask.core.lifecycle import LifecycleAction as A
from easytask.core.lifecycle import LifecycleNote, on_start
from easytask.store.ports import Store

T0 = datetime(2026, 5, 9, 12, 30, 0, 123456, tzinfo=UTC)


async def test_entries_round_trip_newest_first(store: Store) -> None:
    log = store.lifecycle
    assert await log.latest() is None
    assert await log.find("", "", 0, 10) == ([], 0)
    notes = [
        LifecycleNote(A.STARTED, "h1", 10, "first start"),
        LifecycleNote(A.STOPPED, "h1", 10, "clean stop"),
        LifecycleNote(A.RESTARTED, "h2", 11, "restarted"),
    ]
    for i, note in enumerate(notes):
        await log.add(note, T0 + timedelta(minutes=i))
    latest = await log.latest()
    assert latest is not None
    assert (latest.id, latest.action, latest.host, latest.pid) == (3, A.RESTARTED, "h2", 11)
    assert latest.created_at == T0.replace(microsecond=123000) + timedelta(minutes=2)
    page, total = await log.find("", "", 0, 2)
    assert total == 3 and [e.id for e in page] == [3, 2]
    page, total = await log.find("", "", 2, 2)
    assert [e.id for e in page] == [1]
    assert [e.id for e in (await log.find("stopped", "", 0, 10))[0]] == [2]
    assert [e.id for e in (await log.find("", "h2", 0, 10))[0]] == [3]
    assert [e.id for e in (await log.find("", "first", 0, 10))[0]] == [1]
    assert await log.find("CRASHED", "", 0, 10) == ([], 0)


async def test_a_start_after_a_start_records_the_crash_of_the_first(store: Store) -> None:
    log = store.lifecycle
    for note in on_start(await log.latest(), "h", 1):
        await log.add(note, T0)
    for note in on_start(await log.latest(), "h", 2):  # no STOPPED between: pid 1 crashed
        await log.add(note, T0)
    entries, _ = await log.find("", "", 0, 10)
    assert [(e.action, e.pid) for e in reversed(entries)] == [
        (A.STARTED, 1), (A.CRASHED, 1), (A.STARTED, 2)
    ]  # fmt: skip
    await log.add(LifecycleNote(A.STOPPED, "h", 2, "clean stop"), T0)
    assert [n.action for n in on_start(await log.latest(), "h", 3)] == [A.RESTARTED]

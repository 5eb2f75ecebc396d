"""Calendar store contract: user calendars and entries round-trip (SQLite and memory)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from easytask.core.records import CalendarRecord, HolidaySpan
from easytask.store.ports import Store
from easytask.store.sqlite import SqliteStore

T0 = datetime(2026, 5, 9, 12, 30, tzinfo=UTC)


def entry(entry_id: int, calendar: str, start: str, end: str = "") -> HolidaySpan:
    first = date.fromisoformat(start)
    last = date.fromisoformat(end) if end else first
    return HolidaySpan(first, last, f"reason {entry_id}", entry_id, calendar, "alice", T0)


async def test_calendars_and_entries_round_trip(store: Store) -> None:
    cals = store.calendars
    assert await cals.load() == ([], [])
    assert await cals.last_entry_id() == 0
    await cals.add_calendar(CalendarRecord("Ops", "freezes", "alice", T0))
    await cals.add_entry(entry(1, "Ops", "2026-06-01", "2026-06-03"))
    await cals.add_entry(entry(2, "US_HOLIDAYS", "2026-07-06"))
    await cals.add_entry(entry(3, "Ops", "2026-01-02"))
    calendars, entries = await cals.load()
    assert calendars == [CalendarRecord("Ops", "freezes", "alice", T0)]
    assert entries == [
        entry(3, "Ops", "2026-01-02"),
        entry(1, "Ops", "2026-06-01", "2026-06-03"),
        entry(2, "US_HOLIDAYS", "2026-07-06"),
    ]


async def test_deleted_ids_stay_used(store: Store) -> None:
    cals = store.calendars
    await cals.add_calendar(CalendarRecord("Ops", created_at=T0))
    await cals.add_entry(entry(1, "Ops", "2026-06-01"))
    await cals.add_entry(entry(2, "Ops", "2026-06-02"))
    await cals.delete_entry(2)
    assert [e.id for e in (await cals.load())[1]] == [1]
    assert await cals.last_entry_id() == 2
    await cals.delete_calendar("Ops")
    assert await cals.load() == ([], [])
    assert await cals.last_entry_id() == 2


async def test_calendars_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "easytask.db"
    first = await SqliteStore.open(path)
    writer = asyncio.create_task(first.writer.run())
    await first.calendars.add_calendar(CalendarRecord("Ops", created_at=T0))
    await first.calendars.add_entry(entry(5, "Ops", "2026-06-01"))
    writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writer
    await first.close()
    again = await SqliteStore.open(path)
    try:
        calendars, entries = await again.calendars.load()
        assert [c.name for c in calendars] == ["Ops"] and [e.id for e in entries] == [5]
        assert await again.calendars.last_entry_id() == 5
    finally:
        await again.close()

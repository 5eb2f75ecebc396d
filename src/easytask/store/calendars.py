"""CalendarStore: user holiday calendars and calendar entries (spec 5) in the SQLite file."""

from __future__ import annotations

import asyncio
from datetime import date

import aiosqlite

from easytask.core.records import CalendarRecord, HolidaySpan
from easytask.core.runid import iso_utc, parse_iso_utc
from easytask.store.writer import BatchWriter


class CalendarStore:
    """Reads on the store's read connection; writes go through its batch writer.

    Entry ids are handed out by the caller (``last_entry_id`` + 1 and onwards) so that an insert
    can be queued like every other write and its id is known before it commits.
    """

    def __init__(self, rdb: aiosqlite.Connection, writer: BatchWriter) -> None:
        self._rdb = rdb
        self._writer = writer

    async def load(self) -> tuple[list[CalendarRecord], list[HolidaySpan]]:
        """Every user calendar (by name) and every entry (by calendar, start date, id)."""
        await self._writer.flush()
        sql = "SELECT name, description, created_by, created_at FROM calendars ORDER BY name"
        async with self._rdb.execute(sql) as cur:
            calendars = [
                CalendarRecord(r[0], r[1], r[2], parse_iso_utc(r[3])) for r in await cur.fetchall()
            ]
        sql = (
            "SELECT id, calendar, start_date, end_date, reason, created_by, created_at "
            "FROM calendar_entries ORDER BY calendar, start_date, id"
        )
        async with self._rdb.execute(sql) as cur:
            entries = [
                HolidaySpan(
                    start_date=date.fromisoformat(r[2]),
                    end_date=date.fromisoformat(r[3]),
                    reason=r[4],
                    id=int(r[0]),
                    calendar=r[1],
                    created_by=r[5],
                    created_at=parse_iso_utc(r[6]),
                )
                for r in await cur.fetchall()
            ]
        return calendars, entries

    async def last_entry_id(self) -> int:
        """The highest entry id ever used (deleted entries included)."""
        await self._writer.flush()
        sql = (
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = "
            "'calendar_entries'), 0), COALESCE((SELECT MAX(id) FROM calendar_entries), 0))"
        )
        async with self._rdb.execute(sql) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def add_calendar(self, calendar: CalendarRecord) -> None:
        """Insert a user calendar; returns once committed."""
        await self._writer.write(
            "INSERT INTO calendars (name, description, created_by, created_at) VALUES (?, ?, ?, ?)",
            (
                calendar.name,
                calendar.description,
                calendar.created_by,
                iso_utc(calendar.created_at),
            ),
        )

    async def delete_calendar(self, name: str) -> None:
        """Delete a calendar row and all entries filed under its name; returns once committed."""
        # Queued back to back, so both land in the same batch (one transaction).
        futs = [
            self._writer.write("DELETE FROM calendar_entries WHERE calendar = ?", (name,)),
            self._writer.write("DELETE FROM calendars WHERE name = ?", (name,)),
        ]
        await asyncio.gather(*futs)

    async def add_entry(self, entry: HolidaySpan) -> None:
        """Insert an entry with its (caller-chosen) id; returns once committed."""
        await self._writer.write(
            "INSERT INTO calendar_entries (id, calendar, start_date, end_date, reason, "
            "created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                entry.id,
                entry.calendar,
                entry.start_date.isoformat(),
                entry.end_date.isoformat(),
                entry.reason,
                entry.created_by,
                iso_utc(entry.created_at),
            ),
        )

    async def delete_entry(self, entry_id: int) -> None:
        await self._writer.write("DELETE FROM calendar_entries WHERE id = ?", (entry_id,))

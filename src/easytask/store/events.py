"""EventStore: the operator event log (spec 10) and stored freezes, in the SQLite file."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import aiosqlite

from easytask.core.records import EventFilter, EventRecord, Freeze
from easytask.core.runid import iso_utc, parse_iso_utc
from easytask.store.writer import BatchWriter

_EVENT_COLUMNS = (
    "id, event, target, args, status, message, origin, published_by, created_at, acked_at, acked_by"
)


def _event(row: aiosqlite.Row) -> EventRecord:
    created = parse_iso_utc(row[8])
    assert created is not None
    return EventRecord(
        int(row[0]), row[1], row[2], json.loads(row[3]), row[4], row[5], row[6], row[7],
        created, parse_iso_utc(row[9] or ""), row[10] or "",
    )  # fmt: skip


class EventStore:
    """Reads on the store's read connection; writes go through its batch writer."""

    def __init__(self, rdb: aiosqlite.Connection, writer: BatchWriter) -> None:
        self._rdb = rdb
        self._writer = writer

    async def find(
        self, flt: EventFilter, offset: int, limit: int
    ) -> tuple[list[EventRecord], int]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("event", flt.event), ("status", flt.status), ("origin", flt.origin)):
            if value:
                clauses.append(f"{column} = ?")
                params.append(value.upper())
        if flt.target or flt.targets:
            ors = ["target = ?"] * len(flt.targets)
            params.extend(flt.targets)
            if flt.target:
                ors.append("target LIKE ?")
                params.append(f"%{flt.target}%")
            clauses.append("(" + " OR ".join(ors) + ")")
        if flt.since is not None:
            clauses.append("created_at >= ?")
            params.append(iso_utc(flt.since))
        if flt.until is not None:
            clauses.append("created_at < ?")
            params.append(iso_utc(flt.until))
        if flt.published_by:
            clauses.append("published_by = ?")
            params.append(flt.published_by)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        await self._writer.flush()
        async with self._rdb.execute(f"SELECT COUNT(*) FROM events {where}", params) as cur:
            row = await cur.fetchone()
        total = int(row[0]) if row else 0
        sql = f"SELECT {_EVENT_COLUMNS} FROM events {where} ORDER BY id DESC LIMIT ? OFFSET ?"
        async with self._rdb.execute(sql, [*params, limit, offset]) as cur:
            return [_event(r) for r in await cur.fetchall()], total

    async def get(self, event_id: int) -> EventRecord | None:
        await self._writer.flush()
        sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE id = ?"
        async with self._rdb.execute(sql, (event_id,)) as cur:
            row = await cur.fetchone()
        return None if row is None else _event(row)

    # ----- freezes -----

    async def load_freezes(self) -> list[Freeze]:
        async with self._rdb.execute("SELECT tid, run_date, trigger_time FROM freezes") as cur:
            return [Freeze(int(r[0]), r[1], r[2]) for r in await cur.fetchall()]

    def add_freeze(self, freeze: Freeze, by: str, now: datetime) -> asyncio.Future[None]:
        return self._writer.write(
            "INSERT OR IGNORE INTO freezes (tid, run_date, trigger_time, created_by, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (freeze.tid, freeze.run_date, freeze.trigger_time, by, iso_utc(now)),
            durable=True,
        )

    def remove_freeze(self, freeze: Freeze) -> asyncio.Future[None]:
        return self._writer.write(
            "DELETE FROM freezes WHERE tid = ? AND run_date = ? AND trigger_time = ?",
            (freeze.tid, freeze.run_date, freeze.trigger_time),
            durable=True,
        )

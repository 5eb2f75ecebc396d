"""LifecycleStore: the scheduler's own start, stop, restart and crash records in the SQLite file."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiosqlite

from easytask.core.lifecycle import LifecycleAction, LifecycleEntry, LifecycleNote
from easytask.core.runid import iso_utc, parse_iso_utc
from easytask.store.writer import BatchWriter

_COLUMNS = "id, action, host, pid, message, created_at"


def _entry(row: aiosqlite.Row) -> LifecycleEntry:
    created = parse_iso_utc(row[5])
    assert created is not None
    return LifecycleEntry(int(row[0]), LifecycleAction(row[1]), row[2], int(row[3]), row[4],
                          created)  # fmt: skip


class LifecycleStore:
    """Reads on the store's read connection; writes go through its batch writer."""

    def __init__(self, rdb: aiosqlite.Connection, writer: BatchWriter) -> None:
        self._rdb = rdb
        self._writer = writer

    async def add(self, note: LifecycleNote, at: datetime) -> None:
        await self._writer.write(
            "INSERT INTO scheduler_log (action, host, pid, message, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (note.action.value, note.host, note.pid, note.message, iso_utc(at)),
            durable=True,
        )

    async def latest(self) -> LifecycleEntry | None:
        await self._writer.flush()
        sql = f"SELECT {_COLUMNS} FROM scheduler_log ORDER BY id DESC LIMIT 1"
        async with self._rdb.execute(sql) as cur:
            row = await cur.fetchone()
        return None if row is None else _entry(row)

    async def find(
        self, action: str, search: str, offset: int, limit: int
    ) -> tuple[list[LifecycleEntry], int]:
        clauses: list[str] = []
        params: list[Any] = []
        if action:
            clauses.append("action = ?")
            params.append(action.upper())
        if search:
            clauses.append("(instr(message, ?) > 0 OR instr(host, ?) > 0)")
            params.extend([search, search])
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        await self._writer.flush()
        async with self._rdb.execute(f"SELECT COUNT(*) FROM scheduler_log {where}", params) as cur:
            row = await cur.fetchone()
        total = int(row[0]) if row else 0
        sql = f"SELECT {_COLUMNS} FROM scheduler_log {where} ORDER BY id DESC LIMIT ? OFFSET ?"
        async with self._rdb.execute(sql, [*params, limit, offset]) as cur:
            return [_entry(r) for r in await cur.fetchall()], total

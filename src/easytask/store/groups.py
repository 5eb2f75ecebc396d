"""GroupStore: task group definitions and group occurrences (spec 3, 8) in the SQLite file."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime

import aiosqlite

from easytask.core.groups import GroupDef
from easytask.core.records import GroupRun
from easytask.core.runid import from_ms, iso_utc, parse_iso_utc, to_ms
from easytask.store.schema import RETIRE_SQL
from easytask.store.writer import BatchWriter

_COLUMNS = (
    "group_run_id, gid, name, run_date, local_time, scheduled_ms, state, final, reason, forced, "
    "started_at, ended_at, created_at, updated_at"
)
_UPSERT = (
    f"INSERT INTO group_runs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(group_run_id) DO UPDATE SET state = excluded.state, final = excluded.final, "
    "reason = excluded.reason, started_at = excluded.started_at, ended_at = excluded.ended_at, "
    "updated_at = excluded.updated_at"
)


def _row(g: GroupRun) -> tuple[object, ...]:
    return (
        g.group_run_id, g.gid, g.name, g.run_date, g.local_time, to_ms(g.scheduled_utc), g.state,
        int(g.final), g.reason, int(g.forced), iso_utc(g.started_at) or None,
        iso_utc(g.ended_at) or None, iso_utc(g.created_at), iso_utc(g.updated_at),
    )  # fmt: skip


def _group_run(r: aiosqlite.Row) -> GroupRun:
    created, updated = parse_iso_utc(r[12]), parse_iso_utc(r[13])
    assert created is not None and updated is not None
    return GroupRun(
        group_run_id=r[0], gid=int(r[1]), name=r[2], run_date=r[3], local_time=r[4],
        scheduled_utc=from_ms(int(r[5])), state=r[6], reason=r[8], forced=bool(r[9]),
        started_at=parse_iso_utc(r[10] or ""), ended_at=parse_iso_utc(r[11] or ""),
        created_at=created, updated_at=updated,
    )  # fmt: skip


class GroupStore:
    """Reads on the store's read connection; writes go through its batch writer."""

    def __init__(self, rdb: aiosqlite.Connection, writer: BatchWriter) -> None:
        self._rdb = rdb
        self._writer = writer

    async def load_groups(self) -> list[GroupDef]:
        out: list[GroupDef] = []
        async with self._rdb.execute("SELECT definition FROM task_groups ORDER BY gid") as cur:
            async for row in cur:
                out.append(GroupDef.from_json_text(row[0]))
        return out

    async def put_groups(self, groups: Iterable[GroupDef], now: datetime) -> None:
        stamp = iso_utc(now)
        futs = [
            self._writer.write(
                "INSERT INTO task_groups (gid, name, definition, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(gid) DO UPDATE SET name = excluded.name, "
                "definition = excluded.definition, updated_at = excluded.updated_at",
                (g.gid, g.name, g.to_json_text(), stamp, stamp),
            )
            for g in groups
        ]
        await asyncio.gather(*futs)

    async def delete_groups(self, gids: Iterable[int]) -> None:
        futs = []
        for g in gids:
            futs.append(self._writer.write("DELETE FROM task_groups WHERE gid = ?", (g,)))
            futs.append(self._writer.write(RETIRE_SQL, ("group", g)))
        await asyncio.gather(*futs)

    def save_group_run(self, group_run: GroupRun) -> asyncio.Future[None]:
        return self._writer.write(_UPSERT, _row(group_run), durable=True)

    async def load_group_runs(self, since_ms: int) -> list[GroupRun]:
        """Group occurrences still open, and those scheduled since ``since_ms`` (for terms)."""
        sql = (
            f"SELECT {_COLUMNS} FROM group_runs WHERE final = 0 OR scheduled_ms >= ? "
            "ORDER BY scheduled_ms"
        )
        async with self._rdb.execute(sql, (since_ms,)) as cur:
            runs = [_group_run(r) for r in await cur.fetchall()]
        if runs:
            by_id = {g.group_run_id: g for g in runs}
            marks = ",".join("?" * len(by_id))
            member_sql = (
                f"SELECT group_run_id, tid, run_id FROM runs WHERE group_run_id IN ({marks}) "
                "ORDER BY attempt"
            )
            async with self._rdb.execute(member_sql, list(by_id)) as cur:
                for gr_id, tid, run_id in await cur.fetchall():
                    by_id[gr_id].members[int(tid)] = run_id
        return runs

    async def find_group_run(self, group_run_id: str) -> GroupRun | None:
        sql = f"SELECT {_COLUMNS} FROM group_runs WHERE group_run_id = ?"
        async with self._rdb.execute(sql, (group_run_id,)) as cur:
            row = await cur.fetchone()
        return None if row is None else _group_run(row)

"""FleetStore: agent ONLINE/OFFLINE changes, per-agent tokens and ad-hoc results (SQLite)."""

from __future__ import annotations

import asyncio
from datetime import datetime

import aiosqlite

from easytask.core.records import ADHOC_FINAL, AdhocResult, AgentChange, AgentToken
from easytask.core.runid import iso_utc, parse_iso_utc
from easytask.store.writer import BatchWriter

_ADHOC_COLUMNS = (
    "event_id, idx, agent, host, run_id, state, return_code, reason, pid, started_at, "
    "ended_at, stdout, stderr, stdout_cut, stderr_cut"
)


_MARKS = ", ".join("?" * 15)


def _adhoc(row: aiosqlite.Row) -> AdhocResult:
    return AdhocResult(
        int(row[0]), int(row[1]), row[2], row[3], row[4], row[5], row[6], row[7], row[8],
        parse_iso_utc(row[9] or ""), parse_iso_utc(row[10] or ""), bytes(row[11]),
        bytes(row[12]), bool(row[13]), bool(row[14]),
    )  # fmt: skip


def _token(row: aiosqlite.Row) -> AgentToken:
    created = parse_iso_utc(row[2])
    assert created is not None
    return AgentToken(row[0], row[1], created, row[3], parse_iso_utc(row[4] or ""))


class FleetStore:
    """Reads on the store's read connection; writes go through its batch writer."""

    def __init__(self, rdb: aiosqlite.Connection, writer: BatchWriter) -> None:
        self._rdb = rdb
        self._writer = writer

    def add_agent_change(self, change: AgentChange) -> None:
        self._writer.write_nowait(
            "INSERT INTO agent_changes (agent, status, at, reason) VALUES (?, ?, ?, ?)",
            (change.agent, change.status, iso_utc(change.at), change.reason),
        )

    async def agent_changes(self, agent: str, limit: int) -> list[AgentChange]:
        await self._writer.flush()
        sql = (
            "SELECT agent, status, at, reason FROM agent_changes WHERE agent = ? "
            "ORDER BY id DESC LIMIT ?"
        )
        async with self._rdb.execute(sql, (agent, limit)) as cur:
            rows = await cur.fetchall()
        return [AgentChange(r[0], r[1], parse_iso_utc(r[2]) or datetime.min, r[3]) for r in rows]

    def save_adhoc_result(self, result: AdhocResult) -> asyncio.Future[None]:
        r = result
        row = (
            r.event_id, r.index, r.agent, r.host, r.run_id, r.state, r.return_code, r.reason,
            r.pid, iso_utc(r.started_at) or None, iso_utc(r.ended_at) or None, r.stdout,
            r.stderr, int(r.stdout_cut), int(r.stderr_cut),
        )  # fmt: skip
        sql = f"INSERT OR REPLACE INTO adhoc_results ({_ADHOC_COLUMNS}) VALUES ({_MARKS})"
        return self._writer.write(sql, row, durable=r.final)

    async def adhoc_results(self, event_id: int) -> list[AdhocResult]:
        await self._writer.flush()
        sql = f"SELECT {_ADHOC_COLUMNS} FROM adhoc_results WHERE event_id = ? ORDER BY idx"
        async with self._rdb.execute(sql, (event_id,)) as cur:
            return [_adhoc(r) for r in await cur.fetchall()]

    async def unfinished_adhoc_results(self) -> list[AdhocResult]:
        await self._writer.flush()
        marks = ", ".join("?" * len(ADHOC_FINAL))
        sql = (
            f"SELECT {_ADHOC_COLUMNS} FROM adhoc_results WHERE state NOT IN ({marks}) "
            "ORDER BY event_id, idx"
        )
        async with self._rdb.execute(sql, sorted(ADHOC_FINAL)) as cur:
            return [_adhoc(r) for r in await cur.fetchall()]

    async def save_agent_token(self, token: AgentToken) -> None:
        t = token
        row = (t.name, t.token_hash, iso_utc(t.created_at), t.created_by, iso_utc(t.last_used))
        await self._writer.write(
            "INSERT OR REPLACE INTO agent_tokens (name, token_hash, created_at, created_by, "
            "last_used) VALUES (?, ?, ?, ?, NULLIF(?, ''))",
            row,
            durable=True,
        )

    async def agent_tokens(self) -> list[AgentToken]:
        await self._writer.flush()
        sql = "SELECT name, token_hash, created_at, created_by, last_used FROM agent_tokens"
        async with self._rdb.execute(sql + " ORDER BY name") as cur:
            return [_token(r) for r in await cur.fetchall()]

    async def delete_agent_token(self, name: str) -> bool:
        await self._writer.flush()
        async with self._rdb.execute("SELECT 1 FROM agent_tokens WHERE name = ?", (name,)) as cur:
            found = await cur.fetchone() is not None
        if found:
            await self._writer.write(
                "DELETE FROM agent_tokens WHERE name = ?", (name,), durable=True
            )
        return found

    def touch_agent_token(self, name: str, at: datetime) -> None:
        self._writer.write_nowait(
            "UPDATE agent_tokens SET last_used = ? WHERE name = ?", (iso_utc(at), name)
        )

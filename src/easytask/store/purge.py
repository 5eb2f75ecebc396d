"""The retention purge in SQLite: finished runs past the retention, in small batches."""

from __future__ import annotations

import asyncio
from datetime import datetime

import aiosqlite

from easytask.core.runid import iso_utc, to_ms
from easytask.store.ports import PurgeBatch, PurgeCursor
from easytask.store.writer import BatchWriter

# The scan walks the slot index with a keyset cursor, so a batch costs ``limit`` rows however
# many runs are kept before it; no index is added to the hot path. A run ends after its slot,
# so every run ended before the cut-off is scheduled before it.
_SCAN = (
    "SELECT rowid, scheduled_ms, run_id, tid, final, COALESCE(ended_at, updated_at), "
    "group_run_id FROM runs INDEXED BY runs_by_scheduled "
    "WHERE scheduled_ms < ?1 AND (scheduled_ms > ?2 OR (scheduled_ms = ?2 AND rowid > ?3)) "
    "ORDER BY scheduled_ms, rowid LIMIT ?4"
)
# Per task, the run latest_run_states reports and the run the last result reads.
_KEPT_OF_TASKS = (
    "WITH t(tid) AS (VALUES {values}) "
    "SELECT (SELECT rowid FROM runs WHERE tid = t.tid ORDER BY created_at DESC, rowid DESC "
    "LIMIT 1), (SELECT rowid FROM runs WHERE tid = t.tid AND final = 1 "
    "ORDER BY scheduled_ms DESC, attempt DESC LIMIT 1) FROM t"
)
_KEPT_GROUPS = (
    "SELECT group_run_id FROM group_runs WHERE group_run_id IN ({marks}) "
    "AND (final = 0 OR COALESCE(ended_at, updated_at) >= ?)"
)
# Runs go first, and only final ones: their history and output follow only once the row is
# gone, so a run an operator changed in the meantime keeps everything. One statement per
# table and batch: the writer's backlog (which agent streams wait on) grows by four, not 2000.
_DELETE_RUNS = "DELETE FROM runs WHERE final = 1 AND run_id IN ({marks})"
_DELETE_CHANGES = (
    "DELETE FROM run_transitions WHERE run_id IN ({marks}) "
    "AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = run_transitions.run_id)"
)
_DELETE_OUTPUT = (
    "DELETE FROM run_output WHERE run_id IN ({marks}) "
    "AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = run_output.run_id)"
)
_DELETE_GROUP_RUNS = (
    "DELETE FROM group_runs WHERE group_run_id IN ({marks}) AND final = 1 "
    "AND COALESCE(ended_at, updated_at) < ? "
    "AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.group_run_id = group_runs.group_run_id)"
)


async def purge_runs(
    rdb: aiosqlite.Connection,
    writer: BatchWriter,
    ended_before: datetime,
    groups_ended_before: datetime,
    after: PurgeCursor | None,
    limit: int,
) -> PurgeBatch:
    """One batch: examine on the read connection, delete through the batch writer."""
    low_ms, low_row = after if after is not None else (-(2**62), 0)
    async with rdb.execute(_SCAN, (to_ms(ended_before), low_ms, low_row, limit)) as cur:
        rows = list(await cur.fetchall())
    if not rows:
        return PurgeBatch(0, 0, 0, None)
    cursor: PurgeCursor | None = (int(rows[-1][1]), int(rows[-1][0]))
    if len(rows) < limit:
        cursor = None
    cut, group_cut = iso_utc(ended_before), iso_utc(groups_ended_before)
    # rowid, run id, tid, group occurrence of each finished run ended before the cut-off
    ended = [(r[0], r[2], r[3], r[6]) for r in rows if r[4] and r[5] < cut]
    kept = await _kept_rows(rdb, {tid for _, _, tid, _ in ended})
    kept_groups = await _kept_group_runs(rdb, {g for *_, g in ended if g}, group_cut)
    doomed = [(run_id, g) for rowid, run_id, _, g in ended
              if rowid not in kept and g not in kept_groups]  # fmt: skip
    if not doomed:
        return PurgeBatch(len(rows), 0, 0, cursor)
    ids = [run_id for run_id, _ in doomed]
    gids = sorted({g for _, g in doomed if g})
    stored = await _count_group_runs(rdb, gids)
    marks = ",".join("?" * len(ids))
    futs = [writer.write(sql.format(marks=marks), ids)
            for sql in (_DELETE_RUNS, _DELETE_CHANGES, _DELETE_OUTPUT)]  # fmt: skip
    if gids:
        sql = _DELETE_GROUP_RUNS.format(marks=",".join("?" * len(gids)))
        futs.append(writer.write(sql, [*gids, group_cut]))
    await asyncio.gather(*futs)
    gone = stored - await _count_group_runs(rdb, gids)
    return PurgeBatch(len(rows), len(doomed), gone, cursor)


async def _kept_rows(rdb: aiosqlite.Connection, tids: set[int]) -> set[int]:
    if not tids:
        return set()
    sql = _KEPT_OF_TASKS.format(values=",".join(["(?)"] * len(tids)))
    async with rdb.execute(sql, sorted(tids)) as cur:
        return {rowid for row in await cur.fetchall() for rowid in row if rowid is not None}


async def _kept_group_runs(rdb: aiosqlite.Connection, gids: set[str], cut: str) -> set[str]:
    if not gids:
        return set()
    sql = _KEPT_GROUPS.format(marks=",".join("?" * len(gids)))
    async with rdb.execute(sql, [*gids, cut]) as cur:
        return {str(r[0]) for r in await cur.fetchall()}


async def _count_group_runs(rdb: aiosqlite.Connection, gids: list[str]) -> int:
    if not gids:
        return 0
    sql = f"SELECT COUNT(*) FROM group_runs WHERE group_run_id IN ({','.join('?' * len(gids))})"
    async with rdb.execute(sql, gids) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0

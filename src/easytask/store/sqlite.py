"""SqliteStore: tasks, runs, state history, run output, agents and meta in one SQLite file (WAL)."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite

from easytask.core.groups import GroupDef
from easytask.core.models import Run, StateChange, TaskDef
from easytask.core.records import AgentRecord, EventFilter, EventRecord, Freeze, GroupRun, RunFilter
from easytask.core.runid import iso_utc, parse_iso_utc, to_ms
from easytask.core.states import RunState
from easytask.store.accounts import AccountStore
from easytask.store.calendars import CalendarStore
from easytask.store.events import EventStore
from easytask.store.fleet import FleetStore
from easytask.store.groups import GroupStore
from easytask.store.lifecycle import LifecycleStore
from easytask.store.ports import (
    OUTPUT_HEAD,
    OUTPUT_TAIL,
    PurgeBatch,
    PurgeCursor,
    Store,
    join_segments,
    split_at_head,
)
from easytask.store.purge import purge_runs
from easytask.store.runrows import (
    INSERT_CHANGE,
    RUN_COLUMNS,
    UPSERT_RUN,
    row_run,
    run_row,
    run_where,
)
from easytask.store.schema import MIGRATIONS, RETIRE_SQL
from easytask.store.writer import BatchWriter, QueuedWrite

# A chunk inside a stored row (sent again after a reconnect) is not stored twice: rows join
# contiguous chunks (OUTPUT_ROW), so a resend need not start where a row does.
_INSERT_OUTPUT = (
    "INSERT OR IGNORE INTO run_output (run_id, stream, offset, data) SELECT ?1, ?2, ?3, ?4 "
    "WHERE NOT EXISTS (SELECT 1 FROM run_output WHERE run_id = ?1 AND stream = ?2 "
    "AND offset <= ?3 AND offset + LENGTH(data) >= ?3 + LENGTH(?4))"
)
# Where the stored tail must start: OUTPUT_TAIL (?4) before the end of the stream's last chunk.
# Uncorrelated, so SQLite evaluates it once per statement, before any row changes.
_KEEP_FROM = (
    "((SELECT offset + LENGTH(data) FROM run_output WHERE run_id = ?1 AND stream = ?2 "
    "ORDER BY offset DESC LIMIT 1) - ?4)"
)
# The middle of a long stream: chunks past the head (?3) that end before the tail. The bound
# on offset keeps the scan to the chunks just pushed out of the tail.
_DROP_MIDDLE = (
    "DELETE FROM run_output WHERE run_id = ?1 AND stream = ?2 AND offset >= ?3 "
    f"AND offset < {_KEEP_FROM} AND offset + LENGTH(data) <= {_KEEP_FROM}"
)
# The one chunk across the tail's start loses its front, so the tail is exactly OUTPUT_TAIL.
_TRIM_TAIL = (
    f"UPDATE OR REPLACE run_output SET data = SUBSTR(data, {_KEEP_FROM} - offset + 1), "
    f"offset = {_KEEP_FROM} WHERE run_id = ?1 AND stream = ?2 AND offset >= ?3 "
    f"AND offset < {_KEEP_FROM} AND offset + LENGTH(data) > {_KEEP_FROM}"
)


OUTPUT_ROW = 1024 * 1024  # contiguous chunks queued together are stored as rows of this size
_OPEN_SWEEP = 256  # streams remembered before the committed ones are forgotten

LATEST_RUN_STATES = (
    "SELECT t.tid, r.run_id, r.state FROM (SELECT DISTINCT tid FROM runs) t "
    "JOIN runs r ON r.rowid = (SELECT rowid FROM runs WHERE tid = t.tid "
    "ORDER BY created_at DESC, rowid DESC LIMIT 1)"
)


class SqliteStore:
    """The embedded store. Writes are batched by one writer task; reads use their own connection.

    Use ``await SqliteStore.open(path)``, run ``store.writer.run()`` as a long-lived task, and
    ``await store.close()`` at the end.
    """

    def __init__(self, wdb: aiosqlite.Connection, rdb: aiosqlite.Connection) -> None:
        self._wdb = wdb
        self._rdb = rdb
        self.writer = BatchWriter(wdb)
        self._next_event_id: int | None = None
        # Per (run, stream): the output row still queued, which later contiguous chunks join,
        # and the queued trim of its middle: one statement per commit, not one per chunk.
        self._open_rows: dict[tuple[str, str], tuple[QueuedWrite, int]] = {}
        self._open_trims: dict[tuple[str, str], QueuedWrite] = {}
        # Per (run, stream): its queued rows past the head, oldest first; one that falls out of
        # the tail before it is committed is never written (the trim would delete it anyway).
        self._queued_rows: dict[tuple[str, str], deque[tuple[QueuedWrite, int]]] = {}
        self.calendars = CalendarStore(rdb, self.writer)
        self.accounts = AccountStore(rdb, self.writer)
        self.events = EventStore(rdb, self.writer)
        self.groups = GroupStore(rdb, self.writer)
        self.lifecycle = LifecycleStore(rdb, self.writer)
        self.fleet = FleetStore(rdb, self.writer)

    @classmethod
    async def open(cls, path: Path) -> SqliteStore:
        path.parent.mkdir(parents=True, exist_ok=True)
        wdb = await aiosqlite.connect(path, isolation_level=None)
        await wdb.execute("PRAGMA journal_mode=WAL")
        await wdb.execute("PRAGMA synchronous=NORMAL")
        await wdb.execute("PRAGMA busy_timeout=5000")
        await _migrate(wdb)
        rdb = await aiosqlite.connect(path, isolation_level=None)
        await rdb.execute("PRAGMA busy_timeout=5000")
        rdb.row_factory = aiosqlite.Row
        return cls(wdb, rdb)

    async def run_writer(self) -> None:
        await self.writer.run()

    def stop_writer(self) -> None:
        self.writer.stop()

    @property
    def pending_writes(self) -> int:
        return self.writer.pending

    def barrier(self) -> asyncio.Future[None]:
        return self.writer.barrier()

    async def flush(self) -> None:
        await self.writer.flush()

    async def close(self) -> None:
        await self._rdb.close()
        await self._wdb.close()

    # ----- meta -----

    async def get_meta(self, key: str) -> str | None:
        async with self._rdb.execute("SELECT value FROM meta WHERE key = ?", (key,)) as cur:
            row = await cur.fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> asyncio.Future[None]:
        return self.writer.write(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
            durable=True,
        )

    # ----- tasks -----

    async def load_tasks(self, escaped: set[int] | None = None) -> list[TaskDef]:
        """Every task definition, in tid order.

        Args:
            escaped: filled with the tids whose stored JSON holds a backslash escape: the
                only way a control character or lone surrogate can be in it (definitions
                are stored as ASCII JSON), so only those need a text check at load.
        """
        tasks: list[TaskDef] = []
        # Row by row: 100,000 definitions never sit in memory twice (as JSON and as objects).
        async with self._rdb.execute("SELECT definition FROM tasks ORDER BY tid") as cur:
            async for row in cur:
                task = TaskDef.from_json_text(row[0])
                if escaped is not None and "\\" in row[0]:
                    escaped.add(task.tid)
                tasks.append(task)
        return tasks

    async def put_tasks(self, tasks: Iterable[TaskDef], now: datetime) -> None:
        """Insert or replace task definitions and wait until they are committed."""
        stamp = iso_utc(now)
        futs = [
            self.writer.write(
                "INSERT INTO tasks (tid, name, definition, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(tid) DO UPDATE SET name = excluded.name, "
                "definition = excluded.definition, updated_at = excluded.updated_at",
                (t.tid, t.name, t.to_json_text(), stamp, stamp),
            )
            for t in tasks
        ]
        await asyncio.gather(*futs)

    async def delete_tasks(self, tids: Iterable[int]) -> None:
        futs = []
        for t in tids:
            futs.append(self.writer.write("DELETE FROM tasks WHERE tid = ?", (t,)))
            futs.append(self.writer.write(RETIRE_SQL, ("task", t)))
        await asyncio.gather(*futs)

    async def retired_ids(self, kind: str) -> set[int]:
        sql = "SELECT id FROM retired_ids WHERE kind = ?"
        async with self._rdb.execute(sql, (kind,)) as cur:
            return {int(row[0]) for row in await cur.fetchall()}

    # ----- runs -----

    def save_run(self, run: Run, change: StateChange | None = None) -> asyncio.Future[None]:
        """Queue the run's full row (and its state change); the future resolves on commit."""
        if change is not None:
            self.writer.write_nowait(
                INSERT_CHANGE,
                (
                    change.run_id,
                    change.from_state.value if change.from_state else None,
                    change.to_state.value,
                    iso_utc(change.at),
                    change.reason,
                ),
            )
        return self.writer.write(UPSERT_RUN, run_row(run), durable=True)

    async def load_live_runs(self) -> list[Run]:
        sql = f"SELECT {RUN_COLUMNS} FROM runs WHERE final = 0 ORDER BY scheduled_ms"
        async with self._rdb.execute(sql) as cur:
            return [row_run(r) for r in await cur.fetchall()]

    async def latest_run_states(self) -> dict[int, tuple[str, RunState]]:
        """Per tid, the id and state of its most recently created run."""
        # One probe of runs_by_tid_created per task: the query once looked at every run and,
        # for each, sorted its task's runs (102 s at start for 43,000 runs of 10 tasks).
        sql = LATEST_RUN_STATES
        async with self._rdb.execute(sql) as cur:
            return {r[0]: (r[1], RunState(r[2])) for r in await cur.fetchall()}

    async def fired_slots(self, since: datetime, until: datetime) -> set[tuple[int, int]]:
        """(tid, scheduled ms) of every slot in (since, until] that already has a run."""
        sql = (
            "SELECT DISTINCT tid, scheduled_ms FROM runs "
            "WHERE scheduled_ms > ? AND scheduled_ms <= ?"
        )
        async with self._rdb.execute(sql, (to_ms(since), to_ms(until))) as cur:
            return {(int(r[0]), int(r[1])) for r in await cur.fetchall()}

    async def runs_of_group_runs(self, group_run_ids: list[str]) -> list[Run]:
        """Every run (all attempts) of the given group occurrences."""
        out: list[Run] = []
        for start in range(0, len(group_run_ids), 500):
            chunk = group_run_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT {RUN_COLUMNS} FROM runs WHERE group_run_id IN ({marks})"
            async with self._rdb.execute(sql, chunk) as cur:
                out.extend(row_run(r) for r in await cur.fetchall())
        return out

    async def find_run(self, run_id: str) -> Run | None:
        sql = f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?"
        async with self._rdb.execute(sql, (run_id,)) as cur:
            row = await cur.fetchone()
        return None if row is None else row_run(row)

    async def run_exists(self, run_id: str) -> bool:
        async with self._rdb.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)) as cur:
            return await cur.fetchone() is not None

    async def transitions(self, run_id: str) -> list[StateChange]:
        sql = (
            "SELECT from_state, to_state, at, reason FROM run_transitions "
            "WHERE run_id = ? ORDER BY id"
        )
        async with self._rdb.execute(sql, (run_id,)) as cur:
            rows = await cur.fetchall()
        out = []
        for r in rows:
            at = parse_iso_utc(r[2])
            assert at is not None
            src = RunState(r[0]) if r[0] else None
            out.append(StateChange(run_id, src, RunState(r[1]), at, r[3]))
        return out

    async def list_runs(
        self, flt: RunFilter, offset: int, limit: int
    ) -> tuple[list[Run], int, dict[str, int]]:
        """Runs matching ``flt``, newest first: (page, total, count per state)."""
        where, params = run_where(flt)
        stats_sql = f"SELECT state, COUNT(*) FROM runs {where} GROUP BY state"
        async with self._rdb.execute(stats_sql, params) as cur:
            stats = {r[0]: int(r[1]) for r in await cur.fetchall()}
        sql = (
            f"SELECT {RUN_COLUMNS} FROM runs {where} "
            "ORDER BY scheduled_ms DESC, attempt DESC LIMIT ? OFFSET ?"
        )
        async with self._rdb.execute(sql, [*params, limit, offset]) as cur:
            runs = [row_run(r) for r in await cur.fetchall()]
        return runs, sum(stats.values()), stats

    async def count_runs_since(self, since: datetime) -> int:
        sql = "SELECT COUNT(*) FROM runs WHERE created_at >= ?"
        async with self._rdb.execute(sql, (iso_utc(since),)) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def purge_runs(
        self,
        ended_before: datetime,
        groups_ended_before: datetime,
        after: PurgeCursor | None,
        limit: int,
    ) -> PurgeBatch:
        """One batch of the retention purge (see ``store.purge``)."""
        return await purge_runs(
            self._rdb, self.writer, ended_before, groups_ended_before, after, limit
        )

    # ----- output -----

    def append_output(self, run_id: str, stream: str, offset: int, data: bytes) -> None:
        """Store a chunk; past OUTPUT_HEAD + OUTPUT_TAIL bytes the middle is dropped (spec 16).

        A chunk across the head's end is stored as two, so the head and the tail kept are
        exactly OUTPUT_HEAD and OUTPUT_TAIL bytes; nothing but the chunk is held in memory.
        """
        key = (run_id, stream)
        for at, piece in split_at_head(offset, data):
            if not self._join_open_row(key, at, piece):
                row = bytearray(piece)
                params = (run_id, stream, at, row)
                queued = self.writer.write_nowait(_INSERT_OUTPUT, params, nbytes=len(row))
                self._open_rows[key] = (queued, at)
                if at >= OUTPUT_HEAD:
                    self._queued_rows.setdefault(key, deque()).append((queued, at))
                if len(self._open_rows) > _OPEN_SWEEP:
                    self._forget_committed()
        end = offset + len(data)
        # Past 10 MiB, queued rows before the tail are cancelled; rows already committed are
        # forgotten either way (the writer is done with their bytes).
        past = end > OUTPUT_HEAD + OUTPUT_TAIL
        self._skip_obsolete(key, end - OUTPUT_TAIL if past else -1)
        if past:
            pending = self._open_trims.get(key)
            if pending is None or not pending.open:
                trim = (run_id, stream, OUTPUT_HEAD, OUTPUT_TAIL)
                self.writer.write_nowait(_DROP_MIDDLE, trim, late=True)
                self._open_trims[key] = self.writer.write_nowait(_TRIM_TAIL, trim, late=True)

    def _skip_obsolete(self, key: tuple[str, str], keep_from: int) -> None:
        """Cancel the stream's queued rows that end before ``keep_from`` (the tail's start;
        -1: none) and forget those the writer took. Rows are taken oldest first."""
        rows = self._queued_rows.get(key)
        while rows:
            queued, start = rows[0]
            if queued.open and start + len(queued.params[3]) > keep_from:
                break  # in the tail (the row still growing always is), or not obsolete
            if queued.open:
                queued.cancel()
            rows.popleft()
        if rows is not None and not rows:
            del self._queued_rows[key]

    def _forget_committed(self) -> None:
        """Drop what is remembered of rows and trims already taken by the writer."""
        self._open_rows = {k: v for k, v in self._open_rows.items() if v[0].open}
        self._open_trims = {k: v for k, v in self._open_trims.items() if v.open}
        kept: dict[tuple[str, str], deque[tuple[QueuedWrite, int]]] = {}
        for k, rows in self._queued_rows.items():
            live = deque(r for r in rows if r[0].open)
            if live:
                kept[k] = live
        self._queued_rows = kept

    def _join_open_row(self, key: tuple[str, str], at: int, piece: bytes) -> bool:
        """Append ``piece`` to the stream's queued row when it follows it, on the same side of
        the head's end and within OUTPUT_ROW bytes; False when it needs a row of its own."""
        open_row = self._open_rows.get(key)
        if open_row is None:
            return False
        queued, start = open_row
        if not queued.open:
            del self._open_rows[key]
            return False
        row: bytearray = queued.params[3]
        end = start + len(row)
        if start <= at < end:  # a chunk sent again: only what is new joins the row
            if at + len(piece) <= end:
                return True
            piece, at = piece[end - at :], end
        follows = at == end and (start < OUTPUT_HEAD) == (at < OUTPUT_HEAD)
        if not follows or len(row) + len(piece) > OUTPUT_ROW:
            del self._open_rows[key]
            return False
        row += piece
        queued.grew(len(piece))
        return True

    async def read_output(self, run_id: str, stream: str) -> bytes:
        """The stored bytes, head and tail joined (no marker): for following a run live."""
        return (await self._output_rows(run_id, stream, marker=False))[0]

    async def read_output_from(self, run_id: str, stream: str, offset: int) -> tuple[bytes, int]:
        """Stored bytes from ``offset`` on (a cut skipped), and the end offset of what is stored."""
        sql = (
            "SELECT offset, data FROM run_output WHERE run_id = ? AND stream = ? "
            "AND offset + LENGTH(data) > ? ORDER BY offset"
        )
        async with self._rdb.execute(sql, (run_id, stream, offset)) as cur:
            rows = list(await cur.fetchall())
        parts = [data[max(0, offset - start) :] for start, data in rows]
        end = rows[-1][0] + len(rows[-1][1]) if rows else offset
        return b"".join(parts), end

    async def read_output_segments(self, run_id: str, stream: str) -> list[tuple[int, bytes]]:
        sql = "SELECT offset, data FROM run_output WHERE run_id = ? AND stream = ? ORDER BY offset"
        async with self._rdb.execute(sql, (run_id, stream)) as cur:
            return join_segments((int(o), bytes(d)) for o, d in await cur.fetchall())

    async def read_output_view(self, run_id: str, stream: str) -> tuple[bytes, bool]:
        """The stored bytes for reading, with the cut marked; and whether anything was cut."""
        return await self._output_rows(run_id, stream, marker=True)

    async def _output_rows(self, run_id: str, stream: str, marker: bool) -> tuple[bytes, bool]:
        sql = "SELECT offset, data FROM run_output WHERE run_id = ? AND stream = ? ORDER BY offset"
        async with self._rdb.execute(sql, (run_id, stream)) as cur:
            rows = await cur.fetchall()
        parts: list[bytes] = []
        expected, cut = 0, False
        for offset, data in rows:
            if offset > expected:
                cut = True
                if marker:
                    parts.append(f"\n[... {offset - expected} bytes cut ...]\n".encode())
            parts.append(data)
            expected = offset + len(data)
        return b"".join(parts), cut

    async def output_sizes(self, run_ids: Iterable[str]) -> dict[tuple[str, str], int]:
        """Stored bytes per (run_id, stream), counted as the end of the last stored chunk."""
        out: dict[tuple[str, str], int] = {}
        sql = (
            "SELECT stream, MAX(offset + LENGTH(data)) FROM run_output WHERE run_id = ? "
            "GROUP BY stream"
        )
        for run_id in run_ids:
            async with self._rdb.execute(sql, (run_id,)) as cur:
                for stream, size in await cur.fetchall():
                    out[(run_id, stream)] = int(size)
        return out

    # ----- agents -----

    def save_agent(self, agent: AgentRecord) -> None:
        self.writer.write_nowait(
            "INSERT INTO agents (name, host, queues, version, pid, cpu_cores, memory_mb, "
            "connected_since, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET host = excluded.host, queues = excluded.queues, "
            "version = excluded.version, pid = excluded.pid, cpu_cores = excluded.cpu_cores, "
            "memory_mb = excluded.memory_mb, connected_since = excluded.connected_since, "
            "last_seen = excluded.last_seen",
            (
                agent.name,
                agent.host,
                json.dumps(agent.queues),
                agent.version,
                agent.pid,
                agent.cpu_cores,
                agent.memory_mb,
                iso_utc(agent.connected_since) or None,
                iso_utc(agent.last_seen) or None,
            ),
        )

    async def load_agents(self) -> list[AgentRecord]:
        sql = (
            "SELECT name, host, queues, version, pid, cpu_cores, memory_mb, connected_since, "
            "last_seen FROM agents ORDER BY name"
        )
        async with self._rdb.execute(sql) as cur:
            rows = await cur.fetchall()
        return [
            AgentRecord(
                r[0],
                r[1],
                json.loads(r[2]),
                r[3],
                r[4],
                r[5],
                r[6],
                parse_iso_utc(r[7] or ""),
                parse_iso_utc(r[8] or ""),
            )
            for r in rows
        ]

    # ----- events -----

    async def add_event(
        self,
        event: str,
        target: str,
        args: dict[str, Any],
        status: str,
        message: str,
        origin: str,
        published_by: str,
        created_at: datetime,
        acked_at: datetime | None,
        acked_by: str,
    ) -> int:
        """Record an event and return its id once committed.

        The id is handed out here and the insert goes through the batch writer like every
        other write, so it never lands inside (and is never rolled back with) another batch.
        """
        if self._next_event_id is None:
            async with self._rdb.execute("SELECT COALESCE(MAX(id), 0) FROM events") as cur:
                row = await cur.fetchone()
            self._next_event_id = int(row[0]) + 1 if row else 1
        event_id = self._next_event_id
        self._next_event_id += 1
        await self.writer.write(
            "INSERT INTO events (id, event, target, args, status, message, origin, published_by, "
            "created_at, acked_at, acked_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event_id,
                event,
                target,
                json.dumps(args),
                status,
                message,
                origin,
                published_by,
                iso_utc(created_at),
                iso_utc(acked_at) or None,
                acked_by,
            ),
            durable=True,
        )
        return event_id

    # ----- events, freezes, groups (their own tables, kept in sibling modules) -----

    async def find_events(
        self, flt: EventFilter, offset: int, limit: int
    ) -> tuple[list[EventRecord], int]:
        return await self.events.find(flt, offset, limit)

    async def get_event(self, event_id: int) -> EventRecord | None:
        return await self.events.get(event_id)

    async def load_freezes(self) -> list[Freeze]:
        return await self.events.load_freezes()

    def add_freeze(self, freeze: Freeze, by: str, now: datetime) -> asyncio.Future[None]:
        return self.events.add_freeze(freeze, by, now)

    def remove_freeze(self, freeze: Freeze) -> asyncio.Future[None]:
        return self.events.remove_freeze(freeze)

    async def load_groups(self) -> list[GroupDef]:
        return await self.groups.load_groups()

    async def put_groups(self, groups: Iterable[GroupDef], now: datetime) -> None:
        await self.groups.put_groups(groups, now)

    async def delete_groups(self, gids: Iterable[int]) -> None:
        await self.groups.delete_groups(gids)

    def save_group_run(self, group_run: GroupRun) -> asyncio.Future[None]:
        return self.groups.save_group_run(group_run)

    async def load_group_runs(self, since_ms: int) -> list[GroupRun]:
        return await self.groups.load_group_runs(since_ms)

    async def find_group_run(self, group_run_id: str) -> GroupRun | None:
        return await self.groups.find_group_run(group_run_id)


async def _migrate(db: aiosqlite.Connection) -> None:
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    version = int(row[0]) if row else 0
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        # executescript commits first, so the version bump is in the same script.
        await db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")


def _implements_the_port(store: SqliteStore) -> Store:
    return store  # mypy checks SqliteStore against the port here

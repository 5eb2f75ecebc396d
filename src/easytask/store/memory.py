"""MemoryStore: the store port in memory, for unit tests of the scheduler on a fake clock.

It keeps the same promises as SqliteStore (tests/contract/ runs over both): queued writes
are committed together on a later loop turn, in order, and only then seen by reads, so code
that reads before its write committed fails here as it would on SQLite; stored records are
snapshots taken when the write is queued, with times kept as SQLite keeps them (slots to the
rounded millisecond, other times truncated to it).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from easytask.core.errors import StoreWriteError
from easytask.core.groups import GroupDef
from easytask.core.lifecycle import LifecycleEntry, LifecycleNote
from easytask.core.models import Run, StateChange, TaskDef
from easytask.core.records import (
    FINAL_GROUP_STATES,
    AdhocResult,
    AgentChange,
    AgentRecord,
    AgentToken,
    CalendarRecord,
    EventFilter,
    EventRecord,
    Freeze,
    GroupRun,
    HolidaySpan,
    RunFilter,
    TokenRecord,
    UserRecord,
)
from easytask.core.runid import from_ms, iso_utc, parse_iso_utc, to_ms
from easytask.core.states import RunState
from easytask.store.ports import (
    OUTPUT_HEAD,
    OUTPUT_TAIL,
    PurgeBatch,
    PurgeCursor,
    Store,
    join_segments,
    split_at_head,
)


def _as_stored(name: str, when: datetime) -> datetime | None:
    """A time as SQLite keeps it: a slot as rounded epoch ms, others as ISO text to the ms."""
    if name == "scheduled_utc":
        return from_ms(to_ms(when))
    return parse_iso_utc(iso_utc(when))


def _stored(record: Any) -> Any:
    """A snapshot of a dataclass record, its times kept as SQLite keeps them."""
    times = {
        f.name: _as_stored(f.name, getattr(record, f.name))
        for f in dataclasses.fields(record)
        if isinstance(getattr(record, f.name), datetime)
    }
    return dataclasses.replace(record, **times)


class MemoryStore:
    def __init__(self) -> None:
        self._closed = False
        self._stop = asyncio.Event()
        self._queued: list[Callable[[], None]] = []
        self._waiting: list[asyncio.Future[None]] = []
        self._commit_scheduled = False
        self._meta: dict[str, str] = {}
        self._retired: dict[str, set[int]] = {"task": set(), "group": set()}
        self._tasks: dict[int, str] = {}  # tid -> definition JSON, as SQLite keeps it
        self._runs: dict[str, Run] = {}  # insertion order = SQLite rowid order
        self._rowids: dict[str, int] = {}  # run id -> its insertion number (SQLite's rowid)
        self._changes: dict[str, list[StateChange]] = {}
        self._output: dict[tuple[str, str], dict[int, bytes]] = {}
        self._agents: dict[str, AgentRecord] = {}
        self._events: dict[int, EventRecord] = {}
        self._freezes: dict[tuple[int, str, str], Freeze] = {}
        self._next_event_id = 0
        self._groups: dict[int, str] = {}
        self._group_runs: dict[str, GroupRun] = {}
        self.calendars = MemoryCalendarStore()
        self.accounts = MemoryAccountStore()
        self.lifecycle = MemoryLifecycleStore()
        self.fleet = MemoryFleetStore()

    def _queue(self, apply: Callable[[], None]) -> asyncio.Future[None]:
        """Queue a write; the future resolves once its batch is committed."""
        if self._closed:
            raise StoreWriteError("store is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._queued.append(apply)
        self._waiting.append(fut)
        if not self._commit_scheduled:
            self._commit_scheduled = True
            loop.call_soon(self._commit)
        return fut

    def _commit(self) -> None:
        """One batch: everything queued so far, applied in order, then its futures resolve."""
        self._commit_scheduled = False
        batch, self._queued = self._queued, []
        waiting, self._waiting = self._waiting, []
        for apply in batch:
            apply()
        for fut in waiting:
            if not fut.done():
                fut.set_result(None)

    # ----- lifecycle -----

    async def run_writer(self) -> None:
        await self._stop.wait()

    def stop_writer(self) -> None:
        self._stop.set()

    @property
    def pending_writes(self) -> int:
        return len(self._queued)

    def barrier(self) -> asyncio.Future[None]:
        return self._queue(lambda: None)

    async def flush(self) -> None:
        await self.barrier()

    async def close(self) -> None:
        self._closed = True

    # ----- meta -----

    async def get_meta(self, key: str) -> str | None:
        return self._meta.get(key)

    def set_meta(self, key: str, value: str) -> asyncio.Future[None]:
        return self._queue(lambda: self._meta.__setitem__(key, value))

    # ----- tasks -----

    async def load_tasks(self, escaped: set[int] | None = None) -> list[TaskDef]:
        out = []
        for tid in sorted(self._tasks):
            text = self._tasks[tid]
            if escaped is not None and "\\" in text:
                escaped.add(tid)
            out.append(TaskDef.from_json_text(text))
        return out

    async def put_tasks(self, tasks: Iterable[TaskDef], now: datetime) -> None:
        rows = [(t.tid, t.to_json_text()) for t in tasks]
        await self._queue(lambda: self._tasks.update(rows))

    async def delete_tasks(self, tids: Iterable[int]) -> None:
        doomed = list(tids)

        def apply() -> None:
            for tid in doomed:
                self._tasks.pop(tid, None)
                self._retired["task"].add(tid)

        await self._queue(apply)

    async def retired_ids(self, kind: str) -> set[int]:
        return set(self._retired[kind])

    # ----- runs -----

    def save_run(self, run: Run, change: StateChange | None = None) -> asyncio.Future[None]:
        row, step = _stored(run), None if change is None else _stored(change)

        def apply() -> None:
            if step is not None:
                self._changes.setdefault(row.run_id, []).append(step)
            self._runs[row.run_id] = row
            self._rowids.setdefault(row.run_id, len(self._rowids) + 1)

        return self._queue(apply)

    async def load_live_runs(self) -> list[Run]:
        live = [copy.copy(r) for r in self._runs.values() if not r.state.final]
        return sorted(live, key=lambda r: r.scheduled_utc)

    async def latest_run_states(self) -> dict[int, tuple[str, RunState]]:
        latest: dict[int, Run] = {}
        for r in self._runs.values():  # rowid order: a later row wins a tie on created_at
            held = latest.get(r.tid)
            if held is None or r.created_at >= held.created_at:
                latest[r.tid] = r
        return {tid: (r.run_id, r.state) for tid, r in latest.items()}

    async def fired_slots(self, since: datetime, until: datetime) -> set[tuple[int, int]]:
        low, high = to_ms(since), to_ms(until)
        slots = ((r.tid, to_ms(r.scheduled_utc)) for r in self._runs.values())
        return {(tid, ms) for tid, ms in slots if low < ms <= high}

    async def runs_of_group_runs(self, group_run_ids: list[str]) -> list[Run]:
        wanted = set(group_run_ids)
        return [copy.copy(r) for r in self._runs.values() if r.group_run_id in wanted]

    async def find_run(self, run_id: str) -> Run | None:
        run = self._runs.get(run_id)
        return None if run is None else copy.copy(run)

    async def run_exists(self, run_id: str) -> bool:
        return run_id in self._runs

    async def transitions(self, run_id: str) -> list[StateChange]:
        return list(self._changes.get(run_id, []))

    async def list_runs(
        self, flt: RunFilter, offset: int, limit: int
    ) -> tuple[list[Run], int, dict[str, int]]:
        found = [r for r in self._runs.values() if _run_matches(r, flt)]
        stats: dict[str, int] = {}
        for r in found:
            stats[r.state.value] = stats.get(r.state.value, 0) + 1
        found.sort(key=lambda r: (r.scheduled_utc, r.attempt), reverse=True)
        return [copy.copy(r) for r in found[offset : offset + limit]], len(found), stats

    async def count_runs_since(self, since: datetime) -> int:
        return sum(1 for r in self._runs.values() if r.created_at >= since)

    async def purge_runs(
        self,
        ended_before: datetime,
        groups_ended_before: datetime,
        after: PurgeCursor | None,
        limit: int,
    ) -> PurgeBatch:
        low = after if after is not None else (-(2**62), 0)
        scan = sorted(
            (key, r)
            for r in self._runs.values()
            if (key := (to_ms(r.scheduled_utc), self._rowids[r.run_id])) > low
            and key[0] < to_ms(ended_before)
        )[:limit]
        if not scan:
            return PurgeBatch(0, 0, 0, None)
        cursor = scan[-1][0] if len(scan) == limit else None
        kept = self._kept_runs({r.tid for _, r in scan})
        doomed = [
            r.run_id
            for _, r in scan
            if r.state.final
            and _ended(r.ended_at, r.updated_at) < ended_before
            and r.run_id not in kept
            and not self._group_run_kept(r.group_run_id, groups_ended_before)
        ]
        gids = {g for run_id in doomed if (g := self._runs[run_id].group_run_id)}

        def apply() -> None:
            for run_id in doomed:
                held = self._runs.get(run_id)
                if held is not None and held.state.final:
                    del self._runs[run_id]
                    self._changes.pop(run_id, None)
                    for stream in ("stdout", "stderr"):
                        self._output.pop((run_id, stream), None)
            used = {r.group_run_id for r in self._runs.values()}
            for g in gids - used:
                if g in self._group_runs and not self._group_run_kept(g, groups_ended_before):
                    gone.append(self._group_runs.pop(g))

        gone: list[GroupRun] = []
        await self._queue(apply)
        return PurgeBatch(len(scan), len(doomed), len(gone), cursor)

    def _kept_runs(self, tids: set[int]) -> set[str]:
        """Per task, its latest run and its latest final run (see SqliteStore)."""
        latest: dict[int, Run] = {}
        last_final: dict[int, Run] = {}
        for r in self._runs.values():
            if r.tid not in tids:
                continue
            if r.tid not in latest or r.created_at >= latest[r.tid].created_at:
                latest[r.tid] = r
            held = last_final.get(r.tid)
            slot = (r.scheduled_utc, r.attempt)
            if r.state.final and (held is None or slot > (held.scheduled_utc, held.attempt)):
                last_final[r.tid] = r
        return {r.run_id for r in [*latest.values(), *last_final.values()]}

    def _group_run_kept(self, group_run_id: str | None, ended_before: datetime) -> bool:
        g = self._group_runs.get(group_run_id or "")
        return g is not None and (not g.final or _ended(g.ended_at, g.updated_at) >= ended_before)

    # ----- output -----

    def append_output(self, run_id: str, stream: str, offset: int, data: bytes) -> None:
        self._queue(lambda: self._store_chunk(run_id, stream, offset, bytes(data)))

    def _store_chunk(self, run_id: str, stream: str, offset: int, data: bytes) -> None:
        chunks = self._output.setdefault((run_id, stream), {})
        for at, piece in split_at_head(offset, data):
            chunks.setdefault(at, piece)
        if offset + len(data) <= OUTPUT_HEAD + OUTPUT_TAIL:
            return
        last = max(chunks)
        keep_from = last + len(chunks[last]) - OUTPUT_TAIL
        for start in [s for s in chunks if OUTPUT_HEAD <= s < keep_from]:
            piece = chunks.pop(start)
            if start + len(piece) > keep_from:  # across the tail's start: keep its end only
                chunks[keep_from] = piece[keep_from - start :]

    def _chunks(self, run_id: str, stream: str) -> list[tuple[int, bytes]]:
        return sorted(self._output.get((run_id, stream), {}).items())

    async def read_output(self, run_id: str, stream: str) -> bytes:
        return b"".join(data for _, data in self._chunks(run_id, stream))

    async def read_output_from(self, run_id: str, stream: str, offset: int) -> tuple[bytes, int]:
        rows = [(s, d) for s, d in self._chunks(run_id, stream) if s + len(d) > offset]
        end = rows[-1][0] + len(rows[-1][1]) if rows else offset
        return b"".join(d[max(0, offset - s) :] for s, d in rows), end

    async def read_output_segments(self, run_id: str, stream: str) -> list[tuple[int, bytes]]:
        return join_segments(self._chunks(run_id, stream))

    async def read_output_view(self, run_id: str, stream: str) -> tuple[bytes, bool]:
        parts: list[bytes] = []
        expected, cut = 0, False
        for offset, data in self._chunks(run_id, stream):
            if offset > expected:
                cut = True
                parts.append(f"\n[... {offset - expected} bytes cut ...]\n".encode())
            parts.append(data)
            expected = offset + len(data)
        return b"".join(parts), cut

    async def output_sizes(self, run_ids: Iterable[str]) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for run_id in run_ids:
            for stream in ("stdout", "stderr"):
                chunks = self._chunks(run_id, stream)
                if chunks:
                    out[(run_id, stream)] = max(s + len(d) for s, d in chunks)
        return out

    # ----- agents -----

    def save_agent(self, agent: AgentRecord) -> None:
        row = _stored(agent)
        self._queue(lambda: self._agents.__setitem__(row.name, row))

    async def load_agents(self) -> list[AgentRecord]:
        return [self._agents[name] for name in sorted(self._agents)]

    # ----- events and freezes -----

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
        # The id is handed out at once, the insert committed like every other write.
        self._next_event_id = max(self._next_event_id, max(self._events, default=0)) + 1
        event_id = self._next_event_id
        record = EventRecord(event_id, event, target, dict(args), status, message, origin,
                             published_by, created_at, acked_at, acked_by)  # fmt: skip
        record = _stored(record)
        await self._queue(lambda: self._events.__setitem__(event_id, record))
        return event_id

    async def find_events(
        self, flt: EventFilter, offset: int, limit: int
    ) -> tuple[list[EventRecord], int]:
        found = [e for e in self._events.values() if _event_matches(e, flt)]
        found.sort(key=lambda e: e.id, reverse=True)
        return found[offset : offset + limit], len(found)

    async def get_event(self, event_id: int) -> EventRecord | None:
        return self._events.get(event_id)

    async def load_freezes(self) -> list[Freeze]:
        return list(self._freezes.values())

    def add_freeze(self, freeze: Freeze, by: str, now: datetime) -> asyncio.Future[None]:
        key = (freeze.tid, freeze.run_date, freeze.trigger_time)

        def apply() -> None:
            self._freezes.setdefault(key, freeze)  # kept once per slot

        return self._queue(apply)

    def remove_freeze(self, freeze: Freeze) -> asyncio.Future[None]:
        key = (freeze.tid, freeze.run_date, freeze.trigger_time)

        def apply() -> None:
            self._freezes.pop(key, None)

        return self._queue(apply)

    # ----- groups -----

    async def load_groups(self) -> list[GroupDef]:
        return [GroupDef.from_json_text(self._groups[gid]) for gid in sorted(self._groups)]

    async def put_groups(self, groups: Iterable[GroupDef], now: datetime) -> None:
        rows = [(g.gid, g.to_json_text()) for g in groups]
        await self._queue(lambda: self._groups.update(rows))

    async def delete_groups(self, gids: Iterable[int]) -> None:
        doomed = list(gids)

        def apply() -> None:
            for gid in doomed:
                self._groups.pop(gid, None)
                self._retired["group"].add(gid)

        await self._queue(apply)

    def save_group_run(self, group_run: GroupRun) -> asyncio.Future[None]:
        row = dataclasses.replace(_stored(group_run), members={})

        def apply() -> None:
            held = self._group_runs.get(row.group_run_id)
            new = row
            if held is not None:  # an update changes the state fields only, as in SQLite
                new = dataclasses.replace(held, state=row.state, reason=row.reason,
                                          started_at=row.started_at, ended_at=row.ended_at,
                                          updated_at=row.updated_at)  # fmt: skip
            self._group_runs[row.group_run_id] = new

        return self._queue(apply)

    async def load_group_runs(self, since_ms: int) -> list[GroupRun]:
        picked = [
            dataclasses.replace(g, members={})
            for g in self._group_runs.values()
            if g.state not in FINAL_GROUP_STATES or to_ms(g.scheduled_utc) >= since_ms
        ]
        picked.sort(key=lambda g: g.scheduled_utc)
        by_id = {g.group_run_id: g for g in picked}
        for r in sorted(self._runs.values(), key=lambda r: r.attempt):
            owner = by_id.get(r.group_run_id or "")
            if owner is not None:
                owner.members[r.tid] = r.run_id
        return picked

    async def find_group_run(self, group_run_id: str) -> GroupRun | None:
        g = self._group_runs.get(group_run_id)
        return None if g is None else dataclasses.replace(g, members={})


class MemoryCalendarStore:
    def __init__(self) -> None:
        self._calendars: dict[str, CalendarRecord] = {}
        self._entries: dict[int, HolidaySpan] = {}
        self._last_id = 0

    async def load(self) -> tuple[list[CalendarRecord], list[HolidaySpan]]:
        calendars = [self._calendars[name] for name in sorted(self._calendars)]
        entries = sorted(self._entries.values(), key=lambda e: (e.calendar, e.start_date, e.id))
        return calendars, entries

    async def last_entry_id(self) -> int:
        return self._last_id

    async def add_calendar(self, calendar: CalendarRecord) -> None:
        if calendar.name in self._calendars:
            raise StoreWriteError(f"calendar {calendar.name} already stored")
        self._calendars[calendar.name] = _stored(calendar)

    async def delete_calendar(self, name: str) -> None:
        self._calendars.pop(name, None)
        for entry_id in [i for i, e in self._entries.items() if e.calendar == name]:
            del self._entries[entry_id]

    async def add_entry(self, entry: HolidaySpan) -> None:
        if entry.id in self._entries:
            raise StoreWriteError(f"calendar entry {entry.id} already stored")
        self._entries[entry.id] = _stored(entry)
        self._last_id = max(self._last_id, entry.id)

    async def delete_entry(self, entry_id: int) -> None:
        self._entries.pop(entry_id, None)


class MemoryLifecycleStore:
    def __init__(self) -> None:
        self._entries: list[LifecycleEntry] = []

    async def add(self, note: LifecycleNote, at: datetime) -> None:
        entry = LifecycleEntry(len(self._entries) + 1, note.action, note.host, note.pid,
                               note.message, at)  # fmt: skip
        self._entries.append(_stored(entry))

    async def latest(self) -> LifecycleEntry | None:
        return self._entries[-1] if self._entries else None

    async def find(
        self, action: str, search: str, offset: int, limit: int
    ) -> tuple[list[LifecycleEntry], int]:
        found = [
            e for e in reversed(self._entries)
            if (not action or e.action == action.upper())
            and (not search or search in e.message or search in e.host)
        ]  # fmt: skip
        return found[offset : offset + limit], len(found)


class MemoryFleetStore:
    """The fleet records in memory; writes apply at once (a real store commits in batches)."""

    def __init__(self) -> None:
        self._changes: list[AgentChange] = []
        self._adhoc: dict[tuple[int, int], AdhocResult] = {}
        self._tokens: dict[str, AgentToken] = {}

    def add_agent_change(self, change: AgentChange) -> None:
        self._changes.append(change)

    async def agent_changes(self, agent: str, limit: int) -> list[AgentChange]:
        return [c for c in reversed(self._changes) if c.agent == agent][:limit]

    def save_adhoc_result(self, result: AdhocResult) -> asyncio.Future[None]:
        self._adhoc[(result.event_id, result.index)] = copy.deepcopy(result)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    async def adhoc_results(self, event_id: int) -> list[AdhocResult]:
        found = sorted(k for k in self._adhoc if k[0] == event_id)
        return [copy.deepcopy(self._adhoc[k]) for k in found]

    async def unfinished_adhoc_results(self) -> list[AdhocResult]:
        return [copy.deepcopy(self._adhoc[k]) for k in sorted(self._adhoc)
                if not self._adhoc[k].final]  # fmt: skip

    async def save_agent_token(self, token: AgentToken) -> None:
        self._tokens[token.name] = token

    async def agent_tokens(self) -> list[AgentToken]:
        return [self._tokens[n] for n in sorted(self._tokens)]

    async def delete_agent_token(self, name: str) -> bool:
        return self._tokens.pop(name, None) is not None

    def touch_agent_token(self, name: str, at: datetime) -> None:
        if name in self._tokens:
            self._tokens[name] = dataclasses.replace(self._tokens[name], last_used=at)


class MemoryAccountStore:
    def __init__(self) -> None:
        self._users: dict[str, UserRecord] = {}
        self._tokens: dict[str, TokenRecord] = {}

    async def load_users(self) -> list[UserRecord]:
        return [self._users[name] for name in sorted(self._users)]

    async def get_user(self, username: str) -> UserRecord | None:
        return self._users.get(username)

    async def put_user(self, user: UserRecord) -> None:
        held = self._users.get(user.username)
        row = _stored(user)
        if held is not None:
            row = dataclasses.replace(row, created_at=held.created_at)
        self._users[user.username] = row

    async def delete_user(self, username: str) -> None:
        await self.delete_tokens(username)
        self._users.pop(username, None)

    async def add_token(self, token: TokenRecord) -> None:
        if token.token_hash in self._tokens:
            raise StoreWriteError("token already stored")
        self._tokens[token.token_hash] = _stored(token)

    async def find_token(self, token_hash: str) -> TokenRecord | None:
        return self._tokens.get(token_hash)

    async def delete_token(self, token_hash: str) -> None:
        self._tokens.pop(token_hash, None)

    async def delete_tokens(self, username: str) -> None:
        for key in [k for k, t in self._tokens.items() if t.username == username]:
            del self._tokens[key]

    async def delete_expired_tokens(self, now: datetime) -> None:
        for key in [k for k, t in self._tokens.items() if t.expires_at <= now]:
            del self._tokens[key]


def _ended(ended_at: datetime | None, updated_at: datetime) -> datetime:
    return ended_at if ended_at is not None else updated_at


def _run_matches(r: Run, flt: RunFilter) -> bool:
    return (
        (not flt.state or r.state.value == flt.state.upper())
        and (not flt.search or flt.search.lower() in r.name.lower())
        and (not flt.tid or r.tid == flt.tid)
        and (not flt.run_date or r.run_date == flt.run_date)
        and (flt.since is None or r.created_at >= flt.since or not r.state.final)
        and (not flt.date_from or r.run_date >= flt.date_from)
        and (not flt.date_to or r.run_date <= flt.date_to)
        and (not flt.agent or r.agent == flt.agent)
        and (not flt.group_run_prefix or (r.group_run_id or "").startswith(flt.group_run_prefix))
    )


def _event_matches(e: EventRecord, flt: EventFilter) -> bool:
    for value, have in ((flt.event, e.event), (flt.status, e.status), (flt.origin, e.origin)):
        if value and have != value.upper():
            return False
    if flt.target or flt.targets:
        hit = e.target in flt.targets or (
            bool(flt.target) and flt.target.lower() in e.target.lower()
        )
        if not hit:
            return False
    if flt.published_by and e.published_by != flt.published_by:
        return False
    if flt.until is not None and e.created_at >= flt.until:
        return False
    return flt.since is None or e.created_at >= flt.since


def _implements_the_port(store: MemoryStore) -> Store:
    return store  # mypy checks MemoryStore against the port here

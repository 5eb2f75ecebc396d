"""The store port: what the scheduler asks of persistence, and what each answer promises.

Two kinds of method:
- **queued writes** (plain ``def``) return at once; the write is committed with the next batch.
  Those returning a future resolve it *once the write is committed* (or fail it with
  ``StoreWriteError``); the others are committed in order with everything queued before.
- **awaited calls** (``async def``) either read what is committed, or write and return only
  once committed.

Writes are committed in the order they were queued, so a read after ``flush()`` sees every
write queued before it. ``SqliteStore`` and ``MemoryStore`` implement it and pass one contract
suite (``tests/contract/``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from easytask.core.groups import GroupDef
from easytask.core.lifecycle import LifecycleEntry, LifecycleNote
from easytask.core.models import Run, StateChange, TaskDef
from easytask.core.records import (
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
from easytask.core.states import RunState

# Stored copy of each run's stream (spec 16: "10 MiB, head and tail kept, cut marked"): 10 MiB
# in all, split evenly: exactly the first and the last 5 MiB, the bytes between dropped.
OUTPUT_HEAD = 5 * 1024 * 1024
OUTPUT_TAIL = 5 * 1024 * 1024


def split_at_head(offset: int, data: bytes) -> list[tuple[int, bytes]]:
    """A chunk as stored: in two when it crosses the end of the head (so the head is exact)."""
    if offset < OUTPUT_HEAD < offset + len(data):
        cut = OUTPUT_HEAD - offset
        return [(offset, data[:cut]), (OUTPUT_HEAD, data[cut:])]
    return [(offset, data)]


def join_segments(chunks: Iterable[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """Stored chunks, in offset order, joined into contiguous pieces (an overlap kept once)."""
    out: list[tuple[int, bytearray]] = []
    for offset, data in chunks:
        if out:
            start, piece = out[-1]
            end = start + len(piece)
            if offset < end:
                data, offset = data[end - offset :], end
            if not data:
                continue
            if offset == end:
                piece.extend(data)
                continue
        out.append((offset, bytearray(data)))
    return [(start, bytes(piece)) for start, piece in out]


# Where a purge scan stands: (scheduled ms, the store's row order) of the last run examined.
PurgeCursor = tuple[int, int]


@dataclass(frozen=True, slots=True)
class PurgeBatch:
    """What one batch of the retention purge did."""

    examined: int  # runs looked at
    runs: int  # runs deleted, with their state history and stored output
    group_runs: int  # group occurrences deleted (their runs all gone)
    cursor: PurgeCursor | None  # where the next batch starts; None once the scan is done


class RunWrites(Protocol):
    """The writes of the run lifecycle, on its hot path: none of them waits."""

    def save_run(self, run: Run, change: StateChange | None = None) -> asyncio.Future[None]:
        """Queue the run's whole record and, when given, its state change (one history row).

        Resolves once both are committed.
        """
        ...

    def append_output(self, run_id: str, stream: str, offset: int, data: bytes) -> None:
        """Queue a chunk of a run's stream at ``offset``; a chunk already stored there is kept.

        Past the first OUTPUT_HEAD and last OUTPUT_TAIL bytes the middle of a stream is
        dropped (spec 16): exactly, to the byte, whatever the chunk sizes; the tail ends at
        the end of the stream's last chunk.
        """
        ...

    def barrier(self) -> asyncio.Future[None]:
        """A future that resolves once every write queued before it is committed."""
        ...

    async def flush(self) -> None:
        """Return once every write queued before the call is committed."""
        ...


class Store(RunWrites, Protocol):
    """Everything the scheduler stores: tasks, runs, output, groups, events, agents, meta."""

    @property
    def calendars(self) -> CalendarStorePort:
        """User holiday calendars, a port of their own (the holiday service takes only it)."""
        ...

    @property
    def accounts(self) -> AccountStorePort:
        """Users and login tokens, a port of their own (the account service takes only it)."""
        ...

    @property
    def fleet(self) -> FleetStorePort:
        """Agent status changes, agent tokens and ad-hoc results."""
        ...

    @property
    def lifecycle(self) -> LifecycleStorePort:
        """The scheduler's start, stop, restart and crash records (`scheduler logs`)."""
        ...

    # ----- lifecycle -----

    async def run_writer(self) -> None:
        """Commit queued writes in batches until ``stop_writer``, then drain what is queued."""
        ...

    def stop_writer(self) -> None:
        """Ask ``run_writer`` to end once every write queued so far is committed."""
        ...

    @property
    def pending_writes(self) -> int:
        """Writes queued and not yet committed."""
        ...

    async def close(self) -> None:
        """Release the store; nothing may be queued or read afterwards."""
        ...

    # ----- meta -----

    async def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> asyncio.Future[None]:
        """Queue ``key = value``; resolves once committed."""
        ...

    # ----- task definitions -----

    async def load_tasks(self, escaped: set[int] | None = None) -> list[TaskDef]:
        """Every task definition in tid order; ``escaped`` gets the tids whose stored text
        holds an escape (only those can break the text rules, see ``stored_text_problem``)."""
        ...

    async def put_tasks(self, tasks: Iterable[TaskDef], now: datetime) -> None:
        """Insert or replace definitions; returns once committed."""
        ...

    async def delete_tasks(self, tids: Iterable[int]) -> None:
        """Delete definitions (their runs stay) and retire their tids; returns once committed."""
        ...

    async def retired_ids(self, kind: str) -> set[int]:
        """The ids of deleted ``"task"``s or ``"group"``s: never handed out again (spec 12)."""
        ...

    # ----- runs -----

    async def load_live_runs(self) -> list[Run]:
        """Every non-final run, oldest slot first."""
        ...

    async def latest_run_states(self) -> dict[int, tuple[str, RunState]]:
        """Per tid, the id and state of its most recently created run."""
        ...

    async def fired_slots(self, since: datetime, until: datetime) -> set[tuple[int, int]]:
        """(tid, scheduled ms) of every slot in (since, until] that already has a run."""
        ...

    async def runs_of_group_runs(self, group_run_ids: list[str]) -> list[Run]:
        """Every run, all attempts, of the given group occurrences."""
        ...

    async def find_run(self, run_id: str) -> Run | None: ...

    async def run_exists(self, run_id: str) -> bool: ...

    async def transitions(self, run_id: str) -> list[StateChange]:
        """The run's state history, oldest first."""
        ...

    async def list_runs(
        self, flt: RunFilter, offset: int, limit: int
    ) -> tuple[list[Run], int, dict[str, int]]:
        """Runs matching ``flt``, latest slot and attempt first: (page, total, count per state)."""
        ...

    async def count_runs_since(self, since: datetime) -> int:
        """Runs created at or after ``since``."""
        ...

    async def purge_runs(
        self,
        ended_before: datetime,
        groups_ended_before: datetime,
        after: PurgeCursor | None,
        limit: int,
    ) -> PurgeBatch:
        """One batch of the retention purge; returns once its deletes are committed.

        Examines the next ``limit`` runs scheduled before ``ended_before`` (after ``after``,
        in a fixed scan order) and deletes, with their state history and stored output, those
        that are final and ended (else were last updated) before ``ended_before``. Kept:
        a task's latest run (``latest_run_states``) and its latest final run (the task's
        last result: latest slot and attempt), and every run of a group occurrence that is
        not final or ended at or after ``groups_ended_before``. A final group occurrence
        ended before ``groups_ended_before`` goes too once none of its runs is left.
        """
        ...

    # ----- output -----

    async def read_output(self, run_id: str, stream: str) -> bytes:
        """The stored bytes, head and tail joined with no marker."""
        ...

    async def read_output_from(self, run_id: str, stream: str, offset: int) -> tuple[bytes, int]:
        """Stored bytes from ``offset`` on (a cut skipped), and the end offset of what is stored."""
        ...

    async def read_output_segments(self, run_id: str, stream: str) -> list[tuple[int, bytes]]:
        """The stored copy as its contiguous pieces, each at its stream offset (two pieces
        when the middle was cut, none when there is no output)."""
        ...

    async def read_output_view(self, run_id: str, stream: str) -> tuple[bytes, bool]:
        """The stored bytes for reading, a cut marked in the text; and whether anything was cut."""
        ...

    async def output_sizes(self, run_ids: Iterable[str]) -> dict[tuple[str, str], int]:
        """Per (run id, stream) with output, the end offset of the last stored chunk."""
        ...

    # ----- agents -----

    def save_agent(self, agent: AgentRecord) -> None:
        """Queue the agent's record (insert or replace by name)."""
        ...

    async def load_agents(self) -> list[AgentRecord]:
        """Every agent ever seen, by name."""
        ...

    # ----- operator events and freezes -----

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
        """Record an operator event; returns its id once committed. Ids only grow."""
        ...

    async def find_events(
        self, flt: EventFilter, offset: int, limit: int
    ) -> tuple[list[EventRecord], int]:
        """Events matching ``flt``, newest first: (page, total)."""
        ...

    async def get_event(self, event_id: int) -> EventRecord | None: ...

    async def load_freezes(self) -> list[Freeze]: ...

    def add_freeze(self, freeze: Freeze, by: str, now: datetime) -> asyncio.Future[None]:
        """Queue a freeze (kept once per slot); resolves once committed."""
        ...

    def remove_freeze(self, freeze: Freeze) -> asyncio.Future[None]:
        """Queue the removal of a freeze; resolves once committed."""
        ...

    # ----- task groups and their occurrences -----

    async def load_groups(self) -> list[GroupDef]:
        """Every group definition, in gid order."""
        ...

    async def put_groups(self, groups: Iterable[GroupDef], now: datetime) -> None:
        """Insert or replace group definitions; returns once committed."""
        ...

    async def delete_groups(self, gids: Iterable[int]) -> None:
        """Delete group definitions and retire their gids; returns once committed."""
        ...

    def save_group_run(self, group_run: GroupRun) -> asyncio.Future[None]:
        """Queue an occurrence's record (insert, or update its state fields); resolves on commit."""
        ...

    async def load_group_runs(self, since_ms: int) -> list[GroupRun]:
        """Occurrences not final, and those scheduled at or after ``since_ms``, oldest first,
        each with its members (tid -> run id of the latest attempt)."""
        ...

    async def find_group_run(self, group_run_id: str) -> GroupRun | None: ...


class CalendarStorePort(Protocol):
    """User holiday calendars and their entries (spec 5); every write returns once committed."""

    async def load(self) -> tuple[list[CalendarRecord], list[HolidaySpan]]:
        """Every user calendar and every entry."""
        ...

    async def last_entry_id(self) -> int:
        """The highest entry id ever handed out (0 when none): ids are never reused."""
        ...

    async def add_calendar(self, calendar: CalendarRecord) -> None: ...

    async def delete_calendar(self, name: str) -> None:
        """Delete a calendar and its entries."""
        ...

    async def add_entry(self, entry: HolidaySpan) -> None: ...

    async def delete_entry(self, entry_id: int) -> None: ...


class AccountStorePort(Protocol):
    """Users and login tokens (spec 14); every write returns once committed."""

    async def load_users(self) -> list[UserRecord]:
        """Every account, by username."""
        ...

    async def get_user(self, username: str) -> UserRecord | None: ...

    async def put_user(self, user: UserRecord) -> None:
        """Insert or replace an account by username (``created_at`` of an existing one kept)."""
        ...

    async def delete_user(self, username: str) -> None:
        """Delete an account and every token of it, in one transaction."""
        ...

    async def add_token(self, token: TokenRecord) -> None: ...

    async def find_token(self, token_hash: str) -> TokenRecord | None:
        """The token with that hash, expired or not (the caller checks ``expires_at``)."""
        ...

    async def delete_token(self, token_hash: str) -> None: ...

    async def delete_tokens(self, username: str) -> None:
        """Revoke every token of an account."""
        ...

    async def delete_expired_tokens(self, now: datetime) -> None:
        """Forget tokens whose ``expires_at`` is at or before ``now``."""
        ...


class LifecycleStorePort(Protocol):
    """The scheduler's lifecycle records; ids only grow, every write returns once committed."""

    async def add(self, note: LifecycleNote, at: datetime) -> None:
        """Record an entry (its id handed out by the store); returns once committed."""
        ...

    async def latest(self) -> LifecycleEntry | None:
        """The entry recorded last, None when there is none."""
        ...

    async def find(
        self, action: str, search: str, offset: int, limit: int
    ) -> tuple[list[LifecycleEntry], int]:
        """Entries of ``action`` (any when empty) whose message or host contains ``search``,
        newest first: (page, total)."""
        ...


class FleetStorePort(Protocol):
    """What the scheduler keeps about its agents beyond their latest record."""

    def add_agent_change(self, change: AgentChange) -> None:
        """Queue an ONLINE/OFFLINE change."""
        ...

    async def agent_changes(self, agent: str, limit: int) -> list[AgentChange]:
        """The agent's latest changes, newest first."""
        ...

    def save_adhoc_result(self, result: AdhocResult) -> asyncio.Future[None]:
        """Insert or replace one agent's result (by event id and index); the future resolves
        once committed."""
        ...

    async def adhoc_results(self, event_id: int) -> list[AdhocResult]:
        """The event's results in selection order ([] for another event)."""
        ...

    async def unfinished_adhoc_results(self) -> list[AdhocResult]:
        """Every result not final yet, oldest event first (resumed at start)."""
        ...

    async def save_agent_token(self, token: AgentToken) -> None:
        """Insert or replace the agent's token; returns once committed."""
        ...

    async def agent_tokens(self) -> list[AgentToken]:
        """Every agent token, by name."""
        ...

    async def delete_agent_token(self, name: str) -> bool:
        """Forget the agent's token; False when it had none. Returns once committed."""
        ...

    def touch_agent_token(self, name: str, at: datetime) -> None:
        """Queue the token's last use."""
        ...

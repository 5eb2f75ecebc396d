"""SchedulerApp: the application layer. The public API (and the dashboard) call only this.

Every operation a client can ask for is a method here; the services behind it (catalog,
engine, hub, holidays, events, store) are private to it.
"""

from __future__ import annotations

import heapq
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from easytask import __version__
from easytask.core.adhoc import AdhocRequest
from easytask.core.authz import Action, Caller, event_action, refusal
from easytask.core.clock import Clock
from easytask.core.errors import (
    AgentNotFoundError,
    ConflictError,
    EventNotFoundError,
    FieldError,
    GroupRunNotFoundError,
    NotFoundError,
    PermissionDeniedError,
    RunNotFoundError,
    ValidationError,
)
from easytask.core.groups import GroupDef
from easytask.core.lifecycle import LifecycleAction, LifecycleEntry
from easytask.core.models import Run, StateChange, TaskDef
from easytask.core.records import (
    AdhocResult,
    AgentRecord,
    AgentToken,
    AgentView,
    Board,
    CalendarDetail,
    CalendarView,
    EventFilter,
    EventOutcome,
    EventRecord,
    EventRequest,
    FollowEnd,
    FollowPiece,
    GroupRun,
    Health,
    HolidaySpan,
    RunFilter,
    UpcomingGroup,
    UpcomingRun,
)
from easytask.core.rundate import parse_run_date
from easytask.core.runid import group_run_prefix
from easytask.core.schedule import Slot, next_slot
from easytask.core.states import RunState
from easytask.scheduler.accounts import AccountService
from easytask.scheduler.adhoc import AdhocBook
from easytask.scheduler.agent_tokens import AgentTokens
from easytask.scheduler.app_accounts import AccountOperations
from easytask.scheduler.bus import Bus, Subscription
from easytask.scheduler.calendars import CalendarBook
from easytask.scheduler.catalog import TaskCatalog
from easytask.scheduler.engine import DayBounds, Engine
from easytask.scheduler.events import EventService
from easytask.scheduler.follow import follow_output
from easytask.scheduler.holidays import HolidayService
from easytask.scheduler.hub import AgentHub
from easytask.scheduler.importer import ImportResult
from easytask.scheduler.why import Explanation, explain
from easytask.store.ports import Store

STREAMS = ("stdout", "stderr")
AGENT_CHANGES_SHOWN = 10

log = logging.getLogger(__name__)


def before(first: tuple[int, Slot], other: tuple[datetime, int, Slot]) -> bool:
    """Whether a task's first occurrence (tid, slot) comes before a listed one (at, tid, slot)."""
    return (first[1].scheduled_utc, first[0]) < (other[0], other[1])


class SchedulerApp(AccountOperations):
    """Thin use cases over the catalog, engine, hub, holidays, events and store."""

    def __init__(
        self,
        *,
        instance: str,
        store: Store,
        engine: Engine,
        hub: AgentHub,
        catalog: TaskCatalog,
        calendars: CalendarBook,
        holidays: HolidayService,
        events: EventService,
        accounts: AccountService,
        bus: Bus,
        clock: Clock,
        adhoc: AdhocBook,
        agent_tokens: AgentTokens,
        timezone: str = "UTC",
    ) -> None:
        self._accounts = accounts
        self._adhoc = adhoc
        self._agent_tokens = agent_tokens
        self.instance = instance
        self.timezone = timezone
        self._store = store
        self._engine = engine
        self._hub = hub
        self._catalog = catalog
        self._calendars = calendars
        self._holidays = holidays
        self._events = events
        self._bus = bus
        self._clock = clock
        self.started_at = clock.now()
        self.dashboard_url = ""  # set once the dashboard serves; reported by Health

    def now(self) -> datetime:
        return self._clock.now()

    # ----- tasks -----

    def _allow(self, caller: Caller, action: Action, owner: str = "") -> None:
        """The one place an operation is checked against the caller's role (spec 14)."""
        reason = refusal(caller, action, owner=owner)
        if reason is not None:
            raise PermissionDeniedError(reason)

    def _owner(self, tid: int, name: str) -> str:
        """The task's owner, "" when no such task (the operation itself then says so)."""
        try:
            return self._catalog.get(tid, name).task_owner
        except NotFoundError:
            return ""

    async def create_task(self, raw: object, caller: Caller) -> TaskDef:
        """``task_owner`` defaults to the caller."""
        self._allow(caller, Action.CREATE_TASK)
        task = await self._catalog.create(raw, caller.username)
        log.info("task %d (%s) created by %s", task.tid, task.name, caller.username)
        return task

    async def update_task(self, tid: int, name: str, patch: object, caller: Caller) -> TaskDef:
        self._allow(caller, Action.CHANGE_TASK, self._catalog.get(tid, name).task_owner)
        task = await self._catalog.update(tid, name, patch, caller.username)
        log.info("task %d (%s) updated by %s", task.tid, task.name, caller.username)
        return task

    def get_task(self, tid: int, name: str = "") -> TaskDef:
        return self._catalog.get(tid, name)

    def task_status(self, tid: int) -> RunState:
        """The task's status now (spec 7.1)."""
        return self._engine.task_status(self._catalog.get(tid, ""), self._clock.now())

    def list_tasks(
        self,
        active: bool | None,
        search: str,
        page: int,
        per_page: int,
        status: RunState | None = None,
        group: str = "",
    ) -> tuple[list[TaskDef], int, list[RunState]]:
        """A page of tasks (only those whose task status is ``status``, and members of
        ``group`` (gid or name), when given), the total, and each task's status (spec 7.1)."""
        now = self._clock.now()
        if status is None and not group:
            tasks, total = self._catalog.list_tasks(active, search, page, per_page)
            return tasks, total, [self._engine.task_status(t, now) for t in tasks]
        everything, _ = self._catalog.list_tasks(active, search, 1, len(self._catalog.tasks) + 1)
        if group:
            name = self.resolve_group(group).name
            everything = [t for t in everything if t.task_group == name]
        days: DayBounds = {}
        rated = [(t, self._engine.task_status(t, now, days)) for t in everything]
        matching = [(t, s) for t, s in rated if status is None or s is status]
        start = (page - 1) * per_page
        chosen = matching[start : start + per_page]
        return [t for t, _ in chosen], len(matching), [s for _, s in chosen]

    def resolve_group(self, ref: str) -> GroupDef:
        """A group by gid (all digits) or name; GroupNotFoundError when there is none."""
        ref = ref.strip()
        if ref.isdigit():
            return self._catalog.get_group(int(ref))
        return self._catalog.get_group(0, ref)

    async def last_result(self, tid: int) -> RunState | None:
        """The state of the task's latest final run (None when it has none yet)."""
        latest = self._engine.runs.latest.get(tid)
        if latest is not None and latest[1].final:
            return latest[1]
        await self._store.flush()
        offset = 0
        while True:
            runs, total, _ = await self._store.list_runs(RunFilter(tid=tid), offset, 50)
            for run in runs:
                if run.state.final:
                    return run.state
            offset += len(runs)
            if not runs or offset >= total:
                return None

    async def task_statuses(
        self, search: str, group: str, page: int, per_page: int
    ) -> tuple[list[tuple[TaskDef, RunState, RunState | None]], int]:
        """`scheduler task-statuses`: a page of tasks with status and last result (spec 7.1)."""
        tasks, total, statuses = self.list_tasks(None, search, page, per_page, group=group)
        rows = [(t, s, await self.last_result(t.tid)) for t, s in zip(tasks, statuses, strict=True)]
        return rows, total

    async def scheduler_logs(
        self, action: str, search: str, page: int, per_page: int
    ) -> tuple[list[LifecycleEntry], int]:
        """`scheduler logs`: the scheduler's starts, clean stops, restarts and crashes."""
        if action and action.upper() not in LifecycleAction.__members__:
            choices = ", ".join(LifecycleAction.__members__)
            raise ValidationError([FieldError("action", f"action must be one of {choices}")])
        return await self._store.lifecycle.find(action, search, (page - 1) * per_page, per_page)

    async def delete_task(
        self, tid: int, name: str, cascade: bool, caller: Caller
    ) -> tuple[TaskDef, bool]:
        self._allow(caller, Action.CHANGE_TASK, self._catalog.get(tid, name).task_owner)
        task, cleared = await self._catalog.delete(tid, name, cascade)
        log.info("task %d (%s) deleted by %s", task.tid, task.name, caller.username)
        return task, cleared

    def export_tasks(self) -> dict[str, Any]:
        return self._catalog.export()

    async def import_tasks(
        self, text: str, caller: Caller, dry_run: bool, atomic: bool = False
    ) -> ImportResult:
        """An import may change and delete any task: an operator's (a dry run: anyone's)."""
        self._allow(caller, Action.READ if dry_run else Action.CHANGE_TASK)
        result = await self._catalog.import_tasks(text, caller.username, dry_run, atomic)
        if not dry_run:
            log.info("import by %s: %d created, %d updated, %d unchanged, %d deleted, "
                     "%d refused", caller.username, result.created, result.updated,
                     result.unchanged, result.deleted, len(result.errors))  # fmt: skip
        return result

    # ----- task groups -----

    async def create_group(self, raw: object, caller: Caller) -> GroupDef:
        self._allow(caller, Action.CREATE_GROUP)
        group = await self._catalog.create_group(raw)
        log.info("group %d (%s) created by %s", group.gid, group.name, caller.username)
        return group

    async def update_group(self, gid: int, name: str, patch: object, caller: Caller) -> GroupDef:
        self._allow(caller, Action.CHANGE_GROUP)
        group = await self._catalog.update_group(gid, name, patch)
        log.info("group %d (%s) updated by %s", group.gid, group.name, caller.username)
        return group

    def get_group(self, gid: int, name: str = "") -> GroupDef:
        return self._catalog.get_group(gid, name)

    def list_groups(self, search: str, page: int, per_page: int) -> tuple[list[GroupDef], int]:
        return self._catalog.list_groups(search, page, per_page)

    def group_summary(self, group: GroupDef) -> tuple[int, str]:
        """How many members the group has, and its latest occurrence's state ("" if none)."""
        return self._catalog.member_count(group), self._engine.groups.current_state(group.gid)

    def group_members(self, group: GroupDef) -> list[TaskDef]:
        """The group's member tasks, by tid."""
        return self._engine.groups.members(group)

    def group_occurrences(self, gid: int, limit: int) -> list[GroupRun]:
        """The group's tracked occurrences (the last few days and every unfinished one),
        newest first."""
        found = [g for g in self._engine.groups.occurrences.values() if g.gid == gid]
        found.sort(key=lambda g: (g.scheduled_utc, g.created_at), reverse=True)
        return found[:limit]

    async def group_occurrence(self, group_run_id: str) -> tuple[GroupRun, list[Run]]:
        """One occurrence and every run of it (all attempts, the live ones as they are now)."""
        occurrence = self._engine.groups.occurrences.get(group_run_id)
        if occurrence is None:
            occurrence = await self._store.find_group_run(group_run_id)
        if occurrence is None:
            raise GroupRunNotFoundError(group_run_id)
        await self._store.flush()
        live = self._engine.runs.live
        runs = await self._store.runs_of_group_runs([group_run_id])
        return occurrence, [live.get(r.run_id, r) for r in runs]

    async def delete_group(
        self, gid: int, name: str, cascade: bool, caller: Caller
    ) -> tuple[GroupDef, int, bool]:
        self._allow(caller, Action.CHANGE_GROUP)
        group, deleted, cleared = await self._catalog.delete_group(gid, name, cascade)
        log.info("group %d (%s) deleted by %s with %d member tasks", group.gid, group.name,
                 caller.username, deleted)  # fmt: skip
        return group, deleted, cleared

    # ----- runs -----

    async def list_runs(
        self, flt: RunFilter, page: int, per_page: int, group: str = ""
    ) -> tuple[list[Run], int, dict[str, int]]:
        """Runs matching ``flt``; with ``group`` only the runs of that group's occurrences
        (none when there is no such group). A run date must be a calendar date."""
        if flt.run_date:
            flt = replace(flt, run_date=parse_run_date(flt.run_date))
        if group:
            found = self._engine.groups.group_by_name(group)
            prefix = group_run_prefix(self.instance, found.gid) if found else "\x00"
            flt = replace(flt, group_run_prefix=prefix)
        return await self._store.list_runs(flt, (page - 1) * per_page, per_page)

    async def get_run(self, run_id: str) -> tuple[Run, list[StateChange]]:
        run = self._engine.runs.live.get(run_id) or await self._store.find_run(run_id)
        if run is None:
            raise RunNotFoundError(run_id)
        return run, await self._store.transitions(run_id)

    async def read_output_from(self, run_id: str, stream: str, offset: int) -> tuple[bytes, int]:
        """A stream's stored bytes from ``offset`` on (a cut skipped), and their end offset."""
        await self._store.flush()
        return await self._store.read_output_from(run_id, stream, offset)

    async def output_end(self, run_id: str, stream: str) -> int:
        """The stream offset the stored copy ends at (0 when there is no output)."""
        await self._store.flush()
        return (await self._store.output_sizes([run_id])).get((run_id, stream), 0)

    async def output_segments(self, run_id: str, stream: str) -> list[tuple[int, bytes]]:
        """A stream's stored copy as contiguous pieces at their stream offsets (a cut between)."""
        await self._store.flush()
        return await self._store.read_output_segments(run_id, stream)

    async def run_output(self, run_id: str) -> tuple[Run, dict[str, tuple[bytes, bool]]]:
        """Each stream's stored copy (the cut marked) and whether it was cut."""
        run, _ = await self.get_run(run_id)
        await self._store.flush()
        return run, {s: await self._store.read_output_view(run_id, s) for s in STREAMS}

    async def follow_output(
        self, run_id: str, streams: tuple[str, ...], start: dict[str, int] | None = None
    ) -> AsyncIterator[FollowPiece | FollowEnd]:
        """The run's output from ``start`` on, live, then its end (see follow.follow_output)."""
        async for item in follow_output(
            self._store, self._bus, self.get_run, run_id, streams, start
        ):
            yield item

    # ----- events -----

    async def publish_event(self, req: EventRequest, caller: Caller) -> EventOutcome:
        """A spec-10 event, checked against the caller's role first (a refusal is not an
        event: nothing is recorded)."""
        action = event_action(req.event, req.for_group)
        owner = "" if req.for_group else self._owner(req.tid, req.name)
        self._allow(caller, action, owner)
        return await self._events.publish(req, caller.username)

    async def find_events(
        self, flt: EventFilter, task_name: str, page: int, per_page: int
    ) -> tuple[list[EventRecord], int]:
        """Events matching ``flt``; ``task_name`` also matches events of tasks so named
        (events name their task by tid)."""
        if task_name:
            tids = tuple(str(t.tid) for t in self._catalog.tasks.values() if task_name in t.name)
            target = task_name if task_name.isdigit() else ""
            if not tids and not target:
                return [], 0  # no task is so named: no event is of one
            flt = EventFilter(target, tids, flt.event, flt.status, flt.origin, flt.since,
                              flt.published_by, flt.until)  # fmt: skip
        return await self._store.find_events(flt, (page - 1) * per_page, per_page)

    async def get_event(self, event_id: int) -> EventRecord:
        record = await self._store.get_event(event_id)
        if record is None:
            raise EventNotFoundError(event_id)
        return record

    async def force_run(
        self, tid: int, name: str, run_date: str, caller: Caller, origin: str
    ) -> EventOutcome:
        """FORCE_RUN_TASK, recorded as an event (refusals for bad input too)."""
        req = EventRequest("FORCE_RUN_TASK", tid=tid, name=name, run_date=run_date, origin=origin)
        return await self.publish_event(req, caller)

    async def refresh_calendars(self, caller: Caller, origin: str) -> EventOutcome:
        """REFRESH_CALENDAR: reload every calendar from the store, recorded as an event."""
        return await self.publish_event(EventRequest("REFRESH_CALENDAR", origin=origin), caller)

    async def explain(self, tid: int, name: str, run_date: str) -> Explanation:
        """`tasks why`: what holds the task back on ``run_date`` (default: today, local)."""
        task = self._catalog.get(tid, name)
        now = self._clock.now()
        run_date = (
            parse_run_date(run_date)
            if run_date
            else f"{now.astimezone(ZoneInfo(self._engine.groups.zone_of(task))):%Y%m%d}"
        )
        await self._store.flush()
        runs, _, _ = await self._store.list_runs(RunFilter(tid=task.tid, run_date=run_date), 0, 500)
        return explain(self._engine, task, run_date, runs, now)

    # ----- calendars -----

    def list_calendars(
        self, include_builtin: bool, page: int, per_page: int
    ) -> tuple[list[CalendarView], int]:
        return self._holidays.calendars(include_builtin, page, per_page)

    def get_calendar(self, name: str, year: int) -> CalendarDetail:
        return self._holidays.get(name, year)

    async def create_calendar(self, name: str, description: str, caller: Caller) -> CalendarView:
        self._allow(caller, Action.MANAGE_CALENDARS)
        return await self._holidays.create(name, description, caller.username)

    async def add_holiday(
        self, name: str, start_date: str, end_date: str, reason: str, caller: Caller
    ) -> HolidaySpan:
        self._allow(caller, Action.MANAGE_CALENDARS)
        return await self._holidays.add_holiday(name, start_date, end_date, reason, caller.username)

    async def remove_holiday(self, name: str, entry_id: int, caller: Caller) -> HolidaySpan:
        self._allow(caller, Action.MANAGE_CALENDARS)
        return await self._holidays.remove_holiday(name, entry_id)

    async def delete_calendar(self, name: str, caller: Caller) -> CalendarView:
        self._allow(caller, Action.MANAGE_CALENDARS)
        return await self._holidays.delete(name)

    # ----- schedule preview -----

    def upcoming(self, tid: int, start: datetime, end: datetime, count: int) -> list[UpcomingRun]:
        """The next ``count`` occurrences in (start, end], merged across tasks in time order.

        From now on, each task's first occurrence is its timer-wheel entry, read in time order:
        the next 20 of 100,000 tasks cost a few lookups, not 100,000 schedule computations.
        """
        after = self._engine.next_slot_after  # shared by the tasks of one schedule
        later: list[tuple[datetime, int, Slot]] = []  # a heap of occurrences still to list
        firsts: Iterator[tuple[int, Slot]] = iter(())
        # "From now" is a start the caller took a moment ago; a slot that fired since was due.
        if tid or start < self._clock.now() - timedelta(seconds=1):
            tasks = [self._catalog.get(tid)] if tid else list(self._catalog.tasks.values())
            for task in tasks:
                if (slot := after(task, start)) is not None:
                    later.append((slot.scheduled_utc, task.tid, slot))
            heapq.heapify(later)
        else:
            firsts = self._engine.pending_task_slots()
        first = next(firsts, None)
        out: list[UpcomingRun] = []
        while len(out) < count:
            if first is not None and first[1].scheduled_utc <= start:  # due, not yet fired
                due = self._catalog.tasks.get(first[0])
                if due is not None and (slot := after(due, start)) is not None:
                    heapq.heappush(later, (slot.scheduled_utc, due.tid, slot))
                first = next(firsts, None)
                continue
            if first is not None and (not later or before(first, later[0])):
                task_tid, slot = first
                first = next(firsts, None)
            elif later:
                _, task_tid, slot = heapq.heappop(later)
            else:
                break
            if slot.scheduled_utc > end:
                break
            task = self._catalog.tasks[task_tid]
            out.append(UpcomingRun(task, slot, self._note(task, slot)))
            if (nxt := after(task, slot.scheduled_utc)) is not None:
                heapq.heappush(later, (nxt.scheduled_utc, task_tid, nxt))
        return out

    def upcoming_groups(
        self, gid: int, start: datetime, end: datetime, count: int
    ) -> list[UpcomingGroup]:
        """The next ``count`` group occurrences in (start, end], in time order."""
        runner = self._engine.groups
        if gid:
            groups = [runner.groups[gid]] if gid in runner.groups else []
        else:
            groups = list(runner.groups.values())

        def after(group: GroupDef, instant: datetime) -> Slot | None:
            schedule = runner.schedule_of(group.gid)
            holidays = self._calendars.holiday_check(group.calendar or None)
            return next_slot(schedule, instant, holidays) if schedule else None

        # A merge: one slot per group, then only the ``count`` listed ones' successors.
        heap = [(s.scheduled_utc, g.gid, s) for g in groups if (s := after(g, start))]
        heapq.heapify(heap)
        out: list[UpcomingGroup] = []
        while heap and len(out) < count:
            at, group_gid, slot = heapq.heappop(heap)
            if at > end:
                break
            group = runner.groups[group_gid]
            note = "" if group.active else "group disabled: its members will be SKIPPED"
            out.append(UpcomingGroup(group, slot, note or slot.note))
            if (nxt := after(group, at)) is not None:
                heapq.heappush(heap, (nxt.scheduled_utc, group_gid, nxt))
        return out

    def _note(self, task: TaskDef, slot: Slot) -> str:
        if self._engine.freezes.covers(task.tid, slot.run_date, slot.local_time):
            return "frozen"
        if task.calendar:
            reason = self._calendars.holiday_reason(task.calendar, slot.local_date)
            if reason is not None:
                return f"holiday in calendar {task.calendar}: {reason}"
        return slot.note

    # ----- health and agents -----

    async def health(self) -> Health:
        now = self._clock.now()
        tick = self._engine.last_tick or self.started_at
        return Health(
            instance=self.instance,
            started_at=self.started_at,
            heartbeat_age=(now - tick).total_seconds(),
            version=__version__,
            agents_online=len(self._hub.sessions),
            active_runs=len(self._engine.runs.live),
            triggers_24h=await self._store.count_runs_since(now - timedelta(hours=24)),
            timezone=self.timezone,
        )

    async def board(self) -> Board:
        """The status board: every task's status, the live runs, today's final runs."""
        now = self._clock.now()
        days: DayBounds = {}
        status = self._engine.task_status
        tasks = Counter(status(t, now, days) for t in self._catalog.tasks.values())
        live = Counter(r.state for r in self._engine.runs.live.values() if not r.state.final)
        try:
            zone = ZoneInfo(self.timezone)
        except (ValueError, KeyError, ZoneInfoNotFoundError):
            zone = ZoneInfo("UTC")
        run_date = now.astimezone(zone).strftime("%Y%m%d")
        _, _, stats = await self._store.list_runs(RunFilter(run_date=run_date), 0, 0)
        final = {RunState(k): v for k, v in stats.items() if RunState(k).final}
        online = len(self._hub.sessions)
        known = {a.name for a in await self._store.load_agents()} | set(self._hub.sessions)
        return Board(run_date, dict(tasks), dict(live), final, online, len(known) - online)

    def watch_runs(self) -> Subscription:
        """Every run's state changes from now on, in a bounded queue (overflow: resync)."""
        return self._bus.subscribe_all()

    async def agents(self) -> list[AgentView]:
        stored = {a.name: a for a in await self._store.load_agents()}
        now = self._clock.now()
        views: list[AgentView] = []
        for name, session in self._hub.sessions.items():
            h = session.hello
            stored[name] = AgentRecord(
                name, h.host, list(h.queues), h.version, h.pid, h.cpu_cores, h.memory_mb,
                session.connected_at, now,
            )  # fmt: skip
        for name in sorted(stored):
            online = self._hub.sessions.get(name)
            rec = stored[name]
            if online is None:
                views.append(AgentView(rec, False, 0.0, 0.0, 0.0, []))
                continue
            views.append(
                AgentView(
                    rec,
                    True,
                    online.heartbeat.cpu_percent,
                    online.heartbeat.mem_percent,
                    (now - online.connected_at).total_seconds(),
                    sorted(online.active),
                    online.hello.max_runs,
                    online.hello.disk_total_mb,
                    online.hello.disk_free_mb,
                )
            )
        return views

    async def agent(self, name: str) -> AgentView:
        """One agent with its latest ONLINE/OFFLINE changes (NotFoundError when never seen)."""
        view = next((v for v in await self.agents() if v.record.name == name), None)
        if view is None:
            raise AgentNotFoundError(name)
        changes = await self._store.fleet.agent_changes(name, AGENT_CHANGES_SHOWN)
        return replace(view, changes=changes)

    async def restart_agent(self, name: str, caller: Caller) -> str:
        """Send the restart action (spec 12); the agent must be connected."""
        self._allow(caller, Action.CONTROL_AGENTS)
        if not self._hub.restart(name, caller.username):
            known = {a.name for a in await self._store.load_agents()}
            if name not in known:
                raise AgentNotFoundError(name)
            raise ConflictError(f"agent {name!r} is not connected")
        return f"Restart action sent to agent '{name}'."

    async def create_agent_token(self, name: str, caller: Caller) -> tuple[AgentToken, str]:
        """A per-agent token and its secret, shown this once (spec 12 `agents token create`)."""
        self._allow(caller, Action.CONTROL_AGENTS)
        return await self._agent_tokens.create(name, caller.username)

    async def agent_tokens(self, caller: Caller) -> list[AgentToken]:
        self._allow(caller, Action.CONTROL_AGENTS)
        return await self._agent_tokens.list()

    async def revoke_agent_token(self, name: str, caller: Caller) -> AgentToken:
        """Forget the agent's token; the stream it opened is closed now."""
        self._allow(caller, Action.CONTROL_AGENTS)
        return await self._agent_tokens.revoke(name, caller.username)

    # ----- ad-hoc commands -----

    async def run_adhoc(self, req: AdhocRequest, caller: Caller) -> EventOutcome:
        """ADHOC (spec 10): one execution per selected connected agent, recorded as an event."""
        self._allow(caller, Action.ADHOC)
        return await self._adhoc.publish(req, caller.username)

    async def adhoc_results(self, event_id: int) -> list[AdhocResult]:
        """An ADHOC event's per-agent results as they are now ([] for other events)."""
        return await self._adhoc.results(event_id)

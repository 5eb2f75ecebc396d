"""EventService: operator events (spec 10): target lookup, the action, the recorded outcome."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from zoneinfo import ZoneInfo

from easytask.core.clock import Clock
from easytask.core.errors import ConflictError, EasyTaskError, FieldError, ValidationError
from easytask.core.groups import GroupDef
from easytask.core.models import Run, TaskDef
from easytask.core.records import EventOutcome, EventRequest, RunFilter
from easytask.core.rundate import parse_run_date
from easytask.core.states import RunState
from easytask.scheduler.actions import RunActions
from easytask.scheduler.catalog import TaskCatalog
from easytask.scheduler.engine import Engine
from easytask.scheduler.logs import set_debug
from easytask.store.ports import Store

log = logging.getLogger(__name__)

S = RunState
TASK_EVENTS = frozenset(
    {
        "ENABLE_TASK", "DISABLE_TASK", "FREEZE_TASK", "UNFREEZE_TASK", "FORCE_RUN_TASK",
        "MODIFY_TASK_STATUS", "TERMINATE_TASK", "REFRESH_TASK_DEFINITION",
    }
)  # fmt: skip
GROUP_EVENTS = frozenset(
    {"ENABLE_TASK", "DISABLE_TASK", "FORCE_RUN_TASK", "REFRESH_TASK_GROUP_DEFINITION",
     "MODIFY_TASK_STATUS"}
)  # fmt: skip
PLAIN_EVENTS = frozenset({"ENABLE_DEBUG", "DISABLE_DEBUG", "REFRESH_GRAPH", "REFRESH_CALENDAR"})
IN_PROGRESS = (S.TRIGGER, S.RESTARTING, S.STARTED, S.RUNNING)
_TIME = re.compile(r"([01]\d|2[0-3]):[0-5]\d")


class EventService:
    """Runs one event at a time and records it, refused ones too (status FAILURE + message)."""

    def __init__(
        self,
        *,
        instance: str,
        store: Store,
        engine: Engine,
        actions: RunActions,
        catalog: TaskCatalog,
        clock: Clock,
        refresh_calendars: Callable[[], Awaitable[None]],
    ) -> None:
        self._instance = instance
        self._store = store
        self._engine = engine
        self.actions = actions
        self._catalog = catalog
        self._clock = clock
        self._refresh_calendars = refresh_calendars

    async def publish(self, req: EventRequest, user: str) -> EventOutcome:
        created = self._clock.now()
        event = req.event.upper()
        target = f"group {req.gid or req.group_name}" if req.for_group else str(req.tid or req.name)
        args = {k: v for k, v in (("run_date", req.run_date), ("trigger_time", req.trigger_time),
                                  ("status", req.status), ("run_id", req.run_id)) if v}  # fmt: skip
        run: Run | None = None
        run_date = ""
        try:
            req = _check_formats(req)
            if event in PLAIN_EVENTS:
                message = await self._plain(event)
            elif req.for_group and event in GROUP_EVENTS:
                group = self._catalog.get_group(req.gid, req.group_name)
                target = f"group {group.gid}"
                message, run_date = await self._group_event(event, group, req, user)
            elif req.for_group:
                raise ValidationError([FieldError("event", f"{event} does not take a group")])
            elif event in TASK_EVENTS:
                task = self._catalog.get(req.tid, req.name)
                target = str(task.tid)
                run_date = req.run_date or self._today(task)
                message, run = await self._task_event(event, task, run_date, req, user)
            else:
                raise ValidationError([FieldError("event", f"unknown event {req.event}")])
        except EasyTaskError as exc:
            message = str(exc.args[0]) if exc.args else type(exc).__name__
            if isinstance(exc, ValidationError):
                message = "; ".join(str(e) for e in exc.errors)
            status = "FAILURE"
            log.info("event %s on %s by %s refused: %s", event, target or "-", user,
                     _one_line(message))  # fmt: skip
        else:
            status = "SUCCESS"
            log.info("event %s on %s by %s: %s", event, target or "-", user, _one_line(message))
        if run is not None:
            args["run_id"] = run.run_id
        event_id = await self._store.add_event(
            event, target, args, status, message, req.origin or "API", user, created,
            self._clock.now(), self._instance,
        )  # fmt: skip
        return EventOutcome(event_id, status, message, run, run_date)

    async def _group_event(
        self, event: str, group: GroupDef, req: EventRequest, user: str
    ) -> tuple[str, str]:
        gid = group.gid
        if event in ("ENABLE_TASK", "DISABLE_TASK"):
            active = event == "ENABLE_TASK"
            await self._catalog.update_group(gid, "", {"active": active})
            return f"Group {gid} {'enabled' if active else 'disabled'} on scheduler.", ""
        if event == "FORCE_RUN_TASK":
            run_date = await self.actions.force_run_group(gid, req.run_date or None, user)
            return (
                f"Force run triggered for group {gid} ({group.name})\nRun date: {run_date}",
                run_date,
            )
        if event == "MODIFY_TASK_STATUS":
            state = _status(req.status).value
            zone = ZoneInfo(group.timezone)
            run_date = req.run_date or f"{self._clock.now().astimezone(zone):%Y%m%d}"
            self._engine.groups.modify_status(gid, run_date, req.trigger_time, state, user,
                                              self._clock.now())  # fmt: skip
            await self._store.flush()
            return f"Group {gid} status modified to {state}.", run_date
        # REFRESH_TASK_GROUP_DEFINITION
        stored = {g.gid: g for g in await self._store.load_groups()}
        if gid in stored:
            self._engine.groups.put_group(stored[gid], self._clock.now())
        return f"Group definition refreshed for group {gid} ({group.name}).", ""

    def _today(self, task: TaskDef) -> str:
        zone = ZoneInfo(self._engine.groups.zone_of(task))
        return f"{self._clock.now().astimezone(zone):%Y%m%d}"

    async def _plain(self, event: str) -> str:
        if event == "ENABLE_DEBUG":
            set_debug(True)
            return "Enabled scheduler in DEBUG mode"
        if event == "DISABLE_DEBUG":
            set_debug(False)
            return "Disabled scheduler DEBUG mode"
        if event == "REFRESH_CALENDAR":
            await self._refresh_calendars()
            return "Holiday calendars refreshed."
        return "Dependency graph refreshed."  # REFRESH_GRAPH: evaluated from definitions

    async def _task_event(
        self, event: str, task: TaskDef, run_date: str, req: EventRequest, user: str
    ) -> tuple[str, Run | None]:
        tid = task.tid
        if event in ("ENABLE_TASK", "DISABLE_TASK"):
            active = event == "ENABLE_TASK"
            await self._catalog.update(tid, "", {"active": active}, user)
            return f"Task {tid} {'enabled' if active else 'disabled'} on scheduler.", None
        if event == "REFRESH_TASK_DEFINITION":
            stored = {t.tid: t for t in await self._store.load_tasks()}
            if tid in stored:
                self._engine.put_task(stored[tid], self._clock.now())
            return f"Task definition refreshed for task {tid} ({task.name}).", None
        if event == "FORCE_RUN_TASK":
            run = await self.actions.force_run(tid, req.run_date or None, user)
            return (
                f"Force run triggered for task {tid} ({task.name})\nRun date: {run.run_date}",
                run,
            )
        if event == "FREEZE_TASK":
            self._refuse_freeze_of_triggered(tid, run_date, req.trigger_time)
            self.actions.freeze(tid, run_date, req.trigger_time, user)
            await self._store.flush()
            return f"Task {tid} frozen for date {run_date}.", None
        if event == "UNFREEZE_TASK":
            was_frozen = (tid, run_date, req.trigger_time) in self._engine.freezes
            released = self.actions.unfreeze(tid, run_date, req.trigger_time, user)
            if not was_frozen and not released:
                at = f" {req.trigger_time}" if req.trigger_time else ""
                raise ConflictError(f"no freeze for task {tid} on {run_date}{at}")
            await self._store.flush()
            return f"Task {tid} unfrozen for date {run_date}.", None
        if event == "TERMINATE_TASK":
            run = await self._running_run(tid, run_date, req)
            self.actions.terminate(run, user)
            await self._store.flush()
            return f"Task {tid} terminated.", run
        # MODIFY_TASK_STATUS
        status = _status(req.status)
        run = await self._latest_attempt(tid, run_date, req.trigger_time)
        result = self.actions.modify_status(run, status, user)
        await self._store.flush()
        return f"Task {tid} status modified to {status}.", result

    def _refuse_freeze_of_triggered(self, tid: int, run_date: str, trigger_time: str) -> None:
        if not trigger_time:
            return  # a whole date: runs already triggered are simply not affected (spec 7.3)
        for run in self._engine.runs.live.values():
            same = run.tid == tid and run.run_date == run_date and run.local_time == trigger_time
            if same and run.state in IN_PROGRESS:
                raise ConflictError(
                    f"run {run.run_id} is {run.state}; a run in TRIGGER or later cannot be "
                    "frozen (terminate it instead)"
                )

    async def _running_run(self, tid: int, run_date: str, req: EventRequest) -> Run:
        candidates = [
            r for r in self._engine.runs.live.values()
            if r.tid == tid and r.state in IN_PROGRESS
            and (r.run_id == req.run_id if req.run_id else r.run_date == run_date)
            and (not req.trigger_time or r.local_time == req.trigger_time)
        ]  # fmt: skip
        if not candidates:
            if req.run_id:
                raise ConflictError(f"run {req.run_id} of task {tid} is not running")
            raise ConflictError(f"no running run for task {tid} on {run_date}")
        return max(candidates, key=lambda r: (r.scheduled_utc, r.attempt))

    async def _latest_attempt(self, tid: int, run_date: str, trigger_time: str) -> Run:
        await self._store.flush()
        runs, _, _ = await self._store.list_runs(RunFilter(tid=tid, run_date=run_date), 0, 1000)
        if trigger_time:
            runs = [r for r in runs if r.local_time == trigger_time]
        if not runs:
            at = f" {trigger_time}" if trigger_time else ""
            raise ConflictError(f"no run for task {tid} on {run_date}{at}")
        latest = max(runs, key=lambda r: (r.scheduled_utc, r.attempt))
        return self._engine.runs.live.get(latest.run_id, latest)


def _status(text: str) -> RunState:
    try:
        return RunState(text.upper())
    except ValueError:
        message = "status must be one of SUCCESS, FAILED, TERMINATED, SKIPPED, ACTIVE"
        raise ValidationError([FieldError("status", message)]) from None


def _check_formats(req: EventRequest) -> EventRequest:
    """The request with its run date as ``YYYYMMDD``; a ValidationError naming each bad field."""
    errors = []
    if req.run_date:
        try:
            req = replace(req, run_date=parse_run_date(req.run_date))
        except ValidationError as exc:
            errors.extend(exc.errors)
    if req.trigger_time and not _TIME.fullmatch(req.trigger_time):
        errors.append(FieldError("trigger_time", "trigger_time must be HH:MM"))
    if errors:
        raise ValidationError(errors)
    return req


def _one_line(message: str) -> str:
    """A message as one log line: a multi-line reply (``…\nRun date: D``) joined with "; "."""
    return "; ".join(part for part in message.splitlines() if part)

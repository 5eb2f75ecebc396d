"""Engine: the timer wheel's tasks, their next occurrences, and firing them (spec 4, 7.1).

Runs are created and changed by the run lifecycle (``RunBook``); group occurrences by the
group runtime; operator actions live in ``RunActions``. The engine only loads, schedules and
fires.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from easytask.core.clock import Clock
from easytask.core.misfire import CATCH_UP_REASON, MISSED_REASON, plan_misfires
from easytask.core.models import TaskDef
from easytask.core.runid import to_ms
from easytask.core.schedule import Schedule, Slot, local_day_utc, next_slot
from easytask.core.states import RunState
from easytask.core.validation import stored_text_problem
from easytask.scheduler.calendars import CalendarBook
from easytask.scheduler.freezes import Freezes
from easytask.scheduler.groups import GroupRunner
from easytask.scheduler.logs import log_run, log_triggered, validation
from easytask.scheduler.runs import RunBook
from easytask.scheduler.taskindex import TaskIndex
from easytask.scheduler.timers import Timers, WheelKey
from easytask.store.ports import Store

log = logging.getLogger(__name__)

S = RunState
DayBounds = dict[str, tuple[datetime, datetime]]  # timezone -> its local day, in UTC
TICK_SECONDS = 5.0
GROUP_HISTORY_DAYS = 2
FROZEN_REASON = "frozen by operator"


class Engine:
    """Owns the schedule in memory: one wheel entry per task, fired at its instant."""

    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        index: TaskIndex,
        timers: Timers,
        runs: RunBook,
        groups: GroupRunner,
        freezes: Freezes,
        calendars: CalendarBook,
    ) -> None:
        self._store = store
        self._clock = clock
        self.index = index
        self._timers = timers
        self.runs = runs
        self.groups = groups
        self.freezes = freezes
        self.calendars = calendars
        self._schedules: dict[int, Schedule] = {}
        self._schedule_cache: dict[tuple[str | None, ...], Schedule] = {}
        self._slot_cache: dict[tuple[Schedule, str | None, datetime], Slot | None] = {}
        self.last_tick: datetime | None = None

    # ----- start-up -----

    async def load(self) -> None:
        """Load tasks and non-final runs, build the wheel, and settle slots missed while down."""
        now = self._clock.now()
        last_tick = await self._store.get_meta("last_tick")
        since = datetime.fromisoformat(last_tick) if last_tick else None
        fired = await self._store.fired_slots(since, now) if since else set()
        missed: list[tuple[TaskDef, list[Slot]]] = []
        missed_groups = [
            (group, self.groups.put_group(group, now, since))
            for group in await self._store.load_groups()
        ]
        escaped: set[int] = set()
        tasks = await self._store.load_tasks(escaped)
        for task in await self._disable_unfit(tasks, escaped, now):
            slots = self.put_task(task, now, since)
            slots = [s for s in slots if (task.tid, to_ms(s.scheduled_utc)) not in fired]
            if slots:
                missed.append((task, slots))
        self.freezes.replace(
            {(f.tid, f.run_date, f.trigger_time) for f in await self._store.load_freezes()}
        )
        live = await self._store.load_live_runs()
        sizes = await self._store.output_sizes(r.run_id for r in live)
        self.runs.adopt(await self._store.latest_run_states(), live, sizes, now)
        history = now - timedelta(days=GROUP_HISTORY_DAYS)
        occurrences = await self._store.load_group_runs(
            to_ms(min(since, history) if since else history)
        )
        members = await self._store.runs_of_group_runs([g.group_run_id for g in occurrences])
        self.groups.adopt(occurrences, members)
        for group, slots in missed_groups:
            if slots:
                self.groups.settle_missed(group, slots, now)
        for task, slots in missed:
            self._settle_missed(task, slots, now)
        log.info(
            "engine loaded %d tasks and %d runs in progress; %d tasks missed slots since %s",
            len(self.index.tasks), len(live), len(missed), last_tick or "never",
        )  # fmt: skip

    async def _disable_unfit(
        self, tasks: list[TaskDef], suspects: set[int], now: datetime
    ) -> list[TaskDef]:
        """Stored tasks that break the text rules are made inactive, with the reason logged.

        Only ``suspects`` (tids whose stored JSON holds an escape) can break them.
        """
        disabled: list[TaskDef] = []
        for i, task in enumerate(tasks):
            if task.tid not in suspects or not task.active:
                continue
            problem = stored_text_problem(task)
            if problem is not None:
                log.warning("task %d (%s) made inactive at load: %s", task.tid, task.name, problem)
                tasks[i] = replace(task, active=False)
                disabled.append(tasks[i])
        if disabled:
            await self._store.put_tasks(disabled, now)
        return tasks

    def _settle_missed(self, task: TaskDef, slots: list[Slot], now: datetime) -> None:
        """Apply the task's misfire policy to the slots it missed while the scheduler was down."""
        for slot, run_now in plan_misfires(task.misfire_policy, task.misfire_grace, slots, now):
            run = self.runs.new_run(task, slot.scheduled_utc, slot.run_date, slot.local_time, now)
            holiday = self._holiday(task, slot)
            if holiday is not None:
                log_run(run, "Task Validated", _skipped(task, holiday, calendar=holiday))
                self.runs.create(run, S.SKIPPED, holiday, now)
            elif run_now:
                log_triggered(run, CATCH_UP_REASON)
                self.runs.trigger(run, task, now, None, CATCH_UP_REASON)
            else:
                log_run(run, "Task Validated", _skipped(task, MISSED_REASON))
                self.runs.create(run, S.SKIPPED, MISSED_REASON, now)

    # ----- definitions -----

    def put_task(self, task: TaskDef, now: datetime, since: datetime | None = None) -> list[Slot]:
        """Add or replace a task; its next occurrence is recomputed at once.

        With ``since`` (start-up after downtime), returns the slots in (since, now] as well.
        """
        if self.index.put(task):
            self.groups.definitions_changed()
        key: WheelKey = ("task", task.tid)
        if task.task_group is not None or not task.active:
            self._schedules.pop(task.tid, None)
            self._timers.cancel(key)
            return []
        schedule = self._shared_schedule(task)
        self._schedules[task.tid] = schedule
        slot = self._next_slot(task, schedule, since or now)
        missed: list[Slot] = []
        while slot is not None and slot.scheduled_utc <= now:
            missed.append(slot)
            slot = self._next_slot(task, schedule, slot.scheduled_utc)
        if slot is None:
            self._timers.cancel(key)
        else:
            self._timers.schedule(key, slot.scheduled_utc, slot)
        return missed

    def _shared_schedule(self, task: TaskDef) -> Schedule:
        """One Schedule object per distinct schedule: 100,000 tasks share a few hundred."""
        key = (task.timezone, task.day_of_week, task.ordinal_day, task.trigger_times,
               task.run_frequency)  # fmt: skip
        schedule = self._schedule_cache.get(key)
        if schedule is None:
            schedule = self._schedule_cache[key] = Schedule.from_task(task)
        return schedule

    def next_slot_after(self, task: TaskDef, after: datetime) -> Slot | None:
        """The task's first occurrence after ``after`` (cached across tasks of one schedule),
        None when it has no schedule of its own or none to come."""
        schedule = self._schedules.get(task.tid)
        return None if schedule is None else self._next_slot(task, schedule, after)

    def _next_slot(self, task: TaskDef, schedule: Schedule, after: datetime) -> Slot | None:
        """next_slot, computed once for all tasks sharing a schedule, calendar and instant."""
        key = (schedule, task.calendar, after)
        if key in self._slot_cache:
            return self._slot_cache[key]
        if len(self._slot_cache) > 50_000:
            self._slot_cache.clear()
        slot = self._slot_cache[key] = next_slot(
            schedule, after, self.calendars.holiday_check(task.calendar or None)
        )
        return slot

    def remove_task(self, tid: int) -> None:
        if self.index.remove(tid):
            self.groups.definitions_changed()
        self._schedules.pop(tid, None)
        self._timers.cancel(("task", tid))

    def calendars_changed(self) -> None:
        """Forget cached next slots: business-day ordinals depend on calendar contents."""
        self._slot_cache.clear()

    def pending_task_slots(self) -> Iterator[tuple[int, Slot]]:
        """Every single task's next occurrence, in time order, lazily (the timer wheel's)."""
        for (kind, tid), _, payload in self._timers.in_order():
            if kind == "task" and isinstance(payload, Slot):
                yield tid, payload

    def next_slot_of(self, tid: int) -> Slot | None:
        slot = self._timers.payload_of(("task", tid))
        return slot if isinstance(slot, Slot) else None

    def schedule_of(self, tid: int) -> Schedule | None:
        return self._schedules.get(tid)

    # ----- timer loop -----

    async def run_timers(self) -> None:
        """Fire wheel entries at their instant (until cancelled)."""
        await self._timers.run(self._fire)

    async def run_ticks(self) -> None:
        """Persist a heartbeat so the next start knows when the scheduler was last alive."""
        while True:
            self.last_tick = self._clock.now()
            self._store.set_meta("last_tick", self.last_tick.isoformat())
            await self._clock.sleep_until(self.last_tick + timedelta(seconds=TICK_SECONDS))

    def _fire(self, key: WheelKey, payload: Any, now: datetime) -> None:
        kind, ident = key
        if kind == "task":
            self._fire_slot(ident, payload, now)
        elif kind == "group":
            self.groups.fire_slot(ident, payload, now)
        elif kind == "retry":
            self.runs.retry_due(ident, now)
        elif kind == "expire":
            self.runs.expiry_due(ident, payload, now)

    def _fire_slot(self, tid: int, slot: Slot, now: datetime) -> None:
        task = self.index.get(tid)
        schedule = self._schedules.get(tid)
        if task is None or schedule is None:
            return
        upcoming = self._next_slot(task, schedule, slot.scheduled_utc)
        if upcoming is not None:
            self._timers.schedule(("task", tid), upcoming.scheduled_utc, upcoming)
        holiday = self._holiday(task, slot)
        run = self.runs.new_run(task, slot.scheduled_utc, slot.run_date, slot.local_time, now)
        if run.run_id in self.runs.live:
            return
        log_triggered(run)
        if holiday is not None:
            log_run(run, "Task Validated", _skipped(task, holiday, calendar=holiday))
            self.runs.create(run, S.SKIPPED, holiday, now)
            return
        if self.freezes.covers(tid, run.run_date, run.local_time):
            log_run(run, "Task Validated", validation(task, f"FROZEN ({FROZEN_REASON})",
                                                      freeze="frozen"))  # fmt: skip
            self.runs.create(run, S.FROZEN, FROZEN_REASON, now)
            return
        self.runs.trigger(run, task, now, None)

    def _holiday(self, task: TaskDef, slot: Slot) -> str | None:
        """The SKIPPED reason when the slot's local date is a holiday of the task's calendar."""
        if not task.calendar:
            return None
        reason = self.calendars.holiday_reason(task.calendar, slot.local_date)
        return None if reason is None else f"holiday in calendar {task.calendar}: {reason}"

    def task_status(self, task: TaskDef, now: datetime, days: DayBounds | None = None) -> RunState:
        """Task status (spec 7.1): latest run if non-final, else PASSIVE/ACTIVE/IDLE.
        ``days``: a cache of each timezone's local day at ``now``, for many tasks at once."""
        latest = self.runs.latest.get(task.tid)
        if latest is not None and not latest[1].final:
            return latest[1]
        if not task.active:
            return S.PASSIVE
        slot = self._timers.payload_of(("task", task.tid))
        if isinstance(slot, Slot) and task.timezone:
            bounds = None if days is None else days.get(task.timezone)
            if bounds is None:
                bounds = local_day_utc(now, task.timezone)
                if days is not None:
                    days[task.timezone] = bounds
            if bounds[0] <= slot.scheduled_utc < bounds[1]:  # on today's local date
                return S.ACTIVE
        return S.IDLE


def _skipped(task: TaskDef, reason: str, calendar: str | None = None) -> str:
    """``Task Validated`` details of a slot recorded SKIPPED without running."""
    return validation(task, f"SKIPPED ({reason})", calendar=calendar)

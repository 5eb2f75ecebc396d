"""Engine: the timer loop and the run lifecycle (trigger, dispatch, results, retries, expiry)."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from easytask.core.clock import Clock
from easytask.core.errors import (
    GroupNotFoundError,
    TaskNotFoundError,
    TransitionError,
)
from easytask.core.misfire import CATCH_UP_REASON, MISSED_REASON, plan_misfires
from easytask.core.models import Run, StateChange, TaskDef
from easytask.core.runid import make_run_id, to_ms
from easytask.core.schedule import Schedule, Slot, next_slot
from easytask.core.states import RunState, check_operator_status, check_transition
from easytask.core.timerwheel import TimerWheel
from easytask.core.validation import stored_text_problem
from easytask.scheduler.agentevents import AgentEvents
from easytask.scheduler.bus import Bus, RunStateChanged
from easytask.scheduler.calendars import CalendarBook
from easytask.scheduler.groups import GroupRunner
from easytask.scheduler.hub import AgentHub
from easytask.scheduler.logs import log_run
from easytask.scheduler.protocol import (
    RunOrder,
)
from easytask.store.events import Freeze
from easytask.store.sqlite import SqliteStore

log = logging.getLogger(__name__)

S = RunState
WheelKey = tuple[str, Any]
TICK_SECONDS = 5.0
GROUP_HISTORY_DAYS = 2
OUTPUT_SIZES_KEPT = 100_000
TASK_DELETED = "task deleted before the run was dispatched"
FROZEN_REASON = "frozen by operator"


class Engine:
    """Owns the in-memory schedule (one wheel entry per task) and every non-final run."""

    def __init__(
        self,
        *,
        instance: str,
        store: SqliteStore,
        clock: Clock,
        hub: AgentHub,
        calendars: CalendarBook,
        bus: Bus,
    ) -> None:
        self.instance = instance
        self._store = store
        self._clock = clock
        self._hub = hub
        self._calendars = calendars
        self._bus = bus
        self.tasks: dict[int, TaskDef] = {}
        # Group name -> {member task name: tid}: dependency lookups never scan every task.
        self.members_by_group: dict[str, dict[str, int]] = {}
        self._schedules: dict[int, Schedule] = {}
        self._schedule_cache: dict[tuple[str | None, ...], Schedule] = {}
        self._slot_cache: dict[tuple[Schedule, str | None, datetime], Slot | None] = {}
        self.live: dict[str, Run] = {}
        self.latest: dict[int, tuple[str, RunState]] = {}
        self._out_sizes: dict[tuple[str, str], int] = {}
        self._wheel: TimerWheel[WheelKey] = TimerWheel()
        self._wake = asyncio.Event()
        self.last_tick: datetime | None = None
        self.freezes: set[tuple[int, str, str]] = set()
        self.groups = GroupRunner(self)
        self.agent_events = AgentEvents(self)
        hub.bind(self.agent_events)

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
            for group in await self._store.groups.load_groups()
        ]
        escaped: set[int] = set()
        tasks = await self._store.load_tasks(escaped)
        for task in await self._disable_unfit(tasks, escaped, now):
            slots = self.put_task(task, now, since)
            slots = [s for s in slots if (task.tid, to_ms(s.scheduled_utc)) not in fired]
            if slots:
                missed.append((task, slots))
        self.latest = await self._store.latest_run_states()
        self.freezes = {
            (f.tid, f.run_date, f.trigger_time) for f in await self._store.events.load_freezes()
        }
        live = await self._store.load_live_runs()
        self._out_sizes = await self._store.output_sizes(r.run_id for r in live)
        for run in live:
            self.live[run.run_id] = run
            self._resume(run, now)
        history = now - timedelta(days=GROUP_HISTORY_DAYS)
        occurrences = await self._store.groups.load_group_runs(
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
            len(self.tasks), len(live), len(missed), last_tick or "never",
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
            run = self._new_run(task, slot.scheduled_utc, slot.run_date, slot.local_time, now)
            holiday = self._holiday(task, slot)
            if holiday is not None:
                log_run(run, "Task Validated", f"skipped: {holiday}")
                self._create(run, S.SKIPPED, holiday, now)
            elif run_now:
                log_run(run, "Task Triggered", f"run_date={run.run_date} local={run.local_time} "
                        f"{run.timezone} attempt=1 forced=false ({CATCH_UP_REASON})")  # fmt: skip
                self._trigger(run, task, now, None, CATCH_UP_REASON)
            else:
                log_run(run, "Task Validated", f"skipped: {MISSED_REASON}")
                self._create(run, S.SKIPPED, MISSED_REASON, now)

    def _resume(self, run: Run, now: datetime) -> None:
        task = self.tasks.get(run.tid)
        if task is None and run.state in (S.TRIGGER, S.RESTARTING):
            self._finish(run, S.TERMINATED, TASK_DELETED, now)
            return
        if run.state is S.TRIGGER and task is not None:
            self._arm_expiry(run, task)
            self._hub.submit(self._order(run, task))
        elif run.state is S.RESTARTING and task is not None:
            due = run.created_at + timedelta(seconds=task.retry_delay)
            self._wheel.schedule(("retry", run.run_id), max(due, now))
        # STARTED and RUNNING runs wait for their agent's hello (agent_connected).

    # ----- definitions -----

    def put_task(self, task: TaskDef, now: datetime, since: datetime | None = None) -> list[Slot]:
        """Add or replace a task; its next occurrence is recomputed at once.

        With ``since`` (start-up after downtime), returns the slots in (since, now] as well.
        """
        self._unindex(task.tid)
        self.tasks[task.tid] = task
        if task.task_group is not None:
            self.members_by_group.setdefault(task.task_group, {})[task.name] = task.tid
            self.groups.definitions_changed()
        key: WheelKey = ("task", task.tid)
        if task.task_group is not None or not task.active:
            self._schedules.pop(task.tid, None)
            self._wheel.cancel(key)
            return []
        schedule = self._shared_schedule(task)
        self._schedules[task.tid] = schedule
        slot = self._next_slot(task, schedule, since or now)
        missed: list[Slot] = []
        while slot is not None and slot.scheduled_utc <= now:
            missed.append(slot)
            slot = self._next_slot(task, schedule, slot.scheduled_utc)
        if slot is None:
            self._wheel.cancel(key)
        else:
            self._wheel.schedule(key, slot.scheduled_utc, slot)
        self._wake.set()
        return missed

    def _shared_schedule(self, task: TaskDef) -> Schedule:
        """One Schedule object per distinct schedule: 100,000 tasks share a few hundred."""
        key = (task.timezone, task.day_of_week, task.ordinal_day, task.trigger_times,
               task.run_frequency)  # fmt: skip
        schedule = self._schedule_cache.get(key)
        if schedule is None:
            schedule = self._schedule_cache[key] = Schedule.from_task(task)
        return schedule

    def _next_slot(self, task: TaskDef, schedule: Schedule, after: datetime) -> Slot | None:
        """next_slot, computed once for all tasks sharing a schedule, calendar and instant."""
        key = (schedule, task.calendar, after)
        if key in self._slot_cache:
            return self._slot_cache[key]
        if len(self._slot_cache) > 50_000:
            self._slot_cache.clear()
        slot = self._slot_cache[key] = next_slot(
            schedule, after, self.calendar_check(task.calendar)
        )
        return slot

    # ----- collaborators' view (GroupRunner) -----

    @property
    def wheel(self) -> TimerWheel[WheelKey]:
        return self._wheel

    @property
    def store(self) -> SqliteStore:
        return self._store

    def wake(self) -> None:
        self._wake.set()

    def now(self) -> datetime:
        return self._clock.now()

    def calendar_check(self, calendar: str | None) -> Callable[[date], bool] | None:
        """The business-day holiday test of a calendar (None without one)."""
        return self._calendars.holiday_check(calendar or None)

    def zone_of(self, task: TaskDef) -> str:
        """The zone a task's dates are local to: its group's, else its own."""
        group = self.groups.group_by_name(task.task_group) if task.task_group else None
        return group.timezone if group else (task.timezone or "UTC")

    def holiday_of(self, calendar: str | None, scheduled: datetime, timezone: str) -> str | None:
        """SKIPPED reason when the slot's local date is a holiday of ``calendar``."""
        if not calendar:
            return None
        day = scheduled.astimezone(ZoneInfo(timezone)).date()
        reason = self._calendars.holiday_reason(calendar, day)
        return None if reason is None else f"holiday in calendar {calendar}: {reason}"

    def new_run(
        self, task: TaskDef, scheduled: datetime, run_date: str, local_time: str, now: datetime
    ) -> Run:
        return self._new_run(task, scheduled, run_date, local_time, now)

    def create_run(self, run: Run, state: RunState, reason: str, now: datetime) -> None:
        self._create(run, state, reason, now)

    def set_state(self, run: Run, state: RunState, now: datetime, reason: str | None) -> None:
        self._set_state(run, state, now, reason)

    def force_state(self, run: Run, state: RunState, now: datetime, reason: str) -> None:
        self._force_state(run, state, now, reason)

    def trigger(self, run: Run, task: TaskDef, now: datetime, src: RunState) -> None:
        self._trigger(run, task, now, src)

    def reopen_run(self, run: Run, now: datetime) -> None:
        """SKIPPED (unmet dependency) -> ACTIVE after an operator changed an upstream state."""
        run.ended_at = None
        self._set_state(run, S.ACTIVE, now, "")

    async def force_run_group(self, gid: int, run_date: str | None, by: str) -> str:
        """FORCE_RUN_TASK on a group: a new occurrence now; members follow their dependencies."""
        group = self.groups.groups.get(gid)
        if group is None:
            raise GroupNotFoundError(f"group {gid} not found")
        now = self._clock.now()
        local = now.astimezone(ZoneInfo(group.timezone))
        occurrence = self.groups.open_occurrence(
            group, now, run_date or f"{local:%Y%m%d}", f"{local:%H:%M:%S}", now, forced=True
        )
        await self._store.writer.flush()
        return occurrence.run_date if occurrence else (run_date or f"{local:%Y%m%d}")

    def calendars_changed(self) -> None:
        """Forget cached next slots: business-day ordinals depend on calendar contents."""
        self._slot_cache.clear()

    def _unindex(self, tid: int) -> None:
        old = self.tasks.get(tid)
        if old is not None and old.task_group is not None:
            self.groups.definitions_changed()
            members = self.members_by_group.get(old.task_group, {})
            if members.get(old.name) == tid:
                del members[old.name]

    def remove_task(self, tid: int) -> None:
        self._unindex(tid)
        self.tasks.pop(tid, None)
        self._schedules.pop(tid, None)
        self._wheel.cancel(("task", tid))

    def next_slot_of(self, tid: int) -> Slot | None:
        slot = self._wheel.payload_of(("task", tid))
        return slot if isinstance(slot, Slot) else None

    def schedule_of(self, tid: int) -> Schedule | None:
        return self._schedules.get(tid)

    # ----- timer loop -----

    async def run_timers(self) -> None:
        """Fire wheel entries at their instant; wake early when an earlier one is added."""
        while True:
            due = self._wheel.next_due()
            if due is None:
                await self._wake.wait()
                self._wake.clear()
                continue
            if due > self._clock.now():
                self._wake.clear()
                sleeper = asyncio.ensure_future(self._clock.sleep_until(due))
                waker = asyncio.ensure_future(self._wake.wait())
                try:
                    await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    sleeper.cancel()
                    waker.cancel()
                continue
            now = self._clock.now()
            for key, payload in self._wheel.advance(now):
                self._fire(key, payload, now)

    async def run_ticks(self) -> None:
        """Persist a heartbeat so the next start knows when the scheduler was last alive."""
        while True:
            self.last_tick = self._clock.now()
            self._store.set_meta("last_tick", self.last_tick.isoformat())
            await asyncio.sleep(TICK_SECONDS)

    def _fire(self, key: WheelKey, payload: Any, now: datetime) -> None:
        kind, ident = key
        if kind == "task":
            self._fire_slot(ident, payload, now)
        elif kind == "group":
            self.groups.fire_slot(ident, payload, now)
        elif kind == "retry":
            run = self.live.get(ident)
            task = self.tasks.get(run.tid) if run else None
            if run is not None and run.state is S.RESTARTING:
                if task is None:
                    self._finish(run, S.TERMINATED, TASK_DELETED, now)
                else:
                    self._trigger(run, task, now, S.RESTARTING)
        elif kind == "expire":
            run = self.live.get(ident)
            if run is not None and run.state is S.TRIGGER:
                seconds = payload
                agent = self._hub.withdraw(run.run_id)
                if agent is not None:
                    self._hub.kill(agent, run.run_id, "rejected")
                self._finish(run, S.REJECTED, f"not accepted within {seconds} s", now)

    def _fire_slot(self, tid: int, slot: Slot, now: datetime) -> None:
        task = self.tasks.get(tid)
        schedule = self._schedules.get(tid)
        if task is None or schedule is None:
            return
        upcoming = self._next_slot(task, schedule, slot.scheduled_utc)
        if upcoming is not None:
            self._wheel.schedule(("task", tid), upcoming.scheduled_utc, upcoming)
        holiday = self._holiday(task, slot)
        run = self._new_run(task, slot.scheduled_utc, slot.run_date, slot.local_time, now)
        if run.run_id in self.live:
            return
        log_run(
            run,
            "Task Triggered",
            f"run_date={run.run_date} local={run.local_time} {run.timezone} "
            f"utc={slot.scheduled_utc:%H:%M} attempt=1 forced=false",
        )
        if holiday is not None:
            log_run(run, "Task Validated", f"skipped: {holiday}")
            self._create(run, S.SKIPPED, holiday, now)
            return
        if self.is_frozen(tid, run.run_date, run.local_time):
            log_run(run, "Task Validated", f"frozen: {FROZEN_REASON}")
            self._create(run, S.FROZEN, FROZEN_REASON, now)
            return
        self._trigger(run, task, now, None)

    def is_frozen(self, tid: int, run_date: str, local_time: str) -> bool:
        """A stored freeze covers the slot (the whole date, or that trigger time)."""
        return (tid, run_date, "") in self.freezes or (tid, run_date, local_time) in self.freezes

    def _holiday(self, task: TaskDef, slot: Slot) -> str | None:
        """The SKIPPED reason when the slot's local date is a holiday of the task's calendar."""
        if not task.calendar:
            return None
        reason = self._calendars.holiday_reason(task.calendar, slot.local_date)
        return None if reason is None else f"holiday in calendar {task.calendar}: {reason}"

    # ----- run creation and dispatch -----

    def _new_run(
        self,
        task: TaskDef,
        scheduled: datetime,
        run_date: str,
        local_time: str,
        now: datetime,
        attempt: int = 1,
    ) -> Run:
        return Run(
            run_id=make_run_id(self.instance, task.tid, scheduled, attempt),
            tid=task.tid,
            name=task.name,
            instance=self.instance,
            run_date=run_date,
            scheduled_utc=scheduled,
            local_time=local_time,
            timezone=task.timezone or "UTC",
            attempt=attempt,
            state=S.TRIGGER,
            queue=task.run_on_host,
            created_at=now,
            updated_at=now,
        )

    def _create(
        self, run: Run, state: RunState, reason: str, now: datetime
    ) -> asyncio.Future[None]:
        """Record a new run in its initial state."""
        run.state = state
        run.reason = reason
        if state is S.TRIGGER:
            run.triggered_at = now
        if state.final:
            run.ended_at = now
        else:
            self.live[run.run_id] = run
        self.latest[run.tid] = (run.run_id, state)
        self._bus.publish(RunStateChanged(run.run_id, run.tid, state))
        fut = self._store.save_run(run, StateChange(run.run_id, None, state, now, reason))
        if run.group_run_id:
            self.groups.member_changed(run)
        return fut

    def _trigger(
        self, run: Run, task: TaskDef, now: datetime, src: RunState | None, reason: str = ""
    ) -> None:
        """Put a run in TRIGGER, commit it, then offer it to an agent (invariant 1)."""
        checks = f"active={'yes' if task.active else 'no'} calendar=ok queue={task.run_on_host}"
        log_run(run, "Task Validated", checks)
        if src is None:
            fut = self._create(run, S.TRIGGER, reason, now)
        else:
            run.triggered_at = now
            fut = self._set_state(run, S.TRIGGER, now, "")
        self._arm_expiry(run, task)
        order = self._order(run, task)
        fut.add_done_callback(lambda f: self._dispatch_committed(f, order))

    def _dispatch_committed(self, fut: asyncio.Future[None], order: RunOrder) -> None:
        if fut.exception() is not None:
            log.error("run %s not dispatched: its record was not stored", order.run_id)
            return
        run = self.live.get(order.run_id)
        if run is not None and run.state is S.TRIGGER:
            self._hub.submit(order)

    def _arm_expiry(self, run: Run, task: TaskDef) -> None:
        seconds = task.task_accept_expiry_time
        if seconds and run.triggered_at is not None:
            due = run.triggered_at + timedelta(seconds=seconds)
            self._wheel.schedule(("expire", run.run_id), due, seconds)
            self._wake.set()

    def _order(self, run: Run, task: TaskDef) -> RunOrder:
        return RunOrder(
            run_id=run.run_id,
            tid=task.tid,
            name=task.name,
            cmd=task.cmd,
            stdout=task.stdout,
            stderr=task.stderr,
            queue=task.run_on_host,
            attempt=run.attempt,
            run_date=run.run_date,
            local_time=run.local_time,
            timezone=run.timezone,
            run_as_user=task.run_as_user or "",
            profile=task.profile,
            max_run_time=task.max_run_time or 0,
        )

    async def force_run(self, tid: int, run_date: str | None, by: str) -> Run:
        """FORCE_RUN_TASK: a new run now, ignoring schedule, calendar and ``active``."""
        task = self.tasks.get(tid)
        if task is None:
            raise TaskNotFoundError(f"task {tid} not found")
        zone = self.zone_of(task)
        now = self._clock.now()
        local = now.astimezone(ZoneInfo(zone))
        # Millisecond run ids: two force-runs in the same millisecond would collide.
        while any(r.run_id == make_run_id(self.instance, tid, now, 1) for r in self.live.values()):
            now += timedelta(milliseconds=1)
        run = self._new_run(task, now, run_date or f"{local:%Y%m%d}", f"{local:%H:%M:%S}", now)
        run.timezone = zone  # a forced member runs on its own, outside any occurrence
        run.forced = True
        run.forced_by = by
        log_run(
            run,
            "Task Triggered",
            f"run_date={run.run_date} local={run.local_time} {run.timezone} "
            f"utc={now:%H:%M:%S} attempt=1 forced=true by={by}",
        )
        self._trigger(run, task, now, None)
        await self._store.writer.flush()
        return run

    # ----- state changes -----

    def _set_state(
        self, run: Run, state: RunState, now: datetime, reason: str | None = None
    ) -> asyncio.Future[None]:
        check_transition(run.run_id, run.state, state)
        change = StateChange(run.run_id, run.state, state, now, reason or "")
        run.state = state
        if reason is not None:
            run.reason = reason
        run.updated_at = now
        if state.final:
            self.live.pop(run.run_id, None)
            self._wheel.cancel(("expire", run.run_id))
            self._keep_output_sizes(run.run_id)
        else:
            self.live[run.run_id] = run
        latest = self.latest.get(run.tid)
        if latest is None or latest[0] == run.run_id:
            self.latest[run.tid] = (run.run_id, state)
        self._bus.publish(RunStateChanged(run.run_id, run.tid, state))
        fut = self._store.save_run(run, change)
        if run.group_run_id:
            self.groups.member_changed(run)
        return fut

    def _finish(
        self, run: Run, state: RunState, reason: str, now: datetime
    ) -> asyncio.Future[None]:
        """Make a run final and, for a failure with attempts left, create the next attempt."""
        if run.ended_at is None:
            run.ended_at = now
        fut = self._set_state(run, state, now, reason)
        self._hub.finished_elsewhere(run.run_id)
        log_run(
            run,
            "Execution Result",
            f"status={state} duration={_fmt_duration(run.duration)} "
            f"return_code={run.return_code} reason={reason or '-'}",
        )
        task = self.tasks.get(run.tid)
        retryable = state is S.FAILED or (state is S.TERMINATED and reason == "timed out")
        if task is not None and retryable and run.attempt <= task.retry_attempts:
            self._retry(run, task, now)
        return fut

    def _retry(self, run: Run, task: TaskDef, now: datetime) -> None:
        nxt = self._new_run(
            task, run.scheduled_utc, run.run_date, run.local_time, now, run.attempt + 1
        )
        nxt.forced, nxt.forced_by = run.forced, run.forced_by
        nxt.group, nxt.group_run_id, nxt.timezone = run.group, run.group_run_id, run.timezone
        reason = f"retry {run.attempt} of {task.retry_attempts} after {run.state}"
        # Queued in the same batch as the previous attempt's final state: one transaction.
        self._create(nxt, S.RESTARTING, reason, now)
        log_run(nxt, "Status Updated", f"{run.state} -> RESTARTING ({reason})")
        if task.retry_delay:
            self._wheel.schedule(("retry", nxt.run_id), now + timedelta(seconds=task.retry_delay))
            self._wake.set()
        else:
            self._trigger(nxt, task, now, S.RESTARTING)

    # ----- operator actions (scheduler/events.py decides the targets) -----

    def freeze(self, tid: int, run_date: str, trigger_time: str, by: str) -> int:
        """Store a freeze and freeze the slot's existing IDLE/ACTIVE/PENDING runs at once."""
        now = self._clock.now()
        self.freezes.add((tid, run_date, trigger_time))
        self._store.events.add_freeze(Freeze(tid, run_date, trigger_time), by, now)
        frozen = 0
        for run in self._slot_runs(tid, run_date, trigger_time):
            if run.state in (S.IDLE, S.ACTIVE, S.PENDING):
                self._set_state(run, S.FROZEN, now, f"frozen by {by}")
                frozen += 1
        return frozen

    def unfreeze(self, tid: int, run_date: str, trigger_time: str, by: str) -> int:
        """Lift a stored freeze; FROZEN runs go through UNFREEZE back into evaluation."""
        now = self._clock.now()
        self.freezes.discard((tid, run_date, trigger_time))
        self._store.events.remove_freeze(Freeze(tid, run_date, trigger_time))
        released = 0
        for run in self._slot_runs(tid, run_date, trigger_time):
            if run.state is S.FROZEN and not self.is_frozen(tid, run_date, run.local_time):
                self._set_state(run, S.UNFREEZE, now, f"unfrozen by {by}")
                task = self.tasks.get(tid)
                if run.group_run_id is not None and run.group_run_id in self.groups.occurrences:
                    # A member waits for its occurrence and its dependency as usual (spec 7.3).
                    opened = self.groups.is_open(run.group_run_id)
                    self._set_state(run, S.ACTIVE if opened else S.IDLE, now, "")
                else:
                    self._set_state(run, S.ACTIVE, now, "")
                    if task is not None:
                        self._trigger(run, task, now, S.ACTIVE)
                released += 1
        return released

    def _slot_runs(self, tid: int, run_date: str, trigger_time: str) -> list[Run]:
        return [
            r
            for r in self.live.values()
            if r.tid == tid
            and r.run_date == run_date
            and (not trigger_time or r.local_time == trigger_time)
        ]

    def terminate(self, run: Run, by: str) -> None:
        """TERMINATE_TASK: end a run not yet on an agent, or ask its agent to kill it."""
        reason = f"terminated by {by}"
        now = self._clock.now()
        if run.state in (S.TRIGGER, S.RESTARTING):
            self._wheel.cancel(("retry", run.run_id))
            self._hub.withdraw(run.run_id)
            log_run(run, "Status Updated", f"{run.state} -> TERMINATED ({reason})")
            self._finish(run, S.TERMINATED, reason, now)
        elif run.state in (S.STARTED, S.RUNNING):
            assert run.agent is not None
            self._hub.kill(run.agent, run.run_id, reason)
            if run.agent in self._hub.sessions:
                log_run(run, "Status Updated", f"terminate requested from agent {run.agent}")
            else:
                # The agent is offline: the run ends now and the kill waits for its return, so
                # an operator is never stuck with a run on a machine that is gone.
                log_run(run, "Status Updated", f"{run.state} -> TERMINATED ({reason}; agent "
                        f"{run.agent} offline, kill delivered when it reconnects)")  # fmt: skip
                self._finish(run, S.TERMINATED, f"{reason} (agent offline)", now)
        else:
            raise TransitionError(f"run {run.run_id} is {run.state}; only a running run ends")

    def modify_status(self, run: Run, status: RunState, by: str) -> Run:
        """MODIFY_TASK_STATUS on the latest attempt of a slot; ACTIVE starts a new attempt."""
        check_operator_status(run.run_id, run.state, status)
        now = self._clock.now()
        reason = f"status modified by {by}"
        live = self.live.get(run.run_id)
        if live is not None:
            run = live
            self._wheel.cancel(("retry", run.run_id))
            self._hub.withdraw(run.run_id)
        task = self.tasks.get(run.tid)
        if status is S.ACTIVE:
            if task is None:
                raise TaskNotFoundError(f"task {run.tid} not found")
            if not run.state.final:
                self._force_state(run, S.TERMINATED, now, reason)
            nxt = self._new_run(
                task, run.scheduled_utc, run.run_date, run.local_time, now, run.attempt + 1
            )
            nxt.forced, nxt.forced_by = run.forced, run.forced_by
            nxt.group, nxt.group_run_id, nxt.timezone = run.group, run.group_run_id, run.timezone
            self._create(nxt, S.ACTIVE, reason, now)
            if nxt.group_run_id is None or nxt.group_run_id not in self.groups.occurrences:
                self._trigger(nxt, task, now, S.ACTIVE)
            # A member goes through dependency evaluation in its occurrence (GroupRunner).
            return nxt
        self._force_state(run, status, now, reason)
        return run

    def _keep_output_sizes(self, run_id: str) -> None:
        """Remember a final run's stored output size for late chunks; forget the oldest ones."""
        for stream in ("stdout", "stderr"):
            self._out_sizes.setdefault((run_id, stream), 0)
        if len(self._out_sizes) > OUTPUT_SIZES_KEPT:
            for key in list(itertools.islice(self._out_sizes, OUTPUT_SIZES_KEPT // 5)):
                if key[0] not in self.live:
                    del self._out_sizes[key]

    def _force_state(self, run: Run, state: RunState, now: datetime, reason: str) -> None:
        """An operator-set state: bypasses the table (already checked), never retried."""
        change = StateChange(run.run_id, run.state, state, now, reason)
        run.state, run.reason, run.updated_at = state, reason, now
        if state.final:
            run.ended_at = run.ended_at or now
            self.live.pop(run.run_id, None)
            self._wheel.cancel(("expire", run.run_id))
            self._hub.finished_elsewhere(run.run_id)
        else:
            self.live[run.run_id] = run
        latest = self.latest.get(run.tid)
        if latest is None or latest[0] == run.run_id:
            self.latest[run.tid] = (run.run_id, state)
        self._bus.publish(RunStateChanged(run.run_id, run.tid, state))
        log_run(run, "Status Updated", f"{change.from_state} -> {state} ({reason})")
        self._store.save_run(run, change)
        if run.group_run_id:
            self.groups.member_changed(run)

    # ----- queries -----

    def task_status(self, task: TaskDef, now: datetime) -> RunState:
        """Task status (spec 7.1): latest run if non-final, else PASSIVE/ACTIVE/IDLE."""
        latest = self.latest.get(task.tid)
        if latest is not None and not latest[1].final:
            return latest[1]
        if not task.active:
            return S.PASSIVE
        slot = self.next_slot_of(task.tid)
        if slot is not None and task.timezone:
            zone = ZoneInfo(task.timezone)
            if slot.scheduled_utc.astimezone(zone).date() == now.astimezone(zone).date():
                return S.ACTIVE
        return S.IDLE


def _fmt_duration(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.3f}s"

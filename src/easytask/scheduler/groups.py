"""GroupRunner: group occurrences, member runs and dependency release (spec 3, 6.4, 7)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta

from easytask.core.clock import Clock
from easytask.core.deps import Expr, Readiness, TermValue, names, parse_dependency, readiness
from easytask.core.errors import ConflictError, TransitionError
from easytask.core.groups import GroupDef
from easytask.core.misfire import CATCH_UP_REASON, MISSED_REASON, plan_misfires
from easytask.core.models import Run, TaskDef
from easytask.core.records import FINAL_GROUP_STATES, GroupRun
from easytask.core.runid import make_group_run_id
from easytask.core.schedule import Schedule, Slot, next_slot, slots_on
from easytask.core.states import RunState
from easytask.scheduler.calendars import CalendarBook
from easytask.scheduler.freezes import Freezes
from easytask.scheduler.logs import log_run, log_triggered, validation
from easytask.scheduler.runs import RunBook
from easytask.scheduler.taskindex import TaskIndex
from easytask.scheduler.timers import Timers
from easytask.store.ports import Store

log = logging.getLogger(__name__)

S = RunState
GROUP_LETTERS = {"IDLE": "I", "RUNNING": "R", "SUCCESS": "S", "FAILED": "F"}
UNMET_PREFIX = "dependency can no longer be met: "
DISABLED_GROUP = "task group disabled"
MODIFIED_PREFIX = "status modified by "
DISABLED_TASK = "task disabled"
KEEP_DAYS = 3


class GroupRunner:
    """Owns group definitions' wheel entries and every tracked group occurrence."""

    def __init__(
        self,
        *,
        runs: RunBook,
        index: TaskIndex,
        timers: Timers,
        freezes: Freezes,
        calendars: CalendarBook,
        store: Store,
        clock: Clock,
    ) -> None:
        self._runs = runs
        self._index = index
        self._timers = timers
        self._freezes = freezes
        self._calendars = calendars
        self._store = store
        self._clock = clock
        self.groups: dict[int, GroupDef] = {}
        self._schedules: dict[int, Schedule] = {}
        self.occurrences: dict[str, GroupRun] = {}
        self._by_date: dict[tuple[int, str], list[GroupRun]] = defaultdict(list)
        self.member_runs: dict[str, Run] = {}  # run id -> run, for members of tracked occurrences
        self._dirty: set[str] = set()
        self._changed: dict[str, set[int]] = {}  # occurrence -> members changed since evaluated
        self._dependents: dict[str, dict[str, set[int]]] = {}
        self._scheduled = False
        self._catch_up: set[str] = set()  # occurrences run late by the misfire policy (spec 4.6)

    # ----- definitions -----

    def group_by_name(self, name: str) -> GroupDef | None:
        for group in self.groups.values():
            if group.name == name:
                return group
        return None

    def zone_of(self, task: TaskDef) -> str:
        """The zone a task's dates are local to: its group's, else its own."""
        group = self.group_by_name(task.task_group) if task.task_group else None
        return group.timezone if group else (task.timezone or "UTC")

    def members(self, group: GroupDef) -> list[TaskDef]:
        tids = self._index.member_tids(group.name).values()
        return [self._index.tasks[tid] for tid in sorted(tids)]

    def put_group(
        self, group: GroupDef, now: datetime, since: datetime | None = None
    ) -> list[Slot]:
        """Add or replace a group; with ``since`` also return the slots in (since, now]."""
        self.groups[group.gid] = group
        schedule = Schedule.from_fields(
            timezone=group.timezone, day_of_week=group.day_of_week,
            ordinal_day=group.ordinal_day, trigger_times=group.trigger_times, run_frequency=None,
        )  # fmt: skip
        self._schedules[group.gid] = schedule
        holidays = self._calendars.holiday_check(group.calendar or None)
        slot = next_slot(schedule, since or now, holidays)
        missed: list[Slot] = []
        while slot is not None and slot.scheduled_utc <= now:
            missed.append(slot)
            slot = next_slot(schedule, slot.scheduled_utc, holidays)
        key = ("group", group.gid)
        if slot is None:
            self._timers.cancel(key)
        else:
            self._timers.schedule(key, slot.scheduled_utc, slot)
        return missed

    def settle_missed(self, group: GroupDef, slots: list[Slot], now: datetime) -> None:
        """Misfire policy for a group: applied to the whole occurrence (spec 4.6)."""
        for slot, run_now in plan_misfires(group.misfire_policy, group.misfire_grace, slots, now):
            gr_id = make_group_run_id(self._runs.instance, group.gid, slot.scheduled_utc)
            if gr_id in self.occurrences:
                continue  # it fired before the scheduler went down
            if run_now:
                self._catch_up.add(gr_id)  # its members trigger with the catch-up reason
            self.open_occurrence(group, slot.scheduled_utc, slot.run_date, slot.local_time, now,
                                 skip_reason=None if run_now else MISSED_REASON)  # fmt: skip

    def remove_group(self, gid: int) -> None:
        self.groups.pop(gid, None)
        self._schedules.pop(gid, None)
        self._timers.cancel(("group", gid))

    def schedule_of(self, gid: int) -> Schedule | None:
        return self._schedules.get(gid)

    # ----- start-up -----

    def adopt(self, occurrences: list[GroupRun], members: list[Run]) -> None:
        """Track occurrences loaded from the store, with their member runs."""
        for g in occurrences:
            self._track(g)
        for run in sorted(members, key=lambda r: r.attempt):
            owner = self.occurrences.get(run.group_run_id or "")
            if owner is not None:
                owner.members[run.tid] = run.run_id
                self.member_runs[run.run_id] = self._runs.live.get(run.run_id, run)
        for g in occurrences:
            if not g.final:
                self._mark(g.group_run_id)

    def _track(self, g: GroupRun) -> None:
        self.occurrences[g.group_run_id] = g
        self._by_date[(g.gid, g.run_date)].append(g)

    # ----- firing -----

    def fire_slot(self, gid: int, slot: Slot, now: datetime) -> None:
        group = self.groups.get(gid)
        schedule = self._schedules.get(gid)
        if group is None or schedule is None:
            return
        upcoming = next_slot(
            schedule, slot.scheduled_utc, self._calendars.holiday_check(group.calendar or None)
        )
        if upcoming is not None:
            self._timers.schedule(("group", gid), upcoming.scheduled_utc, upcoming)
        self.open_occurrence(group, slot.scheduled_utc, slot.run_date, slot.local_time, now)

    def open_occurrence(
        self, group: GroupDef, scheduled: datetime, run_date: str, local_time: str,
        now: datetime, forced: bool = False, skip_reason: str | None = None,
    ) -> GroupRun | None:  # fmt: skip
        """Create a group occurrence and one run per member (spec 3, 7.2)."""
        gr_id = make_group_run_id(self._runs.instance, group.gid, scheduled)
        if gr_id in self.occurrences:
            return None
        g = GroupRun(gr_id, group.gid, group.name, run_date, local_time, scheduled, "IDLE",
                     now, now, forced=forced)  # fmt: skip
        self._track(g)
        holiday = (
            None
            if forced
            else self._calendars.holiday_of(group.calendar, scheduled, group.timezone)
        )
        skip = skip_reason or (DISABLED_GROUP if not group.active and not forced else holiday)
        log.info("group %s (gid %d) occurrence %s opened for %s %s%s", group.name, group.gid,
                 gr_id, run_date, local_time, f" ({skip})" if skip else "")  # fmt: skip
        for task in self.members(group):
            run = self._runs.new_run(task, scheduled, run_date, local_time, now)
            run.timezone, run.group, run.group_run_id = group.timezone, group.name, gr_id
            run.forced = forced
            g.members[task.tid] = run.run_id
            self.member_runs[run.run_id] = run
            own_holiday = None if forced else self._calendars.holiday_of(task.calendar, scheduled,
                                                                      group.timezone)  # fmt: skip
            log_triggered(run, f"group {group.name} occurrence {gr_id}")
            if skip:
                self._skip_new(run, task, skip, now)
            elif not task.active:
                self._skip_new(run, task, DISABLED_TASK, now)
            elif own_holiday:
                self._skip_new(run, task, own_holiday, now, calendar=own_holiday)
            elif self._freezes.covers(task.tid, run_date, local_time):
                checks = validation(task, "FROZEN (frozen by operator)", freeze="frozen")
                log_run(run, "Task Validated", checks)
                self._runs.create(run, S.FROZEN, "frozen by operator", now)
            else:
                self._runs.create(run, S.IDLE, "", now)
        if skip:
            self._end(g, "SKIPPED", skip, now)
        elif group.dependency and not forced:
            self._set(g, "PENDING", "", now)
            self._mark(gr_id)
        else:
            self._open(g, now)
        return g

    def _skip_new(
        self, run: Run, task: TaskDef, reason: str, now: datetime, calendar: str | None = None
    ) -> None:
        checks = validation(task, f"SKIPPED ({reason})", forced=run.forced, calendar=calendar)
        log_run(run, "Task Validated", checks)
        self._runs.create(run, S.SKIPPED, reason, now)

    def _open(self, g: GroupRun, now: datetime) -> None:
        g.started_at = now
        self._set(g, "RUNNING", "", now)
        for tid, run_id in list(g.members.items()):
            run = self._runs.live.get(run_id)
            if run is not None and run.state is S.IDLE:
                self._runs.set_state(run, S.ACTIVE, now, "")
                self._release(g, self._index.tasks.get(tid), run, now)
        self._mark(g.group_run_id)

    # ----- evaluation -----

    def member_changed(self, run: Run) -> None:
        """Called by the engine after every state change of a member run."""
        gr_id = run.group_run_id
        g = self.occurrences.get(gr_id) if gr_id else None
        if g is None:
            return
        current = g.members.get(run.tid)
        if current is None or _attempt(current) <= run.attempt:
            g.members[run.tid] = run.run_id
            self.member_runs[run.run_id] = run
        changed = self._changed.get(g.group_run_id)
        if changed is not None or g.group_run_id not in self._dirty:
            self._changed.setdefault(g.group_run_id, set()).add(run.tid)
        self._mark(g.group_run_id, partial=True)

    def _mark(self, gr_id: str, partial: bool = False) -> None:
        if not partial:
            self._changed.pop(gr_id, None)  # evaluate every member
        self._dirty.add(gr_id)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._evaluate_dirty)

    def _evaluate_dirty(self) -> None:
        self._scheduled = False
        now = self._clock.now()
        rounds = 0
        while self._dirty and rounds < 1000:
            rounds += 1
            gr_id = self._dirty.pop()
            g = self.occurrences.get(gr_id)
            if g is not None:
                self._evaluate(g, now)
        if self._dirty and not self._scheduled:
            # Yield to the loop, then go on: a large start-up backlog never stalls.
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._evaluate_dirty)

    def _evaluate(self, g: GroupRun, now: datetime) -> None:
        group = self.groups.get(g.gid)
        if g.state == "PENDING":
            expr = _parse(group.dependency) if group else None
            decision = readiness(expr, self._group_lookup(g)) if expr else Readiness.MET
            if decision is Readiness.MET:
                self._open(g, now)
            elif decision is Readiness.UNMET:
                reason = UNMET_PREFIX + (group.dependency if group else "")
                for run_id in g.members.values():
                    run = self._runs.live.get(run_id)
                    if run is not None and not run.state.final:
                        self._runs.force_state(run, S.SKIPPED, now, reason)
                self._end(g, "SKIPPED", reason, now)
            return
        if g.state == "SKIPPED":
            return  # a skipped occurrence stays skipped: its members never run
        changed = self._changed.pop(g.group_run_id, None)
        for tid in self._candidates(g, changed):
            member_run_id = g.members.get(tid)
            run = self.member_runs.get(member_run_id) if member_run_id else None
            if run is not None:
                self._reconsider(g, self._index.tasks.get(tid), run, now)
        self._settle_state(g, now)

    def _candidates(self, g: GroupRun, changed: set[int] | None) -> list[int]:
        """Members to look at: all, or the changed ones and those whose expression names them.

        Looking only at dependents keeps a burst in a large group linear instead of quadratic.
        """
        if changed is None:
            return list(g.members)
        group = self.groups.get(g.gid)
        index = self._dependents_of(group.name if group else g.name)
        out = set(changed)
        for tid in changed:
            task = self._index.tasks.get(tid)
            if task is not None:
                out.update(index.get(task.name, ()))
        return sorted(out)

    def _dependents_of(self, group_name: str) -> dict[str, set[int]]:
        """Task name -> tids of the group's members whose expression references it (cached)."""
        index = self._dependents.get(group_name)
        if index is None:
            index = {}
            for tid in self._index.member_tids(group_name).values():
                task = self._index.tasks.get(tid)
                expr = _parse(task.dependency) if task and task.dependency else None
                for name in names(expr) if expr else ():
                    index.setdefault(name, set()).add(tid)
            self._dependents[group_name] = index
        return index

    def definitions_changed(self) -> None:
        """A grouped task changed: rebuild dependents indexes on next use."""
        self._dependents.clear()

    def _settle_state(self, g: GroupRun, now: datetime) -> None:
        """Group state from its members (spec 6.4), recomputed on every change, even once ended."""
        states = [self._state_of(run_id) for run_id in g.members.values()]
        if any(s is None or not s.final for s in states):
            if g.final:
                g.ended_at = None
                self._set(g, "RUNNING", "", now)
            return
        state = "SUCCESS" if all(s in (S.SUCCESS, S.SKIPPED) for s in states) else "FAILED"
        if g.reason.startswith(MODIFIED_PREFIX) and g.final:
            return  # an operator's state stands while its members stay final
        if g.state != state:
            self._end(g, state, "", now)

    def _reconsider(self, g: GroupRun, task: TaskDef | None, run: Run, now: datetime) -> None:
        if run.state in (S.PENDING, S.ACTIVE) and run.run_id in self._runs.live:
            self._release(g, task, run, now)
        elif task and run.state is S.SKIPPED and run.reason == UNMET_PREFIX + task.dependency:
            expr = _parse(task.dependency)
            if expr and readiness(expr, self._member_lookup(g)) is not Readiness.UNMET:
                # After MODIFY_TASK_STATUS the expression may hold again (spec 6.4).
                self._runs.reopen(run, now)
                if g.final:
                    g.ended_at = None
                    self._set(g, "RUNNING", "", now)
                self._release(g, task, run, now)

    def _release(self, g: GroupRun, task: TaskDef | None, run: Run, now: datetime) -> None:
        """ACTIVE/PENDING member: trigger when its expression holds, skip when it never will."""
        if task is None:
            # Its task was deleted while the run waited: it will never run (spec 3).
            self._runs.force_state(run, S.SKIPPED, now, "task deleted")
            return
        expr: Expr | None = _parse(task.dependency) if task.dependency else None
        decision = readiness(expr, self._member_lookup(g)) if expr else Readiness.MET
        if decision is Readiness.MET:
            value = f'"{task.dependency}"=true' if expr else "none"
            reason = CATCH_UP_REASON if g.group_run_id in self._catch_up else ""
            self._runs.trigger(run, task, now, run.state, reason, dependency=value)
        elif decision is Readiness.WAITING:
            if run.state is S.ACTIVE:
                self._runs.set_state(run, S.PENDING, now, "")
                log_run(run, "Task Validated", f'dependency="{task.dependency}" not yet true '
                        "-> PENDING", logging.DEBUG)  # fmt: skip
        else:
            if run.state is S.ACTIVE:
                self._runs.set_state(run, S.PENDING, now, "")
            reason = UNMET_PREFIX + task.dependency
            value = f'"{task.dependency}"=false (can no longer be met)'
            checks = validation(task, f"SKIPPED ({reason})", forced=run.forced, dependency=value)
            log_run(run, "Task Validated", checks)
            self._runs.set_state(run, S.SKIPPED, now, reason)

    # ----- lookups -----

    def _state_of(self, run_id: str) -> RunState | None:
        run = self._runs.live.get(run_id) or self.member_runs.get(run_id)
        return None if run is None else run.state

    def _member_lookup(self, g: GroupRun) -> Callable[[str], TermValue]:
        group = self.groups.get(g.gid)
        names = self._index.member_tids(group.name if group else g.name)

        def lookup(name: str) -> TermValue:
            tid = names.get(name)
            run_id = g.members.get(tid) if tid is not None else None
            return TermValue.of_state(self._state_of(run_id) if run_id else None)

        return lookup

    def _group_lookup(self, g: GroupRun) -> Callable[[str], TermValue]:
        def lookup(name: str) -> TermValue:
            other = self.group_by_name(name)
            if other is None:
                return TermValue(None, True)
            same_day = sorted(
                (o for o in self._by_date.get((other.gid, g.run_date), []) if not o.forced),
                key=lambda o: o.scheduled_utc,
            )
            if not same_day:
                # No occurrence yet that date: open while one is still to come (spec 6.4).
                return TermValue(None, not self._slot_to_come(other, g.run_date))
            before = [o for o in same_day if o.scheduled_utc <= g.scheduled_utc]
            ref = before[-1] if before else same_day[0]
            return TermValue(GROUP_LETTERS.get(ref.state), ref.final)

        return lookup

    def is_open(self, group_run_id: str) -> bool:
        g = self.occurrences.get(group_run_id)
        return g is not None and g.state == "RUNNING"

    def _slot_to_come(self, group: GroupDef, run_date: str) -> bool:
        schedule = self._schedules.get(group.gid)
        if schedule is None or not group.active:
            return False
        day = datetime.strptime(run_date, "%Y%m%d").date()
        now = self._clock.now()
        holidays = self._calendars.holiday_check(group.calendar or None)
        return any(s.scheduled_utc > now for s in slots_on(schedule, day, holidays))

    def modify_status(
        self, gid: int, run_date: str, local_time: str, state: str, by: str, now: datetime
    ) -> GroupRun:
        """MODIFY_TASK_STATUS on a group (spec 10): the latest occurrence of the date (at
        ``local_time`` when given) ends in ``state``; its members not yet run are SKIPPED, and
        groups depending on it are evaluated again."""
        if state not in FINAL_GROUP_STATES:
            raise TransitionError("a group's status must be one of SUCCESS, FAILED, SKIPPED")
        found = [g for g in self._by_date.get((gid, run_date), [])
                 if not local_time or g.local_time == local_time]  # fmt: skip
        if not found:
            at = f" {local_time}" if local_time else ""
            raise ConflictError(f"no occurrence of group {gid} on {run_date}{at}")
        g = max(found, key=lambda o: (o.scheduled_utc, o.created_at))
        runs = [self._runs.live.get(r) or self.member_runs.get(r) for r in g.members.values()]
        if any(r is not None and r.state in (S.STARTED, S.RUNNING) for r in runs):
            raise TransitionError("run is in progress; terminate it first")
        reason = f"{MODIFIED_PREFIX}{by}"
        for run in runs:
            if run is not None and not run.state.final:
                self._timers.cancel(("retry", run.run_id))
                self._runs.force_state(run, S.SKIPPED, now, reason)
        self._end(g, state, reason, now)
        for other in list(self.occurrences.values()):  # dependents on any date may name it
            if other.state == "PENDING" and other is not g:
                self._mark(other.group_run_id)
            elif other.state == "SKIPPED" and self._skipped_for(other, g.name):
                self._reopen(other, now)
        return g

    def _skipped_for(self, g: GroupRun, upstream: str) -> bool:
        """``g`` was skipped because its dependency, which names ``upstream``, failed."""
        group = self.groups.get(g.gid)
        expr = _parse(group.dependency) if group and group.dependency else None
        return (
            expr is not None
            and g.reason == UNMET_PREFIX + (group.dependency if group else "")
            and upstream in names(expr)
        )

    def _reopen(self, g: GroupRun, now: datetime) -> None:
        """A dependent occurrence skipped on an unmet dependency is evaluated again after an
        operator changed its upstream (spec 7.2): it waits (PENDING), its skipped members ACTIVE."""
        for run_id in g.members.values():
            run = self._runs.live.get(run_id) or self.member_runs.get(run_id)
            if run is not None and run.state is S.SKIPPED and run.reason == g.reason:
                self._runs.reopen(run, now)
        g.ended_at = None
        self._set(g, "PENDING", "", now)
        self._mark(g.group_run_id)

    def current_state(self, gid: int) -> str:
        """State of the group's latest occurrence, "" when it has none."""
        latest = [g for g in self.occurrences.values() if g.gid == gid]
        return max(latest, key=lambda g: g.scheduled_utc).state if latest else ""

    # ----- occurrence state -----

    def _set(self, g: GroupRun, state: str, reason: str, now: datetime) -> None:
        g.state, g.reason, g.updated_at = state, reason, now
        self._store.save_group_run(g)
        # Group terms (I, R, S, F) of other groups on the same date may have changed.
        for other in self._by_date_pending(g.run_date):
            if other is not g:
                self._mark(other.group_run_id)

    def _by_date_pending(self, run_date: str) -> list[GroupRun]:
        return [o for o in self.occurrences.values()
                if o.state == "PENDING" and o.run_date == run_date]  # fmt: skip

    def _end(self, g: GroupRun, state: str, reason: str, now: datetime) -> None:
        g.ended_at = now
        self._set(g, state, reason, now)
        log.info("group %s occurrence %s ended %s%s", g.name, g.group_run_id, state,
                 f" ({reason})" if reason else "")  # fmt: skip
        self._prune(now)

    def _prune(self, now: datetime) -> None:
        horizon = now - timedelta(days=KEEP_DAYS)
        old = [g for g in self.occurrences.values() if g.final and g.scheduled_utc < horizon]
        for g in old:
            self._catch_up.discard(g.group_run_id)
            del self.occurrences[g.group_run_id]
            self._by_date[(g.gid, g.run_date)].remove(g)
            for run_id in g.members.values():
                self.member_runs.pop(run_id, None)


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> Expr | None:
    """Parsed expressions, cached: the same few expressions are evaluated on every change."""
    return parse_dependency(text)


def _attempt(run_id: str) -> int:
    return int(run_id.rsplit(":", 1)[1])

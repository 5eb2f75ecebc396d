"""Explain, clause by clause, why a task is or is not running on a date (`tasks why`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from easytask.core.deps import Readiness, Term, TermValue, parse_dependency, readiness
from easytask.core.models import Run, TaskDef
from easytask.core.runid import iso_utc
from easytask.core.schedule import Schedule, slots_on
from easytask.core.states import RunState
from easytask.scheduler.engine import Engine

S = RunState


@dataclass(frozen=True, slots=True)
class Clause:
    clause: str
    ok: bool
    detail: str


@dataclass(slots=True)
class Explanation:
    tid: int
    name: str
    run_date: str
    verdict: str = ""
    clauses: list[Clause] = field(default_factory=list)


def explain(
    engine: Engine, task: TaskDef, run_date: str, runs: list[Run], now: datetime
) -> Explanation:
    """What holds ``task`` back on ``run_date``: active, frozen, holiday, time, dependencies.

    Args:
        engine: the live engine (definitions, freezes, group occurrences).
        task: the task asked about.
        run_date: YYYYMMDD, local to the task's (or its group's) timezone.
        runs: the task's runs of that date, any order.
        now: the current instant.
    """
    out = Explanation(task.tid, task.name, run_date)
    group = engine.groups.group_by_name(task.task_group) if task.task_group else None
    zone = engine.groups.zone_of(task)
    day = datetime.strptime(run_date, "%Y%m%d").date()
    active = task.active and (group is None or group.active)
    if not task.active:
        out.clauses.append(Clause("active", False, "task is disabled (PASSIVE)"))
    elif group is not None and not group.active:
        out.clauses.append(Clause("active", False, f"task group {group.name} is disabled"))
    else:
        out.clauses.append(Clause("active", True, "task is enabled"))
    frozen = sorted(
        t or "all day" for (tid, d, t) in engine.freezes if tid == task.tid and d == run_date
    )
    out.clauses.append(
        Clause("frozen", not frozen, f"frozen: {', '.join(frozen)}" if frozen else "no freeze")
    )
    holiday = _holiday(engine, task, group.calendar if group else None, day, zone)
    out.clauses.append(Clause("holiday", holiday is None, holiday or "not a holiday"))
    out.clauses.append(_time_clause(engine, task, group, day, zone, now))
    latest = max(runs, key=lambda r: (r.scheduled_utc, r.attempt)) if runs else None
    if latest is not None:
        out.clauses.append(
            Clause("run", latest.state is not S.FAILED,
                   f"latest run {latest.run_id} is {latest.state}"
                   + (f" ({latest.reason})" if latest.reason else ""))
        )  # fmt: skip
    out.clauses.extend(_dependency_clauses(engine, task, latest))
    blocking = [c for c in out.clauses if not c.ok]
    if blocking:
        out.verdict = f"waiting: {blocking[0].detail}"
    elif latest is not None:
        out.verdict = f"{latest.state}: nothing holds it back"
    else:
        out.verdict = "nothing holds it back" if active else "inactive"
    return out


def _holiday(
    engine: Engine, task: TaskDef, group_calendar: str | None, day: date, zone: str
) -> str | None:
    for calendar in (group_calendar, task.calendar):
        if calendar:
            noon = datetime(day.year, day.month, day.day, 12, tzinfo=ZoneInfo(zone))
            reason = engine.calendars.holiday_of(calendar, noon, zone)
            if reason:
                return reason
    return None


def _time_clause(
    engine: Engine, task: TaskDef, group: object, day: date, zone: str, now: datetime
) -> Clause:
    schedule: Schedule | None
    if group is not None:
        schedule = engine.groups.schedule_of(getattr(group, "gid", 0))
    else:
        schedule = engine.schedule_of(task.tid) or (
            Schedule.from_task(task) if task.timezone else None
        )
    if schedule is None:
        return Clause("time", False, "no schedule (task or group disabled)")
    slots = slots_on(schedule, day)
    if not slots:
        return Clause("time", False, f"no occurrence on {day:%Y-%m-%d} (day not selected)")
    upcoming = [s for s in slots if s.scheduled_utc > now]
    if len(upcoming) == len(slots):
        first = slots[0]
        wait = first.scheduled_utc - now
        return Clause("time", False, f"time not reached: first slot {first.local_time} {zone} "
                      f"({iso_utc(first.scheduled_utc)}, in {_human(wait)})")  # fmt: skip
    done = len(slots) - len(upcoming)
    return Clause("time", True, f"{done} of {len(slots)} slots due by now")


def _dependency_clauses(engine: Engine, task: TaskDef, run: Run | None) -> list[Clause]:
    expr = parse_dependency(task.dependency) if task.dependency else None
    if expr is None:
        return []
    g = engine.groups.occurrences.get(run.group_run_id or "") if run else None
    members = engine.index.member_tids(task.task_group or "")
    out = []
    lookup_states: dict[str, RunState | None] = {}
    for term in _terms(expr):
        tid = members.get(term.name)
        run_id = g.members.get(tid) if g is not None and tid is not None else None
        held = (
            (engine.runs.live.get(run_id) or engine.groups.member_runs.get(run_id))
            if run_id
            else None
        )
        state = held.state if held is not None else None
        value = TermValue.of_state(state)
        ok = value.letter == term.letter
        lookup_states[term.name] = state
        seen = f"is {state}" if state else "has no run in this occurrence"
        detail = f"{term.name} {seen} (needs {term.letter})"
        out.append(Clause(f"dependency {term.letter}:{term.name}", ok, detail))
    # The verdict comes from the whole expression (not/or), the terms are its detail.
    decision = readiness(expr, lambda name: TermValue.of_state(lookup_states.get(name)))
    summary = {
        Readiness.MET: "holds",
        Readiness.WAITING: "not yet true",
        Readiness.UNMET: "can no longer be met",
    }[decision]
    overall = Clause("dependency", decision is Readiness.MET, f"{task.dependency}: {summary}")
    return [overall, *(replace(c, ok=c.ok or decision is Readiness.MET) for c in out)]


def _terms(expr: object) -> list[Term]:
    found: list[Term] = []
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Term):
            found.append(node)
        elif hasattr(node, "operand"):
            stack.append(node.operand)
        elif hasattr(node, "operands"):
            stack.extend(reversed(node.operands))
    return found


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h {rest // 60}m" if hours else f"{rest // 60}m {rest % 60}s"

"""Occurrence computation: which UTC instants a schedule fires at (spec 4.3-4.5), DST included."""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from easytask.core.timespec import (
    OrdinalDay,
    load_zone,
    parse_day_of_week,
    parse_ordinal_day,
    parse_trigger_times,
    run_frequency_times,
)

if TYPE_CHECKING:
    from easytask.core.models import TaskDef

__all__ = [
    "HolidayCheck",
    "Schedule",
    "Slot",
    "eligible_dates",
    "is_eligible",
    "next_slot",
    "slots_between",
    "slots_on",
]

HolidayCheck = Callable[[date], bool]
"""Answers whether a date is a holiday of the task's calendar (used by `weekday`/`business day`)."""

# next_slot gives up after this many local days: every valid ordinal (even `fifth monday`)
# selects a date at least every few months, so only holiday-starved schedules reach it.
SEARCH_DAYS = 400

_ONE_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a task or group fires: zone, day selection and the nominal wall times of a day.

    Attributes:
        timezone: IANA zone name.
        days: Eligible weekdays Mon..Sun, or None when `ordinal` selects the days.
        ordinal: The `ordinal_day` selection, or None when `days` is used.
        times: Nominal wall times of an eligible day, sorted ascending, non-empty.
    """

    timezone: str
    days: tuple[bool, ...] | None
    ordinal: OrdinalDay | None
    times: tuple[time, ...]
    # Loaded once: next_slot runs for every task at start-up and must not look zones up each time.
    zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.days is None) == (self.ordinal is None):
            raise ValueError("exactly one of days and ordinal must be set")
        if self.days is not None and (len(self.days) != 7 or not any(self.days)):
            raise ValueError("days must have 7 entries with at least one True")
        if not self.times or list(self.times) != sorted(set(self.times)):
            raise ValueError("times must be non-empty, sorted and without duplicates")
        object.__setattr__(self, "zone", load_zone(self.timezone))

    @classmethod
    def from_fields(
        cls,
        *,
        timezone: str,
        day_of_week: str | None = None,
        ordinal_day: str | None = None,
        trigger_times: str | None = None,
        run_frequency: str | None = None,
    ) -> Schedule:
        """Build a schedule from the spec's field texts (a single task's or a group's).

        Raises:
            ValueError: A field is malformed, or not exactly one of each pair is given.
        """
        if bool(day_of_week) == bool(ordinal_day):
            raise ValueError("exactly one of day_of_week and ordinal_day is required")
        if bool(trigger_times) == bool(run_frequency):
            raise ValueError("exactly one of trigger_times and run_frequency is required")
        times = (
            parse_trigger_times(trigger_times)
            if trigger_times
            else run_frequency_times(run_frequency or "")
        )
        return cls(
            timezone=timezone,
            days=parse_day_of_week(day_of_week) if day_of_week else None,
            ordinal=parse_ordinal_day(ordinal_day) if ordinal_day else None,
            times=times,
        )

    @classmethod
    def from_task(cls, task: TaskDef) -> Schedule:
        """Build the schedule of a single task.

        Raises:
            ValueError: The task has no schedule of its own (grouped) or a field is malformed.
        """
        if task.timezone is None:
            raise ValueError(f"task {task.tid} has no timezone")
        return cls.from_fields(
            timezone=task.timezone,
            day_of_week=task.day_of_week,
            ordinal_day=task.ordinal_day,
            trigger_times=task.trigger_times,
            run_frequency=task.run_frequency,
        )


@dataclass(frozen=True, slots=True)
class Slot:
    """One occurrence of a schedule.

    Attributes:
        scheduled_utc: The aware UTC instant the slot fires at, after the DST rules.
        local_date: The local date the slot belongs to.
        run_date: `local_date` as `YYYYMMDD`.
        local_time: The nominal wall time `HH:MM` (before any DST shift).
        timezone: The zone name.
        note: `""`, or e.g. `DST: 02:30 → 03:00` when the wall time fell in a DST gap.
    """

    scheduled_utc: datetime
    local_date: date
    run_date: str
    local_time: str
    timezone: str
    note: str = ""


# --- wall time -> instant -------------------------------------------------------------------


def _transition(zone: ZoneInfo, lo: datetime, hi: datetime) -> datetime:
    """First naive-UTC instant in (lo, hi] whose UTC offset differs from the one at lo.

    Zone transitions fall on whole seconds, so a bisection over seconds is exact; it runs
    only for wall times in a gap, so its dozen conversions do not matter.
    """
    before = lo.replace(tzinfo=UTC).astimezone(zone).utcoffset()
    lo_s, hi_s = 0, int((hi - lo).total_seconds())
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        probe = (lo + timedelta(seconds=mid)).replace(tzinfo=UTC).astimezone(zone)
        if probe.utcoffset() == before:
            lo_s = mid
        else:
            hi_s = mid
    return lo + timedelta(seconds=hi_s)


def _resolve(zone: ZoneInfo, day: date, at: time) -> tuple[datetime, datetime | None]:
    """Map a nominal wall time to its naive-UTC firing instant under the DST rules of 4.5.

    Returns:
        `(instant, shifted_wall)`; `shifted_wall` is the naive local time actually reached when
        the wall time does not exist (spring-forward gap), else None.
    """
    # PEP 495: fold=0 uses the offset from before a transition, fold=1 the one after. Equal
    # offsets mean the wall time is unique; a larger first offset means it repeats (fall-back,
    # fold=0 is the first occurrence); a smaller one means it falls in a gap.
    off0 = datetime.combine(day, at, tzinfo=zone).utcoffset()
    off1 = datetime.combine(day, at.replace(fold=1), tzinfo=zone).utcoffset()
    assert off0 is not None and off1 is not None  # ZoneInfo always knows its offsets
    naive = datetime.combine(day, at)
    if off0 >= off1:
        return naive - off0, None
    # In a gap: the transition lies between the two readings; fire at the first valid instant.
    instant = _transition(zone, naive - off1, naive - off0)
    return instant, instant + off1


def local_day_utc(now: datetime, zone: str) -> tuple[datetime, datetime]:
    """The UTC instants where the local day of ``now`` in ``zone`` begins and ends (the
    first valid instant of each midnight): a slot is on that local date iff it falls in
    [start, end). Cheaper than converting each of 100,000 slots."""
    tz = ZoneInfo(zone)
    day = now.astimezone(tz).date()
    start, _ = _resolve(tz, day, time())
    end, _ = _resolve(tz, day + timedelta(days=1), time())
    return start.replace(tzinfo=UTC), end.replace(tzinfo=UTC)


def _slot(
    schedule: Schedule, day: date, at: time, instant: datetime, shifted: datetime | None
) -> Slot:
    nominal = f"{at.hour:02d}:{at.minute:02d}"
    note = ""
    if shifted is not None:
        fmt = "%H:%M:%S" if shifted.second else "%H:%M"
        note = f"DST: {nominal} → {shifted.strftime(fmt)}"
    return Slot(
        scheduled_utc=instant.replace(tzinfo=UTC),
        local_date=day,
        run_date=f"{day.year:04d}{day.month:02d}{day.day:02d}",
        local_time=nominal,
        timezone=schedule.timezone,
        note=note,
    )


# --- day eligibility ------------------------------------------------------------------------


def _ordinal_date(
    ordinal: OrdinalDay, year: int, month: int, is_holiday: HolidayCheck | None
) -> date | None:
    """The date `ordinal` selects in a month, or None (e.g. a fifth Monday that does not exist)."""
    last_day = calendar.monthrange(year, month)[1]
    n = ordinal.ordinal
    if ordinal.target == "day":
        return date(year, month, last_day if n == -1 else n)
    weekday = ordinal.weekday
    if weekday is not None:
        first = date(year, month, 1)
        first_match = 1 + (weekday - first.weekday()) % 7
        day = first_match + 7 * ((last_day - first_match) // 7 if n == -1 else n - 1)
        return date(year, month, day) if day <= last_day else None
    # "weekday" and "business day": Mon-Fri minus the calendar's holidays.
    days = range(last_day, 0, -1) if n == -1 else range(1, last_day + 1)
    wanted = 1 if n == -1 else n
    for d in days:
        candidate = date(year, month, d)
        if candidate.weekday() < 5 and not (is_holiday is not None and is_holiday(candidate)):
            wanted -= 1
            if wanted == 0:
                return candidate
    return None


def is_eligible(
    schedule: Schedule, day: date, is_business_holiday: HolidayCheck | None = None
) -> bool:
    """Tell whether `day` is selected by the schedule's `day_of_week` or `ordinal_day`."""
    if schedule.days is not None:
        return schedule.days[day.weekday()]
    assert schedule.ordinal is not None
    return _ordinal_date(schedule.ordinal, day.year, day.month, is_business_holiday) == day


def eligible_dates(
    schedule: Schedule,
    first: date,
    last: date,
    is_business_holiday: HolidayCheck | None = None,
) -> Iterator[date]:
    """Yield the eligible local dates from `first` to `last` inclusive, increasing."""
    if schedule.days is not None:
        days = schedule.days
        day = first
        while day <= last:
            if days[day.weekday()]:
                yield day
            day += _ONE_DAY
        return
    ordinal = schedule.ordinal
    assert ordinal is not None
    # Month by month: one computed date per month instead of testing every day.
    year, month = first.year, first.month
    while date(year, month, 1) <= last:
        chosen = _ordinal_date(ordinal, year, month, is_business_holiday)
        if chosen is not None and first <= chosen <= last:
            yield chosen
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


# --- public queries -------------------------------------------------------------------------


def slots_on(
    schedule: Schedule, local_date: date, is_business_holiday: HolidayCheck | None = None
) -> list[Slot]:
    """Return the slots of one local date in UTC order (empty if the date is not eligible).

    Wall times in a spring-forward gap fire at the first instant after it; repeated wall times
    fire once, at their first occurrence; slots mapping to one instant give one Slot, named
    after the earliest nominal time.

    Args:
        schedule: The schedule.
        local_date: A date in the schedule's zone.
        is_business_holiday: Holiday test for `weekday` / `business day` ordinals.
    """
    if not is_eligible(schedule, local_date, is_business_holiday):
        return []
    return _day_slots(schedule, local_date)


def _day_slots(schedule: Schedule, day: date) -> list[Slot]:
    zone = schedule.zone
    result: list[Slot] = []
    previous: datetime | None = None
    for at in schedule.times:
        instant, shifted = _resolve(zone, day, at)
        # Wall time -> instant is non-decreasing, so equal instants are always adjacent.
        if instant != previous:
            result.append(_slot(schedule, day, at, instant, shifted))
            previous = instant
    return result


def _naive_utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime")
    return moment.astimezone(UTC).replace(tzinfo=None)


def _first_after(schedule: Schedule, day: date, after: datetime) -> Slot | None:
    """First slot of an eligible day firing strictly after naive-UTC `after`, or None."""
    zone, times = schedule.zone, schedule.times
    # Monotonic mapping: if the day's last slot is not after `after`, none is. Checking it
    # first makes the usual "already passed today" case one conversion.
    instant, shifted = _resolve(zone, day, times[-1])
    if instant <= after:
        return None
    lo, hi = 0, len(times) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if _resolve(zone, day, times[mid])[0] > after:
            hi = mid
        else:
            lo = mid + 1
    if lo != len(times) - 1:
        instant, shifted = _resolve(zone, day, times[lo])
    # times[lo - 1] fires at or before `after`, so times[lo] is the earliest name of its instant.
    return _slot(schedule, day, times[lo], instant, shifted)


def next_slot(
    schedule: Schedule, after: datetime, is_business_holiday: HolidayCheck | None = None
) -> Slot | None:
    """Return the first slot firing strictly after `after`.

    Args:
        schedule: The schedule.
        after: An aware datetime.
        is_business_holiday: Holiday test for `weekday` / `business day` ordinals.

    Returns:
        The slot, or None if none fires within about 400 days.

    Raises:
        ValueError: `after` is naive.
    """
    after_utc = _naive_utc(after, "after")
    # A slot of the previous local date can fire after `after` (e.g. a gap at midnight).
    first = after.astimezone(schedule.zone).date() - _ONE_DAY
    last = first + timedelta(days=SEARCH_DAYS)
    for day in eligible_dates(schedule, first, last, is_business_holiday):
        found = _first_after(schedule, day, after_utc)
        if found is not None:
            return found
    return None


def slots_between(
    schedule: Schedule,
    start: datetime,
    end: datetime,
    is_business_holiday: HolidayCheck | None = None,
) -> Iterator[Slot]:
    """Yield the slots with `start < scheduled_utc <= end`, strictly increasing.

    Raises:
        ValueError: `start` or `end` is naive.
    """
    start_utc = _naive_utc(start, "start").replace(tzinfo=UTC)
    end_utc = _naive_utc(end, "end").replace(tzinfo=UTC)
    zone = schedule.zone
    first = start.astimezone(zone).date() - _ONE_DAY
    last = end.astimezone(zone).date() + _ONE_DAY
    previous = start_utc
    for day in eligible_dates(schedule, first, last, is_business_holiday):
        for slot in _day_slots(schedule, day):
            # "<= previous" also drops a slot that collides with the previous day's last one
            # (a gap spanning midnight maps both to the same instant).
            if slot.scheduled_utc <= previous:
                continue
            if slot.scheduled_utc > end_utc:
                return
            yield slot
            previous = slot.scheduled_utc

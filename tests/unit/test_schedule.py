"""Occurrence computation (spec 4.3-4.5): day selection, DST rules, next_slot and ranges."""

from __future__ import annotations

import calendar
import functools
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from easytask.core.models import TaskDef
from easytask.core.schedule import Schedule, Slot, local_day_utc, next_slot, slots_between, slots_on
from easytask.core.timespec import OrdinalDay

HolidayCheck = Callable[[date], bool]


def _sched(tz: str, times: str, days: str = "1111111") -> Schedule:
    return Schedule.from_fields(timezone=tz, day_of_week=days, trigger_times=times)


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _summary(slots: list[Slot]) -> list[tuple[str, str, str]]:
    return [(s.local_time, s.scheduled_utc.strftime("%Y-%m-%dT%H:%MZ"), s.note) for s in slots]


# --- construction -----------------------------------------------------------------------------


def _task(**fields: Any) -> TaskDef:
    base: dict[str, Any] = {
        "tid": 1001,
        "name": "t",
        "cmd": "true",
        "run_on_host": "q",
        "stdout": "o",
        "stderr": "e",
        "timezone": "US/Eastern",
    }
    return TaskDef(**(base | fields))


def test_from_task_trigger_times() -> None:
    sched = Schedule.from_task(_task(day_of_week="1111100", trigger_times="(14:00, 8:30)"))
    assert sched.timezone == "US/Eastern"
    assert sched.days == (True, True, True, True, True, False, False)
    assert sched.ordinal is None
    assert sched.times == (time(8, 30), time(14, 0))


def test_from_task_run_frequency_and_ordinal() -> None:
    task = _task(ordinal_day="Last Day of every month", run_frequency="08:00-20:00-240")
    sched = Schedule.from_task(task)
    assert sched.days is None
    assert sched.ordinal == OrdinalDay(-1, "day")
    assert sched.times == (time(8), time(12), time(16), time(20))


@pytest.mark.parametrize(
    "fields",
    [
        {"task_group": "g", "timezone": None},
        {"day_of_week": "1111100"},
        {"day_of_week": "1111100", "trigger_times": "08:00", "run_frequency": "08:00-09:00-5"},
        {"trigger_times": "08:00"},
        {"day_of_week": "1111100", "trigger_times": "08:00", "timezone": "Nowhere/City"},
    ],
)
def test_from_task_rejects(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Schedule.from_task(_task(**fields))


def test_schedule_is_hashable_value() -> None:
    assert _sched("UTC", "08:00") == _sched("UTC", "08:00")
    assert hash(_sched("UTC", "08:00")) == hash(_sched("UTC", "08:00"))


# --- 4.5 DST examples -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "day", "times", "expected"),
    [
        # Spec 4.5: a non-existent wall time fires at the first instant after the gap.
        (
            "US/Eastern",
            date(2025, 3, 9),
            "02:30",
            [("02:30", "2025-03-09T07:00Z", "DST: 02:30 → 03:00")],
        ),
        # Spec 4.5: a repeated wall time fires once, at the first occurrence.
        ("US/Eastern", date(2025, 11, 2), "01:30", [("01:30", "2025-11-02T05:30Z", "")]),
        # Spec 4.5: two slots mapping to one instant are one run, named after the earliest.
        (
            "US/Eastern",
            date(2025, 3, 9),
            "02:30,03:00",
            [("02:30", "2025-03-09T07:00Z", "DST: 02:30 → 03:00")],
        ),
        (
            "US/Eastern",
            date(2025, 3, 9),
            "01:59,03:01",
            [("01:59", "2025-03-09T06:59Z", ""), ("03:01", "2025-03-09T07:01Z", "")],
        ),
        ("US/Eastern", date(2025, 3, 8), "02:30", [("02:30", "2025-03-08T07:30Z", "")]),
        (
            "America/New_York",
            date(2026, 3, 8),
            "02:00",
            [("02:00", "2026-03-08T07:00Z", "DST: 02:00 → 03:00")],
        ),
        (
            "America/New_York",
            date(2026, 11, 1),
            "01:00,02:00",
            [("01:00", "2026-11-01T05:00Z", ""), ("02:00", "2026-11-01T07:00Z", "")],
        ),
        # Europe/London: gap 01:00-02:00 in March, 01:00-02:00 repeated in October.
        (
            "Europe/London",
            date(2026, 3, 29),
            "01:30",
            [("01:30", "2026-03-29T01:00Z", "DST: 01:30 → 02:00")],
        ),
        (
            "Europe/London",
            date(2026, 3, 29),
            "00:59,02:00",
            [("00:59", "2026-03-29T00:59Z", ""), ("02:00", "2026-03-29T01:00Z", "")],
        ),
        ("Europe/London", date(2026, 10, 25), "01:30", [("01:30", "2026-10-25T00:30Z", "")]),
        (
            "Europe/London",
            date(2026, 10, 25),
            "01:30,02:00",
            [("01:30", "2026-10-25T00:30Z", ""), ("02:00", "2026-10-25T02:00Z", "")],
        ),
        # Lord Howe shifts by 30 minutes: 02:00 -> 02:30 in October, 02:00 -> 01:30 in April.
        (
            "Australia/Lord_Howe",
            date(2025, 10, 5),
            "02:15",
            [("02:15", "2025-10-04T15:30Z", "DST: 02:15 → 02:30")],
        ),
        (
            "Australia/Lord_Howe",
            date(2025, 10, 5),
            "02:00,02:29,02:30",
            [("02:00", "2025-10-04T15:30Z", "DST: 02:00 → 02:30")],
        ),
        ("Australia/Lord_Howe", date(2026, 4, 5), "01:45", [("01:45", "2026-04-04T14:45Z", "")]),
        (
            "Australia/Lord_Howe",
            date(2026, 4, 5),
            "01:29,02:00",
            [("01:29", "2026-04-04T14:29Z", ""), ("02:00", "2026-04-04T15:30Z", "")],
        ),
        # No DST at all: a fixed +05:30.
        (
            "Asia/Kolkata",
            date(2026, 3, 8),
            "02:30,09:00",
            [("02:30", "2026-03-07T21:00Z", ""), ("09:00", "2026-03-08T03:30Z", "")],
        ),
        ("Asia/Kolkata", date(2026, 11, 1), "01:30", [("01:30", "2026-10-31T20:00Z", "")]),
        # Chile changes at midnight: 00:00-00:59 does not exist on the first Sunday of September.
        (
            "America/Santiago",
            date(2026, 9, 6),
            "00:00,00:30,01:00,01:30",
            [
                ("00:00", "2026-09-06T04:00Z", "DST: 00:00 → 01:00"),
                ("01:30", "2026-09-06T04:30Z", ""),
            ],
        ),
        # Troll station jumps two hours (+00 -> +02).
        (
            "Antarctica/Troll",
            date(2026, 3, 29),
            "01:00,02:30,03:00",
            [("01:00", "2026-03-29T01:00Z", "DST: 01:00 → 03:00")],
        ),
    ],
)
def test_dst_examples(tz: str, day: date, times: str, expected: list[tuple[str, str, str]]) -> None:
    slots = slots_on(_sched(tz, times), day)
    assert _summary(slots) == expected
    assert all(s.local_date == day and s.timezone == tz for s in slots)
    assert all(s.run_date == day.strftime("%Y%m%d") for s in slots)


def test_fall_back_fires_only_once_over_the_whole_night() -> None:
    sched = _sched("US/Eastern", "01:30")
    got = list(slots_between(sched, _utc("2025-11-01T12:00"), _utc("2025-11-02T12:00")))
    assert _summary(got) == [("01:30", "2025-11-02T05:30Z", "")]


@pytest.mark.parametrize(
    ("tz", "day", "freq", "count", "missing"),
    [
        # 24 hourly slots; 02:00 is shifted onto 03:00's instant, so 23 runs, 03:00 absorbed.
        ("US/Eastern", date(2025, 3, 9), "00:00-23:00-60", 23, "03:00"),
        # Fall-back: 24 distinct nominal slots, 24 runs (01:00 only once).
        ("US/Eastern", date(2025, 11, 2), "00:00-23:00-60", 24, None),
        ("Europe/London", date(2026, 3, 29), "00:00-23:45-15", 92, "02:00"),
        ("Europe/London", date(2026, 10, 25), "00:00-23:45-15", 96, None),
        ("Asia/Kolkata", date(2026, 3, 29), "00:00-23:59-15", 96, None),
    ],
)
def test_run_frequency_on_dst_days(
    tz: str, day: date, freq: str, count: int, missing: str | None
) -> None:
    sched = Schedule.from_fields(timezone=tz, day_of_week="1111111", run_frequency=freq)
    slots = slots_on(sched, day)
    assert len(slots) == count
    instants = [s.scheduled_utc for s in slots]
    assert instants == sorted(set(instants))
    if missing is not None:
        assert missing not in {s.local_time for s in slots}


def test_run_frequency_fall_back_window() -> None:
    sched = Schedule.from_fields(
        timezone="US/Eastern", day_of_week="1111111", run_frequency="01:00-02:00-15"
    )
    assert [s.scheduled_utc.strftime("%H:%M") for s in slots_on(sched, date(2025, 11, 2))] == [
        "05:00",
        "05:15",
        "05:30",
        "05:45",
        "07:00",
    ]


# --- day selection ----------------------------------------------------------------------------


def _ordinal_sched(text: str, times: str = "09:00", tz: str = "UTC") -> Schedule:
    return Schedule.from_fields(timezone=tz, ordinal_day=text, trigger_times=times)


def _selected(
    sched: Schedule, year: int, month: int, hol: HolidayCheck | None = None
) -> list[date]:
    last = calendar.monthrange(year, month)[1]
    days = [date(year, month, d) for d in range(1, last + 1)]
    return [d for d in days if slots_on(sched, d, hol)]


def test_day_of_week_selects_literally() -> None:
    sched = _sched("UTC", "09:00", "1010101")
    week = [date(2026, 5, 11) + timedelta(days=i) for i in range(7)]  # Mon..Sun
    assert [bool(slots_on(sched, d)) for d in week] == [True, False, True, False, True, False, True]


@pytest.mark.parametrize(
    ("text", "year", "month", "expected"),
    [
        # February 2026 has four Mondays: a fifth Monday selects nothing.
        ("fifth monday of every month", 2026, 2, []),
        ("fifth monday of every month", 2026, 3, [date(2026, 3, 30)]),
        ("first monday of every month", 2026, 6, [date(2026, 6, 1)]),
        ("last friday of every month", 2026, 7, [date(2026, 7, 31)]),
        ("last sunday of every month", 2026, 2, [date(2026, 2, 22)]),
        ("second tuesday of every month", 2026, 9, [date(2026, 9, 8)]),
        ("last day of every month", 2026, 2, [date(2026, 2, 28)]),
        ("last day of every month", 2028, 2, [date(2028, 2, 29)]),
        ("last day of every month", 2026, 4, [date(2026, 4, 30)]),
        ("fifth day of every month", 2026, 4, [date(2026, 4, 5)]),
        ("first day of every month", 2026, 8, [date(2026, 8, 1)]),
        # 2026-08-01 is a Saturday.
        ("first weekday of every month", 2026, 8, [date(2026, 8, 3)]),
        ("first business day of every month", 2026, 8, [date(2026, 8, 3)]),
        ("last weekday of every month", 2026, 5, [date(2026, 5, 29)]),
        ("third business day of every month", 2026, 1, [date(2026, 1, 5)]),
    ],
)
def test_ordinal_selection(text: str, year: int, month: int, expected: list[date]) -> None:
    assert _selected(_ordinal_sched(text), year, month) == expected


def test_first_business_day_skips_holiday_on_the_first() -> None:
    new_year = date(2026, 1, 1)  # a Thursday
    sched = _ordinal_sched("first business day of every month")
    assert _selected(sched, 2026, 1) == [new_year]
    assert _selected(sched, 2026, 1, lambda d: d == new_year) == [date(2026, 1, 2)]
    weekday_sched = _ordinal_sched("first weekday of every month")
    assert _selected(weekday_sched, 2026, 1, lambda d: d == new_year) == [date(2026, 1, 2)]


def test_last_business_day_skips_holiday() -> None:
    sched = _ordinal_sched("last business day of every month")
    assert _selected(sched, 2026, 12, lambda d: d == date(2026, 12, 31)) == [date(2026, 12, 30)]


def test_holidays_do_not_filter_plain_day_selection() -> None:
    # Calendars make those runs SKIPPED later; they stay slots here.
    sched = _ordinal_sched("first monday of every month")
    assert _selected(sched, 2026, 6, lambda d: True) == [date(2026, 6, 1)]


def test_fifth_business_day_missing_when_holidays_eat_the_month() -> None:
    sched = _ordinal_sched("fifth business day of every month")
    feb = date(2026, 2, 1)
    only_four = {date(2026, 2, d) for d in (2, 3, 4, 5)}

    def hol(d: date) -> bool:
        return d.month == 2 and d not in only_four

    assert _selected(sched, 2026, 2, hol) == []
    found = next_slot(sched, datetime(2026, 2, 1, tzinfo=UTC), hol)
    assert found is not None and found.local_date == date(2026, 3, 6)
    assert feb.weekday() == 6


# --- next_slot --------------------------------------------------------------------------------


def test_next_slot_is_strictly_after() -> None:
    sched = _sched("US/Eastern", "08:30,14:00", "1111100")
    at = _utc("2026-05-12T12:30")  # 08:30 EDT on a Tuesday
    first = next_slot(sched, at)
    assert first is not None and (first.local_time, first.run_date) == ("14:00", "20260512")
    just_before = next_slot(sched, at - timedelta(microseconds=1))
    assert just_before is not None and just_before.scheduled_utc == at


def test_next_slot_skips_weekend() -> None:
    sched = _sched("US/Eastern", "08:30", "1111100")
    found = next_slot(sched, _utc("2026-05-15T13:00"))  # Friday after 08:30 EDT
    assert found is not None
    assert (found.run_date, found.scheduled_utc) == ("20260518", _utc("2026-05-18T12:30"))


def test_next_slot_accepts_any_aware_datetime() -> None:
    sched = _sched("Asia/Kolkata", "09:00")
    after = datetime(2026, 5, 12, 8, 0, tzinfo=ZoneInfo("Asia/Kolkata"))
    found = next_slot(sched, after)
    assert found is not None and found.scheduled_utc == _utc("2026-05-12T03:30")


def test_next_slot_fifth_monday_jumps_months() -> None:
    sched = _ordinal_sched("fifth monday of every month")
    found = next_slot(sched, _utc("2026-02-01T00:00"))
    assert found is not None and found.local_date == date(2026, 3, 30)


def test_next_slot_gives_up_when_nothing_can_fire() -> None:
    sched = _ordinal_sched("first business day of every month")
    assert next_slot(sched, _utc("2026-01-01T00:00"), lambda d: True) is None


def test_next_slot_inside_gap_day() -> None:
    sched = _sched("US/Eastern", "02:30,03:00,04:00")
    found = next_slot(sched, _utc("2025-03-09T06:00"))
    assert found is not None
    assert (found.local_time, found.scheduled_utc) == ("02:30", _utc("2025-03-09T07:00"))
    later = next_slot(sched, found.scheduled_utc)
    assert later is not None and later.local_time == "04:00"


def test_naive_datetimes_are_refused() -> None:
    sched = _sched("UTC", "09:00")
    with pytest.raises(ValueError):
        next_slot(sched, datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        list(slots_between(sched, datetime(2026, 1, 1), _utc("2026-01-02T00:00")))


def test_slots_between_bounds() -> None:
    sched = _sched("UTC", "09:00")
    got = list(slots_between(sched, _utc("2026-01-01T09:00"), _utc("2026-01-03T09:00")))
    assert [s.run_date for s in got] == ["20260102", "20260103"]
    assert list(slots_between(sched, _utc("2026-01-03T09:00"), _utc("2026-01-01T09:00"))) == []


# --- properties -------------------------------------------------------------------------------

ZONES = [
    "US/Eastern",
    "Europe/London",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "America/Santiago",
    "America/Havana",
    "Pacific/Chatham",
    "America/St_Johns",
    "Antarctica/Troll",
    "Africa/Cairo",
    "Pacific/Auckland",
    "America/Nuuk",
    "Asia/Tehran",
    "UTC",
]
FIRST_DAY, LAST_DAY = date(2026, 1, 1), date(2030, 12, 31)


@functools.cache
def _transitions(tz: str) -> tuple[datetime, ...]:
    """Naive local wall times at which the zone's offset changes in 2026-2030 (pre-change clock)."""
    zone = ZoneInfo(tz)
    found: list[datetime] = []
    moment = datetime.combine(FIRST_DAY, time(0), tzinfo=UTC)
    while moment.date() <= LAST_DAY:
        following = moment + timedelta(days=1)
        before = moment.astimezone(zone).utcoffset()
        if following.astimezone(zone).utcoffset() != before:
            lo, hi = 0, 86400  # seconds after `moment`: offset `before` at lo, changed at hi
            while hi - lo > 1:
                mid = (lo + hi) // 2
                probe = (moment + timedelta(seconds=mid)).astimezone(zone)
                lo, hi = (mid, hi) if probe.utcoffset() == before else (lo, mid)
            assert before is not None
            found.append((moment + timedelta(seconds=hi) + before).replace(tzinfo=None))
        moment = following
    return tuple(found)


DST_ZONES = [tz for tz in ZONES if _transitions(tz)]


def _oracle_instant(zone: ZoneInfo, day: date, at: time) -> datetime:
    """Wall time -> instant computed only from UTC -> local conversions (the safe direction)."""
    wall = datetime.combine(day, at)
    offsets = set()
    for hours in range(-48, 49, 3):
        probe = (wall + timedelta(hours=hours)).replace(tzinfo=UTC).astimezone(zone)
        offsets.add(probe.utcoffset())
    candidates = sorted(wall - off for off in offsets if off is not None)
    valid = [
        c for c in candidates if c.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None) == wall
    ]
    if valid:
        return min(valid)  # the first occurrence
    # In a gap: the first minute whose wall clock has passed the nominal time.
    probe = candidates[0]
    while probe.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None) <= wall:
        probe += timedelta(minutes=1)
    return probe


def _oracle_eligible(sched: Schedule, day: date, hol: HolidayCheck | None) -> bool:
    if sched.days is not None:
        return sched.days[day.weekday()]
    assert sched.ordinal is not None
    ordinal = sched.ordinal
    last = calendar.monthrange(day.year, day.month)[1]
    month = [date(day.year, day.month, d) for d in range(1, last + 1)]
    if ordinal.target == "day":
        picks = month
    elif ordinal.weekday is not None:
        picks = [d for d in month if d.weekday() == ordinal.weekday]
    else:
        picks = [d for d in month if d.weekday() < 5 and not (hol is not None and hol(d))]
    if ordinal.ordinal == -1:
        return bool(picks) and picks[-1] == day
    return len(picks) >= ordinal.ordinal and picks[ordinal.ordinal - 1] == day


def _oracle_day(sched: Schedule, day: date, hol: HolidayCheck | None) -> list[tuple[str, datetime]]:
    """The policy of 4.5 for one day: one run per distinct instant, named by its earliest slot."""
    if not _oracle_eligible(sched, day, hol):
        return []
    zone = ZoneInfo(sched.timezone)
    result: list[tuple[str, datetime]] = []
    seen: set[datetime] = set()
    for at in sched.times:
        instant = _oracle_instant(zone, day, at).replace(tzinfo=UTC)
        if instant not in seen:
            seen.add(instant)
            result.append((at.strftime("%H:%M"), instant))
    return result


def _check_day(sched: Schedule, day: date, hol: HolidayCheck | None) -> list[Slot]:
    slots = slots_on(sched, day, hol)
    instants = [s.scheduled_utc for s in slots]
    assert instants == sorted(set(instants)), "strictly increasing"
    assert [(s.local_time, s.scheduled_utc) for s in slots] == _oracle_day(sched, day, hol)
    assert all(s.local_date == day and s.scheduled_utc.tzinfo is UTC for s in slots)
    for s in slots:
        shifted = _oracle_instant(ZoneInfo(sched.timezone), day, time.fromisoformat(s.local_time))
        in_gap = datetime.combine(day, time.fromisoformat(s.local_time)) != (
            shifted.replace(tzinfo=UTC).astimezone(ZoneInfo(sched.timezone)).replace(tzinfo=None)
        )
        assert bool(s.note) == in_gap
    return slots


def _check_range(
    sched: Schedule, start: datetime, end: datetime, hol: HolidayCheck | None
) -> list[Slot]:
    got = list(slots_between(sched, start, end, hol))
    instants = [s.scheduled_utc for s in got]
    assert instants == sorted(set(instants)), "strictly increasing"
    assert all(start < t <= end for t in instants)

    # The range is exactly the per-day policy, restricted to (start, end].
    zone = ZoneInfo(sched.timezone)
    expected: list[tuple[str, datetime]] = []
    local = start.astimezone(zone).date() - timedelta(days=1)
    while local <= end.astimezone(zone).date() + timedelta(days=1):
        expected += [(n, t) for n, t in _oracle_day(sched, local, hol) if start < t <= end]
        local += timedelta(days=1)
    assert [(s.local_time, s.scheduled_utc) for s in got] == expected

    # Chaining next_slot walks the same slots and then leaves the range.
    cursor = start
    for slot in got[:40]:
        assert next_slot(sched, cursor, hol) == slot
        cursor = slot.scheduled_utc
    if len(got) <= 40:
        after = next_slot(sched, cursor, hol)
        assert after is None or after.scheduled_utc > end
    return got


_hours = st.one_of(st.integers(0, 23), st.sampled_from([0, 1, 2, 3, 23]))
_minutes = st.one_of(st.sampled_from([0, 15, 30, 45, 59]), st.integers(0, 59))
_times_text = st.lists(st.builds(time, _hours, _minutes), min_size=1, max_size=5).map(
    lambda ts: ",".join(t.strftime("%H:%M") for t in ts)
)
_intervals = st.sampled_from([1, 7, 15, 30, 60, 90, 240, 1440])


@st.composite
def _freq_text(draw: st.DrawFn) -> str:
    start = draw(st.builds(time, _hours, _minutes))
    end = draw(st.builds(time, st.integers(start.hour, 23), _minutes).filter(lambda e: e >= start))
    return f"{start:%H:%M}-{end:%H:%M}-{draw(_intervals)}"


_ordinal_text = st.builds(
    "{} {} of every month".format,
    st.sampled_from(["first", "second", "third", "fourth", "fifth", "last"]),
    st.sampled_from(["monday", "friday", "sunday", "day", "weekday", "business day"]),
)
_day_mask = st.one_of(
    st.just("1111111"),
    st.lists(st.booleans(), min_size=7, max_size=7)
    .filter(any)
    .map(lambda bits: "".join("1" if b else "0" for b in bits)),
)


@st.composite
def _schedules(draw: st.DrawFn, zones: list[str] = ZONES) -> Schedule:
    tz = draw(st.sampled_from(zones))
    by_freq = draw(st.booleans())
    by_ordinal = draw(st.integers(0, 3)) == 0
    return Schedule.from_fields(
        timezone=tz,
        day_of_week=None if by_ordinal else draw(_day_mask),
        ordinal_day=draw(_ordinal_text) if by_ordinal else None,
        trigger_times=None if by_freq else draw(_times_text),
        run_frequency=draw(_freq_text()) if by_freq else None,
    )


@st.composite
def _around_transition(draw: st.DrawFn) -> tuple[Schedule, date]:
    """A daily schedule whose wall times cluster around one DST transition of its zone."""
    tz = draw(st.sampled_from(DST_ZONES))
    wall = draw(st.sampled_from(_transitions(tz)))
    deltas = draw(st.lists(st.integers(-150, 150), min_size=1, max_size=8))
    moments = [wall + timedelta(minutes=d) for d in deltas]
    day = draw(st.sampled_from(sorted({m.date() for m in moments})))
    times = sorted({m.time().replace(second=0) for m in moments if m.date() == day})
    if draw(st.booleans()):
        spec = {"trigger_times": ",".join(t.strftime("%H:%M") for t in times)}
    else:
        first, last = times[0], max(times[-1], times[0])
        spec = {"run_frequency": f"{first:%H:%M}-{last:%H:%M}-{draw(_intervals)}"}
    return Schedule.from_fields(timezone=tz, day_of_week="1111111", **spec), day


_dates = st.dates(FIRST_DAY, LAST_DAY)
_holiday_mod = st.sampled_from([None, 3, 5, 11])


def _holidays(mod: int | None) -> HolidayCheck | None:
    if mod is None:
        return None
    return lambda d: d.toordinal() % mod == 0


_PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_PROPERTY
@given(sched=_schedules(), day=_dates, mod=_holiday_mod)
def test_property_any_day_matches_policy(sched: Schedule, day: date, mod: int | None) -> None:
    _check_day(sched, day, _holidays(mod))


@_PROPERTY
@given(case=_around_transition())
def test_property_transition_day_matches_policy(case: tuple[Schedule, date]) -> None:
    sched, day = case
    assert _check_day(sched, day, None), "every day is eligible"


@_PROPERTY
@given(
    sched=_schedules(),
    day=_dates,
    mod=_holiday_mod,
    offset_minutes=st.integers(-36 * 60, 36 * 60),
    span_hours=st.integers(1, 96),
)
def test_property_next_slot_agrees_with_range(
    sched: Schedule, day: date, mod: int | None, offset_minutes: int, span_hours: int
) -> None:
    start = datetime.combine(day, time(12), tzinfo=UTC) + timedelta(minutes=offset_minutes)
    _check_range(sched, start, start + timedelta(hours=span_hours), _holidays(mod))


@_PROPERTY
@given(
    case=_around_transition(),
    offset_minutes=st.integers(-30 * 60, 30 * 60),
    span_hours=st.integers(1, 30),
)
def test_property_next_slot_agrees_with_range_across_transitions(
    case: tuple[Schedule, date], offset_minutes: int, span_hours: int
) -> None:
    sched, day = case
    start = datetime.combine(day, time(12), tzinfo=UTC) + timedelta(minutes=offset_minutes)
    _check_range(sched, start, start + timedelta(hours=span_hours), None)


def test_transition_tables_cover_both_directions() -> None:
    # Guards the strategies above: every DST zone contributes springs and falls in 2026-2030.
    assert len(DST_ZONES) >= 10
    for tz in DST_ZONES:
        zone = ZoneInfo(tz)
        kinds = set()
        for wall in _transitions(tz):
            aware = wall.replace(tzinfo=zone) - timedelta(minutes=1)
            after = (aware.astimezone(UTC) + timedelta(minutes=2)).astimezone(zone)
            kinds.add(after.utcoffset() > aware.utcoffset())  # type: ignore[operator]
        assert kinds == {True, False}, tz


@given(
    st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2028, 12, 31)),
    st.integers(-3 * 86_400, 3 * 86_400),
    st.sampled_from(["UTC", "Europe/Paris", "America/Santiago", "America/Havana", "Asia/Beirut",
                     "Australia/Lord_Howe", "Pacific/Apia", "America/St_Johns"]),
)  # fmt: skip
def test_local_day_bounds_say_what_converting_each_instant_says(
    now: datetime, delta: int, zone: str
) -> None:
    now = now.replace(tzinfo=UTC)
    other = now + timedelta(seconds=delta)
    start, end = local_day_utc(now, zone)
    tz = ZoneInfo(zone)
    same_day = other.astimezone(tz).date() == now.astimezone(tz).date()
    assert (start <= other < end) == same_day

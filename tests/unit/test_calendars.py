"""Built-in holiday calendars and the calendar book (spec 5)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from easytask.core.schedule import Schedule, next_slot
from easytask.scheduler.calendars import (
    BuiltinCalendars,
    CalendarBook,
    CalendarRecord,
    HolidaySpan,
)


@pytest.fixture(scope="module")
def builtins() -> BuiltinCalendars:
    return BuiltinCalendars()


@pytest.mark.parametrize(
    ("name", "day", "reason"),
    [
        ("US_HOLIDAYS", date(2025, 7, 4), "Independence Day"),
        ("US_HOLIDAYS", date(2027, 7, 5), "Independence Day (observed)"),
        ("US_HOLIDAYS", date(2025, 7, 5), None),
        ("GB_HOLIDAYS", date(2026, 12, 25), "Christmas Day"),
        ("IN_HOLIDAYS", date(2026, 1, 26), "Republic Day"),
        ("NYSE_HOLIDAYS", date(2025, 4, 18), "Good Friday"),
        ("NYSE_HOLIDAYS", date(2025, 4, 21), None),
        ("XX_HOLIDAYS", date(2025, 7, 4), None),
        ("Ops calendar", date(2025, 7, 4), None),
    ],
)
def test_holiday_reason(
    builtins: BuiltinCalendars, name: str, day: date, reason: str | None
) -> None:
    assert builtins.holiday_reason(name, day) == reason


@pytest.mark.parametrize(
    ("name", "builtin_form", "exists"),
    [
        ("US_HOLIDAYS", True, True),
        ("GB_HOLIDAYS", True, True),
        ("NYSE_HOLIDAYS", True, True),
        ("B3_HOLIDAYS", True, True),
        ("XX_HOLIDAYS", True, False),
        ("USA_HOLIDAYS", True, False),  # the package knows alpha-3 codes; the spec names alpha-2
        ("us_HOLIDAYS", False, False),
        ("US_holidays", False, False),
        ("_HOLIDAYS", False, False),
        ("US_HOLIDAYS ", False, False),
        ("Ops calendar", False, False),
        ("", False, False),
    ],
)
def test_names(builtins: BuiltinCalendars, name: str, builtin_form: bool, exists: bool) -> None:
    assert builtins.is_builtin_name(name) is builtin_form
    assert builtins.exists(name) is exists


def test_names_list(builtins: BuiltinCalendars) -> None:
    names = builtins.names()
    assert names == sorted(names)
    assert {"US_HOLIDAYS", "GB_HOLIDAYS", "NYSE_HOLIDAYS"} <= set(names)
    assert all(builtins.exists(n) for n in names)


def test_reasons_are_generated_once_per_year(monkeypatch: pytest.MonkeyPatch) -> None:
    cal = BuiltinCalendars()
    calls: list[tuple[str, int]] = []
    generate = cal._generate

    def counting(code: str, year: int) -> dict[date, str]:
        calls.append((code, year))
        return generate(code, year)

    monkeypatch.setattr(cal, "_generate", counting)
    for day in (date(2025, 7, 4), date(2025, 12, 25), date(2025, 1, 1), date(2026, 1, 1)):
        assert cal.holiday_reason("US_HOLIDAYS", day) is not None
    assert calls == [("US", 2025), ("US", 2026)]


def test_book_merges_user_entries(builtins: BuiltinCalendars) -> None:
    book = CalendarBook(
        builtins,
        {
            "Ops freeze": [HolidaySpan(date(2026, 12, 20), date(2026, 12, 31), "year-end freeze")],
            "US_HOLIDAYS": [HolidaySpan(date(2026, 7, 6), date(2026, 7, 6), "bridge day")],
        },
    )
    assert book.exists("US_HOLIDAYS") and book.exists("Ops freeze")
    assert not book.exists("XX_HOLIDAYS") and not book.exists("Other")
    assert book.holiday_reason("Ops freeze", date(2026, 12, 24)) == "year-end freeze"
    assert book.holiday_reason("Ops freeze", date(2027, 1, 1)) is None
    assert book.holiday_reason("US_HOLIDAYS", date(2026, 7, 3)) == "Independence Day (observed)"
    assert book.holiday_reason("US_HOLIDAYS", date(2026, 7, 6)) == "bridge day"


def test_book_without_user_calendars(builtins: BuiltinCalendars) -> None:
    book = CalendarBook(builtins)
    assert book.exists("NYSE_HOLIDAYS")
    assert not book.exists("Ops freeze")
    assert book.holiday_check(None) is None


def test_first_business_day_with_builtin_calendar(builtins: BuiltinCalendars) -> None:
    book = CalendarBook(builtins)
    sched = Schedule.from_fields(
        timezone="US/Eastern",
        ordinal_day="first business day of every month",
        trigger_times="09:00",
    )
    after = datetime(2025, 12, 31, 12, tzinfo=UTC)
    plain = next_slot(sched, after)
    with_calendar = next_slot(sched, after, book.holiday_check("US_HOLIDAYS"))
    assert plain is not None and plain.run_date == "20260101"
    assert with_calendar is not None and with_calendar.run_date == "20260102"


def span(start: str, end: str, reason: str, entry_id: int, calendar: str) -> HolidaySpan:
    return HolidaySpan(date.fromisoformat(start), date.fromisoformat(end), reason, entry_id,
                       calendar)  # fmt: skip


def test_user_range_is_inclusive_and_edits_apply_at_once(builtins: BuiltinCalendars) -> None:
    book = CalendarBook(builtins, calendars=[CalendarRecord("Ops", "change freezes")])
    assert book.exists("Ops") and book.is_user("Ops") and book.entries("Ops") == ()
    assert book.holiday_reason("Ops", date(2026, 6, 1)) is None
    book.put_entry(span("2026-05-30", "2026-06-01", "maintenance", 1, "Ops"))
    book.put_entry(span("2026-05-01", "2026-05-01", "May day", 2, "Ops"))
    assert [e.id for e in book.entries("Ops")] == [2, 1]  # by start date
    assert book.holiday_reason("Ops", date(2026, 5, 29)) is None
    assert book.holiday_reason("Ops", date(2026, 5, 30)) == "maintenance"
    assert book.holiday_reason("Ops", date(2026, 6, 1)) == "maintenance"
    assert book.holiday_reason("Ops", date(2026, 6, 2)) is None
    check = book.holiday_check("Ops")
    assert check is not None and check(date(2026, 5, 31))

    assert book.drop_entry("Ops", 1) is not None
    assert book.drop_entry("Ops", 1) is None
    assert book.holiday_reason("Ops", date(2026, 5, 31)) is None
    assert not check(date(2026, 5, 31))  # a test handed out earlier sees the change too
    book.drop_calendar("Ops")
    assert not book.exists("Ops") and book.entries("Ops") == ()


def test_user_entry_on_a_builtin_date_wins(builtins: BuiltinCalendars) -> None:
    book = CalendarBook(builtins)
    independence = date(2026, 7, 3)
    assert book.holiday_reason("US_HOLIDAYS", independence) == "Independence Day (observed)"
    book.put_entry(span("2026-07-03", "2026-07-06", "long weekend", 7, "US_HOLIDAYS"))
    assert book.holiday_reason("US_HOLIDAYS", independence) == "long weekend"
    assert book.holiday_reason("US_HOLIDAYS", date(2026, 7, 6)) == "long weekend"
    # Generated dates outside the entry are untouched; the built-in stays a built-in.
    assert book.holiday_reason("US_HOLIDAYS", date(2026, 12, 25)) == "Christmas Day"
    assert not book.is_user("US_HOLIDAYS")
    assert book.user_calendars() == []
    assert book.names_with_entries() == ["US_HOLIDAYS"]
    book.drop_entry("US_HOLIDAYS", 7)
    assert book.holiday_reason("US_HOLIDAYS", independence) == "Independence Day (observed)"


def test_replace_swaps_everything(builtins: BuiltinCalendars) -> None:
    book = CalendarBook(builtins, {"Old": [HolidaySpan(date(2026, 1, 2), date(2026, 1, 2), "x")]})
    assert book.exists("Old") and book.entries("Old")[0].calendar == "Old"
    book.replace(
        [CalendarRecord("New")],
        [span("2026-03-01", "2026-03-01", "new day", 4, "New"),
         span("2026-03-02", "2026-03-02", "orphan", 5, "Lost")],
    )  # fmt: skip
    assert not book.exists("Old")
    assert book.holiday_reason("New", date(2026, 3, 1)) == "new day"
    # An entry whose calendar row is missing still names a (user) calendar.
    assert [c.name for c in book.user_calendars()] == ["Lost", "New"]


def test_generated_holidays_of_a_year(builtins: BuiltinCalendars) -> None:
    days = builtins.holidays_of("US_HOLIDAYS", 2026)
    assert (date(2026, 7, 3), "Independence Day (observed)") in days
    assert days == sorted(days) and all(d.year == 2026 for d, _ in days)
    assert builtins.holidays_of("Ops", 2026) == []
    assert builtins.describe("US_HOLIDAYS").startswith("US public holidays")
    assert builtins.describe("NYSE_HOLIDAYS") == "NYSE market closure days"

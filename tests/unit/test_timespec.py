"""Parsing and display of the schedule fields (spec 4.1-4.4) and zone loading."""

from __future__ import annotations

import itertools
from datetime import time
from typing import Any

import pytest

from easytask.core.models import TaskDef
from easytask.core.timespec import (
    OrdinalDay,
    day_of_week_display,
    format_schedule,
    load_zone,
    normalize_ordinal_day,
    normalize_run_frequency,
    normalize_trigger_times,
    parse_day_of_week,
    parse_ordinal_day,
    parse_run_frequency,
    parse_trigger_times,
    run_frequency_times,
    schedule_display,
)

# --- 4.1 trigger_times ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("(09:00, 14:00)", "09:00,14:00"),
        ("08:30", "08:30"),
        ("9:05", "09:05"),
        (" 14:00 ,09:00,  09:00 ", "09:00,14:00"),
        ("( 23:59,0:00 )", "00:00,23:59"),
        ("(9:00)", "09:00"),
        ("12:00,12:00", "12:00"),
    ],
)
def test_trigger_times_valid(text: str, normalized: str) -> None:
    assert normalize_trigger_times(text) == normalized
    times = parse_trigger_times(text)
    assert list(times) == sorted(set(times))
    assert ",".join(t.strftime("%H:%M") for t in times) == normalized


def test_trigger_times_parse_values() -> None:
    assert parse_trigger_times("(09:00, 14:00)") == (time(9, 0), time(14, 0))


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "()",
        "09:00,",
        ",09:00",
        "09:00,,10:00",
        "2:30 PM",
        "2:30PM",
        "24:00",
        "12:60",
        "9:5",
        "123:00",
        "((09:00))",
        "(09:00",
        "09:00)",
        "09.00",
        "09:00:00",
        "0900",
        "+9:00",
        "٠٩:٠٠",  # Arabic-Indic digits are digits to str.isdigit(), not to the spec
        "09:00;10:00",
    ],
)
def test_trigger_times_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        parse_trigger_times(text)
    with pytest.raises(ValueError):
        normalize_trigger_times(text)


# --- 4.2 run_frequency ------------------------------------------------------------------------


def _hhmm(times: tuple[time, ...]) -> list[str]:
    return [t.strftime("%H:%M") for t in times]


@pytest.mark.parametrize(
    ("text", "count", "first", "last"),
    [
        ("02:00-02:00-1440", 1, "02:00", "02:00"),
        ("09:00-17:00-60", 9, "09:00", "17:00"),
        ("08:00-20:00-240", 4, "08:00", "20:00"),
        ("00:00-23:59-15", 96, "00:00", "23:45"),
        ("00:00-23:59-1", 1440, "00:00", "23:59"),
        ("09:00-09:59-60", 1, "09:00", "09:00"),
    ],
)
def test_run_frequency_table(text: str, count: int, first: str, last: str) -> None:
    slots = _hhmm(run_frequency_times(text))
    assert len(slots) == count
    assert (slots[0], slots[-1]) == (first, last)


def test_run_frequency_slots_exact() -> None:
    assert _hhmm(run_frequency_times("08:00-20:00-240")) == ["08:00", "12:00", "16:00", "20:00"]
    assert parse_run_frequency("09:00-17:00-60") == (time(9), time(17), 60)
    assert normalize_run_frequency(" 9:00-17:00-060 ") == "09:00-17:00-60"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "17:00-09:00-60",
        "09:00-17:00-0",
        "09:00-17:00-1441",
        "09:00-17:00",
        "9-17-60",
        "09:00-17:00-x",
        "09:00-17:00--5",
        "09:00-24:00-60",
        "09:00 - 17:00 - 60x",
        "09:00-17:00-60-1",
    ],
)
def test_run_frequency_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        parse_run_frequency(text)
    with pytest.raises(ValueError):
        run_frequency_times(text)


# --- 4.3 day_of_week --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "display"),
    [
        ("1111100", "MON,TUE,WED,THU,FRI"),
        ("0000011", "SAT,SUN"),
        ("0111110", "TUE,WED,THU,FRI,SAT"),
        ("1010101", "MON,WED,FRI,SUN"),
        ("1111111", "MON,TUE,WED,THU,FRI,SAT,SUN"),
        ("0000001", "SUN"),
    ],
)
def test_day_of_week_decodings(text: str, display: str) -> None:
    assert day_of_week_display(text) == display
    days = parse_day_of_week(text)
    assert days == tuple(c == "1" for c in text)


@pytest.mark.parametrize(
    "text", ["", "0000000", "111110", "11111000", "1111102", " 111110", "1111 00"]
)
def test_day_of_week_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        parse_day_of_week(text)


# --- 4.4 ordinal_day --------------------------------------------------------------------------

_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "last": -1}
_TARGETS = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "day",
    "weekday",
    "business day",
]


@pytest.mark.parametrize(("word", "target"), list(itertools.product(_ORDINALS, _TARGETS)))
def test_ordinal_day_every_form(word: str, target: str) -> None:
    text = f"{word} {target} of every month"
    assert parse_ordinal_day(text) == OrdinalDay(_ORDINALS[word], target)
    assert normalize_ordinal_day(text) == text
    assert normalize_ordinal_day(text.upper()) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Last   Business\tDAY of every MONTH ", "last business day of every month"),
        ("FIRST MONDAY OF EVERY MONTH", "first monday of every month"),
        ("second\r\nweekday  of every month", "second weekday of every month"),
    ],
)
def test_ordinal_day_case_and_whitespace(text: str, expected: str) -> None:
    assert normalize_ordinal_day(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "first monday",
        "first monday of every week",
        "sixth monday of every month",
        "first mon of every month",
        "first businessday of every month",
        "1st monday of every month",
        "first monday of every month extra",
        "monday of every month",
        "first of every month",
        "first business of every month",
        "every month",
        "first wee\u212aday of every month",  # KELVIN SIGN lower-cases to "k"
        "first monday of\u00a0every month",  # the grammar is ASCII; NBSP is not its space
    ],
)
def test_ordinal_day_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        parse_ordinal_day(text)


def test_ordinal_day_weekday_property() -> None:
    assert OrdinalDay(1, "wednesday").weekday == 2
    assert OrdinalDay(-1, "business day").weekday is None
    with pytest.raises(ValueError):
        OrdinalDay(0, "monday")
    with pytest.raises(ValueError):
        OrdinalDay(1, "fortnight")


# --- schedule column --------------------------------------------------------------------------


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


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"day_of_week": "1111100", "trigger_times": "08:30"}, "MON-FRI 08:30"),
        ({"day_of_week": "1111111", "trigger_times": "08:30"}, "MON-SUN 08:30"),
        ({"day_of_week": "0111110", "trigger_times": "(9:00, 7:15)"}, "TUE-SAT 07:15,09:00"),
        ({"day_of_week": "1010101", "trigger_times": "08:30"}, "MON,WED,FRI,SUN 08:30"),
        ({"day_of_week": "0000011", "trigger_times": "10:00"}, "SAT,SUN 10:00"),
        ({"day_of_week": "1101110", "trigger_times": "10:00"}, "MON,TUE,THU-SAT 10:00"),
        ({"day_of_week": "0010000", "trigger_times": "10:00"}, "WED 10:00"),
        (
            {"day_of_week": "1111100", "run_frequency": "09:00-17:00-60"},
            "MON-FRI every 60m 09:00-17:00",
        ),
        (
            {"ordinal_day": " Last  Business DAY of every month", "trigger_times": "18:00"},
            "last business day of every month 18:00",
        ),
        ({"task_group": "g", "timezone": None}, ""),
    ],
)
def test_schedule_display(fields: dict[str, Any], expected: str) -> None:
    assert schedule_display(_task(**fields)) == expected


def test_format_schedule_for_group_fields() -> None:
    text = format_schedule(
        day_of_week=None,
        ordinal_day="first monday of every month",
        trigger_times="06:00",
        run_frequency=None,
    )
    assert text == "first monday of every month 06:00"


# --- zones ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "US/Eastern",
        "America/New_York",
        "UTC",
        "Asia/Kolkata",
        "Etc/GMT+5",
        "America/Port-au-Prince",
    ],
)
def test_load_zone_valid(name: str) -> None:
    assert load_zone(name).key == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Mars/Olympus",
        "/etc/localtime",
        "/usr/share/zoneinfo/UTC",
        "../zoneinfo/UTC",
        "America/../UTC",
        "./UTC",
        "localtime",
        "US/Eastern ",
        "us/eastern",
        "America//New_York",
        "zone.tab",
        "tzdata.zi",
        "UTC\x00",
        "posix/UTC",
    ],
)
def test_load_zone_invalid(name: str) -> None:
    with pytest.raises(ValueError, match="Unknown timezone"):
        load_zone(name)

"""Parsing, normalisation and display of the schedule fields of spec 4.1-4.4, and zone loading."""

from __future__ import annotations

import functools
import re
import zoneinfo
from dataclasses import dataclass
from datetime import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from easytask.core.models import TaskDef

__all__ = [
    "DAY_NAMES",
    "ORDINAL_TARGETS",
    "OrdinalDay",
    "day_of_week_display",
    "format_schedule",
    "load_zone",
    "normalize_ordinal_day",
    "normalize_run_frequency",
    "normalize_trigger_times",
    "parse_day_of_week",
    "parse_ordinal_day",
    "parse_run_frequency",
    "parse_trigger_times",
    "run_frequency_times",
    "schedule_display",
]

DAY_NAMES: tuple[str, ...] = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")

_WEEKDAY_WORDS: tuple[str, ...] = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)
ORDINAL_TARGETS: tuple[str, ...] = (*_WEEKDAY_WORDS, "day", "weekday", "business day")

_ORDINAL_WORDS: dict[str, int] = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "last": -1,
}
_ORDINAL_NAMES: dict[int, str] = {v: k for k, v in _ORDINAL_WORDS.items()}

# ASCII digits only: str.isdigit() and \d would also accept other scripts' digits.
_CLOCK_RE = re.compile(r"([0-9]{1,2}):([0-9]{2})")
_RUN_FREQUENCY_RE = re.compile(r"([0-9]{1,2}:[0-9]{2})-([0-9]{1,2}:[0-9]{2})-([0-9]{1,4})")
_ZONE_NAME_RE = re.compile(r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*")
_MINUTES_PER_DAY = 24 * 60


def _parse_clock(text: str) -> time:
    """One `H:MM` / `HH:MM` 24-hour wall time."""
    match = _CLOCK_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"bad time {text!r}: expected HH:MM")
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour > 23 or minute > 59:
        raise ValueError(f"bad time {text!r}: out of range")
    return time(hour, minute)


def _clock(t: time) -> str:
    return f"{t.hour:02d}:{t.minute:02d}"


def parse_trigger_times(text: str) -> tuple[time, ...]:
    """Parse a `trigger_times` value (spec 4.1).

    Args:
        text: Comma-separated `H:MM`/`HH:MM` entries; spaces around entries and one pair of
            enclosing parentheses are ignored.

    Returns:
        The times, sorted ascending without duplicates.

    Raises:
        ValueError: The text is empty or an entry is malformed (including empty entries and
            12-hour forms such as `2:30 PM`).
    """
    body = text.strip()
    if body.startswith("(") and body.endswith(")"):
        body = body[1:-1]
    entries = body.split(",")
    times = {_parse_clock(entry.strip()) for entry in entries}
    return tuple(sorted(times))


def normalize_trigger_times(text: str) -> str:
    """Return the stored form of `trigger_times`: `HH:MM` entries, sorted, joined by `,`.

    Raises:
        ValueError: As `parse_trigger_times`.
    """
    return ",".join(_clock(t) for t in parse_trigger_times(text))


def parse_run_frequency(text: str) -> tuple[time, time, int]:
    """Parse a `run_frequency` value `START-END-INTERVAL` (spec 4.2).

    Args:
        text: `HH:MM-HH:MM-N`; surrounding spaces are ignored.

    Returns:
        `(start, end, interval_minutes)`.

    Raises:
        ValueError: Malformed text, START after END, or INTERVAL outside 1-1440.
    """
    match = _RUN_FREQUENCY_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"bad run_frequency {text!r}: expected HH:MM-HH:MM-INTERVAL")
    start, end = _parse_clock(match.group(1)), _parse_clock(match.group(2))
    interval = int(match.group(3))
    if not 1 <= interval <= _MINUTES_PER_DAY:
        raise ValueError(f"bad run_frequency {text!r}: interval must be 1-1440 minutes")
    if start > end:
        raise ValueError(f"bad run_frequency {text!r}: start is after end")
    return start, end, interval


def normalize_run_frequency(text: str) -> str:
    """Return `run_frequency` with two-digit times and no leading zeros in the interval.

    Raises:
        ValueError: As `parse_run_frequency`.
    """
    start, end, interval = parse_run_frequency(text)
    return f"{_clock(start)}-{_clock(end)}-{interval}"


def run_frequency_times(text: str) -> tuple[time, ...]:
    """Return the nominal wall-clock slots of one day: START + k*INTERVAL while <= END.

    Raises:
        ValueError: As `parse_run_frequency`.
    """
    start, end, interval = parse_run_frequency(text)
    first = start.hour * 60 + start.minute
    last = end.hour * 60 + end.minute
    return tuple(time(m // 60, m % 60) for m in range(first, last + 1, interval))


def parse_day_of_week(text: str) -> tuple[bool, bool, bool, bool, bool, bool, bool]:
    """Decode `day_of_week` (spec 4.3): position 1 is Monday, `1` means eligible.

    Raises:
        ValueError: Not exactly seven `0`/`1` characters, or no `1`.
    """
    if len(text) != 7 or any(c not in "01" for c in text):
        raise ValueError(f"bad day_of_week {text!r}: expected 7 characters of 0/1")
    if "1" not in text:
        raise ValueError(f"bad day_of_week {text!r}: no day selected")
    mon, tue, wed, thu, fri, sat, sun = (c == "1" for c in text)
    return mon, tue, wed, thu, fri, sat, sun


def day_of_week_display(text: str) -> str:
    """Return the display form of `day_of_week`, e.g. `MON,TUE,WED,THU,FRI`.

    Raises:
        ValueError: As `parse_day_of_week`.
    """
    days = parse_day_of_week(text)
    return ",".join(name for name, on in zip(DAY_NAMES, days, strict=True) if on)


def _days_compact(days: tuple[bool, ...]) -> str:
    """Render selected days with runs of three or more as ranges: `MON-FRI`, `SAT,SUN`."""
    parts: list[str] = []
    i = 0
    while i < 7:
        if not days[i]:
            i += 1
            continue
        j = i
        while j + 1 < 7 and days[j + 1]:
            j += 1
        # Two adjacent days read better as a list ("SAT,SUN") than as a range.
        if j - i >= 2:
            parts.append(f"{DAY_NAMES[i]}-{DAY_NAMES[j]}")
        else:
            parts.extend(DAY_NAMES[i : j + 1])
        i = j + 1
    return ",".join(parts)


@dataclass(frozen=True, slots=True)
class OrdinalDay:
    """A parsed `ordinal_day` (spec 4.4).

    Attributes:
        ordinal: 1-5, or -1 for `last`.
        target: A lower-case day name, `day`, `weekday` or `business day`.
    """

    ordinal: int
    target: str

    def __post_init__(self) -> None:
        if self.ordinal not in _ORDINAL_NAMES:
            raise ValueError(f"bad ordinal {self.ordinal!r}: expected 1-5 or -1")
        if self.target not in ORDINAL_TARGETS:
            raise ValueError(f"bad ordinal_day target {self.target!r}")

    @property
    def weekday(self) -> int | None:
        """The target as `date.weekday()` (Monday = 0), or None for non-dayname targets."""
        try:
            return _WEEKDAY_WORDS.index(self.target)
        except ValueError:
            return None

    def __str__(self) -> str:
        return f"{_ORDINAL_NAMES[self.ordinal]} {self.target} of every month"


def parse_ordinal_day(text: str) -> OrdinalDay:
    """Parse `ordinal_day` (grammar 4.4): case-insensitive, whitespace runs count as one space.

    Raises:
        ValueError: The text does not match the grammar.
    """
    # lower() maps some non-ASCII letters onto ASCII ones (KELVIN SIGN -> "k"); refuse them.
    if not text.isascii():
        raise ValueError(f"bad ordinal_day {text!r}")
    words = text.lower().split()
    if len(words) < 5 or words[-3:] != ["of", "every", "month"]:
        raise ValueError(f"bad ordinal_day {text!r}: expected '<ordinal> <target> of every month'")
    ordinal = _ORDINAL_WORDS.get(words[0])
    target = " ".join(words[1:-3])
    if ordinal is None or target not in ORDINAL_TARGETS:
        raise ValueError(f"bad ordinal_day {text!r}")
    return OrdinalDay(ordinal, target)


def normalize_ordinal_day(text: str) -> str:
    """Return the canonical lower-case single-spaced `ordinal_day` text.

    Raises:
        ValueError: As `parse_ordinal_day`.
    """
    return str(parse_ordinal_day(text))


def format_schedule(
    *,
    day_of_week: str | None,
    ordinal_day: str | None,
    trigger_times: str | None,
    run_frequency: str | None,
) -> str:
    """Return the schedule column form of a set of schedule fields (task or group).

    Examples: `MON-FRI 08:30`, `MON,WED,FRI 08:30,14:00`, `MON-FRI every 60m 09:00-17:00`,
    `last business day of every month 18:00`. Empty when no field is set.

    Raises:
        ValueError: A field is malformed.
    """
    parts: list[str] = []
    if day_of_week:
        parts.append(_days_compact(parse_day_of_week(day_of_week)))
    elif ordinal_day:
        parts.append(normalize_ordinal_day(ordinal_day))
    if trigger_times:
        parts.append(normalize_trigger_times(trigger_times))
    elif run_frequency:
        start, end, interval = parse_run_frequency(run_frequency)
        parts.append(f"every {interval}m {_clock(start)}-{_clock(end)}")
    return " ".join(parts)


def schedule_display(task: TaskDef) -> str:
    """Return the schedule column form of a task, e.g. `MON-FRI 08:30` (empty for grouped tasks).

    Raises:
        ValueError: A schedule field is malformed.
    """
    return format_schedule(
        day_of_week=task.day_of_week,
        ordinal_day=task.ordinal_day,
        trigger_times=task.trigger_times,
        run_frequency=task.run_frequency,
    )


@functools.cache
def _known_zone_names() -> frozenset[str]:
    # "localtime" is the host's zone file, not an IANA name: its meaning differs per machine.
    return frozenset(zoneinfo.available_timezones() - {"localtime"})


def load_zone(name: str) -> zoneinfo.ZoneInfo:
    """Load an IANA zone by name, legacy aliases (`US/Eastern`) included.

    Only names of the installed zone database are accepted, so paths (`/etc/localtime`,
    `../x`) and stray files in the zone directory never load.

    Raises:
        ValueError: Unknown or malformed name.
    """
    if not _ZONE_NAME_RE.fullmatch(name) or name not in _known_zone_names():
        raise ValueError(f"Unknown timezone {name}")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"Unknown timezone {name}") from exc

"""Task definition validation and normalisation (spec 2.1, 2.2, 9 syntax, 15 shape, 16 limits)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from easytask.core import timespec
from easytask.core.errors import FieldError, ValidationError
from easytask.core.models import TASK_FIELDS, TaskDef
from easytask.core.text import (
    may_be_unfit,
    nested_problem,
    quote,
    safe_key,
    shown,
    text_problem,
)
from easytask.core.textrules import alert_errors, placeholder_errors

TID_MIN_EXCLUSIVE = 1000
TID_MAX = 2147483647

_INT_FIELDS = frozenset(
    {
        "tid",
        "max_run_time",
        "retry_attempts",
        "retry_delay",
        "task_accept_expiry_time",
        "misfire_grace",
    }
)
_BOOL_FIELDS = frozenset({"active"})
_OBJECT_FIELDS = frozenset({"alert"})
_REQUIRED = ("name", "cmd", "run_on_host", "stdout", "stderr")
# Free text keeps surrounding whitespace; elsewhere a blank string counts as absent.
_FREE_TEXT = frozenset({"description", "team"})
# Fields that may hold tabs and line breaks; no field may hold NUL or other control characters.
_LINES = frozenset({"cmd", "description"})

_MAX_LEN: dict[str, int] = {
    "name": 128,
    "description": 256,
    "task_owner": 64,
    "team": 64,
    "cmd": 8192,
    "run_on_host": 128,
    "run_as_user": 64,
    "stdout": 128,
    "stderr": 128,
    "task_group": 128,
    "timezone": 64,
    "ordinal_day": 64,
    "calendar": 64,
    "dependency": 2048,
    "profile": 256,
}

_RANGES: dict[str, tuple[int, int]] = {
    "max_run_time": (1, 172800),
    "retry_attempts": (0, 10),
    "retry_delay": (0, 86400),
    "task_accept_expiry_time": (1, 86400),
    "misfire_grace": (0, 604800),
}

_MISFIRE_POLICIES = ("run_once", "skip", "run_all")
_RESERVED_NAMES = frozenset({"and", "or", "not"})
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_HOST_RE = re.compile(r"[A-Za-z0-9_.:-]+")
_NAME_MESSAGE = "name may contain only letters, digits, _ - . and cannot be and/or/not"
_HOST_MESSAGE = "run_on_host may contain only letters, digits, _ - . :"

# Fields a grouped task inherits from its group (spec 2.1 "— (group's)").
_GROUP_FORBIDDEN = ("timezone", "day_of_week", "ordinal_day", "misfire_policy", "misfire_grace")
_SCHEDULE_FORMS = ("trigger_times", "run_frequency")
_PLACEHOLDER_FIELDS = ("cmd", "stdout", "stderr")


@dataclass(frozen=True, slots=True)
class TaskContext:
    """What validation needs to know about the rest of the instance; lookups are injected."""

    instance: str
    default_owner: str
    tid_exists: Callable[[int], bool]
    name_tid: Callable[[str], int | None]
    next_tid: Callable[[], int]
    calendar_exists: Callable[[str], bool]
    group_exists: Callable[[str], bool]


def validate_task(raw: object, ctx: TaskContext, existing: TaskDef | None = None) -> TaskDef:
    """Validate a task JSON value and return the normalised definition.

    Args:
        raw: The decoded JSON: the whole task on create, the fields to change on update.
            ``null`` values count as absent (on update: they remove the field).
        ctx: Lookups into the instance (existing tids, names, groups, calendars).
        existing: The stored task when updating; ``raw`` is merged over it.

    Returns:
        The task with trigger_times, run_frequency and ordinal_day normalised and defaults
            filled (tid, task_owner, instance from ``ctx``; the rest from ``TaskDef``).

    Raises:
        ValidationError: With every error of the record, ordered by field (``TASK_FIELDS``
            order, unknown fields last), then by rule.
    """
    if not isinstance(raw, Mapping):
        raise ValidationError([FieldError("task", "task must be an object")])
    data = _merge(raw, existing)
    values, present, errors = _read_fields(data)
    errors.extend(_check_identity(values, ctx, existing))
    errors.extend(_check_host(values))
    errors.extend(_check_placement(values, ctx))
    if "task_group" in present:
        errors.extend(_grouped_schedule_errors(present))
    else:
        errors.extend(_single_schedule_errors(values, present))
    errors.extend(_check_commands(values))
    errors.extend(_check_numbers(values))
    if "alert" in values:
        errors.extend(FieldError("alert", m) for m in alert_errors(values["alert"]))
    if errors:
        raise ValidationError(_ordered(errors))
    return _build(values, ctx)


def _merge(raw: Mapping[Any, Any], existing: TaskDef | None) -> dict[str, Any]:
    """The record to validate: the patch over the stored task, with nulls dropped."""
    # Stored defaults are left out so a grouped task does not "define" misfire fields.
    merged: dict[str, Any] = {}
    if existing is not None:
        merged = existing.non_defaults()
        merged["task_owner"] = existing.task_owner
    for key, value in raw.items():
        if key == "tid" and value is None and existing is not None:
            continue
        merged[str(key)] = value
    return {k: v for k, v in merged.items() if v is not None}


def _read_fields(data: dict[str, Any]) -> tuple[dict[str, Any], set[str], list[FieldError]]:
    """Check names, JSON types, emptiness and lengths.

    Returns the well-typed non-empty values, the names of fields given with any non-empty
    value (well-typed or not), and the errors.
    """
    errors: list[FieldError] = []
    values: dict[str, Any] = {}
    present: set[str] = set()
    for key, value in data.items():
        if key not in TASK_FIELDS:
            errors.append(unknown_field("task", key))
            continue
        if isinstance(value, str) and key not in _FREE_TEXT and not value.strip():
            continue
        present.add(key)
        problem = _type_error(key, value) or content_error(key, value)
        if problem:
            errors.append(FieldError(key, problem))
            continue
        values[key] = value
        limit = _MAX_LEN.get(key)
        if limit is not None and isinstance(value, str) and len(value) > limit:
            errors.append(FieldError(key, f"{key} must be at most {limit} characters"))
    errors.extend(FieldError(f, f"{f} is required") for f in _REQUIRED if f not in present)
    return values, present, errors


def unknown_field(record: str, key: str) -> FieldError:
    """``unknown field``, named by the key itself when it can name a field (else quoted)."""
    if safe_key(key):
        return FieldError(key, "unknown field")
    return FieldError(record, f"unknown field {quote(key)}")


def content_error(field: str, value: object) -> str | None:
    """What makes a well-typed value's text unfit to store (tasks and groups share the rule)."""
    if isinstance(value, str):
        problem = text_problem(value, lines=field in _LINES)
    elif isinstance(value, Mapping):
        problem = nested_problem(value)
    else:
        return None
    return None if problem is None else f"{field} {problem}"


def stored_text_problem(task: TaskDef) -> str | None:
    """The first text rule a stored task breaks (``<field> <problem>``), or None.

    Rows written before the rules (or behind the scheduler's back) are checked at load, so
    the common case is one regex search per text field.
    """
    for key in TASK_FIELDS:
        value = getattr(task, key)
        if isinstance(value, str) and not may_be_unfit(value):
            continue
        problem = content_error(key, value)
        if problem is not None:
            return problem
    return None


def _type_error(field: str, value: object) -> str | None:
    """The type message for ``field`` when ``value`` has the wrong JSON type."""
    if field in _INT_FIELDS:
        ok, wanted = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif field in _BOOL_FIELDS:
        ok, wanted = isinstance(value, bool), "a boolean"
    elif field in _OBJECT_FIELDS:
        ok, wanted = isinstance(value, Mapping), "an object"
    else:
        ok, wanted = isinstance(value, str), "a string"
    return None if ok else f"{field} must be {wanted}"


def _check_identity(
    v: dict[str, Any], ctx: TaskContext, existing: TaskDef | None
) -> Iterator[FieldError]:
    """tid range, uniqueness and immutability; name charset and uniqueness."""
    return check_identity(
        v, "tid", existing.tid if existing else None, TID_MIN_EXCLUSIVE + 1,
        f"tid must be > {TID_MIN_EXCLUSIVE}", TID_MAX, ctx.tid_exists, ctx.name_tid,
    )  # fmt: skip


def check_identity(
    v: dict[str, Any],
    key: str,
    existing_id: int | None,
    minimum: int,
    minimum_message: str,
    maximum: int,
    id_exists: Callable[[int], bool],
    name_owner: Callable[[str], int | None],
) -> Iterator[FieldError]:
    """Id range, uniqueness and immutability; name charset and uniqueness (tasks and groups).

    Args:
        v: the record's values.
        key: ``tid`` or ``gid``.
        existing_id: the stored record's id on update, None on create.
        minimum: smallest valid id; ``minimum_message`` is the error below it.
        maximum: largest valid id.
        id_exists: whether another record has the id.
        name_owner: the id of the record holding a name, if any.
    """
    ident = v.get(key)
    if ident is not None:
        if existing_id is not None and ident != existing_id:
            yield FieldError(key, f"{key} cannot be changed")
        elif ident < minimum:
            yield FieldError(key, minimum_message)
        elif ident > maximum:
            yield FieldError(key, f"{key} must be at most {maximum}")
        elif existing_id is None and id_exists(ident):
            yield FieldError(key, f"{key} already exists")
    name = v.get("name")
    if name is not None:
        if not _NAME_RE.fullmatch(name) or name in _RESERVED_NAMES:
            yield FieldError("name", _NAME_MESSAGE)
        else:
            owner = name_owner(name)
            if owner is not None and owner != existing_id:
                yield FieldError("name", "name already exists")


def _check_placement(v: dict[str, Any], ctx: TaskContext) -> Iterator[FieldError]:
    """instance, task_group and calendar name things that exist."""
    if "instance" in v and v["instance"] != ctx.instance:
        yield FieldError("instance", "instance does not exist")
    if "task_group" in v and not ctx.group_exists(v["task_group"]):
        yield FieldError("task_group", "task_group does not exist")
    if "calendar" in v and not ctx.calendar_exists(v["calendar"]):
        yield FieldError("calendar", "calendar does not exist")


def _grouped_schedule_errors(present: set[str]) -> Iterator[FieldError]:
    """A grouped task takes its schedule, timezone and misfire settings from its group."""
    for field in _SCHEDULE_FORMS:
        if field in present:
            yield FieldError(field, "trigger_times/run_frequency defined for task in group")
    for field in _GROUP_FORBIDDEN:
        if field in present:
            yield FieldError(field, f"{field} defined for task in group")


def _single_schedule_errors(v: dict[str, Any], present: set[str]) -> Iterator[FieldError]:
    """A single task needs a timezone, one day selection and one schedule form."""
    yield from _exactly_one(present, "trigger_times", "run_frequency")
    yield from _exactly_one(present, "day_of_week", "ordinal_day")
    if "timezone" not in present:
        yield FieldError("timezone", "timezone is required")
    elif "timezone" in v and not _parses(timespec.load_zone, v["timezone"]):
        yield FieldError("timezone", f"Unknown timezone {shown(v['timezone'])}")
    if "dependency" in v:
        yield FieldError("dependency", "dependency cannot be defined for single task")
    formats: tuple[tuple[str, Callable[[str], object], str], ...] = (
        ("trigger_times", timespec.parse_trigger_times, "Trigger Times"),
        ("run_frequency", timespec.parse_run_frequency, "Run Frequency"),
        ("day_of_week", timespec.parse_day_of_week, "Day of Week"),
        ("ordinal_day", timespec.parse_ordinal_day, "Ordinal Day"),
    )
    for field, parse, label in formats:
        if field in v and not _parses(parse, v[field]):
            yield FieldError(field, f"Bad entry in {label} field")


def _exactly_one(present: set[str], first: str, second: str) -> Iterator[FieldError]:
    if first in present and second in present:
        yield FieldError(first, f"Both {first} and {second} defined")
    elif first not in present and second not in present:
        yield FieldError(first, f"Neither {first} nor {second} defined")


def _parses(parse: Callable[[str], object], text: str) -> bool:
    try:
        parse(text)
    except ValueError:
        return False
    return True


def _check_host(v: dict[str, Any]) -> Iterator[FieldError]:
    """run_on_host is a queue name."""
    if "run_on_host" in v and not _HOST_RE.fullmatch(v["run_on_host"]):
        yield FieldError("run_on_host", _HOST_MESSAGE)


def _check_commands(v: dict[str, Any]) -> Iterator[FieldError]:
    """Placeholder syntax in cmd/stdout/stderr, and the profile they require."""
    for field in _PLACEHOLDER_FIELDS:
        if field in v:
            yield from (FieldError(field, m) for m in placeholder_errors(v[field], alert=False))
    if not v.get("profile") and any("${" in v.get(f, "") for f in _PLACEHOLDER_FIELDS):
        yield FieldError("profile", "profile required for placeholders")


def _check_numbers(v: dict[str, Any]) -> Iterator[FieldError]:
    """Integer ranges and the misfire policy."""
    for field, (low, high) in _RANGES.items():
        if field in v and not low <= v[field] <= high:
            yield FieldError(field, f"{field} must be between {low} and {high}")
    if "misfire_policy" in v and v["misfire_policy"] not in _MISFIRE_POLICIES:
        yield FieldError("misfire_policy", "misfire_policy must be one of run_once, skip, run_all")


def _ordered(errors: list[FieldError]) -> list[FieldError]:
    """Stable order: TASK_FIELDS order (unknown fields last), then the order found."""
    rank = {name: i for i, name in enumerate(TASK_FIELDS)}
    return sorted(errors, key=lambda e: rank.get(e.field, len(rank)))


def _build(v: dict[str, Any], ctx: TaskContext) -> TaskDef:
    """The TaskDef of a valid record: schedule texts normalised, defaults filled."""
    data = dict(v)
    if "tid" not in data:
        data["tid"] = ctx.next_tid()
    data.setdefault("task_owner", ctx.default_owner)
    data.setdefault("instance", ctx.instance)
    if "trigger_times" in data:
        data["trigger_times"] = timespec.normalize_trigger_times(data["trigger_times"])
    if "run_frequency" in data:
        data["run_frequency"] = timespec.normalize_run_frequency(data["run_frequency"])
    if "ordinal_day" in data:
        data["ordinal_day"] = timespec.normalize_ordinal_day(data["ordinal_day"])
    if "alert" in data:
        data["alert"] = dict(data["alert"])
    return TaskDef(**data)

"""Task group definition and its validation (spec 3, the shared rules of 2.2, limits of 16)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any

from easytask.core import timespec
from easytask.core.deps import parse_dependency
from easytask.core.errors import DependencyError, FieldError, ValidationError
from easytask.core.models import TASK_FIELDS
from easytask.core.text import shown
from easytask.core.validation import (
    _FREE_TEXT,
    _MAX_LEN,
    _check_numbers,
    _exactly_one,
    _parses,
    _type_error,
    check_identity,
    content_error,
    unknown_field,
)

GID_MIN = 1
GID_MAX = 2147483647

# Field order of the spec's table (section 3); also the order of exported JSON.
GROUP_FIELDS: tuple[str, ...] = (
    "gid",
    "name",
    "description",
    "team",
    "active",
    "instance",
    "timezone",
    "day_of_week",
    "ordinal_day",
    "trigger_times",
    "calendar",
    "dependency",
    "misfire_policy",
    "misfire_grace",
    "run_day_of_week",
)

_REQUIRED = ("name", "timezone", "trigger_times")
# Task fields a group rejects by name rather than as unknown (spec 3 rules).
_NOT_ALLOWED = frozenset(
    {
        "run_on_host",
        "run_as_user",
        "profile",
        "max_run_time",
        "cmd",
        "stdout",
        "stderr",
        "retry_attempts",
        "task_group",
    }
)
_TASK_ONLY = frozenset({"run_frequency"} | _NOT_ALLOWED)
# Errors on task-only fields sort after the group's own fields, in the task table's order.
_ERROR_ORDER = GROUP_FIELDS + tuple(f for f in TASK_FIELDS if f in _TASK_ONLY)
_FORMATS: tuple[tuple[str, Callable[[str], object], str], ...] = (
    ("day_of_week", timespec.parse_day_of_week, "Day of Week"),
    ("ordinal_day", timespec.parse_ordinal_day, "Ordinal Day"),
    ("trigger_times", timespec.parse_trigger_times, "Trigger Times"),
)
_INTERNED = frozenset({"team", "instance", "timezone", "day_of_week", "calendar"})


@dataclass(frozen=True, slots=True)
class GroupDef:
    """A validated, normalised task group (spec 3). Build it with ``validate_group``."""

    gid: int
    name: str
    timezone: str
    trigger_times: str
    description: str = ""
    team: str = ""
    active: bool = True
    instance: str = "default"
    day_of_week: str | None = None
    ordinal_day: str | None = None
    calendar: str | None = None
    dependency: str = ""
    misfire_policy: str = "run_once"
    misfire_grace: int = 3600
    run_day_of_week: bool = True

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GroupDef:
        """Rebuild a stored definition (already validated) with repeated strings interned."""
        values: dict[str, Any] = {
            k: sys.intern(v) if k in _INTERNED and isinstance(v, str) else v
            for k, v in data.items()
        }
        return cls(**values)

    @classmethod
    def from_json_text(cls, text: str) -> GroupDef:
        return cls.from_dict(json.loads(text))

    def to_json_text(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))

    def to_json(self) -> dict[str, Any]:
        """The group JSON (spec 3) with absent optional fields left out, in the spec's order."""
        return {k: getattr(self, k) for k in GROUP_FIELDS if getattr(self, k) is not None}

    def non_defaults(self) -> dict[str, Any]:
        """The fields whose value differs from the default (what a user actually set)."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.default is MISSING or getattr(self, f.name) != f.default
        }


@dataclass(frozen=True, slots=True)
class GroupContext:
    """What group validation needs to know about the rest of the instance; lookups are injected."""

    instance: str
    gid_exists: Callable[[int], bool]
    name_gid: Callable[[str], int | None]
    next_gid: Callable[[], int]
    calendar_exists: Callable[[str], bool]


def validate_group(raw: object, ctx: GroupContext, existing: GroupDef | None = None) -> GroupDef:
    """Validate a task group JSON value and return the normalised definition.

    Instance-wide dependency checks (scope, cycles) are not done here: see ``core.depcheck``.

    Args:
        raw: The decoded JSON: the whole group on create, the fields to change on update.
            ``null`` values count as absent (on update: they remove the field).
        ctx: Lookups into the instance (existing gids, group names, calendars).
        existing: The stored group when updating; ``raw`` is merged over it.

    Returns:
        The group with trigger_times and ordinal_day normalised and defaults filled (gid and
            instance from ``ctx``; the rest from ``GroupDef``).

    Raises:
        ValidationError: With every error of the record, ordered by field (``GROUP_FIELDS``
            order, then rejected task fields, unknown fields last), then by rule.
    """
    if not isinstance(raw, Mapping):
        raise ValidationError([FieldError("group", "group must be an object")])
    data = _merge(raw, existing)
    values, present, errors = _read_fields(data)
    errors.extend(_check_identity(values, ctx, existing))
    errors.extend(_check_placement(values, ctx))
    errors.extend(_check_schedule(values, present))
    errors.extend(_check_numbers(values))
    if "dependency" in values:
        errors.extend(_dependency_syntax(values["dependency"]))
    if errors:
        raise ValidationError(_ordered(errors))
    return _build(values, ctx)


def _merge(raw: Mapping[Any, Any], existing: GroupDef | None) -> dict[str, Any]:
    """The record to validate: the patch over the stored group, with nulls dropped."""
    merged: dict[str, Any] = {} if existing is None else existing.non_defaults()
    for key, value in raw.items():
        if key == "gid" and value is None and existing is not None:
            continue
        merged[str(key)] = value
    return {k: v for k, v in merged.items() if v is not None}


def _read_fields(data: dict[str, Any]) -> tuple[dict[str, Any], set[str], list[FieldError]]:
    """Check names, JSON types, emptiness and lengths; reject task-only fields.

    Returns the well-typed non-empty values, the names of group fields given with any
    non-empty value (well-typed or not), and the errors.
    """
    errors: list[FieldError] = []
    values: dict[str, Any] = {}
    present: set[str] = set()
    for key, value in data.items():
        blank = isinstance(value, str) and key not in _FREE_TEXT and not value.strip()
        if key in _TASK_ONLY:
            if not blank:
                errors.append(FieldError(key, _task_only_message(key)))
            continue
        if key not in GROUP_FIELDS:
            errors.append(unknown_field("group", key))
            continue
        if blank:
            continue
        present.add(key)
        problem = _type_error_of(key, value) or content_error(key, value)
        if problem:
            errors.append(FieldError(key, problem))
            continue
        values[key] = value
        limit = _MAX_LEN.get(key)
        if limit is not None and isinstance(value, str) and len(value) > limit:
            errors.append(FieldError(key, f"{key} must be at most {limit} characters"))
    errors.extend(FieldError(f, f"{f} is required") for f in _REQUIRED if f not in present)
    return values, present, errors


def _task_only_message(field: str) -> str:
    if field == "run_frequency":
        return "run_frequency defined for task group"
    return f"{field} not allowed for task group"


def _type_error_of(field: str, value: object) -> str | None:
    """The type message for a group field; the fields shared with tasks have the same types."""
    if field == "gid":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "gid must be an integer"
    if field == "run_day_of_week":
        return None if isinstance(value, bool) else "run_day_of_week must be a boolean"
    return _type_error(field, value)


def _check_identity(
    v: dict[str, Any], ctx: GroupContext, existing: GroupDef | None
) -> Iterator[FieldError]:
    """gid range, uniqueness and immutability; name charset and uniqueness among groups."""
    return check_identity(
        v, "gid", existing.gid if existing else None, GID_MIN, f"gid must be at least {GID_MIN}",
        GID_MAX, ctx.gid_exists, ctx.name_gid,
    )  # fmt: skip


def _check_placement(v: dict[str, Any], ctx: GroupContext) -> Iterator[FieldError]:
    """instance and calendar name things that exist."""
    if "instance" in v and v["instance"] != ctx.instance:
        yield FieldError("instance", "instance does not exist")
    if "calendar" in v and not ctx.calendar_exists(v["calendar"]):
        yield FieldError("calendar", "calendar does not exist")


def _check_schedule(v: dict[str, Any], present: set[str]) -> Iterator[FieldError]:
    """A known timezone, exactly one day selection, well-formed schedule texts."""
    if "timezone" in v and not _parses(timespec.load_zone, v["timezone"]):
        yield FieldError("timezone", f"Unknown timezone {shown(v['timezone'])}")
    yield from _exactly_one(present, "day_of_week", "ordinal_day")
    for field, parse, label in _FORMATS:
        if field in v and not _parses(parse, v[field]):
            yield FieldError(field, f"Bad entry in {label} field")


def _dependency_syntax(text: str) -> Iterator[FieldError]:
    try:
        parse_dependency(text)
    except DependencyError as exc:
        yield FieldError("dependency", exc.message)


def _ordered(errors: list[FieldError]) -> list[FieldError]:
    """Stable order: group fields, then rejected task fields, unknown fields last."""
    rank = {name: i for i, name in enumerate(_ERROR_ORDER)}
    return sorted(errors, key=lambda e: rank.get(e.field, len(rank)))


def _build(v: dict[str, Any], ctx: GroupContext) -> GroupDef:
    """The GroupDef of a valid record: schedule texts normalised, defaults filled."""
    data = dict(v)
    if "gid" not in data:
        data["gid"] = ctx.next_gid()
    data.setdefault("instance", ctx.instance)
    data["trigger_times"] = timespec.normalize_trigger_times(data["trigger_times"])
    if "ordinal_day" in data:
        data["ordinal_day"] = timespec.normalize_ordinal_day(data["ordinal_day"])
    return GroupDef(**data)

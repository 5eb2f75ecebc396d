"""Deterministic run ids (spec 8): ``<instance>:<tid>:<scheduled_utc in Unix ms>:<attempt>``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_ZERO = timedelta(0)


def to_ms(when: datetime) -> int:
    """Unix milliseconds of an aware datetime."""
    return round(when.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    """Aware UTC datetime from Unix milliseconds."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def make_run_id(instance: str, tid: int, scheduled_utc: datetime, attempt: int) -> str:
    return f"{instance}:{tid}:{to_ms(scheduled_utc)}:{attempt}"


def group_run_prefix(instance: str, gid: int) -> str:
    """What every occurrence id of a group starts with."""
    return f"{instance}:g{gid}:"


def make_group_run_id(instance: str, gid: int, scheduled_utc: datetime) -> str:
    return f"{group_run_prefix(instance, gid)}{to_ms(scheduled_utc)}"


def make_adhoc_run_id(instance: str, event_id: int, index: int) -> str:
    """The run id of an ad-hoc command's execution on the ``index``-th selected agent
    (0-based). ``parse_run_id`` refuses it: it is no task's run."""
    return f"{instance}:adhoc-{event_id}-{index}"


def is_adhoc_run_id(run_id: str) -> bool:
    return ":adhoc-" in run_id


def parse_run_id(run_id: str) -> tuple[str, int, int, int]:
    """Split a run id into (instance, tid, scheduled ms, attempt); ValueError when malformed."""
    instance, tid, ms, attempt = run_id.rsplit(":", 3)
    if not instance:
        raise ValueError(f"malformed run id {run_id!r}")
    return instance, int(tid), int(ms), int(attempt)


def iso_utc(when: datetime | None) -> str:
    """ISO 8601 UTC with milliseconds and Z (spec conventions); '' for None."""
    if when is None:
        return ""
    if when.utcoffset() != _ZERO:
        when = when.astimezone(UTC)
    return when.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def parse_iso_utc(text: str) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)

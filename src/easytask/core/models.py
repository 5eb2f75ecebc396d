"""Task definition as stored after validation (spec 2.1), and the run record (spec 8)."""

from __future__ import annotations

import json
import sys
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime
from typing import Any

from easytask.core.states import RunState

# Field order of the spec's table; also the order of exported JSON.
TASK_FIELDS: tuple[str, ...] = (
    "tid",
    "name",
    "description",
    "task_owner",
    "team",
    "cmd",
    "run_on_host",
    "run_as_user",
    "stdout",
    "stderr",
    "active",
    "instance",
    "task_group",
    "timezone",
    "day_of_week",
    "ordinal_day",
    "trigger_times",
    "run_frequency",
    "calendar",
    "dependency",
    "profile",
    "max_run_time",
    "retry_attempts",
    "retry_delay",
    "task_accept_expiry_time",
    "misfire_policy",
    "misfire_grace",
    "alert",
)


# Values that repeat across many tasks are interned so 100,000 tasks share one copy of each.
_INTERNED = frozenset(
    {
        "task_owner", "team", "run_on_host", "run_as_user", "stdout", "stderr", "instance",
        "task_group", "timezone", "day_of_week", "ordinal_day", "trigger_times", "run_frequency",
        "calendar", "profile", "misfire_policy", "description", "dependency",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class TaskDef:
    """A validated, normalised task definition. Build it with ``core.validation.validate_task``.

    A slotted dataclass rather than a pydantic model: the scheduler keeps one per task in memory
    (100,000 per instance), and validation with the spec's messages happens in ``validation``.
    """

    tid: int
    name: str
    cmd: str
    run_on_host: str
    stdout: str
    stderr: str
    description: str = ""
    task_owner: str = ""
    team: str = ""
    run_as_user: str | None = None
    active: bool = True
    instance: str = "default"
    task_group: str | None = None
    timezone: str | None = None
    day_of_week: str | None = None
    ordinal_day: str | None = None
    trigger_times: str | None = None
    run_frequency: str | None = None
    calendar: str | None = None
    dependency: str = ""
    profile: str = ""
    max_run_time: int | None = None
    retry_attempts: int = 0
    retry_delay: int = 0
    task_accept_expiry_time: int | None = None
    misfire_policy: str = "run_once"
    misfire_grace: int = 3600
    alert: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskDef:
        """Rebuild a stored definition (already validated) with repeated strings interned."""
        values: dict[str, Any] = {
            k: sys.intern(v) if k in _INTERNED and isinstance(v, str) else v
            for k, v in data.items()
        }
        return cls(**values)

    @classmethod
    def from_json_text(cls, text: str) -> TaskDef:
        return cls.from_dict(json.loads(text))

    def to_json_text(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))

    def to_json(self) -> dict[str, Any]:
        """The task JSON (spec 2.1) with absent optional fields left out, in the spec's order."""
        out: dict[str, Any] = {}
        for key in TASK_FIELDS:
            value = getattr(self, key)
            if value is not None:
                out[key] = dict(value) if isinstance(value, dict) else value
        return out

    def non_defaults(self) -> dict[str, Any]:
        """The fields whose value differs from the default (what a user actually set)."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.default is MISSING or getattr(self, f.name) != f.default
        }


@dataclass(slots=True)
class Run:
    """One execution attempt (spec 8). Mutable: the engine owns live runs."""

    run_id: str
    tid: int
    name: str
    instance: str
    run_date: str
    scheduled_utc: datetime
    local_time: str
    timezone: str
    attempt: int
    state: RunState
    queue: str
    created_at: datetime
    updated_at: datetime
    reason: str = ""
    group: str | None = None
    group_run_id: str | None = None
    agent: str | None = None
    host: str | None = None
    pid: int | None = None
    return_code: int | None = None
    triggered_at: datetime | None = None
    dispatched_at: datetime | None = None
    acked_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    stdout_path: str | None = None
    stderr_path: str | None = None
    stdout_range: tuple[int, int] | None = None
    stderr_range: tuple[int, int] | None = None
    forced: bool = False
    forced_by: str | None = None
    alert_status: str = "none"
    # Not part of the record: the first moment the run entered TRIGGER (expiry counts from it).
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


@dataclass(frozen=True, slots=True)
class StateChange:
    """One row of a run's state history."""

    run_id: str
    from_state: RunState | None
    to_state: RunState
    at: datetime
    reason: str = ""

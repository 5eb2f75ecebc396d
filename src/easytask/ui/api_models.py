"""The request and response bodies of the dashboard's JSON API (``/api/v1/``), as pydantic models.

Requests are strict (a JSON string is not a number, ``true`` is not ``1``), refuse unknown fields
and control characters; query strings are parsed laxly (they are text) but bounded. Task and
group definitions travel as plain JSON objects: the application's validator owns their fields
and messages (spec 2.2 and 3), so this module does not repeat them.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from easytask.core.errors import ValidationError as CoreValidationError
from easytask.core.rundate import parse_run_date
from easytask.core.runid import iso_utc
from easytask.core.states import RunState
from easytask.core.text import text_problem

MAX_PER_PAGE = 500
DEFAULT_PER_PAGE = 25


def _clean(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# A one-line text: no control characters, no lone surrogates.
Text = Annotated[str, AfterValidator(_clean)]
Name = Annotated[str, AfterValidator(_clean), Field(max_length=128)]
Id = Annotated[int, Field(ge=0, le=2_147_483_647)]


class Request(BaseModel):
    """A JSON request body: strict types, no unknown fields, immutable once read."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Query(BaseModel):
    """A query string: text converted to the field's type, unknown parameters refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    page: int = Field(1, ge=1, le=1_000_000)
    per_page: int = Field(DEFAULT_PER_PAGE, ge=1, le=MAX_PER_PAGE)


class Response(BaseModel):
    model_config = ConfigDict(frozen=True)


def iso(when: datetime | None) -> str | None:
    """ISO 8601 UTC with milliseconds and Z; None stays None."""
    return None if when is None else iso_utc(when)


# ----- errors -----


class FieldProblem(Response):
    field: str
    message: str


class ErrorBody(Response):
    error: str
    errors: list[FieldProblem] = []


# ----- accounts -----


class LoginIn(Request):
    username: Name
    password: Annotated[str, Field(max_length=1024)]


class LoginOut(Response):
    access_token: str
    refresh_token: str
    expires_at: str
    username: str
    role: str
    instance: str


class UserOut(Response):
    username: str
    role: str
    email: str
    first_name: str
    last_name: str
    active: bool
    created_at: str | None
    updated_at: str | None


# ----- board, tasks, groups -----


class BoardOut(Response):
    run_date: str
    tasks: dict[str, int]
    live_runs: dict[str, int]
    final_runs: dict[str, int]
    agents_online: int
    agents_offline: int


class TaskQuery(Query):
    search: Annotated[str, Field(max_length=128)] = ""
    active: bool | None = None
    status: str = ""

    @field_validator("status")
    @classmethod
    def _state(cls, value: str) -> str:
        value = value.upper()
        if value and value not in RunState.__members__:
            raise ValueError(f"status must be a task status such as IDLE or ACTIVE, not {value!r}")
        return value


class TaskOut(Response):
    """A task as spec 2 writes it, and its task status (spec 7.1)."""

    task: dict[str, Any]
    status: str


class TaskPage(Response):
    tasks: list[TaskOut]
    total: int
    page: int
    per_page: int


class DeleteQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cascade: bool = False


class TaskDeleted(Response):
    tid: int
    name: str
    dependencies_cleared: bool


class GroupQuery(Query):
    search: Annotated[str, Field(max_length=128)] = ""


class GroupOut(Response):
    """A group as spec 3 writes it, its member count and its latest occurrence's state."""

    group: dict[str, Any]
    member_count: int
    state: str


class GroupPage(Response):
    groups: list[GroupOut]
    total: int
    page: int
    per_page: int


class GroupDeleted(Response):
    gid: int
    name: str
    tasks_deleted: int
    dependencies_cleared: bool


# ----- runs -----


class RunQuery(Query):
    """The runs filter of the runs page: ``since`` (hours back) is ignored when a run date or a
    date range (``from``, ``to``) is given; ``group`` matches the runs of its occurrences."""

    state: str = ""
    tid: Id = 0
    run_date: str = ""
    date_from: str = Field("", alias="from")
    date_to: str = Field("", alias="to")
    since: float = Field(24.0, ge=0.01, le=24 * 365 * 10)
    search: Annotated[str, Field(max_length=128)] = ""
    agent: Annotated[str, Field(max_length=128)] = ""
    group: Annotated[str, Field(max_length=128)] = ""

    @field_validator("state")
    @classmethod
    def _state(cls, value: str) -> str:
        value = value.upper()
        if value and value not in RunState.__members__:
            raise ValueError(f"state must be a run state such as RUNNING or FAILED, not {value!r}")
        return value

    @field_validator("run_date", "date_from", "date_to")
    @classmethod
    def _date(cls, value: str, info: ValidationInfo) -> str:
        """A real calendar date, YYYYMMDD or YYYY-MM-DD (the one parser of core/rundate)."""
        if not value:
            return value
        try:
            return parse_run_date(value, info.field_name or "run_date")
        except CoreValidationError as exc:
            raise ValueError(exc.errors[0].message) from None

    @field_validator("since")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("since must be a number of hours")
        return value


class Transition(Response):
    from_state: str | None
    to_state: str
    at: str | None
    reason: str


class RunOut(Response):
    """A run record (spec 8); ``transitions`` only on ``GET /api/v1/runs/{run_id}``."""

    run_id: str
    tid: int
    name: str
    group: str | None
    group_run_id: str | None
    instance: str
    run_date: str
    scheduled_utc: str | None
    local_time: str
    timezone: str
    attempt: int
    state: str
    state_code: int
    reason: str
    queue: str
    agent: str | None
    host: str | None
    pid: int | None
    return_code: int | None
    triggered_at: str | None
    dispatched_at: str | None
    acked_at: str | None
    started_at: str | None
    ended_at: str | None
    duration: float | None
    stdout_path: str | None
    stderr_path: str | None
    stdout_range: tuple[int, int] | None
    stderr_range: tuple[int, int] | None
    forced: bool
    forced_by: str | None
    alert_status: str
    created_at: str | None
    updated_at: str | None
    transitions: list[Transition] | None = None


class RunPage(Response):
    runs: list[RunOut]
    total: int
    page: int
    per_page: int
    stats: dict[str, int]


OUTPUT_CHUNK = 256 * 1024
MAX_OUTPUT_CHUNK = 1024 * 1024


class OutputQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    offset: int = Field(0, ge=0, le=2**53)
    limit: int = Field(OUTPUT_CHUNK, ge=1, le=MAX_OUTPUT_CHUNK)


class OutputChunk(Response):
    """Stored output of one stream from ``offset``: ``text`` (UTF-8, invalid bytes replaced),
    and ``next_offset`` to ask for next; ``more`` when more is stored already."""

    run_id: str
    stream: str
    offset: int
    next_offset: int
    text: str
    more: bool
    state: str


# ----- events -----


class EventIn(Request):
    """A spec-10 event: the target is a task (``tid`` or ``name``) or a group (``gid`` or
    ``group_name``); events without a target take neither."""

    event: Annotated[Text, Field(min_length=1, max_length=64)]
    tid: Id = 0
    name: Name = ""
    gid: Id = 0
    group_name: Name = ""
    run_date: Annotated[Text, Field(max_length=10)] = ""
    trigger_time: Annotated[Text, Field(max_length=5)] = ""
    status: Annotated[Text, Field(max_length=16)] = ""
    run_id: Annotated[Text, Field(max_length=128)] = ""


class EventOutcomeOut(Response):
    event_id: int
    status: str  # SUCCESS or FAILURE (a refused event is recorded too)
    message: str
    run_id: str | None
    run_date: str


class EventQuery(Query):
    """The events page's filters: ``since`` (hours back) unless a UTC date range (``from``,
    ``to``, whole days) is given; ``published_by`` is an exact username."""

    event: Annotated[str, Field(max_length=64)] = ""
    status: Annotated[str, Field(max_length=16)] = ""
    origin: Annotated[str, Field(max_length=16)] = ""
    target: Annotated[str, Field(max_length=128)] = ""
    published_by: Annotated[str, Field(max_length=64)] = ""
    date_from: date | None = Field(None, alias="from")
    date_to: date | None = Field(None, alias="to")
    since: float = Field(24.0, ge=0.01, le=24 * 365 * 10)

    @field_validator("date_from", "date_to", mode="before")
    @classmethod
    def _day(cls, value: object) -> object:
        """YYYY-MM-DD or YYYYMMDD, a real calendar date (not a Unix time)."""
        text = str(value).replace("-", "")
        if not (len(text) == 8 and text.isascii() and text.isdigit()):
            raise ValueError("must be a date, YYYYMMDD or YYYY-MM-DD")
        try:
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        except ValueError:
            raise ValueError(f"{value} is not a calendar date") from None

    @field_validator("since")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("since must be a number of hours")
        return value


class EventOut(Response):
    id: int
    event: str
    target: str
    args: dict[str, Any]
    status: str
    message: str
    origin: str
    published_by: str
    created_at: str | None
    acked_at: str | None
    acked_by: str


class EventPage(Response):
    events: list[EventOut]
    total: int
    page: int
    per_page: int


# ----- agents, upcoming, calendars -----


class AgentOut(Response):
    name: str
    online: bool
    host: str
    queues: list[str]
    version: str
    pid: int | None
    cpu_percent: float
    mem_percent: float
    uptime_seconds: float
    connected_since: str | None
    last_seen: str | None
    running_run_ids: list[str]


class AgentList(Response):
    agents: list[AgentOut]


class UpcomingQuery(BaseModel):
    """``tid`` lists that task's occurrences, ``gid`` that group's; neither lists both kinds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tid: Id = 0
    gid: Id = 0
    hours: float = Field(24.0, ge=0.1, le=24 * 366)
    count: int = Field(50, ge=1, le=1000)

    @field_validator("hours")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("hours must be a number")
        return value


class UpcomingOut(Response):
    kind: str  # "task" or "group"
    tid: int  # the task's, 0 for a group
    gid: int  # the group's, 0 for a task
    name: str
    next_run_utc: str | None
    local_date: str
    local_time: str
    timezone: str
    group: str | None
    queue: str
    note: str


class UpcomingList(Response):
    upcoming: list[UpcomingOut]


class CalendarQuery(Query):
    include_builtin: bool = True


class CalendarOut(Response):
    name: str
    kind: str
    description: str
    entries: int
    created_by: str
    created_at: str | None


class CalendarPage(Response):
    calendars: list[CalendarOut]
    total: int
    page: int
    per_page: int

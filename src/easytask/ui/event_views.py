"""Event pages: the history of spec-10 events (filtered by date range, publisher, target, event
name, status and origin), one event, and a form per event the caller's role may publish."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from easytask.core.authz import Action, Caller, event_action
from easytask.core.errors import FieldError, ValidationError
from easytask.core.records import EventFilter, EventRecord, EventRequest
from easytask.ui import adhoc_views
from easytask.ui.forms import can, forbid, parse_date, text_error, text_of
from easytask.ui.render import page, query_builder, redirect, when
from easytask.ui.sessions import caller_of
from easytask.ui.views import PER_PAGE, digits, ops, page_number

# Live topics this module renders: kind -> render(app, rest of the key) (see app.render_topic).

MAX_ID = 2_147_483_647  # tid and gid (spec 16)
MAX_NAME = 128
MAX_USERNAME = 64
MAX_RUN_ID = 200
ECHO_LIMIT = 256  # characters of a refused value put back into its field
STATUSES = ("PENDING", "SUCCESS", "FAILURE")
ORIGINS = ("CLI", "UI", "API")
MODIFY_STATUSES = ("SUCCESS", "FAILED", "TERMINATED", "SKIPPED", "ACTIVE")
_HHMM = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")

LABELS = {
    "task": "Task (TID or name)",
    "group": "Group (GID or name)",
    "run_date": "Run date",
    "trigger_time": "Trigger time",
    "status": "New status",
    "run_id": "Run ID",
}
HELP = {
    "task": "e.g. 1001 or nightly_extract",
    "group": "Instead of a task: e.g. 7 or etl",
    "run_date": "Default: today in the target's timezone",
    "trigger_time": "HH:MM; default every slot of the date (modify status: the latest)",
    "run_id": "Instead of the date and time: the run to stop",
}


@dataclass(frozen=True, slots=True)
class EventForm:
    """One spec-10 event as a form: which fields it takes and the button that publishes it."""

    event: str
    button: str
    effect: str
    fields: tuple[str, ...] = ()

    @property
    def takes_group(self) -> bool:
        return "group" in self.fields

    @property
    def takes_task(self) -> bool:
        return "task" in self.fields


FORMS = (
    EventForm("FORCE_RUN_TASK", "Force run", "A new run now, ignoring schedule, dependencies, "
              "calendar, freezes and active; a group: a new occurrence of the whole group",
              ("task", "group", "run_date")),
    EventForm("ENABLE_TASK", "Enable", "active = true, from the next slot on", ("task", "group")),
    EventForm("DISABLE_TASK", "Disable", "active = false; running runs continue",
              ("task", "group")),
    EventForm("FREEZE_TASK", "Freeze", "Freezes one slot, or every slot of the date not yet "
              "triggered", ("task", "run_date", "trigger_time")),
    EventForm("UNFREEZE_TASK", "Unfreeze", "Lifts a freeze (same date and time as frozen)",
              ("task", "run_date", "trigger_time")),
    EventForm("MODIFY_TASK_STATUS", "Modify status", "Sets the latest attempt's state; ACTIVE "
              "starts a new attempt", ("task", "status", "run_date", "trigger_time")),
    EventForm("TERMINATE_TASK", "Terminate", "Kills the running attempt",
              ("task", "run_date", "trigger_time", "run_id")),
    EventForm("REFRESH_TASK_DEFINITION", "Refresh task", "Reloads one task from the store",
              ("task",)),
    EventForm("REFRESH_TASK_GROUP_DEFINITION", "Refresh group",
              "Reloads a group, its members and graph", ("group",)),
    EventForm("REFRESH_GRAPH", "Refresh graph", "Rebuilds the dependency graph"),
    EventForm("REFRESH_CALENDAR", "Refresh calendars", "Reloads every calendar from the store"),
    EventForm("ENABLE_DEBUG", "Enable debug", "Scheduler log level DEBUG"),
    EventForm("DISABLE_DEBUG", "Disable debug", "Scheduler log level back to INFO"),
)  # fmt: skip
FORM_OF = {f.event: f for f in FORMS}
EVENT_NAMES = tuple(sorted({*FORM_OF, "ADHOC"}))


# ----- input at the edge -----


def target_of(label: str, value: str, errors: dict[str, str], key: str) -> tuple[int, str]:
    """A tid/gid or a name."""
    if digits(value):
        number = int(value) if len(value) <= 10 else MAX_ID + 1
        if not 1 <= number <= MAX_ID:
            errors[key] = f"{label}: an id is a number from 1 to {MAX_ID}"
            return 0, ""
        return number, ""
    problem = text_error(label, value, MAX_NAME)
    if problem is not None:
        errors[key] = problem
        return 0, ""
    return 0, value


def event_request(spec: EventForm, values: dict[str, str]) -> tuple[EventRequest, dict[str, str]]:
    """The request a form describes, and its field errors (nothing is published with any)."""
    errors: dict[str, str] = {}
    task, group = values.get("task", ""), values.get("group", "")
    if spec.takes_task and spec.takes_group:
        if task and group:
            errors["group"] = "give a task or a group, not both"
        elif not task and not group:
            errors["task"] = "a task or a group is required"
    elif spec.takes_task and not task:
        errors["task"] = f"{LABELS['task']} is required"
    elif spec.takes_group and not group:
        errors["group"] = f"{LABELS['group']} is required"
    tid, name = target_of(LABELS["task"], task, errors, "task") if task else (0, "")
    gid, group_name = target_of(LABELS["group"], group, errors, "group") if group else (0, "")
    run_date = ""
    if values.get("run_date"):
        day = parse_date(LABELS["run_date"], values["run_date"], errors, "run_date")
        run_date = f"{day:%Y%m%d}" if day else ""
    trigger_time = values.get("trigger_time", "")
    if trigger_time:
        match = _HHMM.fullmatch(trigger_time) if trigger_time.isascii() else None
        if match is None:
            errors["trigger_time"] = f"{LABELS['trigger_time']} must be HH:MM, e.g. 08:30"
        else:
            trigger_time = f"{int(match[1]):02d}:{match[2]}"
    status = values.get("status", "").upper()
    if "status" in spec.fields and status not in MODIFY_STATUSES:
        errors["status"] = f"{LABELS['status']} must be one of {', '.join(MODIFY_STATUSES)}"
    run_id = values.get("run_id", "")
    if run_id and (problem := text_error(LABELS["run_id"], run_id, MAX_RUN_ID)):
        errors["run_id"] = problem
    request = EventRequest(spec.event, tid=tid, name=name, run_date=run_date,
                           trigger_time=trigger_time, status=status, run_id=run_id, origin="UI",
                           gid=gid, group_name=group_name)  # fmt: skip
    return request, errors


def allowed_forms(caller: Caller) -> list[dict[str, Any]]:
    """The forms the caller's role may use (a user: on the tasks it owns), and which fields."""
    out = []
    for spec in FORMS:
        on_tasks = can(caller, event_action(spec.event, False), caller.username)
        on_groups = spec.takes_group and can(caller, event_action(spec.event, True))
        if spec.takes_task or not spec.takes_group:
            ok = on_tasks or on_groups
            fields = [f for f in spec.fields if f != "group" or on_groups]
            fields = [f for f in fields if f != "task" or on_tasks]
        else:
            ok, fields = bool(on_groups), list(spec.fields)
        if ok:
            out.append({"spec": spec, "fields": fields})
    return out


# ----- the history -----


def history_filter(query: Mapping[str, str]) -> tuple[EventFilter, str, dict[str, str]]:
    """The filter of a query string, the task-name search, and what was wrong with it (a bad
    value is named and left out of the filter)."""
    errors: dict[str, str] = {}
    since = until = None
    if text_of(query, "from"):
        day = parse_date("From date", text_of(query, "from"), errors, "from")
        since = datetime(day.year, day.month, day.day, tzinfo=UTC) if day else None
    if text_of(query, "to"):
        day = parse_date("To date", text_of(query, "to"), errors, "to")
        if day is not None:
            until = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    if since and until and until <= since:
        errors["to"] = "To date must not be before the from date"
        until = None
    published_by = text_of(query, "published_by")
    if published_by and (problem := text_error("Published by", published_by, MAX_USERNAME)):
        errors["published_by"], published_by = problem, ""
    target = text_of(query, "target")
    if target and (problem := text_error("Target", target, MAX_NAME)):
        errors["target"], target = problem, ""
    chosen = {}
    for key, label, allowed in (("event", "Event", EVENT_NAMES), ("status", "Status", STATUSES),
                                ("origin", "Origin", ORIGINS)):  # fmt: skip
        value = text_of(query, key).upper()
        if value and value not in allowed:
            errors[key] = f"{label} must be one of {', '.join(allowed)}"
            value = ""
        chosen[key] = value
    # "group 7" and a tid match the stored target exactly; anything else is a task name.
    group = re.fullmatch(r"group +(\d{1,10})", target.strip(), re.IGNORECASE)
    exact = (f"group {int(group[1])}",) if group else (target,) if digits(target) else ()
    task_name = "" if exact else target
    flt = EventFilter(targets=exact, event=chosen["event"], status=chosen["status"],
                      origin=chosen["origin"], since=since, published_by=published_by,
                      until=until)  # fmt: skip
    return flt, task_name, errors


def target_link(target: str) -> str:
    """Where an event's target lives in the dashboard ("" when nowhere)."""
    if digits(target):
        return f"/tasks/{target}"
    if target.startswith("group ") and digits(target[6:]):
        return f"/groups/{target[6:]}"
    return ""


def event_view(e: EventRecord) -> dict[str, Any]:
    return {
        "id": e.id,
        "event": e.event,
        "target": e.target,
        "target_link": target_link(e.target),
        "status": e.status,
        "message": e.message,
        "origin": e.origin,
        "published_by": e.published_by,
        "created_at": when(e.created_at),
        "acked_at": when(e.acked_at),
        "acked_by": e.acked_by,
    }


async def events_page(
    request: web.Request,
    *,
    status: int = 200,
    form_errors: dict[str, dict[str, str]] | None = None,
    form_values: dict[str, dict[str, str]] | None = None,
) -> web.Response:
    app, caller, query = ops(request), caller_of(request), request.query
    adhoc = adhoc_views.adhoc_form(caller, await app.agents() if can(caller, Action.ADHOC) else [])
    flt, task_name, filter_errors = history_filter(query)
    page_no = page_number(query)
    records, total = await app.find_events(flt, task_name, page_no, PER_PAGE)
    filters = {k: text_of(query, k) for k in ("from", "to", "published_by", "target")}
    filters.update(event=flt.event, status=flt.status, origin=flt.origin)
    return page(
        request,
        "events.html",
        status=status,
        events=[event_view(e) for e in records],
        filters=filters,
        filter_errors=filter_errors,
        event_names=EVENT_NAMES,
        statuses=STATUSES,
        origins=ORIGINS,
        total=total,
        page=page_no,
        pages=max(1, -(-total // PER_PAGE)),
        query=query_builder(query),
        forms=allowed_forms(caller),
        adhoc=adhoc,
        labels=LABELS,
        help=HELP,
        modify_statuses=MODIFY_STATUSES,
        form_errors=form_errors or {},
        form_values=form_values or {},
    )


async def history(request: web.Request) -> web.Response:
    return await events_page(request)


async def publish(request: web.Request) -> web.StreamResponse:
    """``POST /events``: publish one event with origin UI; its outcome comes back as a notice.
    The application checks the role (a forged form is refused there, 403)."""
    form = await request.post()
    event = text_of(form, "event").upper()
    if event == adhoc_views.EVENT:
        return await publish_adhoc(request, form)
    spec = FORM_OF.get(event)
    if spec is None:
        shown = event[:40] + ("…" if len(event) > 40 else "")
        raise ValidationError([FieldError("event", f"unknown event {shown!r}: one of "
                                                   f"{', '.join(FORM_OF)}")])  # fmt: skip
    values = {name: text_of(form, name) for name in spec.fields}
    req, errors = event_request(spec, values)
    if errors:
        kept = {k: v[:ECHO_LIMIT] for k, v in values.items()}  # what was typed, within reason
        return await events_page(request, status=422, form_errors={event: errors},
                                 form_values={event: kept})  # fmt: skip
    outcome = await ops(request).publish_event(req, caller_of(request))
    kind = "ok" if outcome.status == "SUCCESS" else "error"
    raise redirect("/events", (kind, f"{outcome.message} (event {outcome.event_id})"))


async def publish_adhoc(request: web.Request, form: Mapping[str, Any]) -> web.StreamResponse:
    """An ADHOC event: its page once submitted; a field error, or a selection matching no
    connected agent, shown at its field. The application checks the role (403); a form
    with errors from a role that may not submit it is refused as well."""
    req, errors, values = adhoc_views.adhoc_request(form)
    caller = caller_of(request)
    if errors:
        forbid(caller, Action.ADHOC, "run ad-hoc commands")
    else:
        outcome = await ops(request).run_adhoc(req, caller)
        if outcome.status == "SUCCESS":
            raise redirect(f"/events/{outcome.event_id}", ("ok", outcome.message))
        where = values["select"] if values["select"] in ("agents", "queues") else "select"
        errors = {where: f"{outcome.message} (event {outcome.event_id})"}
    kept = {k: v[:ECHO_LIMIT] for k, v in values.items() if k != "cmd"}
    kept["cmd"] = values["cmd"][:8192]
    return await events_page(request, status=422, form_errors={adhoc_views.EVENT: errors},
                             form_values={adhoc_views.EVENT: kept})  # fmt: skip


# ----- one event -----


async def event_page(request: web.Request) -> web.Response:
    text = request.match_info["event_id"]
    if not digits(text) or len(text) > 18:
        raise web.HTTPNotFound(text="no such event: an event id is a number")
    record = await ops(request).get_event(int(text))
    run_id = record.args.get("run_id")
    adhoc = record.event == adhoc_views.EVENT
    results = await adhoc_views.results_context(ops(request), record.id) if adhoc else {}
    return page(
        request,
        "event.html",
        event=event_view(record),
        args_json=json.dumps(record.args, indent=2, ensure_ascii=False, sort_keys=True),
        run_id=run_id if isinstance(run_id, str) else "",
        adhoc=adhoc,
        **results,
    )


def routes() -> list[web.RouteDef]:
    return [
        web.get("/events", history),
        web.post("/events", publish),
        web.get("/events/{event_id}", event_page),
    ]

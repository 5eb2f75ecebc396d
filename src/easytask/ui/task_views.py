"""Task pages: the list (with bulk actions), a task, the form (new and edit, every field of
spec 2 with its help text and the server's message next to each field), and the actions."""

from __future__ import annotations

import json
import statistics
from typing import Any

from aiohttp import web

from easytask.core.authz import Action
from easytask.core.errors import EasyTaskError, ValidationError
from easytask.core.models import TASK_FIELDS, TaskDef
from easytask.core.records import EventRequest, RunFilter
from easytask.core.states import RunState
from easytask.core.timespec import schedule_display
from easytask.ui import forms
from easytask.ui.forms import Field, can, field_errors, forbid, form_values
from easytask.ui.render import duration, fragment, page, query_builder, redirect, run_view
from easytask.ui.sessions import caller_of
from easytask.ui.views import APP_KEY, PER_PAGE, digits, ops, page_number, path_id

RECENT_RUNS = 10
CHART_RUNS = 100
FAILURES = frozenset({RunState.FAILED, RunState.TERMINATED})
MAX_UPLOAD = 1024 * 1024

WHAT = (
    Field("name", "Name", "1-128 of A-Z a-z 0-9 _ . -, starting with a letter or digit", True),
    Field("description", "Description", "Up to 256 characters"),
    Field(
        "cmd", "Command", "Run by bash -c on the agent; placeholders such as ${E:YYYYMMDD}", True
    ),
    Field("run_on_host", "Queue (run on host)", "The queue an agent serves", True),
    Field("run_as_user", "Run as user", "OS user; default: the agent's own"),
    Field("stdout", "Stdout file", "Path of the standard output file on the agent", True),
    Field("stderr", "Stderr file", "Path of the standard error file on the agent", True),
    Field("task_owner", "Task owner", "Username; default: you"),
    Field("team", "Team", "Informational"),
    Field("profile", "Profile", "Env file name or absolute path; required with placeholders"),
    Field("calendar", "Holiday calendar", "No run on its dates, e.g. US_HOLIDAYS"),
)
SCHEDULE = (
    Field("timezone", "Timezone", "IANA name, e.g. US/Eastern or Europe/Paris"),
    Field("day_of_week", "Days of week", "7 characters of 0/1, Monday first: 1111100 = MON-FRI"),
    Field("ordinal_day", "Ordinal day", "Instead of days of week: e.g. last friday of every month"),
    Field("trigger_times", "Trigger times", "Comma-separated HH:MM, e.g. 08:30,17:00"),
    Field("run_frequency", "Run frequency", "Instead of trigger times: START-END-MINUTES"),
    Field("misfire_policy", "Misfire policy", "run_once, skip or run_all"),
    Field("misfire_grace", "Misfire grace (s)", "0-604800; default 3600", type="number"),
)
LIMITS = (
    Field("max_run_time", "Max run time (s)", "1-172800; killed after it", type="number"),
    Field("retry_attempts", "Retry attempts", "0-10", type="number"),
    Field("retry_delay", "Retry delay (s)", "0-86400", type="number"),
    Field(
        "task_accept_expiry_time",
        "Accept expiry (s)",
        "REJECTED when no agent acknowledges within it",
        type="number",
    ),
)
TID_FIELD = Field("tid", "TID", "Optional: above 1000; default the next free one", type="number")
INTEGERS = {f.name for f in (*SCHEDULE, *LIMITS) if f.type == "number"} | {"tid"}
NAMES = ("tid", "active", "task_group", "dependency",
         *(f.name for f in (*WHAT, *SCHEDULE, *LIMITS)))  # fmt: skip
FORM_FIELDS = ("active", "task_group", "dependency",
               *(f.name for f in (*WHAT, *SCHEDULE, *LIMITS)))  # fmt: skip


def task_values(task: TaskDef) -> dict[str, str]:
    data = task.to_json()
    out = {k: "" if v is None else str(v) for k, v in data.items() if not isinstance(v, dict)}
    out["active"] = "true" if task.active else "false"
    return out


def from_form(form: Any, *, creating: bool) -> dict[str, Any]:
    """The task JSON a form describes (forms.from_form): an emptied field is cleared."""
    names = ("tid", *FORM_FIELDS) if creating else FORM_FIELDS
    return forms.from_form(form, names, INTEGERS, creating=creating)


def refused_form(request: web.Request, tid: int | None, form: Any,
                 exc: EasyTaskError) -> web.Response:  # fmt: skip
    """The form again, as typed, with each message next to its field (422)."""
    return form_page(request, tid=tid, values=form_values(form, NAMES),
                     errors=field_errors(exc, NAMES), status=422)  # fmt: skip


def form_page(request: web.Request, *, tid: int | None, values: dict[str, str],
              errors: dict[str, str], status: int = 200) -> web.Response:  # fmt: skip
    app = ops(request)
    groups, _ = app.list_groups("", 1, 10_000)
    sections = {"what": ((TID_FIELD,) if tid is None else ()) + WHAT, "schedule": SCHEDULE,
                "limits": LIMITS}  # fmt: skip
    return page(
        request,
        "task_form.html",
        status=status,
        tid=tid,
        values=values,
        errors=errors,
        sections=sections,
        groups=[g.name for g in groups],
        action="/tasks/new" if tid is None else f"/tasks/{tid}/edit",
        cancel="/tasks" if tid is None else f"/tasks/{tid}",
    )


# ----- pages -----


async def tasks_page(request: web.Request) -> web.Response:
    app, caller, q = ops(request), caller_of(request), request.query
    active = {"yes": True, "no": False}.get(q.get("active", ""))
    status_text = q.get("status", "").upper()
    status = RunState(status_text) if status_text in RunState.__members__ else None
    page_no = page_number(q)
    tasks, total, statuses = app.list_tasks(active, q.get("search", "")[:128], page_no,
                                            PER_PAGE, status)  # fmt: skip
    rows = [
        {"tid": t.tid, "name": t.name, "status": s.value, "active": t.active,
         "queue": t.run_on_host, "group": t.task_group or "",
         "schedule": "(group)" if t.task_group else schedule_display(t), "owner": t.task_owner}
        for t, s in zip(tasks, statuses, strict=True)
    ]  # fmt: skip
    return page(
        request,
        "tasks.html",
        tasks=rows,
        search=q.get("search", ""),
        active=q.get("active", ""),
        total=total,
        page=page_no,
        pages=max(1, -(-total // PER_PAGE)),
        query=query_builder(q),
        back=request.path_qs,
        can_create=can(caller, Action.CREATE_TASK),
        can_change=can(caller, Action.CHANGE_TASK),
    )


async def task_runs(app: Any, tid: int) -> list[dict[str, Any]]:
    runs, _, _ = await app.list_runs(RunFilter(tid=tid), 1, RECENT_RUNS)
    return [run_view(r) for r in runs]


async def render_task_runs(app: web.Application, tid: int) -> str:
    return fragment(app, "_runs_table.html", runs=await task_runs(app[APP_KEY], tid))


def tid_of(request: web.Request) -> int:
    return path_id(request, "tid", "task")


async def task_page(request: web.Request) -> web.Response:
    app, caller = ops(request), caller_of(request)
    task = app.get_task(tid_of(request))
    data = task.to_json()
    # As the JSON shows them: true/false, not Python's True/False.
    fields = [(k, json.dumps(data[k]) if isinstance(data[k], (dict, list, bool)) else data[k])
              for k in TASK_FIELDS if data.get(k) not in (None, "")]  # fmt: skip
    return page(
        request,
        "task.html",
        task=task,
        task_status=app.task_status(task.tid).value,
        fields=fields,
        json_text=json.dumps(data, indent=2, ensure_ascii=False),
        runs=await task_runs(app, task.tid),
        chart=await duration_chart(app, task.tid),
        can_change=can(caller, Action.CHANGE_TASK, task.task_owner),
    )


async def duration_chart(app: Any, tid: int) -> dict[str, Any]:
    """The durations of the task's last CHART_RUNS runs that have one, oldest first, for the
    chart (``points``: start in Unix seconds, seconds, failed) and its text summary."""
    runs, _, _ = await app.list_runs(RunFilter(tid=tid), 1, CHART_RUNS)
    points = [
        (r.started_at.timestamp(), round(r.duration, 3), r.state in FAILURES, r.state.value)
        for r in reversed(runs)
        if r.duration is not None and r.started_at is not None
    ]
    seconds = [p[1] for p in points]
    return {
        "points": points,
        "count": len(points),
        "failed": sum(1 for p in points if p[2]),
        "median": round(statistics.median(seconds), 3) if seconds else None,
        "median_text": duration(statistics.median(seconds)) if seconds else "",
        "longest_text": duration(max(seconds)) if seconds else "",
    }


async def new_task_page(request: web.Request) -> web.Response:
    forbid(caller_of(request), Action.CREATE_TASK, "create tasks")
    return form_page(request, tid=None, values={"active": "true"}, errors={})


async def new_task_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    try:
        task = await ops(request).create_task(from_form(form, creating=True), caller_of(request))
    except EasyTaskError as exc:
        if not isinstance(exc, ValidationError):
            raise
        return refused_form(request, None, form, exc)
    raise redirect(f"/tasks/{task.tid}", ("ok", f"Task inserted successfully (tid {task.tid})"))


async def new_task_json(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    upload = form.get("file")
    raw = getattr(upload, "file", None)
    text = raw.read(MAX_UPLOAD + 1) if raw is not None else b""
    if not text or len(text) > MAX_UPLOAD:
        raise redirect("/tasks/new", ("error", "choose a JSON file of at most 1 MiB"))
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise redirect("/tasks/new", ("error", f"the file is not valid JSON: {exc}")) from None
    try:
        task = await ops(request).create_task(doc, caller_of(request))
    except ValidationError as exc:
        message = "; ".join(f"{e.field}: {e.message}" for e in exc.errors)
        raise redirect("/tasks/new", ("error", f"Task not inserted: {message}")) from None
    raise redirect(f"/tasks/{task.tid}", ("ok", f"Task inserted successfully (tid {task.tid})"))


async def edit_task_page(request: web.Request) -> web.Response:
    app, caller = ops(request), caller_of(request)
    task = app.get_task(tid_of(request))
    if not can(caller, Action.CHANGE_TASK, task.task_owner):
        raise web.HTTPForbidden(text=f"role {caller.role.value} may not change task {task.tid}")
    return form_page(request, tid=task.tid, values=task_values(task), errors={})


async def edit_task_submit(request: web.Request) -> web.StreamResponse:
    app, tid = ops(request), tid_of(request)
    form = await request.post()
    try:
        await app.update_task(tid, "", from_form(form, creating=False), caller_of(request))
    except ValidationError as exc:
        return refused_form(request, tid, form, exc)
    raise redirect(f"/tasks/{tid}", ("ok", f"Task {tid} updated"))


EVENTS = {"enable": "ENABLE_TASK", "disable": "DISABLE_TASK", "freeze": "FREEZE_TASK",
          "force-run": "FORCE_RUN_TASK"}  # fmt: skip


async def task_action(request: web.Request) -> web.StreamResponse:
    app, tid, caller = ops(request), tid_of(request), caller_of(request)
    action = request.match_info["action"]
    if action == "delete":
        task, _ = await app.delete_task(tid, "", False, caller)
        raise redirect("/tasks", ("ok", f"Task {task.tid} ({task.name}) deleted"))
    event = EVENTS.get(action)
    if event is None:
        raise web.HTTPNotFound(text=f"no action {action!r}")
    outcome = await app.publish_event(EventRequest(event, tid=tid, origin="UI"), caller)
    if outcome.status != "SUCCESS":
        raise redirect(f"/tasks/{tid}", ("error", outcome.message))
    if outcome.run is not None:
        raise redirect(f"/runs/{outcome.run.run_id}", ("ok", outcome.message))
    raise redirect(f"/tasks/{tid}", ("ok", outcome.message))


async def bulk_action(request: web.Request) -> web.StreamResponse:
    app, caller = ops(request), caller_of(request)
    form = await request.post()
    back = str(form.get("back", "/tasks"))
    back = back if back.startswith("/tasks") else "/tasks"
    event = EVENTS.get(str(form.get("action", "")))
    tids = [int(v) for v in form.getall("tid", []) if isinstance(v, str) and digits(v)]
    if event is None or event == "FREEZE_TASK":
        raise web.HTTPBadRequest(text="action must be enable, disable or force-run")
    if not tids:
        raise redirect(back, ("error", "select at least one task first"))
    failed: list[str] = []
    for tid in tids:
        try:
            outcome = await app.publish_event(EventRequest(event, tid=tid, origin="UI"), caller)
        except EasyTaskError as exc:
            failed.append(f"{tid}: {exc}")
            continue
        if outcome.status != "SUCCESS":
            failed.append(f"{tid}: {outcome.message}")
    done = len(tids) - len(failed)
    text = f"{event} on {done} of {len(tids)} tasks"
    if failed:
        raise redirect(back, ("error", f"{text}; refused: {'; '.join(failed)}"))
    raise redirect(back, ("ok", text))

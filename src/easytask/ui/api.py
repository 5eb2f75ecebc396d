"""The dashboard's JSON API under ``/api/v1/``: parse the body into its model, call the
application layer (the same operations, policy and validation as the gRPC API), answer JSON.

Authentication is the session middleware's (a ``Authorization: Bearer`` access token, or the
login cookies plus the CSRF header). Errors are JSON: ``{"error": message}`` with the status of
the error (app.error_pages), and for refused input ``{"error", "errors": [{"field",
"message"}]}``: 400 when the body is no JSON object, 422 when a field is wrong.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel
from pydantic import ValidationError as ModelError

from easytask.core.errors import FieldError, ValidationError
from easytask.core.groups import GroupDef
from easytask.core.models import Run, StateChange, TaskDef
from easytask.core.records import EventFilter, EventRecord, EventRequest, RunFilter
from easytask.core.states import RunState
from easytask.core.text import parse_json
from easytask.scheduler.app import STREAMS, SchedulerApp
from easytask.ui import api_models as m
from easytask.ui import log_views
from easytask.ui.sessions import caller_of
from easytask.ui.views import ops, path_id

# Live topics this module renders: kind -> render(app, rest of the key) (see app.render_topic).

PREFIX = "/api/v1"
M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# ----- reading requests, writing answers -----


class BadBody(Exception):
    """The request body is not a JSON object (answered 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def refused(status: int, errors: list[FieldError]) -> web.Response:
    body = m.ErrorBody(
        error="; ".join(str(e) for e in errors),
        errors=[m.FieldProblem(field=e.field, message=e.message) for e in errors],
    )
    return reply(body, status)


def model_errors(exc: ModelError) -> list[FieldError]:
    """pydantic's errors as ours: the field's dotted path, the message without the input."""
    out: list[FieldError] = []
    for e in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(p) for p in e["loc"]) or "body"
        message = "unknown field" if e["type"] == "extra_forbidden" else e["msg"]
        out.append(FieldError(field, message))
    return out


def api(handler: Handler) -> Handler:
    """Refused input as 400/422 JSON naming the fields; other errors go to app.error_pages."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except BadBody as exc:
            return refused(400, [FieldError("body", exc.message)])
        except ModelError as exc:
            return refused(422, model_errors(exc))
        except ValidationError as exc:
            return refused(422, exc.errors)

    return wrapper


async def read_object(request: web.Request) -> dict[str, object]:
    """The body as a JSON object, bounded in size and nesting (core.text.parse_json)."""
    raw = await request.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadBody("body must be UTF-8 JSON") from None
    try:
        doc = parse_json(text, "body")
    except ValidationError as exc:
        raise BadBody("; ".join(e.message for e in exc.errors)) from None
    if not isinstance(doc, dict):
        raise BadBody(f"body must be a JSON object, not {type(doc).__name__}")
    return doc


async def read_model(request: web.Request, model: type[M]) -> M:
    return model.model_validate(await read_object(request))


def query(request: web.Request, model: type[M]) -> M:
    return model.model_validate({k: request.query[k] for k in request.query})


def reply(body: BaseModel, status: int = 200) -> web.Response:
    return web.Response(text=body.model_dump_json(), status=status, content_type="application/json")


# ----- conversions -----


def task_out(app: SchedulerApp, task: TaskDef, status: RunState | None = None) -> m.TaskOut:
    status = status if status is not None else app.task_status(task.tid)
    return m.TaskOut(task=task.to_json(), status=status.value)


def group_out(app: SchedulerApp, group: GroupDef) -> m.GroupOut:
    members, state = app.group_summary(group)
    return m.GroupOut(group=group.to_json(), member_count=members, state=state)


def run_out(run: Run, changes: list[StateChange] | None = None) -> m.RunOut:
    transitions = None
    if changes is not None:
        transitions = [
            m.Transition(from_state=c.from_state.value if c.from_state else None,
                         to_state=c.to_state.value, at=m.iso(c.at), reason=c.reason)
            for c in changes
        ]  # fmt: skip
    return m.RunOut(
        run_id=run.run_id, tid=run.tid, name=run.name, group=run.group,
        group_run_id=run.group_run_id, instance=run.instance, run_date=run.run_date,
        scheduled_utc=m.iso(run.scheduled_utc), local_time=run.local_time, timezone=run.timezone,
        attempt=run.attempt, state=run.state.value, state_code=run.state.code, reason=run.reason,
        queue=run.queue, agent=run.agent, host=run.host, pid=run.pid, return_code=run.return_code,
        triggered_at=m.iso(run.triggered_at), dispatched_at=m.iso(run.dispatched_at),
        acked_at=m.iso(run.acked_at), started_at=m.iso(run.started_at),
        ended_at=m.iso(run.ended_at), duration=run.duration, stdout_path=run.stdout_path,
        stderr_path=run.stderr_path, stdout_range=run.stdout_range, stderr_range=run.stderr_range,
        forced=run.forced, forced_by=run.forced_by, alert_status=run.alert_status,
        created_at=m.iso(run.created_at), updated_at=m.iso(run.updated_at),
        transitions=transitions,
    )  # fmt: skip


# ----- accounts and the board -----


@api
async def login(request: web.Request) -> web.StreamResponse:
    body = await read_model(request, m.LoginIn)
    app = ops(request)
    session = await app.login(body.username, body.password)
    return reply(m.LoginOut(
        access_token=session.access_token, refresh_token=session.refresh_token,
        expires_at=m.iso(session.access_expires_at) or "", username=session.user.username,
        role=session.user.role, instance=app.instance,
    ))  # fmt: skip


@api
async def whoami(request: web.Request) -> web.StreamResponse:
    u = await ops(request).whoami(caller_of(request))
    return reply(m.UserOut(
        username=u.username, role=u.role, email=u.email, first_name=u.first_name,
        last_name=u.last_name, active=u.active, created_at=m.iso(u.created_at),
        updated_at=m.iso(u.updated_at),
    ))  # fmt: skip


@api
async def board(request: web.Request) -> web.StreamResponse:
    b = await ops(request).board()
    return reply(m.BoardOut(
        run_date=b.run_date, tasks={k.value: v for k, v in b.tasks.items()},
        live_runs={k.value: v for k, v in b.live.items()},
        final_runs={k.value: v for k, v in b.final.items()},
        agents_online=b.agents_online, agents_offline=b.agents_offline,
    ))  # fmt: skip


# ----- tasks -----


@api
async def list_tasks(request: web.Request) -> web.StreamResponse:
    q, app = query(request, m.TaskQuery), ops(request)
    status = RunState(q.status) if q.status else None
    tasks, total, statuses = app.list_tasks(q.active, q.search, q.page, q.per_page, status)
    rows = [task_out(app, t, s) for t, s in zip(tasks, statuses, strict=True)]
    return reply(m.TaskPage(tasks=rows, total=total, page=q.page, per_page=q.per_page))


@api
async def create_task(request: web.Request) -> web.StreamResponse:
    app = ops(request)
    task = await app.create_task(await read_object(request), caller_of(request))
    return reply(task_out(app, task), 201)


@api
async def get_task(request: web.Request) -> web.StreamResponse:
    app = ops(request)
    return reply(task_out(app, app.get_task(path_id(request, "tid", "task"))))


@api
async def update_task(request: web.Request) -> web.StreamResponse:
    app, tid = ops(request), path_id(request, "tid", "task")
    task = await app.update_task(tid, "", await read_object(request), caller_of(request))
    return reply(task_out(app, task))


@api
async def delete_task(request: web.Request) -> web.StreamResponse:
    q, tid = query(request, m.DeleteQuery), path_id(request, "tid", "task")
    task, cleared = await ops(request).delete_task(tid, "", q.cascade, caller_of(request))
    return reply(m.TaskDeleted(tid=task.tid, name=task.name, dependencies_cleared=cleared))


# ----- groups -----


@api
async def list_groups(request: web.Request) -> web.StreamResponse:
    q, app = query(request, m.GroupQuery), ops(request)
    groups, total = app.list_groups(q.search, q.page, q.per_page)
    rows = [group_out(app, g) for g in groups]
    return reply(m.GroupPage(groups=rows, total=total, page=q.page, per_page=q.per_page))


@api
async def create_group(request: web.Request) -> web.StreamResponse:
    app = ops(request)
    group = await app.create_group(await read_object(request), caller_of(request))
    return reply(group_out(app, group), 201)


@api
async def get_group(request: web.Request) -> web.StreamResponse:
    app = ops(request)
    return reply(group_out(app, app.get_group(path_id(request, "gid", "group"))))


@api
async def update_group(request: web.Request) -> web.StreamResponse:
    app, gid = ops(request), path_id(request, "gid", "group")
    group = await app.update_group(gid, "", await read_object(request), caller_of(request))
    return reply(group_out(app, group))


@api
async def delete_group(request: web.Request) -> web.StreamResponse:
    q, gid = query(request, m.DeleteQuery), path_id(request, "gid", "group")
    group, deleted, cleared = await ops(request).delete_group(gid, "", q.cascade,
                                                              caller_of(request))  # fmt: skip
    return reply(m.GroupDeleted(gid=group.gid, name=group.name, tasks_deleted=deleted,
                                dependencies_cleared=cleared))  # fmt: skip


# ----- runs and their output -----


@api
async def list_runs(request: web.Request) -> web.StreamResponse:
    q, app = query(request, m.RunQuery), ops(request)
    dated = q.run_date or q.date_from or q.date_to
    flt = RunFilter(
        state=q.state, search=q.search, tid=q.tid, run_date=q.run_date,
        since=None if dated else app.now() - timedelta(hours=q.since), date_from=q.date_from,
        date_to=q.date_to, agent=q.agent,
    )  # fmt: skip
    runs, total, stats = await app.list_runs(flt, q.page, q.per_page, q.group)
    return reply(m.RunPage(runs=[run_out(r) for r in runs], total=total, page=q.page,
                           per_page=q.per_page, stats=stats))  # fmt: skip


@api
async def get_run(request: web.Request) -> web.StreamResponse:
    run, changes = await ops(request).get_run(request.match_info["run_id"])
    return reply(run_out(run, changes))


@api
async def run_output(request: web.Request) -> web.StreamResponse:
    app, stream = ops(request), request.match_info["stream"]
    if stream not in STREAMS:
        raise web.HTTPNotFound(text=f"no stream {stream[:32]!r}: stdout or stderr")
    q = query(request, m.OutputQuery)
    run, _ = await app.get_run(request.match_info["run_id"])
    stored = await log_views.stored(request, run.run_id, stream)
    data, next_offset = output_chunk(stored.parts, q.offset, q.limit)
    return reply(m.OutputChunk(
        run_id=run.run_id, stream=stream, offset=q.offset, next_offset=next_offset,
        text=data.decode("utf-8", "replace"), more=next_offset < stored.end,
        state=run.state.value,
    ))  # fmt: skip


def output_chunk(
    parts: tuple[tuple[int, bytes], ...], offset: int, limit: int
) -> tuple[bytes, int]:
    """At most ``limit`` stored bytes from stream offset ``offset`` (from the next piece when
    it falls in a cut), never splitting a UTF-8 character; and the offset to ask for next
    (over a cut, the next piece's start)."""
    for index, (start, data) in enumerate(parts):
        if offset >= start + len(data):
            continue
        begin = max(offset, start) - start
        size = min(limit, len(data) - begin)
        if begin + size < len(data):
            size = _char_boundary(memoryview(data)[begin:], size)  # no copy of the copy
        after = start + begin + size
        if after == start + len(data) and index + 1 < len(parts):
            after = parts[index + 1][0]  # the chunk reached a cut: resume after it
        return data[begin : begin + size], after
    end = parts[-1][0] + len(parts[-1][1]) if parts else 0
    return b"", max(offset, end) if parts else offset


def _char_boundary(data: bytes | memoryview, limit: int) -> int:
    """``limit``, moved back to the start of a UTF-8 character (at most 3 bytes back)."""
    size = limit
    while size > limit - 3 and size > 1 and (data[size] & 0xC0) == 0x80:
        size -= 1
    return size


# ----- events -----


@api
async def publish_event(request: web.Request) -> web.StreamResponse:
    body = await read_model(request, m.EventIn)
    req = EventRequest(
        event=body.event, tid=body.tid, name=body.name, run_date=body.run_date,
        trigger_time=body.trigger_time, status=body.status, run_id=body.run_id, origin="API",
        gid=body.gid, group_name=body.group_name,
    )  # fmt: skip
    outcome = await ops(request).publish_event(req, caller_of(request))
    return reply(m.EventOutcomeOut(
        event_id=outcome.event_id, status=outcome.status, message=outcome.message,
        run_id=outcome.run.run_id if outcome.run else None,
        run_date=outcome.run.run_date if outcome.run else outcome.run_date,
    ))  # fmt: skip


def event_out(r: EventRecord) -> m.EventOut:
    return m.EventOut(
        id=r.id, event=r.event, target=r.target, args=r.args, status=r.status, message=r.message,
        origin=r.origin, published_by=r.published_by, created_at=m.iso(r.created_at),
        acked_at=m.iso(r.acked_at), acked_by=r.acked_by,
    )  # fmt: skip


@api
async def list_events(request: web.Request) -> web.StreamResponse:
    q, app = query(request, m.EventQuery), ops(request)
    dated = q.date_from is not None or q.date_to is not None
    since = None if dated else app.now() - timedelta(hours=q.since)
    if q.date_from is not None:
        since = datetime.combine(q.date_from, time(), tzinfo=UTC)
    until = None
    if q.date_to is not None:
        until = datetime.combine(q.date_to + timedelta(days=1), time(), tzinfo=UTC)
    flt = EventFilter(event=q.event.upper(), status=q.status.upper(), origin=q.origin.upper(),
                      since=since, until=until, published_by=q.published_by)  # fmt: skip
    records, total = await app.find_events(flt, q.target, q.page, q.per_page)
    return reply(m.EventPage(events=[event_out(r) for r in records], total=total, page=q.page,
                             per_page=q.per_page))  # fmt: skip


@api
async def get_event(request: web.Request) -> web.StreamResponse:
    return reply(event_out(await ops(request).get_event(path_id(request, "event_id", "event"))))


# ----- agents, upcoming, calendars -----


@api
async def agents(request: web.Request) -> web.StreamResponse:
    rows = []
    for v in await ops(request).agents():
        r = v.record
        rows.append(m.AgentOut(
            name=r.name, online=v.online, host=r.host, queues=list(r.queues), version=r.version,
            pid=r.pid, cpu_percent=v.cpu_percent, mem_percent=v.mem_percent,
            uptime_seconds=v.uptime_seconds,
            connected_since=m.iso(r.connected_since) if v.online else None,
            last_seen=m.iso(r.last_seen), running_run_ids=list(v.running_run_ids),
        ))  # fmt: skip
    return reply(m.AgentList(agents=rows))


@api
async def upcoming(request: web.Request) -> web.StreamResponse:
    q, app = query(request, m.UpcomingQuery), ops(request)
    now = app.now()
    end = now + timedelta(hours=q.hours)
    rows = [] if q.gid else [
        m.UpcomingOut(
            kind="task", tid=u.task.tid, gid=0, name=u.task.name,
            next_run_utc=m.iso(u.slot.scheduled_utc), local_date=f"{u.slot.local_date:%Y-%m-%d}",
            local_time=u.slot.local_time, timezone=u.slot.timezone, group=u.task.task_group,
            queue=u.task.run_on_host, note=u.note,
        )
        for u in app.upcoming(q.tid, now, end, q.count)
    ]  # fmt: skip
    if not q.tid:
        rows += [
            m.UpcomingOut(
                kind="group", tid=0, gid=g.group.gid, name=g.group.name,
                next_run_utc=m.iso(g.slot.scheduled_utc),
                local_date=f"{g.slot.local_date:%Y-%m-%d}", local_time=g.slot.local_time,
                timezone=g.slot.timezone, group=g.group.name, queue="", note=g.note,
            )
            for g in app.upcoming_groups(q.gid, now, end, q.count)
        ]  # fmt: skip
        rows.sort(key=lambda r: (r.next_run_utc or "", r.kind, r.tid, r.gid))
    return reply(m.UpcomingList(upcoming=rows[: q.count]))


@api
async def calendars(request: web.Request) -> web.StreamResponse:
    q = query(request, m.CalendarQuery)
    views, total = ops(request).list_calendars(q.include_builtin, q.page, q.per_page)
    rows = [
        m.CalendarOut(name=v.name, kind=v.kind, description=v.description, entries=v.entries,
                      created_by=v.created_by, created_at=m.iso(v.created_at))
        for v in views
    ]  # fmt: skip
    return reply(m.CalendarPage(calendars=rows, total=total, page=q.page, per_page=q.per_page))


def routes() -> list[web.RouteDef]:
    p = PREFIX
    return [
        web.post(f"{p}/login", login),
        web.get(f"{p}/whoami", whoami),
        web.get(f"{p}/board", board),
        web.get(f"{p}/tasks", list_tasks),
        web.post(f"{p}/tasks", create_task),
        web.get(f"{p}/tasks/{{tid}}", get_task),
        web.patch(f"{p}/tasks/{{tid}}", update_task),
        web.delete(f"{p}/tasks/{{tid}}", delete_task),
        web.get(f"{p}/groups", list_groups),
        web.post(f"{p}/groups", create_group),
        web.get(f"{p}/groups/{{gid}}", get_group),
        web.patch(f"{p}/groups/{{gid}}", update_group),
        web.delete(f"{p}/groups/{{gid}}", delete_group),
        web.get(f"{p}/runs", list_runs),
        web.get(f"{p}/runs/{{run_id}}", get_run),
        web.get(f"{p}/runs/{{run_id}}/output/{{stream}}", run_output),
        web.post(f"{p}/events", publish_event),
        web.get(f"{p}/events", list_events),
        web.get(f"{p}/events/{{event_id}}", get_event),
        web.get(f"{p}/agents", agents),
        web.get(f"{p}/upcoming", upcoming),
        web.get(f"{p}/calendars", calendars),
    ]

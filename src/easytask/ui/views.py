"""Pages of the status board, runs and output: parse the request, call the application,
render. Their live parts are the same partial templates the live channel re-renders."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from easytask.core.authz import Action, refusal
from easytask.core.errors import AuthError, NotFoundError
from easytask.core.models import Run
from easytask.core.records import Board, EventRequest, RunFilter
from easytask.core.states import RunState
from easytask.scheduler.app import SchedulerApp
from easytask.ui.render import (
    fragment,
    page,
    query_builder,
    redirect,
    run_view,
    when,
)
from easytask.ui.sessions import Sessions, caller_of, safe_next, token_of

APP_KEY: web.AppKey[SchedulerApp] = web.AppKey("easytask.app", SchedulerApp)
SESSIONS_KEY: web.AppKey[Sessions] = web.AppKey("easytask.sessions", Sessions)
PER_PAGE = 25

# (state, what it counts, link): spec 13's board, left to right.
CARDS = (
    (RunState.IDLE, "tasks", "/tasks?status=IDLE"),
    (RunState.ACTIVE, "tasks", "/tasks?status=ACTIVE"),
    (RunState.TRIGGER, "runs", "/runs?state=TRIGGER&since=8760"),
    (RunState.STARTED, "runs", "/runs?state=STARTED&since=8760"),
    (RunState.RUNNING, "runs", "/runs?state=RUNNING&since=8760"),
    (RunState.SUCCESS, "runs today", "/runs?state=SUCCESS&run_date={d}"),
    (RunState.FAILED, "runs today", "/runs?state=FAILED&run_date={d}"),
    (RunState.TERMINATED, "runs today", "/runs?state=TERMINATED&run_date={d}"),
)


def ops(request: web.Request) -> SchedulerApp:
    return request.app[APP_KEY]


def board_view(board: Board) -> dict[str, Any]:
    counts = {**board.tasks, **board.live, **board.final}
    cards = [
        {"state": s.value, "count": counts.get(s, 0), "what": what,
         "href": href.format(d=board.run_date)}
        for s, what, href in CARDS
    ]  # fmt: skip
    return {
        "cards": cards,
        "run_date": board.run_date,
        "agents_online": board.agents_online,
        "agents_offline": board.agents_offline,
    }


async def render_board(app: web.Application) -> str:
    board = await app[APP_KEY].board()
    return fragment(app, "_board.html", board=board_view(board))


# ----- login -----


async def login_page(request: web.Request) -> web.Response:
    return page(request, "login.html", error="", username="",
                next=safe_next(request.query.get("next", "/")))  # fmt: skip


async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    target = safe_next(str(form.get("next", "/")))
    try:
        session = await ops(request).login(username, password)
    except AuthError as exc:
        return page(request, "login.html", status=401, error=str(exc), username=username,
                    next=target)  # fmt: skip
    response = web.HTTPSeeOther(target)
    request.app[SESSIONS_KEY].set_cookies(response, session, ops(request).now())
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    token = token_of(request)  # the refreshed one when the cookie's had expired
    if token:
        await ops(request).logout(token)
    response = web.HTTPSeeOther("/login")
    Sessions.clear_cookies(response)
    raise response


# ----- board -----


async def board_page(request: web.Request) -> web.Response:
    app = ops(request)
    board = await app.board()
    now = app.now()
    upcoming = upcoming_entries(app, 0, 0, now, 24.0, 20)
    return page(request, "board.html", board=board_view(board), upcoming=upcoming,
                instance=app.instance)  # fmt: skip


# ----- runs -----


def run_date_param(text: str) -> str:
    """A run date of a query string (YYYYMMDD or YYYY-MM-DD); "" when it is not one."""
    text = text.replace("-", "")
    return text if len(text) == 8 and digits(text) else ""


def run_filter(query: Any, now: datetime) -> tuple[RunFilter, str, str]:
    """The runs filter of a query string, the "since" hours and the group name (bad values
    are ignored, never an error page). Without a run date or date range: runs created in
    the last ``since`` hours, and every live one."""
    state = query.get("state", "").upper()
    if state not in RunState.__members__:
        state = ""
    run_date = run_date_param(query.get("run_date", ""))
    date_from = run_date_param(query.get("from", ""))
    date_to = run_date_param(query.get("to", ""))
    hours = bounded(query.get("since", ""), 24.0, 0.01, 24 * 365 * 10)
    dated = run_date or date_from or date_to
    flt = RunFilter(
        state=state,
        search=query.get("search", "")[:128],
        tid=tid_param(query.get("tid", "")),
        run_date=run_date,
        since=None if dated else now - timedelta(hours=hours),
        date_from=date_from,
        date_to=date_to,
        agent=query.get("agent", "")[:128],
    )
    return flt, f"{hours:g}", query.get("group", "")[:128]


async def runs_found(app: SchedulerApp, query: Any) -> tuple[list[Run], int, dict[str, int]]:
    """The page of runs a query string asks for, their total and the count per state."""
    flt, _, group = run_filter(query, app.now())
    return await app.list_runs(flt, page_number(query), PER_PAGE, group)


async def runs_context(app: SchedulerApp, query: Any) -> dict[str, Any]:
    flt, since, group = run_filter(query, app.now())
    page_no = page_number(query)
    runs, total, stats = await app.list_runs(flt, page_no, PER_PAGE, group)
    agents = sorted(a.record.name for a in await app.agents())
    return {
        "runs": [run_view(r) for r in runs],
        "flt": flt,
        "group": group,
        "groups": [g.name for g in app.list_groups("", 1, 1000)[0]],
        "agents": agents,
        "since": since,
        "total": total,
        "page": page_no,
        "pages": max(1, -(-total // PER_PAGE)),
        "stats": sorted(stats.items()),
    }


def page_number(query: Any) -> int:
    text = query.get("page", "1")
    return max(1, int(text)) if digits(text) and len(text) < 7 else 1


def digits(text: str) -> bool:
    """ASCII digits only (``str.isdigit`` also takes ``²``, which ``int`` refuses)."""
    return text.isascii() and text.isdigit()


def path_id(request: web.Request, name: str, what: str) -> int:
    """A tid or gid of the path; 404 naming it when it is not a number."""
    text = request.match_info[name]
    if not digits(text) or len(text) > 10:
        raise web.HTTPNotFound(text=f"no {what} {text[:32]!r}: a {name} is a number")
    return int(text)


def tid_param(text: str) -> int:
    """A tid filter of a query string; 0 (no filter) when it is not one."""
    return int(text) if digits(text) and len(text) < 11 else 0


async def session_check(_: web.Request) -> web.Response:
    """``GET /session``: 204 when logged in (the middleware refreshes the cookies on the way);
    the live channel asks it when its socket is refused."""
    return web.Response(status=204)


async def runs_page(request: web.Request) -> web.Response:
    ctx = await runs_context(ops(request), request.query)
    live = urlencode(sorted((k, v) for k, v in request.query.items() if v))  # its page too
    return page(request, "runs.html", states=[s.value for s in RunState if s != RunState.PASSIVE],
                query=query_builder(request.query), live_topic=f"runs:{live}", **ctx)  # fmt: skip


async def render_runs(app: web.Application, query: Any) -> str:
    runs, _, _ = await runs_found(app[APP_KEY], query)  # only what the live table shows
    return fragment(app, "_runs_table.html", runs=[run_view(r) for r in runs])


async def run_page(request: web.Request) -> web.Response:
    app = ops(request)
    run, transitions = await app.get_run(request.match_info["run_id"])
    caller = caller_of(request)
    can_run = refusal(caller, Action.RUN_TASK, owner=task_owner(app, run.tid)) is None
    same_day, _, _ = await app.list_runs(RunFilter(tid=run.tid, run_date=run.run_date), 1, 200)
    attempts = sorted((r for r in same_day if r.scheduled_utc == run.scheduled_utc),
                      key=lambda r: r.attempt)  # fmt: skip
    return page(request, "run.html", run=run_view(run), transitions=transition_views(transitions),
                can_run=can_run, attempts=[run_view(r) for r in attempts])  # fmt: skip


def transition_views(transitions: Any) -> list[dict[str, str]]:
    return [
        {"at": when(t.at), "from_state": t.from_state.value if t.from_state else "",
         "to_state": t.to_state.value, "reason": t.reason}
        for t in transitions
    ]  # fmt: skip


async def render_run(app: web.Application, run_id: str) -> str:
    run, transitions = await app[APP_KEY].get_run(run_id)
    return fragment(app, "_run_summary.html", run=run_view(run),
                    transitions=transition_views(transitions))  # fmt: skip


async def render_run_state(app: web.Application, run_id: str) -> str:
    run, _ = await app[APP_KEY].get_run(run_id)
    return fragment(app, "_state.html", name=run.state.value, reason=run.reason)


def task_owner(app: SchedulerApp, tid: int) -> str:
    try:
        return app.get_task(tid).task_owner
    except NotFoundError:
        return ""


async def terminate(request: web.Request) -> web.StreamResponse:
    app = ops(request)
    run, _ = await app.get_run(request.match_info["run_id"])
    outcome = await app.publish_event(
        EventRequest("TERMINATE_TASK", tid=run.tid, run_id=run.run_id, origin="UI"),
        caller_of(request),
    )
    kind = "ok" if outcome.status == "SUCCESS" else "error"
    raise redirect(f"/runs/{run.run_id}", (kind, outcome.message))


# ----- upcoming -----


def bounded(text: str, default: float, low: float, high: float) -> float:
    """A number from a query string, within [low, high]; the default when it is no number."""
    try:
        value = float(text) if text else default
    except ValueError:
        return default
    return min(max(value, low), high) if math.isfinite(value) else default


async def upcoming_page(request: web.Request) -> web.Response:
    app, q = ops(request), request.query
    tid, gid = tid_param(q.get("tid", "")), tid_param(q.get("gid", ""))
    hours = bounded(q.get("hours", ""), 24.0, 0.1, 24 * 366)
    count = int(bounded(q.get("count", ""), 50, 1, 1000))
    now = app.now()
    entries = upcoming_entries(app, tid, gid, now, hours, count)
    return page(request, "upcoming.html", entries=entries, tid=tid, gid=gid,
                hours=f"{hours:g}", count=count,
                timeline=timeline(entries, now, hours))  # fmt: skip


def upcoming_entries(app: SchedulerApp, tid: int, gid: int, now: datetime, hours: float,
                     count: int) -> list[dict[str, Any]]:  # fmt: skip
    """Task and group occurrences of the next ``hours``, merged in time order: a tid shows
    that task's only, a gid that group's only, neither both kinds."""
    end = now + timedelta(hours=hours)
    entries: list[dict[str, Any]] = []
    if not gid:
        for u in app.upcoming(tid, now, end, count):
            entries.append({"at": u.slot.scheduled_utc, "local": u.slot.local_time,
                            "timezone": u.task.timezone, "key": f"t{u.task.tid}",
                            "id": str(u.task.tid), "name": u.task.name,
                            "href": f"/tasks/{u.task.tid}", "kind": "task",
                            "queue": u.task.run_on_host, "note": u.note})  # fmt: skip
    if not tid:
        for g in app.upcoming_groups(gid, now, end, count):
            members, _ = app.group_summary(g.group)
            entries.append({"at": g.slot.scheduled_utc, "local": g.slot.local_time,
                            "timezone": g.group.timezone, "key": f"g{g.group.gid}",
                            "id": f"group {g.group.gid}", "name": g.group.name,
                            "href": f"/groups/{g.group.gid}", "kind": "group",
                            "queue": f"{members} member tasks", "note": g.note})  # fmt: skip
    entries.sort(key=lambda e: (e["at"], e["key"]))
    for e in entries[:count]:
        e["when"] = when(e["at"])
    return entries[:count]


TIMELINE_WIDTH = 1000
TIMELINE_LABELS = 200
TIMELINE_LANES = 30
TICK_HOURS = (0.25, 0.5, 1, 2, 3, 6, 12, 24, 48, 168, 336, 720, 1440)


def timeline(entries: list[dict[str, Any]], now: datetime, hours: float) -> dict[str, Any]:
    """The occurrences as marks on one axis from now, one lane per task or group (the first
    TIMELINE_LANES in time order); ticks labelled by hours from now, so the picture reads
    the same in every time zone."""
    lanes: dict[str, list[dict[str, Any]]] = {}
    first: dict[str, dict[str, Any]] = {}
    span = TIMELINE_WIDTH - TIMELINE_LABELS - 10
    for e in entries:
        key = e["key"]
        if key not in lanes and len(lanes) >= TIMELINE_LANES:
            continue
        first.setdefault(key, e)
        at = (e["at"] - now).total_seconds() / 3600
        note = f" - {e['note']}" if e["note"] else ""
        lanes.setdefault(key, []).append({
            "x": round(TIMELINE_LABELS + at / hours * span, 1),
            "title": f"{e['name']}: {e['when']} UTC ({e['local']} {e['timezone']}){note}",
        })  # fmt: skip
    step = next((h for h in TICK_HOURS if hours / h <= 12), TICK_HOURS[-1])
    ticks = []
    for i in range(int(hours / step) + 1):
        value = i * step
        label = "now" if i == 0 else (f"+{value:g} h" if value < 48 else f"+{value / 24:g} d")
        ticks.append({"x": round(TIMELINE_LABELS + value / hours * span, 1), "label": label})
    rows = [{"key": key, "name": first[key]["name"], "href": first[key]["href"],
             "kind": first[key]["kind"], "marks": marks, "y": 24 + i * 22}
            for i, (key, marks) in enumerate(lanes.items())]  # fmt: skip
    more = len({e["key"] for e in entries}) - len(rows)
    return {"rows": rows, "ticks": ticks, "width": TIMELINE_WIDTH, "left": TIMELINE_LABELS,
            "height": 34 + len(rows) * 22, "more": more}  # fmt: skip

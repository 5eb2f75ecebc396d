"""Group pages: the list (member counts, latest occurrence), a group with its members, its
occurrences and a Gantt of one occurrence's member runs, the form (every field of spec 3), the
actions, and the dependency graph. The live part of a group's pages is the ``group:<gid>``
topic: the member table the graph is coloured from, and the occurrence's Gantt."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aiohttp import web

from easytask.core.authz import Action
from easytask.core.deps import parse_dependency, terms
from easytask.core.errors import (
    DependencyError,
    EasyTaskError,
    NotFoundError,
    ValidationError,
)
from easytask.core.groups import GroupDef
from easytask.core.models import Run
from easytask.core.records import EventRequest, GroupRun
from easytask.core.timespec import format_schedule
from easytask.scheduler.app import SchedulerApp
from easytask.ui import forms
from easytask.ui.forms import Field, can, field_errors, forbid, form_values
from easytask.ui.render import fragment, page, query_builder, redirect, run_view, when
from easytask.ui.sessions import caller_of
from easytask.ui.views import APP_KEY, PER_PAGE, ops, page_number, path_id

OCCURRENCES = 20  # listed on a group's page
GANTT_WIDTH = 900
GANTT_ROW = 24

FIELDS = (
    Field("name", "Name", "1-128 of A-Z a-z 0-9 _ . -, starting with a letter or digit", True),
    Field("description", "Description", "Up to 256 characters"),
    Field("team", "Team", "Informational, up to 64 characters"),
    Field("timezone", "Timezone", "IANA name, e.g. US/Eastern or Europe/Paris", True),
    Field("day_of_week", "Days of week", "7 characters of 0/1, Monday first: 1111100 = MON-FRI"),
    Field("ordinal_day", "Ordinal day", "Instead of days of week: e.g. last friday of every month"),
    Field("trigger_times", "Trigger times", "Comma-separated HH:MM, e.g. 08:30,17:00", True),
    Field("calendar", "Holiday calendar", "No occurrence on its dates, e.g. US_HOLIDAYS"),
    Field("dependency", "Dependency", "Over other groups: e.g. S:extract and not F:load"),
    Field("misfire_policy", "Misfire policy", "run_once, skip or run_all"),
    Field("misfire_grace", "Misfire grace (s)", "0-604800; default 3600", type="number"),
)
GID_FIELD = Field("gid", "GID", "Optional: 1 or more; default the next free one", type="number")
FORM_FIELDS = ("active", *(f.name for f in FIELDS))
NAMES = ("gid", *FORM_FIELDS)
INTEGERS = {"gid", "misfire_grace"}
EVENTS = {"enable": "ENABLE_TASK", "disable": "DISABLE_TASK", "force-run": "FORCE_RUN_TASK"}


def gid_of(request: web.Request) -> int:
    return path_id(request, "gid", "group")


def schedule_of(group: GroupDef) -> str:
    try:
        return format_schedule(day_of_week=group.day_of_week, ordinal_day=group.ordinal_day,
                               trigger_times=group.trigger_times, run_frequency=None)  # fmt: skip
    except ValueError:
        return group.trigger_times


# ----- the list -----


async def groups_page(request: web.Request) -> web.Response:
    app, caller, q = ops(request), caller_of(request), request.query
    search = q.get("search", "")[:128]
    page_no = page_number(q)
    groups, total = app.list_groups(search, page_no, PER_PAGE)
    rows = []
    for g in groups:
        members, state = app.group_summary(g)
        rows.append({"gid": g.gid, "name": g.name, "active": g.active, "members": members,
                     "state": state, "schedule": schedule_of(g), "timezone": g.timezone,
                     "dependency": g.dependency, "team": g.team})  # fmt: skip
    return page(
        request, "groups.html", groups=rows, search=search, total=total, page=page_no,
        pages=max(1, -(-total // PER_PAGE)), query=query_builder(q),
        can_create=can(caller, Action.CREATE_GROUP),
    )  # fmt: skip


# ----- a group -----


def member_rows(app: SchedulerApp, group: GroupDef, runs: dict[int, Run]) -> list[dict[str, Any]]:
    rows = []
    for task in app.group_members(group):
        run = runs.get(task.tid)
        rows.append({
            "tid": task.tid, "name": task.name, "dependency": task.dependency or "",
            "active": task.active, "queue": task.run_on_host,
            "state": run.state.value if run else "", "run": run_view(run) if run else None,
        })  # fmt: skip
    return rows


def latest_by_tid(runs: list[Run]) -> dict[int, Run]:
    """Each member's latest attempt in the occurrence."""
    out: dict[int, Run] = {}
    for run in sorted(runs, key=lambda r: (r.attempt, r.created_at)):
        out[run.tid] = run
    return out


def occurrence_view(g: GroupRun) -> dict[str, Any]:
    return {"id": g.group_run_id, "run_date": g.run_date, "local_time": g.local_time,
            "scheduled": when(g.scheduled_utc), "state": g.state, "reason": g.reason,
            "forced": g.forced, "started": when(g.started_at),
            "ended": when(g.ended_at)}  # fmt: skip


def gantt(runs: list[Run], now: datetime) -> dict[str, Any]:
    """Bars of the member runs that started, on one time axis (seconds from the first start)."""
    spans = []
    for run in sorted(runs, key=lambda r: (r.started_at or r.triggered_at or now, r.tid)):
        begin = run.started_at or run.triggered_at
        if begin is None:
            continue
        end = run.ended_at or (None if run.state.final else now) or begin
        spans.append((run, begin, max(end, begin)))
    if not spans:
        return {"bars": [], "height": 0, "width": GANTT_WIDTH, "total": ""}
    first = min(b for _, b, _ in spans)
    last = max(e for _, _, e in spans)
    total = max((last - first).total_seconds(), 1.0)
    label_width = 180
    scale = (GANTT_WIDTH - label_width - 10) / total
    bars = []
    for i, (run, begin, end) in enumerate(spans):
        x = label_width + (begin - first).total_seconds() * scale
        width = max((end - begin).total_seconds() * scale, 2.0)
        bars.append({"y": i * GANTT_ROW, "x": round(x, 1), "w": round(width, 1),
                     "name": run.name, "state": run.state.value, "run_id": run.run_id,
                     "from": f"{when(begin)} UTC",
                     "to": f"{when(end)} UTC" if run.state.final else "running",
                     "seconds": f"{(end - begin).total_seconds():.1f}"})  # fmt: skip
    return {"bars": bars, "height": len(bars) * GANTT_ROW + 20, "width": GANTT_WIDTH,
            "label_width": label_width, "total": f"{total:.1f}"}  # fmt: skip


async def group_context(app: SchedulerApp, gid: int, occurrence_id: str) -> dict[str, Any]:
    """What the live part of a group's pages shows: the chosen (default: latest) occurrence,
    its members' states and the Gantt of their runs."""
    group = app.get_group(gid)
    occurrences = app.group_occurrences(gid, OCCURRENCES)
    chosen = next((g for g in occurrences if g.group_run_id == occurrence_id), None)
    if chosen is None and occurrence_id:
        try:
            found, _ = await app.group_occurrence(occurrence_id)
        except EasyTaskError:
            found = None
        chosen = found if found is not None and found.gid == gid else None
    if chosen is None and occurrences:
        chosen = occurrences[0]
    runs: list[Run] = []
    if chosen is not None:
        _, runs = await app.group_occurrence(chosen.group_run_id)
    latest = latest_by_tid(runs)
    return {
        "group": group,
        "occurrence": occurrence_view(chosen) if chosen else None,
        "members": member_rows(app, group, latest),
        "gantt": gantt(list(latest.values()), app.now()),
        "upstream": upstream_rows(app, group),
        "occurrences": occurrences,
    }


def upstream_rows(app: SchedulerApp, group: GroupDef) -> list[dict[str, str]]:
    """The groups this one depends on, with their latest occurrence's state."""
    rows = []
    for term in dependency_terms(group.dependency):
        try:
            other = app.get_group(0, term.name)
        except NotFoundError:  # deleted meanwhile: the expression is cleared with it
            continue
        _, state = app.group_summary(other)
        rows.append({"name": other.name, "gid": str(other.gid), "letter": term.letter,
                     "state": state})  # fmt: skip
    return rows


def dependency_terms(text: str | None) -> list[Any]:
    if not text:
        return []
    try:
        expr = parse_dependency(text)
    except DependencyError:
        return []
    return terms(expr) if expr is not None else []


async def group_page(request: web.Request) -> web.Response:
    app, caller = ops(request), caller_of(request)
    gid = gid_of(request)
    occurrence_id = request.query.get("occurrence", "")[:200]
    ctx = await group_context(app, gid, occurrence_id)
    group: GroupDef = ctx["group"]
    data = group.to_json()
    fields = [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in data.items() if v != ""]
    return page(
        request, "group.html", **ctx, fields=fields,
        json_text=json.dumps(data, indent=2, ensure_ascii=False),
        recent=[occurrence_view(g) for g in ctx["occurrences"]],
        schedule=schedule_of(group), live_topic=live_topic(gid, occurrence_id),
        can_change=can(caller, Action.CHANGE_GROUP), can_run=can(caller, Action.RUN_GROUP),
    )  # fmt: skip


def live_topic(gid: int, occurrence_id: str) -> str:
    return f"group:{gid}" + (f":{occurrence_id}" if occurrence_id else "")


async def render_group(app: web.Application, rest: str) -> str | None:
    gid_text, _, occurrence_id = rest.partition(":")
    ctx = await group_context(app[APP_KEY], int(gid_text), occurrence_id)
    return fragment(app, "_group_live.html", **ctx)


# ----- the graph -----


def graph_data(ctx: dict[str, Any]) -> dict[str, Any]:
    """Nodes (members, and the groups this one depends on) and edges (one per dependency term,
    from the referenced run to its dependent, labelled by the term's state letter)."""
    group: GroupDef = ctx["group"]
    nodes = [{"id": f"t:{m['name']}", "label": f"{m['name']} ({m['tid']})",
              "href": f"/tasks/{m['tid']}", "state": m["state"], "kind": "task"}
             for m in ctx["members"]]  # fmt: skip
    names = {m["name"] for m in ctx["members"]}
    edges = []
    for m in ctx["members"]:
        for term in dependency_terms(m["dependency"]):
            if term.name in names:
                edges.append({"from": f"t:{term.name}", "to": f"t:{m['name']}",
                              "letter": term.letter})  # fmt: skip
    for up in ctx["upstream"]:
        nodes.append({"id": f"g:{up['name']}", "label": f"group {up['name']}",
                      "href": f"/groups/{up['gid']}/graph", "state": up["state"],
                      "kind": "group"})  # fmt: skip
        roots = [m for m in ctx["members"] if not dependency_terms(m["dependency"])]
        for m in roots or ctx["members"][:1]:
            edges.append({"from": f"g:{up['name']}", "to": f"t:{m['name']}",
                          "letter": up["letter"], "group_edge": True})  # fmt: skip
    return {"group": group.name, "nodes": nodes, "edges": edges}


async def graph_page(request: web.Request) -> web.Response:
    app = ops(request)
    gid = gid_of(request)
    occurrence_id = request.query.get("occurrence", "")[:200]
    ctx = await group_context(app, gid, occurrence_id)
    return page(request, "group_graph.html", **ctx, graph=graph_data(ctx),
                live_topic=live_topic(gid, occurrence_id))  # fmt: skip


# ----- the form -----


def group_values(group: GroupDef) -> dict[str, str]:
    out = {k: "" if v is None else str(v) for k, v in group.to_json().items()}
    out["active"] = "true" if group.active else "false"
    return out


def from_form(form: Any, *, creating: bool) -> dict[str, Any]:
    """The group JSON a form describes (forms.from_form): an emptied dependency is none."""
    names = ("gid", *FORM_FIELDS) if creating else FORM_FIELDS
    return forms.from_form(form, names, INTEGERS, creating=creating, cleared={"dependency": ""})


def refused_form(request: web.Request, gid: int | None, form: Any,
                 exc: EasyTaskError) -> web.Response:  # fmt: skip
    """The form again, as typed, with each message next to its field (422)."""
    return form_page(request, gid=gid, values=form_values(form, NAMES),
                     errors=field_errors(exc, NAMES), status=422)  # fmt: skip


def form_page(request: web.Request, *, gid: int | None, values: dict[str, str],
              errors: dict[str, str], status: int = 200) -> web.Response:  # fmt: skip
    return page(
        request, "group_form.html", status=status, gid=gid, values=values, errors=errors,
        fields=((GID_FIELD,) if gid is None else ()) + FIELDS,
        action="/groups/new" if gid is None else f"/groups/{gid}/edit",
        cancel="/groups" if gid is None else f"/groups/{gid}",
    )  # fmt: skip


async def new_group_page(request: web.Request) -> web.Response:
    forbid(caller_of(request), Action.CREATE_GROUP, "create groups")
    return form_page(request, gid=None, values={"active": "true"}, errors={})


async def new_group_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    try:
        group = await ops(request).create_group(from_form(form, creating=True), caller_of(request))
    except ValidationError as exc:
        return refused_form(request, None, form, exc)
    raise redirect(f"/groups/{group.gid}", ("ok", f"Group inserted successfully (gid {group.gid})"))


async def edit_group_page(request: web.Request) -> web.Response:
    app, caller = ops(request), caller_of(request)
    group = app.get_group(gid_of(request))
    forbid(caller, Action.CHANGE_GROUP, "change groups")
    return form_page(request, gid=group.gid, values=group_values(group), errors={})


async def edit_group_submit(request: web.Request) -> web.StreamResponse:
    app, gid = ops(request), gid_of(request)
    form = await request.post()
    try:
        await app.update_group(gid, "", from_form(form, creating=False), caller_of(request))
    except ValidationError as exc:
        return refused_form(request, gid, form, exc)
    raise redirect(f"/groups/{gid}", ("ok", f"Group {gid} updated"))


async def group_action(request: web.Request) -> web.StreamResponse:
    app, gid, caller = ops(request), gid_of(request), caller_of(request)
    action = request.match_info["action"]
    if action == "delete":
        form = await request.post()
        cascade = form.get("cascade") == "yes"
        group, deleted, _ = await app.delete_group(gid, "", cascade, caller)
        text = f"Group {group.gid} ({group.name}) deleted"
        text += f" with {deleted} member tasks" if deleted else ""
        raise redirect("/groups", ("ok", text))
    event = EVENTS.get(action)
    if event is None:
        raise web.HTTPNotFound(text=f"no action {action!r}: enable, disable, force-run or delete")
    outcome = await app.publish_event(EventRequest(event, gid=gid, origin="UI"), caller)
    kind = "ok" if outcome.status == "SUCCESS" else "error"
    raise redirect(f"/groups/{gid}", (kind, outcome.message))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/groups", groups_page),
        web.get("/groups/new", new_group_page),
        web.post("/groups/new", new_group_submit),
        web.get("/groups/{gid}", group_page),
        web.get("/groups/{gid}/graph", graph_page),
        web.get("/groups/{gid}/edit", edit_group_page),
        web.post("/groups/{gid}/edit", edit_group_submit),
        web.post("/groups/{gid}/{action}", group_action),
    ]

"""Agent pages (spec 13 Agents): the fleet list (live, with a Restart button per connected agent
for roles that may control agents), one agent's panel with its ONLINE/OFFLINE history, and the
restart action."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from easytask.core.authz import Action
from easytask.core.errors import ConflictError
from easytask.core.records import AgentView
from easytask.scheduler.app import SchedulerApp
from easytask.ui.forms import can
from easytask.ui.render import duration, fragment, page, redirect, when
from easytask.ui.sessions import caller_of
from easytask.ui.views import APP_KEY, ops

MAX_NAME = 128


def disk_text(free_mb: int, total_mb: int) -> str:
    """``12.5 GB free of 40.0 GB`` (MB below 10 GB); "" when the agent did not say."""
    if total_mb <= 0:
        return ""
    if total_mb < 10 * 1024:
        return f"{free_mb:,} MB free of {total_mb:,} MB"
    return f"{free_mb / 1024:,.1f} GB free of {total_mb / 1024:,.1f} GB"


def agent_view(agent: AgentView) -> dict[str, Any]:
    r = agent.record
    online = agent.online
    disk = disk_text(agent.disk_free_mb, agent.disk_total_mb) if online else ""
    return {
        "name": r.name, "href": "/agents/" + quote(r.name, safe=""), "online": online,
        "host": r.host, "queues": ", ".join(r.queues), "version": r.version,
        "cpu": f"{agent.cpu_percent:.1f}" if online else "",
        "mem": f"{agent.mem_percent:.1f}" if online else "",
        "uptime": duration(agent.uptime_seconds) if online else "",
        "running": agent.running_run_ids,
        "max_runs": (str(agent.max_runs) if agent.max_runs else "no cap") if online else "",
        "disk": disk,
        "pid": "" if r.pid is None else str(r.pid),
        "cores": "" if r.cpu_cores is None else str(r.cpu_cores),
        "memory_mb": "" if r.memory_mb is None else f"{r.memory_mb:,}",
        "connected_since": when(r.connected_since),
        "last_seen": when(r.last_seen),
    }  # fmt: skip


async def agents_context(app: SchedulerApp, *, control: bool) -> dict[str, Any]:
    views = [agent_view(a) for a in await app.agents()]
    online = sum(1 for v in views if v["online"])
    return {"agents": views, "online": online, "offline": len(views) - online,
            "control": control}  # fmt: skip


async def agents_page(request: web.Request) -> web.Response:
    control = can(caller_of(request), Action.CONTROL_AGENTS)
    ctx = await agents_context(ops(request), control=control)
    topic = "agents:control" if control else "agents"
    return page(request, "agents.html", live_topic=topic, **ctx)


async def render_agents(app: web.Application, *, control: bool) -> str:
    """The live list; ``control``: with the Restart buttons (their forms take the tab's CSRF
    value when submitted, since one rendering serves every tab)."""
    ctx = await agents_context(app[APP_KEY], control=control)
    return fragment(app, "_agents.html", csrf="", **ctx)


def agent_name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not name or len(name) > MAX_NAME:
        raise web.HTTPNotFound(text=f"no agent {name[:32]!r}")
    return name


async def agent_page(request: web.Request) -> web.Response:
    """``GET /agents/{name}``: the ``agents get`` panel and the latest ONLINE/OFFLINE changes."""
    agent = await ops(request).agent(agent_name(request))
    changes = [{"status": c.status, "at": when(c.at), "reason": c.reason} for c in agent.changes]
    control = can(caller_of(request), Action.CONTROL_AGENTS)
    return page(request, "agent.html", agent=agent_view(agent), changes=changes,
                control=control)  # fmt: skip


async def restart(request: web.Request) -> web.StreamResponse:
    """``POST /agents/{name}/restart``: the restart action (spec 12); the application checks
    the role (403). An agent that is not connected is refused with a notice, nothing sent."""
    name = agent_name(request)
    back = request.query.get("back") == "agent"
    location = "/agents/" + quote(name, safe="") if back else "/agents"
    try:
        message = await ops(request).restart_agent(name, caller_of(request))
    except ConflictError as exc:
        raise redirect(location, ("error", f"Not restarted: {exc}")) from None
    raise redirect(location, ("ok", message))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/agents", agents_page),
        web.get("/agents/{name}", agent_page),
        web.post("/agents/{name}/restart", restart),
    ]

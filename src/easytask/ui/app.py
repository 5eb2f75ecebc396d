"""The dashboard's aiohttp application: routes, middlewares, static files, the live hub.

``create_app`` is given the application layer (the same operations the gRPC API calls, so
the authorization policy and validation are the same code) and whether it is served over TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from easytask.core.errors import (
    AuthError,
    ConflictError,
    EasyTaskError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from easytask.scheduler.app import SchedulerApp
from easytask.ui import (
    adhoc_views,
    admin_views,
    agent_views,
    api,
    event_views,
    group_views,
    log_views,
    render,
    task_views,
    views,
)
from easytask.ui.live import LiveHub, serve, topic_query, watched
from easytask.ui.sessions import Handler, Sessions, caller_of, token_of

log = logging.getLogger(__name__)

LIVE_KEY: web.AppKey[LiveHub] = web.AppKey("easytask.live", LiveHub)
TITLES = {400: "Bad request", 401: "Not logged in", 403: "Forbidden", 404: "Not found",
          409: "Conflict", 422: "Invalid", 500: "Internal error"}  # fmt: skip


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Our errors as their HTTP status with a page that says what happened; never a trace."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or request.path.startswith(("/live", "/static/")):
            raise
        return _error_page(request, exc.status, exc.text or exc.reason)
    except PermissionDeniedError as exc:
        return _error_page(request, 403, str(exc))
    except NotFoundError as exc:
        return _error_page(request, 404, str(exc))
    except (ValidationError, ConflictError) as exc:
        return _error_page(request, 409 if isinstance(exc, ConflictError) else 422, str(exc))
    except AuthError as exc:
        return _error_page(request, 401, str(exc))
    except EasyTaskError as exc:
        return _error_page(request, 400, str(exc))
    except Exception:
        log.exception("dashboard %s %s failed", request.method, request.path)
        return _error_page(request, 500, "the scheduler could not answer; see its log")


def _error_page(request: web.Request, status: int, message: str) -> web.Response:
    if request.path.startswith("/api/"):
        return web.json_response({"error": message}, status=status)
    title = TITLES.get(status, "Error")
    return render.page(
        request, "error.html", status=status, code=status, title=title, message=message
    )


def create_app(app: SchedulerApp, *, secure: bool = False) -> web.Application:
    sessions = Sessions(app, secure=secure)
    webapp = web.Application(middlewares=[sessions.middleware, error_pages],
                             client_max_size=2 * 1024 * 1024)  # fmt: skip
    webapp[views.APP_KEY] = app
    webapp[views.SESSIONS_KEY] = sessions
    webapp[log_views.COPIES_KEY] = log_views.StoredCopies()
    render.setup(webapp)

    async def render_topic(key: str) -> str | None:
        if key == "board":
            return await views.render_board(webapp)
        kind, _, rest = key.partition(":")
        if kind == "agents":
            return await agent_views.render_agents(webapp, control=rest == "control")
        if kind == "adhoc":
            html, final = await adhoc_views.render_results(webapp, rest)
            if final:
                hub.settle(key)
            return html
        if kind == "run":
            return await views.render_run(webapp, rest)
        if kind == "run-state":
            return await views.render_run_state(webapp, rest)
        if kind == "task-runs":
            return await task_views.render_task_runs(webapp, int(rest))
        if kind == "runs":
            return await views.render_runs(webapp, topic_query(key))
        if kind == "group":
            return await group_views.render_group(webapp, rest)
        return None

    hub = LiveHub(render_topic)
    webapp[LIVE_KEY] = hub

    async def live(request: web.Request) -> web.StreamResponse:
        token = token_of(request)
        user = caller_of(request).username
        return await serve(request, hub, app.follow_output, lambda: app.authenticate(token), user)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "HEALTHY", "instance": app.instance})

    async def run_hub(_: web.Application) -> AsyncIterator[None]:
        task = watched(asyncio.create_task(hub.run(app.watch_runs()), name="dashboard-live"),
                       "the live hub")  # fmt: skip
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def close_sockets(_: web.Application) -> None:
        await hub.close_all()

    webapp.cleanup_ctx.append(run_hub)
    webapp.on_shutdown.append(close_sockets)
    routes: list[Any] = [
        web.get("/healthz", healthz),
        web.get("/login", views.login_page),
        web.get("/session", views.session_check),
        web.post("/login", views.login_submit),
        web.post("/logout", views.logout),
        web.get("/", views.board_page),
        web.get("/tasks", task_views.tasks_page),
        web.post("/tasks/bulk", task_views.bulk_action),
        web.get("/tasks/new", task_views.new_task_page),
        web.post("/tasks/new", task_views.new_task_submit),
        web.post("/tasks/new/json", task_views.new_task_json),
        web.get("/tasks/{tid}", task_views.task_page),
        web.get("/tasks/{tid}/edit", task_views.edit_task_page),
        web.post("/tasks/{tid}/edit", task_views.edit_task_submit),
        web.post("/tasks/{tid}/{action}", task_views.task_action),
        web.get("/runs", views.runs_page),
        web.get("/runs/{run_id}", views.run_page),
        web.post("/runs/{run_id}/terminate", views.terminate),
        web.get("/runs/{run_id}/log", log_views.log_page),
        web.get("/runs/{run_id}/log/{stream}", log_views.log_download),
        web.get("/runs/{run_id}/log/{stream}/window", log_views.log_window),
        *agent_views.routes(),
        web.get("/upcoming", views.upcoming_page),
        *group_views.routes(),
        *event_views.routes(),
        *admin_views.routes(),
        *api.routes(),
        web.get("/live", live),
        web.static("/static", render.STATIC, append_version=False),
    ]
    webapp.add_routes(routes)
    return webapp

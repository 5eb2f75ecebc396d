"""Rendering: the Jinja2 environment (autoescaping on), the page frame every view shares, the
one-shot notices carried over a redirect, and the display forms of runs."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode

import aiohttp_jinja2
import jinja2
from aiohttp import web
from markupsafe import Markup

from easytask.core.authz import Action, Caller, refusal
from easytask.core.models import Run
from easytask.core.runid import iso_utc
from easytask.ui.sessions import CALLER_KEY, caller_of, csrf_of

HERE = Path(__file__).parent
STATIC = HERE / "static"
NOTICE_COOKIE = "et_notice"
THEME_COOKIE = "et_theme"
THEMES = ("auto", "light", "dark")

NAV = (("/", "Board"), ("/tasks", "Tasks"), ("/groups", "Groups"), ("/runs", "Runs"),
       ("/upcoming", "Upcoming"), ("/events", "Events"), ("/agents", "Agents"),
       ("/calendars", "Calendars"), ("/users", "Users"))  # fmt: skip
ADMIN_ONLY = frozenset({"/users"})  # shown to callers who may manage users


def setup(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
    )
    versions: dict[str, str] = {}

    def static(path: str) -> str:
        """``/static/<path>?v=<content hash>``: cached for good, refetched when it changes."""
        if path not in versions:
            data = (STATIC / path).read_bytes()
            versions[path] = hashlib.sha256(data).hexdigest()[:12]
        return f"/static/{path}?v={versions[path]}"

    env.globals["static"] = static
    env.filters["time"] = time_tag


def time_tag(text: str, zone: str = "") -> Markup:
    """A UTC time as ``<time>``: shown in UTC, and turned by times.js into the viewer's choice
    of zone (UTC, the browser's, or ``zone``: the task's)."""
    if not text:
        return Markup("")
    iso = text.replace(" ", "T") + "Z"
    tz = Markup(' data-tz="{}"').format(zone) if zone else Markup("")
    return Markup('<time datetime="{}"{}>{}</time>').format(iso, tz, text)


def section_of(path: str) -> str:
    for href, _ in reversed(NAV):
        if href != "/" and (path == href or path.startswith(href + "/")):
            return href
    return "/" if path == "/" else ""


def nav_for(caller: Caller | None) -> tuple[tuple[str, str], ...]:
    if caller is not None and refusal(caller, Action.MANAGE_USERS) is None:
        return NAV
    return tuple(item for item in NAV if item[0] not in ADMIN_ONLY)


def page(request: web.Request, template: str, status: int = 200, **ctx: Any) -> web.Response:
    """A full page in the shared frame (user, CSRF value, theme, notices, navigation)."""
    caller = request.get(CALLER_KEY)
    theme = request.cookies.get(THEME_COOKIE, "auto")
    base = {
        "user": caller,
        "csrf": csrf_of(request) if caller else "",
        "theme": theme if theme in THEMES else "auto",
        "nav": nav_for(caller),
        "section": section_of(request.path),
        "notices": notices_of(request),
    }
    response = aiohttp_jinja2.render_template(template, request, {**base, **ctx}, status=status)
    if request.cookies.get(NOTICE_COOKIE):
        response.del_cookie(NOTICE_COOKIE, path="/")
    return response


def fragment(app: web.Application, template: str, **ctx: Any) -> str:
    """A partial template rendered outside any request (the live channel's updates)."""
    env = aiohttp_jinja2.get_env(app)
    return env.get_template(template).render(**ctx)


# ----- notices over a redirect -----


def redirect(location: str, notice: tuple[str, str] | None = None) -> web.HTTPSeeOther:
    """A 303 to ``location`` carrying a one-shot notice (kind ``ok`` or ``error``)."""
    response = web.HTTPSeeOther(location)
    if notice is not None:
        kind, text = notice
        response.set_cookie(NOTICE_COOKIE, quote(f"{kind}:{text[:500]}"), path="/",
                            httponly=True, samesite="Strict")  # fmt: skip
    return response


def notices_of(request: web.Request) -> list[tuple[str, str]]:
    raw = request.cookies.get(NOTICE_COOKIE, "")
    if not raw:
        return []
    kind, _, text = unquote(raw).partition(":")
    return [(kind if kind in ("ok", "error") else "ok", text)]


# ----- values -----


def when(value: datetime | None) -> str:
    """``2026-06-01 12:00:00`` (UTC) or empty."""
    if value is None:
        return ""
    return iso_utc(value)[:19].replace("T", " ")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m {secs}s" if hours else f"{minutes}m {secs}s"


def short_run_id(run_id: str) -> str:
    """The part after the instance: ``1001:1780315200000:1``."""
    return run_id.split(":", 1)[1] if ":" in run_id else run_id


def run_view(run: Run) -> dict[str, Any]:
    """A run as the templates show it."""
    return {
        "run_id": run.run_id,
        "short_id": short_run_id(run.run_id),
        "tid": run.tid,
        "name": run.name,
        "run_date": run.run_date,
        "scheduled": when(run.scheduled_utc),
        "local_time": run.local_time,
        "timezone": run.timezone,
        "attempt": run.attempt,
        "state": run.state.value,
        "final": run.state.final,
        "reason": run.reason,
        "queue": run.queue,
        "agent": run.agent or "",
        "host": run.host or "",
        "pid": run.pid or "",
        "rc": "" if run.return_code is None else run.return_code,
        "duration": duration(run.duration),
        "forced": run.forced,
        "forced_by": run.forced_by or "",
        "steps": [
            ("Triggered", when(run.triggered_at)),
            ("Dispatched", when(run.dispatched_at)),
            ("Acknowledged", when(run.acked_at)),
            ("Started", when(run.started_at)),
            ("Ended", when(run.ended_at)),
        ],
    }


def query_builder(params: Mapping[str, str]) -> Any:
    """``query(page=2)``: the current query string with some values replaced."""

    def query(**changes: object) -> str:
        merged = {k: v for k, v in params.items() if v}
        merged.update({k: str(v) for k, v in changes.items()})
        return urlencode(merged)

    return query


def require(condition: bool, message: str) -> None:
    """A refused action that a page would never have offered (a forged request): 403."""
    if not condition:
        raise web.HTTPForbidden(text=message)


__all__ = ["caller_of", "fragment", "page", "redirect", "run_view", "setup"]

"""(being written)"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

# Live topics this module renders: kind -> render(app, rest of the key) (see app.render_topic).
TOPICS: dict[str, Callable[[web.Application, str], Awaitable[str | None]]] = {}


def routes() -> list[web.RouteDef]:
    return []

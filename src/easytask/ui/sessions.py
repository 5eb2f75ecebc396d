"""Who is asking: the login cookies, their refresh, the CSRF check, and the security headers.

A login sets three cookies, all HttpOnly and SameSite=Strict (Secure under TLS): the access
token, the refresh token, and a random CSRF value that every state-changing request must repeat
(form field ``csrf`` or header ``X-CSRF-Token``). A page request whose access token expired is
refreshed on the way, invisibly; one with no session goes to ``/login?next=…``.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol
from urllib.parse import quote, urlsplit

from aiohttp import web

from easytask.core.authz import Caller
from easytask.core.errors import AuthError
from easytask.core.records import Session

log = logging.getLogger(__name__)

ACCESS_COOKIE = "et_session"
REFRESH_COOKIE = "et_refresh"
CSRF_COOKIE = "et_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
CALLER_KEY: web.RequestKey[Caller] = web.RequestKey("easytask.caller", Caller)
# The access token the request was authenticated with (the refreshed one after a refresh).
TOKEN_KEY: web.RequestKey[str] = web.RequestKey("easytask.token", str)
CSRF_KEY: web.RequestKey[str] = web.RequestKey("easytask.csrf", str)
REFRESH_AGE = 7 * 86400  # seconds, as the refresh token

PUBLIC_PATHS = frozenset({"/healthz", "/login", "/api/v1/login"})  # exactly these, and /static/
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class SessionOps(Protocol):
    """The application's account operations the dashboard uses."""

    async def login(self, username: str, password: str) -> Session: ...
    async def refresh_login(self, refresh_token: str) -> Session: ...
    async def logout(self, access_token: str) -> None: ...
    async def authenticate(self, token: str) -> Caller: ...
    def now(self) -> datetime: ...


def caller_of(request: web.Request) -> Caller:
    return request[CALLER_KEY]


def csrf_of(request: web.Request) -> str:
    return str(request.get(CSRF_KEY, ""))


def safe_next(target: str) -> str:
    """A local path to return to after login; anything else (another site) becomes ``/``."""
    if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in target) or "\\" in target:
        return "/"  # browsers drop tabs and newlines: "/\t/evil.example" would leave the site
    parts = urlsplit(target)
    if not target.startswith("/") or target.startswith("//") or parts.scheme or parts.netloc:
        return "/"
    return target


def token_of(request: web.Request) -> str:
    return str(request.get(TOKEN_KEY, ""))


def same_origin(request: web.Request) -> None:
    """Refuse a state-changing request another site's page made (Origin or Sec-Fetch-Site)."""
    origin = request.headers.get("Origin")
    if origin is not None and origin != "null" and urlsplit(origin).netloc != request.host:
        raise web.HTTPForbidden(text="cross-site request refused")
    if request.headers.get("Sec-Fetch-Site") == "cross-site" or origin == "null":
        raise web.HTTPForbidden(text="cross-site request refused")


class Sessions:
    def __init__(self, ops: SessionOps, *, secure: bool) -> None:
        self._ops = ops
        self._secure = secure

    # ----- cookies -----

    def _cookie(self, response: web.StreamResponse, name: str, value: str, max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/", httponly=True,
                            samesite="Strict", secure=self._secure)  # fmt: skip

    def set_cookies(
        self, response: web.StreamResponse, session: Session, now: datetime, csrf: str = ""
    ) -> str:
        """Store the session's tokens and its CSRF value (a fresh one at login; after a refresh
        the one open pages already carry); return the CSRF value."""
        csrf = csrf or secrets.token_urlsafe(24)
        access_age = max(1, int((session.access_expires_at - now).total_seconds()))
        self._cookie(response, ACCESS_COOKIE, session.access_token, access_age)
        self._cookie(response, REFRESH_COOKIE, session.refresh_token, REFRESH_AGE)
        self._cookie(response, CSRF_COOKIE, csrf, REFRESH_AGE)
        return csrf

    @staticmethod
    def clear_cookies(response: web.StreamResponse) -> None:
        for name in (ACCESS_COOKIE, REFRESH_COOKIE, CSRF_COOKIE):
            response.del_cookie(name, path="/")

    # ----- the middleware -----

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await self._authenticated(request, handler)
        except web.HTTPException as exc:
            if exc.status >= 400 and request.path.startswith("/api/"):
                # Refused before any view ran (no login, CSRF, origin): JSON like the rest.
                response = web.json_response({"error": exc.text or exc.reason}, status=exc.status)
                self._secure_headers(request, response)
                return response
            self._secure_headers(request, exc)
            raise
        self._secure_headers(request, response)
        return response

    @staticmethod
    def _secure_headers(request: web.Request, response: web.StreamResponse) -> None:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        if not request.path.startswith("/static/"):
            headers.setdefault("Cache-Control", "no-store")
        elif "v" in request.query:  # a content-hashed URL (render.static): never changes
            headers.setdefault("Cache-Control", "public, max-age=31536000, immutable")
        else:  # a module imported by name: revalidated, so an upgrade is seen at once
            headers.setdefault("Cache-Control", "no-cache")

    async def _authenticated(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method not in SAFE_METHODS:
            same_origin(request)  # login CSRF and forged cross-site posts, before anything
        if request.path in PUBLIC_PATHS or request.path.startswith("/static/"):
            return await handler(request)
        bearer = request.headers.get("Authorization", "")
        if bearer.startswith("Bearer "):
            # Scripts with an API token: no cookies involved, so no CSRF to check.
            token = bearer[len("Bearer ") :]
            try:
                request[CALLER_KEY] = await self._ops.authenticate(token)
            except AuthError as exc:
                raise web.HTTPUnauthorized(text=str(exc)) from None
            request[TOKEN_KEY] = token  # the live socket re-checks it
            return await handler(request)
        refreshed: Session | None = None
        token = request.cookies.get(ACCESS_COOKIE, "")
        try:
            request[CALLER_KEY] = await self._ops.authenticate(token)
        except AuthError:
            # Not on /live: its answer (101) cannot carry new cookies; the tab asks /session.
            refreshed = None if request.path == "/live" else await self._refresh(request)
            if refreshed is None:
                return self._to_login(request)
            token = refreshed.access_token
            request[CALLER_KEY] = await self._ops.authenticate(token)
        request[TOKEN_KEY] = token
        csrf = request.cookies.get(CSRF_COOKIE, "")
        if request.method not in SAFE_METHODS:
            await self._check_csrf(request, csrf)
        request[CSRF_KEY] = csrf
        keep = refreshed is not None and request.path != "/logout"
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # the redirects after every action carry them too
            if keep and refreshed is not None:
                self.set_cookies(exc, refreshed, self._ops.now(), csrf)
            raise
        if keep and refreshed is not None:
            self.set_cookies(response, refreshed, self._ops.now(), csrf)
        return response

    async def _refresh(self, request: web.Request) -> Session | None:
        token = request.cookies.get(REFRESH_COOKIE, "")
        if not token:
            return None
        try:
            return await self._ops.refresh_login(token)
        except AuthError:
            return None

    @staticmethod
    async def _check_csrf(request: web.Request, expected: str) -> None:
        given = request.headers.get(CSRF_HEADER, "")
        if not given and request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            try:
                form = await request.post()
            except (ValueError, LookupError, UnicodeDecodeError) as exc:
                raise web.HTTPBadRequest(text=f"unreadable form: {exc}") from None
            value = form.get(CSRF_FIELD, "")
            given = value if isinstance(value, str) else ""
        if (
            not expected
            or not given
            or not hmac.compare_digest(
                given.encode("utf-8", "replace"), expected.encode("utf-8", "replace")
            )
        ):
            log.warning("refused %s %s: missing or wrong CSRF token", request.method, request.path)
            raise web.HTTPForbidden(text="missing or wrong CSRF token; reload the page")

    @staticmethod
    def _to_login(request: web.Request) -> web.StreamResponse:
        if request.path.startswith(("/api/", "/live")):
            raise web.HTTPUnauthorized(text="log in first")
        target = quote(request.path_qs, safe="/?=&")
        raise web.HTTPSeeOther(f"/login?next={target}")

"""Administration pages: holiday calendars (list, one calendar's dates of a year, entries added
and removed, user calendars created and deleted) and user accounts (list, create, role,
enable/disable, password reset, delete). The application checks every change against the
caller's role; these pages only hide what it would refuse."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from aiohttp import web

from easytask.core.authz import Action, Caller, Role, refusal
from easytask.core.errors import (
    ConflictError,
    PermissionDeniedError,
    ValidationError,
)
from easytask.core.records import USER, UserRecord
from easytask.ui.forms import can, field_errors, parse_date, text_error, text_of
from easytask.ui.render import page, query_builder, redirect, when
from easytask.ui.sessions import caller_of
from easytask.ui.views import PER_PAGE, digits, ops, page_number

# Live topics this module renders: kind -> render(app, rest of the key) (see app.render_topic).

MAX_CALENDAR = 64
MAX_REASON = 256
MAX_DESCRIPTION = 256
MAX_PASSWORD = 1024
_CALENDAR_NAME = re.compile(r"[A-Za-z0-9 _.-]{1,64}")
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


def checked(form: Any, limits: dict[str, tuple[str, int]]) -> tuple[dict[str, str], dict[str, str]]:
    """The form's text values and what is wrong with them at the edge (length, control
    characters), each named by its field's label; the application checks the rest."""
    values = {name: text_of(form, name) for name in limits}
    errors = {}
    for name, (label, limit) in limits.items():
        if problem := text_error(label, values[name], limit):
            errors[name] = problem
            values[name] = values[name][:limit]  # put back into the form, within reason
    return values, errors


# ----- calendars -----


def calendar_name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not _CALENDAR_NAME.fullmatch(name):
        raise web.HTTPNotFound(text="no such calendar: a calendar name is 1-64 of A-Z a-z 0-9 "
                                    "space _ . -")  # fmt: skip
    return name


def calendar_href(name: str) -> str:
    return "/calendars/" + quote(name, safe="")


async def calendars_page(request: web.Request, *, status: int = 200,
                         values: dict[str, str] | None = None,
                         errors: dict[str, str] | None = None) -> web.Response:  # fmt: skip
    app, query = ops(request), request.query
    everything = query.get("builtin") == "all"
    page_no = page_number(query)
    calendars, total = app.list_calendars(everything, page_no, PER_PAGE)
    rows = [{"name": c.name, "href": calendar_href(c.name), "kind": c.kind,
             "description": c.description, "entries": c.entries, "created_by": c.created_by}
            for c in calendars]  # fmt: skip
    return page(request, "calendars.html", status=status, calendars=rows, everything=everything,
                total=total, page=page_no, pages=max(1, -(-total // PER_PAGE)),
                query=query_builder(query), values=values or {}, errors=errors or {},
                can_manage=can(caller_of(request), Action.MANAGE_CALENDARS))  # fmt: skip


async def calendars_list(request: web.Request) -> web.StreamResponse:
    """``GET /calendars``; with ``?open=NAME`` the calendar of that name (a built-in one)."""
    name = text_of(request.query, "open")
    if not name:
        return await calendars_page(request)
    if not _CALENDAR_NAME.fullmatch(name):
        return await calendars_page(request, status=422, errors={
            "open": "Calendar name must be 1-64 of A-Z a-z 0-9 space _ . -"})  # fmt: skip
    raise web.HTTPSeeOther(calendar_href(name))


async def calendar_create(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    values, errors = checked(form, {"name": ("Name", MAX_CALENDAR),
                                    "description": ("Description", MAX_DESCRIPTION)})  # fmt: skip
    if not errors:
        try:
            created = await ops(request).create_calendar(values["name"], values["description"],
                                                         caller_of(request))  # fmt: skip
        except ValidationError as exc:
            errors = field_errors(exc, ("name", "description"))
        else:
            raise redirect(calendar_href(created.name), ("ok", f"Calendar created: {created.name}"))
    return await calendars_page(request, status=422, values=values, errors=errors)


def year_of(request: web.Request, errors: dict[str, str]) -> int:
    text = request.query.get("year", "")
    if text and digits(text) and len(text) <= 4 and 1 <= int(text) <= 9999:
        return int(text)
    if text:
        errors["year"] = "Year must be a number from 1 to 9999; showing this year"
    return ops(request).now().year


async def calendar_page(request: web.Request, *, status: int = 200,
                        values: dict[str, str] | None = None,
                        errors: dict[str, str] | None = None) -> web.Response:  # fmt: skip
    app, name = ops(request), calendar_name(request)
    errors = dict(errors or {})
    year = year_of(request, errors)
    detail = app.get_calendar(name, year)
    cal = detail.calendar
    rows = [{"id": h.span.id, "start": h.span.start_date.isoformat(),
             "end": h.span.end_date.isoformat(), "reason": h.span.reason, "source": h.source,
             "created_by": h.span.created_by, "user": h.source == USER}
            for h in detail.holidays]  # fmt: skip
    return page(request, "calendar.html", status=status, calendar=cal, href=calendar_href(name),
                created_at=when(cal.created_at), year=detail.year, holidays=rows,
                values=values or {}, errors=errors,
                can_manage=can(caller_of(request), Action.MANAGE_CALENDARS))  # fmt: skip


async def calendar_view(request: web.Request) -> web.Response:
    return await calendar_page(request)


async def holiday_add(request: web.Request) -> web.StreamResponse:
    name = calendar_name(request)
    form = await request.post()
    values, errors = checked(form, {"start_date": ("Date", 10), "end_date": ("To date", 10),
                                    "reason": ("Reason", MAX_REASON)})  # fmt: skip
    # Dates are checked here too, so a bad one is named by the label the page shows.
    if "start_date" not in errors:
        parse_date("Date", values["start_date"], errors, "start_date")
    if values["end_date"] and "end_date" not in errors:
        parse_date("To date", values["end_date"], errors, "end_date")
    if not errors:
        try:
            span = await ops(request).add_holiday(name, values["start_date"], values["end_date"],
                                                  values["reason"], caller_of(request))  # fmt: skip
        except ValidationError as exc:
            errors = field_errors(exc, ("start_date", "end_date", "reason"))
        else:
            shown = span.start_date.isoformat()
            if span.end_date != span.start_date:
                shown += f"..{span.end_date.isoformat()}"
            raise redirect(f"{calendar_href(name)}?year={span.start_date.year}",
                           ("ok", f"Holiday added to {name}: {shown} ({span.reason}) "
                                  f"[id {span.id}]"))  # fmt: skip
    return await calendar_page(request, status=422, values=values, errors=errors)


async def holiday_remove(request: web.Request) -> web.StreamResponse:
    name, text = calendar_name(request), request.match_info["entry_id"]
    if not digits(text) or len(text) > 18:
        raise web.HTTPNotFound(text="no such holiday: an entry id is a number")
    span = await ops(request).remove_holiday(name, int(text), caller_of(request))
    raise redirect(f"{calendar_href(name)}?year={span.start_date.year}",
                   ("ok", f"Holiday {span.id} removed from {name}"))  # fmt: skip


async def calendar_delete(request: web.Request) -> web.StreamResponse:
    name = calendar_name(request)
    try:
        deleted = await ops(request).delete_calendar(name, caller_of(request))
    except ConflictError as exc:
        raise redirect(calendar_href(name), ("error", str(exc))) from None
    raise redirect("/calendars", ("ok", f"Calendar deleted: {deleted.name}"))


# ----- users -----


def require_admin(caller: Caller) -> None:
    """The users pages are for those who may manage users (others: 403, as the API says)."""
    reason = refusal(caller, Action.MANAGE_USERS)
    if reason is not None:
        raise PermissionDeniedError(reason)


def grantable(caller: Caller) -> list[str]:
    """The roles the caller may give."""
    return [r.value for r in Role if refusal(caller, Action.MANAGE_USERS, new_role=r) is None]


def user_view(user: UserRecord, caller: Caller) -> dict[str, Any]:
    may = refusal(caller, Action.MANAGE_USERS, target_role=Role(user.role)) is None
    return {
        "username": user.username,
        "href": "/users/" + quote(user.username, safe="@"),
        "role": user.role,
        "active": user.active,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "name": " ".join(p for p in (user.first_name, user.last_name) if p),
        "created_at": when(user.created_at),
        "updated_at": when(user.updated_at),
        "may_change": may,
        "is_me": user.username == caller.username,
    }


def username_of(request: web.Request) -> str:
    name = request.match_info["username"]
    if not _USERNAME.fullmatch(name):
        raise web.HTTPNotFound(text="no such user: a username is 1-64 letters, digits, _ . @ -")
    return name


async def users_page(request: web.Request, *, status: int = 200,
                     values: dict[str, str] | None = None,
                     errors: dict[str, str] | None = None) -> web.Response:  # fmt: skip
    app, caller, query = ops(request), caller_of(request), request.query
    search = text_of(query, "search")[:64]
    page_no = page_number(query)
    users, total = await app.list_users(caller, search, page_no, PER_PAGE)
    return page(request, "users.html", status=status,
                users=[user_view(u, caller) for u in users], search=search, total=total,
                page=page_no, pages=max(1, -(-total // PER_PAGE)), query=query_builder(query),
                roles=app.roles(), grantable=grantable(caller), values=values or {},
                errors=errors or {})  # fmt: skip


async def users_list(request: web.Request) -> web.Response:
    return await users_page(request)


DETAIL_LIMITS = {"email": ("Email", 320), "first_name": ("First name", 128),
                 "last_name": ("Last name", 128)}  # fmt: skip
USER_LIMITS = {"username": ("Username", 64), "role": ("Role", 16),
               "password": ("Password", MAX_PASSWORD), **DETAIL_LIMITS}  # fmt: skip


async def user_create(request: web.Request) -> web.StreamResponse:
    require_admin(caller_of(request))
    form = await request.post()
    values, errors = checked(form, USER_LIMITS)
    values["password"] = str(form.get("password", ""))  # as typed: spaces are characters too
    shown = {k: v for k, v in values.items() if k != "password"}  # never echoed back
    if not errors:
        raw = {k: v for k, v in values.items() if v}
        try:
            user = await ops(request).create_user(caller_of(request), raw)
        except ValidationError as exc:
            errors = field_errors(exc, tuple(USER_LIMITS))
        else:
            raise redirect("/users/" + quote(user.username, safe="@"),
                           ("ok", f"User created: {user.username} ({user.role})"))  # fmt: skip
    return await users_page(request, status=422, values=shown, errors=errors)


async def user_page(request: web.Request, *, status: int = 200,
                    errors: dict[str, str] | None = None) -> web.Response:  # fmt: skip
    caller = caller_of(request)
    require_admin(caller)
    user = await ops(request).get_user(caller, username_of(request))
    return page(request, "user.html", status=status, u=user_view(user, caller),
                grantable=grantable(caller), errors=errors or {})  # fmt: skip


async def user_view_page(request: web.Request) -> web.Response:
    return await user_page(request)


async def user_action(request: web.Request) -> web.StreamResponse:
    """``POST /users/{username}/{role|details|enable|disable|password|delete}``."""
    app, caller, username = ops(request), caller_of(request), username_of(request)
    require_admin(caller)
    action = request.match_info["action"]
    form = await request.post()
    href = "/users/" + quote(username, safe="@")
    if action == "delete":
        try:
            user = await app.delete_user(caller, username)
        except ConflictError as exc:
            raise redirect(href, ("error", str(exc))) from None
        raise redirect("/users", ("ok", f"User deleted: {user.username}"))
    if action == "role":
        patch: dict[str, Any] = {"role": text_of(form, "role")[:16]}
        done = "Role set: {u} -> {r}"
    elif action == "details":  # an emptied field is cleared
        patch, problems = checked(form, DETAIL_LIMITS)
        if problems:
            return await user_page(request, status=422, errors=problems)
        done = "Details saved for user {u}"
    elif action in ("enable", "disable"):
        patch, done = {"active": action == "enable"}, f"User {{u}} {action}d"
    elif action == "password":
        patch, done = {"password": str(form.get("password", ""))}, "Password reset for user {u}"
        if problem := text_error("Password", patch["password"], MAX_PASSWORD):
            return await user_page(request, status=422, errors={"password": problem})
    else:
        raise web.HTTPNotFound(
            text="no such action: role, details, enable, disable, password or delete"
        )
    try:
        user = await app.update_user(caller, username, patch)
    except ConflictError as exc:
        raise redirect(href, ("error", str(exc))) from None
    except ValidationError as exc:
        fields = ("role", "password", *DETAIL_LIMITS)
        return await user_page(request, status=422, errors=field_errors(exc, fields))
    raise redirect(href, ("ok", done.format(u=user.username, r=user.role)))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/calendars", calendars_list),
        web.post("/calendars", calendar_create),
        web.get("/calendars/{name}", calendar_view),
        web.post("/calendars/{name}/holidays", holiday_add),
        web.post("/calendars/{name}/holidays/{entry_id}/delete", holiday_remove),
        web.post("/calendars/{name}/delete", calendar_delete),
        web.get("/users", users_list),
        web.post("/users", user_create),
        web.get("/users/{username}", user_view_page),
        web.post("/users/{username}/{action}", user_action),
    ]

"""Definition forms (tasks, groups): the fields a page shows, the JSON a submitted form
describes, and the validator's messages placed next to their fields."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from aiohttp import web

from easytask.core.authz import Action, Caller, refusal
from easytask.core.errors import EasyTaskError, ValidationError
from easytask.core.text import text_problem
from easytask.ui.views import digits

OTHER = "_other"  # the key of messages that belong to no field of the form
_ISO_DATE = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})")


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    label: str
    help: str = ""
    required: bool = False
    type: str = "text"


def can(caller: Caller, action: Action, owner: str = "") -> bool:
    """The policy the application enforces, asked only to hide what would be refused."""
    return refusal(caller, action, owner=owner) is None


def from_form(form: Any, names: Collection[str], integers: Collection[str], *, creating: bool,
              cleared: Mapping[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """The JSON a form describes. Creating: empty fields are left out; editing: an emptied
    field becomes ``cleared[name]`` (default null). ``active`` is a yes/no select. Numbers
    that are not numbers stay text: validation names them."""
    doc: dict[str, Any] = {}
    for name in names:
        raw = form.get(name)
        value = raw.strip() if isinstance(raw, str) else ""
        if name == "active":
            doc["active"] = value != "false"
        elif value == "":
            if not creating:
                doc[name] = (cleared or {}).get(name)
        elif name in integers and digits(value.removeprefix("-")) and len(value) < 12:
            doc[name] = int(value)
        else:
            doc[name] = value
    return doc


def field_errors(exc: EasyTaskError, names: Collection[str]) -> dict[str, str]:
    """Each message under its field (several joined), the rest under OTHER."""
    if not isinstance(exc, ValidationError):
        return {OTHER: str(exc)}
    errors: dict[str, str] = {}
    for e in exc.errors:
        key = e.field if e.field in names else OTHER
        errors[key] = f"{errors[key]}; {e.message}" if key in errors else e.message
    return errors or {OTHER: str(exc)}


def form_values(form: Any, names: Collection[str]) -> dict[str, str]:
    """What was typed, to show it again with the messages."""
    return {k: v for k in names if isinstance(v := form.get(k, ""), str)}


def forbid(caller: Caller, action: Action, what: str) -> None:
    """Refuse a form page the caller could not submit (403, naming the rule)."""
    if not can(caller, action):
        raise web.HTTPForbidden(text=f"role {caller.role.value} may not {what}")


def text_of(form: Mapping[str, Any], name: str) -> str:
    """A form or query value as text ("" when missing or a file), outer spaces removed."""
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def text_error(label: str, value: str, limit: int, *, lines: bool = False) -> str | None:
    """What is wrong with a free-text value, named by its field's label, or None."""
    if len(value) > limit:
        return f"{label} must be at most {limit} characters (got {len(value)})"
    problem = text_problem(value, lines=lines)
    return None if problem is None else f"{label} {problem}"


def parse_date(label: str, value: str, errors: dict[str, str], key: str) -> date | None:
    """``YYYY-MM-DD`` (or ``YYYYMMDD``) as a date; a field error naming ``label`` otherwise."""
    match = _ISO_DATE.fullmatch(value) if value.isascii() else None
    if match is not None:
        try:
            return date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            pass
    errors[key] = f"{label} must be a date YYYY-MM-DD"
    return None

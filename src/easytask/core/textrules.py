"""Rules for texts rendered later: ``${X:NAME}`` placeholders (spec 9) and ``alert`` objects
(spec 15). Used by task and group validation; the messages are the spec's."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from easytask.core.text import shown

_T_NAMES = frozenset({"task_name", "task_id"})
_P_NAMES = frozenset({"pid", "status", "duration", "return_code", "stdout", "stderr"})
_E_NAME_RE = re.compile(r"[A-Za-z0-9_:]+")

_ALERT_ON = ("failure", "success", "always")
_INTEGRATIONS: dict[str, str] = {
    "email": "email",
    "genericsmtp": "email",
    "webhook": "webhook",
    "http": "webhook",
    "slack": "slack",
    "msteams": "msteams",
    "teams": "msteams",
}
# Per channel: required keys; a tuple of alternatives is satisfied by any one of them.
_ALERT_REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    "email": (("to",), ("subject",), ("body",)),
    "webhook": (("url",),),
    "slack": (("webhook_url", "connection"), ("text",)),
    "msteams": (("webhook_url", "connection"), ("text",)),
}
_ALERT_TEXTS = ("subject", "body", "text", "title")


def placeholder_errors(text: str, *, alert: bool) -> list[str]:
    """Messages for malformed or misplaced ``${X:NAME}`` placeholders in ``text`` (spec 9).

    Args:
        text: A command, output path or alert text.
        alert: True for alert texts, where ``${P:...}`` placeholders are allowed.

    Returns:
        One ``Bad placeholder <text>`` per bad placeholder, then at most one message about
        ``P:`` placeholders outside alerts; empty when the text is fine.
    """
    errors: list[str] = []
    p_used = False
    start = text.find("${")
    while start != -1:
        end = text.find("}", start)
        token = text[start:] if end == -1 else text[start : end + 1]
        prefix, _, name = token[2:-1].partition(":") if end != -1 else ("", "", "")
        if not _placeholder_ok(prefix, name):
            errors.append(f"Bad placeholder {shown(token)}")
        elif prefix == "P":
            p_used = True
        if end == -1:
            break
        start = text.find("${", end + 1)
    if p_used and not alert:
        errors.append("P: placeholders are allowed only in alerts")
    return errors


def _placeholder_ok(prefix: str, name: str) -> bool:
    if prefix == "E":
        return _E_NAME_RE.fullmatch(name) is not None
    if prefix == "T":
        return name in _T_NAMES
    if prefix == "P":
        return name in _P_NAMES
    return False


def alert_errors(alert: Mapping[str, Any]) -> list[str]:
    """Messages for an ``alert`` object (spec 15); delivery settings are not checked here.

    Args:
        alert: The task's ``alert`` object.

    Returns:
        The problems found, in a stable order; empty when the object is fine.
    """
    errors = _alert_on_errors(alert)
    entries = alert.get("integrations")
    if entries is None or entries == []:
        errors.append("integrations is required")
    elif not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        errors.append("integrations must be a list of objects")
    else:
        for entry in entries:
            errors.extend(_integration_errors(entry))
    return errors


def _alert_on_errors(obj: Mapping[str, Any]) -> list[str]:
    value = obj.get("alert_on")
    if value is None or value in _ALERT_ON:
        return []
    return ["alert_on must be one of " + ", ".join(_ALERT_ON)]


def _integration_errors(entry: Mapping[str, Any]) -> list[str]:
    """One integration entry: a known channel, its required keys, valid placeholders."""
    name = entry.get("integration")
    if name is None or name == "":
        return ["integration is required"]
    channel = _INTEGRATIONS.get(name) if isinstance(name, str) else None
    if channel is None:
        return [f"unknown integration {shown(str(name))}"]
    errors = _alert_on_errors(entry)
    for keys in _ALERT_REQUIRED[channel]:
        if all(entry.get(k) in (None, "", []) for k in keys):
            errors.append(f"{keys[0]} is required")
    for key in _ALERT_TEXTS:
        if isinstance(entry.get(key), str):
            errors.extend(placeholder_errors(entry[key], alert=True))
    return errors

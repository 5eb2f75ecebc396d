"""Rules for texts rendered later: ``${X:NAME}`` placeholders (spec 9), also checked in the texts
of ``alert`` objects (spec 15; the object's own rules are ``core.alerts``'). Used by task and group
validation; the messages are the spec's."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from easytask.core import alerts
from easytask.core.text import shown

_T_NAMES = frozenset({"task_name", "task_id"})
_P_NAMES = frozenset({"pid", "status", "duration", "return_code", "stdout", "stderr"})
_E_NAME_RE = re.compile(r"[A-Za-z0-9_:]+")


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
    """Messages for an ``alert`` object (spec 15), its texts' placeholders included; the
    object's own rules live in ``core.alerts``; connection names are not resolved here.

    Args:
        alert: The task's ``alert`` object.

    Returns:
        The problems found, in a stable order; empty when the object is fine.
    """
    return alerts.alert_errors(alert, text_errors=_alert_text_errors)


def _alert_text_errors(text: str) -> list[str]:
    return placeholder_errors(text, alert=True)

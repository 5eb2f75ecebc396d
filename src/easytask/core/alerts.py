"""The ``alert`` object of spec 15: its channels and entries, their checks, and which entries fire.

An ``alert`` holds a top-level ``alert_on`` and a list of ``integrations``; each entry names a
channel (``email``, ``webhook``, ``slack``, ``msteams`` or an alias), may override ``alert_on``
and carries the keys its channel needs. Placeholder syntax in alert texts belongs to
``core.textrules``, which plugs its check into :func:`alert_errors`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, TypeAlias

from easytask.core.errors import FieldError, ValidationError
from easytask.core.states import RunState
from easytask.core.text import shown


class AlertOn(StrEnum):
    """When an entry fires (spec 15)."""

    FAILURE = "failure"
    SUCCESS = "success"
    ALWAYS = "always"


class Channel(StrEnum):
    """A delivery channel, by its canonical name."""

    EMAIL = "email"
    WEBHOOK = "webhook"
    SLACK = "slack"
    MSTEAMS = "msteams"


class AlertStatus(StrEnum):
    """A run's ``alert_status`` (spec 8); also the final status of one alert."""

    NONE = "none"
    SENT = "sent"
    FAILED = "failed"


DEFAULT_ALERT_ON = AlertOn.FAILURE
# The value an ``integration`` key may have, and the channel each one means.
CHANNELS: Mapping[str, Channel] = {
    "email": Channel.EMAIL,
    "genericsmtp": Channel.EMAIL,
    "webhook": Channel.WEBHOOK,
    "http": Channel.WEBHOOK,
    "slack": Channel.SLACK,
    "msteams": Channel.MSTEAMS,
    "teams": Channel.MSTEAMS,
}
# Per channel: required keys; a tuple of alternatives is satisfied by any one of them and is
# reported under its first name.
REQUIRED_KEYS: Mapping[Channel, tuple[tuple[str, ...], ...]] = {
    Channel.EMAIL: (("to",), ("subject",), ("body",)),
    Channel.WEBHOOK: (("url",),),
    Channel.SLACK: (("webhook_url", "connection"), ("text",)),
    Channel.MSTEAMS: (("webhook_url", "connection"), ("text",)),
}
# Texts rendered with placeholders before delivery (a webhook's ``body`` is an object, not one).
TEXT_KEYS: Mapping[Channel, tuple[str, ...]] = {
    Channel.EMAIL: ("subject", "body"),
    Channel.WEBHOOK: (),
    Channel.SLACK: ("text",),
    Channel.MSTEAMS: ("title", "text"),
}
# What each optional or required key must hold, per channel.
_STRING, _STRINGS, _OBJECT, _HEADERS, _URL = "string", "strings", "object", "headers", "url"
_KEY_TYPES: Mapping[Channel, Mapping[str, str]] = {
    Channel.EMAIL: {
        "to": _STRINGS,
        "cc": _STRINGS,
        "subject": _STRING,
        "body": _STRING,
        "connection": _STRING,
    },
    Channel.WEBHOOK: {"url": _URL, "headers": _HEADERS, "body": _OBJECT},
    Channel.SLACK: {"webhook_url": _URL, "connection": _STRING, "text": _STRING},
    Channel.MSTEAMS: {
        "webhook_url": _URL,
        "connection": _STRING,
        "title": _STRING,
        "text": _STRING,
    },
}
_TYPE_MESSAGES = {
    _STRING: "{} must be a string",
    _STRINGS: "{} must be a list of strings",
    _OBJECT: "{} must be an object",
    _HEADERS: "{} must be an object of strings",
    _URL: "{} must be an http or https URL",
}
_FAILURE_STATES = frozenset({RunState.FAILED, RunState.TERMINATED, RunState.REJECTED})

TextErrors: TypeAlias = Callable[[str], list[str]]


# ---------------------------------------------------------------------------------------------
# Checks (insert and update)


def alert_errors(alert: Mapping[str, Any], *, text_errors: TextErrors | None = None) -> list[str]:
    """Messages for an ``alert`` object (spec 15); connection names are not resolved here.

    Args:
        alert: The task's or group's ``alert`` object.
        text_errors: Checks one alert text (placeholders); None checks no text.

    Returns:
        The problems found, in a stable order (entry by entry); empty when the object is fine.
    """
    errors = _alert_on_errors(alert)
    entries = alert.get("integrations")
    if entries is None or entries == []:
        errors.append("integrations is required")
    elif not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        errors.append("integrations must be a list of objects")
    else:
        for entry in entries:
            errors.extend(_entry_errors(entry, text_errors))
    return errors


def _alert_on_errors(obj: Mapping[str, Any]) -> list[str]:
    value = obj.get("alert_on")
    if value is None or value in tuple(AlertOn):
        return []
    return ["alert_on must be one of " + ", ".join(AlertOn)]


def _entry_errors(entry: Mapping[str, Any], text_errors: TextErrors | None) -> list[str]:
    """One entry: a known channel, its required keys, their types, then its texts."""
    name = entry.get("integration")
    if name is None or name == "":
        return ["integration is required"]
    channel = CHANNELS.get(name) if isinstance(name, str) else None
    if channel is None:
        return [f"unknown integration {shown(str(name))}"]
    errors = _alert_on_errors(entry)
    for keys in REQUIRED_KEYS[channel]:
        if all(_empty(entry.get(k)) for k in keys):
            errors.append(f"{keys[0]} is required")
    for key, kind in _KEY_TYPES[channel].items():
        value = entry.get(key)
        if not _empty(value) and not _has_type(value, kind):
            errors.append(_TYPE_MESSAGES[kind].format(key))
    if text_errors is not None:
        for key in TEXT_KEYS[channel]:
            if isinstance(entry.get(key), str):
                errors.extend(text_errors(entry[key]))
    return errors


def _empty(value: object) -> bool:
    return value is None or value == "" or value == []


def _has_type(value: object, kind: str) -> bool:
    if kind == _STRING:
        return isinstance(value, str)
    if kind == _STRINGS:
        return isinstance(value, list) and all(isinstance(v, str) and v for v in value)
    if kind == _OBJECT:
        return isinstance(value, Mapping)
    if kind == _HEADERS:
        return isinstance(value, Mapping) and all(isinstance(v, str) for v in value.values())
    return isinstance(value, str) and value.lower().startswith(("http://", "https://"))


# ---------------------------------------------------------------------------------------------
# The object model


@dataclass(frozen=True, slots=True)
class EmailEntry:
    """An ``email``/``genericsmtp`` entry; ``connection`` names an SMTP override."""

    index: int
    integration: str
    alert_on: AlertOn
    to: tuple[str, ...]
    subject: str
    body: str
    cc: tuple[str, ...] = ()
    connection: str | None = None

    channel: ClassVar[Channel] = Channel.EMAIL


@dataclass(frozen=True, slots=True)
class WebhookEntry:
    """A ``webhook``/``http`` entry: POST ``body`` (default: the run record) as JSON to ``url``."""

    index: int
    integration: str
    alert_on: AlertOn
    url: str
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    body: Mapping[str, Any] | None = None

    channel: ClassVar[Channel] = Channel.WEBHOOK


@dataclass(frozen=True, slots=True)
class SlackEntry:
    """A ``slack`` entry: ``text`` to an incoming webhook given inline or by ``connection``."""

    index: int
    integration: str
    alert_on: AlertOn
    text: str
    webhook_url: str | None = None
    connection: str | None = None

    channel: ClassVar[Channel] = Channel.SLACK


@dataclass(frozen=True, slots=True)
class TeamsEntry:
    """An ``msteams``/``teams`` entry: a MessageCard with ``title`` and ``text``."""

    index: int
    integration: str
    alert_on: AlertOn
    text: str
    title: str | None = None
    webhook_url: str | None = None
    connection: str | None = None

    channel: ClassVar[Channel] = Channel.MSTEAMS


AlertEntry: TypeAlias = EmailEntry | WebhookEntry | SlackEntry | TeamsEntry


def parse_alert(alert: Mapping[str, Any]) -> list[AlertEntry]:
    """The entries of an ``alert`` object, each with its effective ``alert_on``.

    Args:
        alert: The ``alert`` object of a task or group.

    Returns:
        One entry per ``integrations`` item, in order; ``index`` is the item's position.

    Raises:
        ValidationError: The object breaks a rule of :func:`alert_errors` (field ``alert``).
    """
    errors = alert_errors(alert)
    if errors:
        raise ValidationError([FieldError("alert", m) for m in errors])
    top = AlertOn(alert.get("alert_on") or DEFAULT_ALERT_ON)
    return [parse_entry(i, item, default=top) for i, item in enumerate(alert["integrations"])]


def parse_entry(
    index: int, item: Mapping[str, Any], *, default: AlertOn = DEFAULT_ALERT_ON
) -> AlertEntry:
    """One checked ``integrations`` item as its channel's entry (the inverse of entry_dict).

    Args:
        index: The item's position in ``integrations``.
        item: The item; it must pass the checks of :func:`alert_errors`.
        default: The ``alert_on`` of the enclosing object, used when the item has none.
    """
    integration = item["integration"]
    channel = CHANNELS[integration]
    on = AlertOn(item.get("alert_on") or default)
    if channel is Channel.EMAIL:
        return EmailEntry(index, integration, on, tuple(item["to"]), item["subject"],
                          item["body"], tuple(item.get("cc") or ()),
                          item.get("connection") or None)  # fmt: skip
    if channel is Channel.WEBHOOK:
        body = item.get("body")
        return WebhookEntry(index, integration, on, item["url"], dict(item.get("headers") or {}),
                            None if body is None else dict(body))  # fmt: skip
    if channel is Channel.SLACK:
        return SlackEntry(index, integration, on, item["text"], item.get("webhook_url") or None,
                          item.get("connection") or None)  # fmt: skip
    return TeamsEntry(index, integration, on, item["text"], item.get("title") or None,
                      item.get("webhook_url") or None, item.get("connection") or None)  # fmt: skip


def entry_dict(entry: AlertEntry) -> dict[str, Any]:
    """The entry as an ``integrations`` item (JSON values), with its effective ``alert_on``."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(entry):
        value = getattr(entry, f.name)
        if f.name == "index" or value is None or value == () or (f.name == "headers" and not value):
            continue
        out[f.name] = list(value) if isinstance(value, tuple) else value
    out["alert_on"] = str(entry.alert_on)
    return out


def entry_texts(entry: AlertEntry) -> dict[str, str]:
    """The entry's texts that placeholders are rendered in, by key."""
    return {k: v for k in TEXT_KEYS[entry.channel] if isinstance(v := getattr(entry, k), str)}


def with_texts(entry: AlertEntry, texts: Mapping[str, str]) -> AlertEntry:
    """A copy of ``entry`` whose texts are replaced by ``texts`` (rendered ones)."""
    unknown = set(texts) - set(TEXT_KEYS[entry.channel])
    if unknown:
        raise ValueError(f"not a text of a {entry.channel} entry: {', '.join(sorted(unknown))}")
    changes: dict[str, Any] = dict(texts)
    return dataclasses.replace(entry, **changes)


def fires(alert_on: AlertOn, final_state: RunState) -> bool:
    """Whether an entry with ``alert_on`` fires for a run that ended in ``final_state``."""
    if final_state in _FAILURE_STATES:
        return alert_on in (AlertOn.FAILURE, AlertOn.ALWAYS)
    if final_state is RunState.SUCCESS:
        return alert_on in (AlertOn.SUCCESS, AlertOn.ALWAYS)
    return False  # SKIPPED never alerts


def due(alert: Mapping[str, Any] | None, final_state: RunState) -> list[AlertEntry]:
    """The entries that fire for a run (or group occurrence) that ended in ``final_state``.

    The caller decides that no further attempt follows (spec 15: fired at most once per run).

    Args:
        alert: The ``alert`` object, or None when the task has none.
        final_state: The final state of the last attempt.

    Raises:
        ValueError: ``final_state`` is not final.
        ValidationError: The object breaks a rule of :func:`alert_errors`.
    """
    if not final_state.final:
        raise ValueError(f"{final_state} is not a final state")
    if alert is None:
        return []
    return [e for e in parse_alert(alert) if fires(e.alert_on, final_state)]


# ---------------------------------------------------------------------------------------------
# One alert to deliver


def alert_id(run_id: str, index: int) -> str:
    """The id of the alert of entry ``index`` for run (or group occurrence) ``run_id``."""
    return f"{run_id}:a{index}"


@dataclass(frozen=True, slots=True)
class Alert:
    """One due alert: an entry with its texts rendered, for one run, and its attempts so far.

    ``record`` is the run record (spec 8) as JSON values: a webhook's default body.
    """

    alert_id: str
    run_id: str
    entry: AlertEntry
    record: Mapping[str, Any]
    attempts: int = 0
    last_attempt_at: datetime | None = None

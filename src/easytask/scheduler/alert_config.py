"""The ``[alerts]`` settings of ``<home>/easytask.toml``: the SMTP server and named connections.

```toml
[alerts.smtp]
smtp_host = "smtp.example.com"
smtp_port = 587                 # default: 587 starttls, 465 tls, 25 none
smtp_tls = "starttls"           # starttls (default) | tls | none
smtp_user = "easytask"          # optional; with smtp_password, and only over TLS
smtp_password = "..."
smtp_from = "easytask@example.com"

[alerts.connections.ops_slack]  # a task's entry says "connection": "ops_slack"
webhook_url = "https://hooks.slack.com/services/..."

[alerts.connections.ops_mail]   # an SMTP override: these keys over [alerts.smtp]
smtp_from = "oncall@example.com"
```

Other top-level tables of the file belong to other settings and are not read here. Passwords and
webhook URLs are kept as :class:`Secret`, whose ``repr`` is ``'***'``.
"""

from __future__ import annotations

import hmac
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeAlias

from easytask.core.alerts import AlertEntry, EmailEntry, SlackEntry, TeamsEntry
from easytask.core.errors import ConfigError
from easytask.core.text import shown

CONFIG_FILE = "easytask.toml"
_SMTP_KEYS = frozenset(
    {"smtp_host", "smtp_port", "smtp_user", "smtp_password", "smtp_tls", "smtp_from"}
)
_CONNECTION_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class Secret:
    """A password or webhook URL: shown as ``'***'`` by ``repr`` and ``str``; ``reveal()`` it
    only where it is sent."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself."""
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)


class SmtpTls(StrEnum):
    """How the SMTP connection is protected."""

    STARTTLS = "starttls"
    TLS = "tls"
    NONE = "none"


_DEFAULT_PORTS = {SmtpTls.STARTTLS: 587, SmtpTls.TLS: 465, SmtpTls.NONE: 25}


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """An SMTP server to send alert mail through (spec 15's key names)."""

    smtp_host: str
    smtp_port: int
    smtp_tls: SmtpTls
    smtp_from: str
    smtp_user: str | None = None
    smtp_password: Secret | None = None


@dataclass(frozen=True, slots=True)
class WebhookConnection:
    """A named incoming-webhook URL (Slack, Teams)."""

    name: str
    webhook_url: Secret


@dataclass(frozen=True, slots=True)
class SmtpConnection:
    """A named SMTP setting: ``[alerts.smtp]`` with the connection's keys over it."""

    name: str
    smtp: SmtpSettings


Connection: TypeAlias = WebhookConnection | SmtpConnection


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """What ``[alerts]`` of one configuration file says; ``path`` names the file."""

    path: Path
    smtp: SmtpSettings | None = None
    connections: Mapping[str, Connection] = field(default_factory=dict)

    def find_connection(self, name: str) -> Connection | None:
        """The connection called ``name``, or None."""
        return self.connections.get(name)

    def connection_errors(self, entries: Iterable[AlertEntry]) -> list[str]:
        """Messages for entries whose ``connection`` names nothing or a setting of the wrong
        kind (checked at insert and update, field ``alert``)."""
        errors: list[str] = []
        for entry in entries:
            name = getattr(entry, "connection", None)
            if name is None:
                if isinstance(entry, EmailEntry) and self.smtp is None:
                    errors.append(f"no SMTP server configured in {self.path.name}")
                continue
            found = self.connections.get(name)
            if found is None:
                errors.append(f"connection {shown(name)} does not exist")
            elif isinstance(entry, SlackEntry | TeamsEntry) and not isinstance(
                found, WebhookConnection
            ):
                errors.append(f"connection {shown(name)} is not a webhook")
            elif isinstance(entry, EmailEntry) and not isinstance(found, SmtpConnection):
                errors.append(f"connection {shown(name)} is not an SMTP setting")
        return errors


def config_path(home: Path) -> Path:
    """Where the scheduler's configuration file lives in its data directory."""
    return home / CONFIG_FILE


class AlertConfigFile:
    """The alert settings of one file, read at start and again by :meth:`reload` (SIGHUP)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._current = load_alert_settings(path)

    @property
    def current(self) -> AlertSettings:
        """The settings of the last successful read."""
        return self._current

    def reload(self) -> AlertSettings:
        """Read the file again; on an error the previous settings stay in force.

        Raises:
            ConfigError: The file cannot be read or breaks a rule; the message names the file
                and the key.
        """
        self._current = load_alert_settings(self.path)
        return self._current


def load_alert_settings(path: Path) -> AlertSettings:
    """The ``[alerts]`` settings of ``path``; a missing file means none are configured.

    Raises:
        ConfigError: The file is not TOML or breaks a rule (named with the file and the key).
    """
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return AlertSettings(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return parse_alert_settings(data, path)


def parse_alert_settings(data: Mapping[str, Any], path: Path) -> AlertSettings:
    """The ``[alerts]`` table of a parsed file (see the module docstring)."""
    alerts = data.get("alerts", {})
    _require_table(alerts, "alerts", path)
    _refuse_unknown(alerts, {"smtp", "connections"}, "alerts", path)
    base = alerts.get("smtp")
    smtp = None
    if base is not None:
        _require_table(base, "alerts.smtp", path)
        _refuse_unknown(base, _SMTP_KEYS, "alerts.smtp", path)
        smtp = _smtp(base, "alerts.smtp", path)
    tables = alerts.get("connections", {})
    _require_table(tables, "alerts.connections", path)
    connections: dict[str, Connection] = {}
    for name, table in tables.items():
        where = f"alerts.connections.{name}"
        if not _CONNECTION_NAME_RE.fullmatch(name):
            raise ConfigError(
                f"{path}: {where}: a connection name may contain only letters, digits, _ - ."
            )
        _require_table(table, where, path)
        connections[name] = _connection(name, table, base or {}, where, path)
    return AlertSettings(path, smtp, connections)


def _connection(
    name: str, table: Mapping[str, Any], base: Mapping[str, Any], where: str, path: Path
) -> Connection:
    _refuse_unknown(table, _SMTP_KEYS | {"webhook_url"}, where, path)
    if "webhook_url" in table:
        if len(table) > 1:
            raise ConfigError(f"{path}: {where}: webhook_url cannot be combined with smtp_ keys")
        url = _string(table, "webhook_url", where, path)
        if not url.lower().startswith(("http://", "https://")):
            raise ConfigError(f"{path}: {where}.webhook_url must be an http or https URL")
        return WebhookConnection(name, Secret(url))
    if not table:
        raise ConfigError(f"{path}: {where} needs webhook_url or smtp_ keys")
    return SmtpConnection(name, _smtp({**base, **table}, where, path))


def _smtp(table: Mapping[str, Any], where: str, path: Path) -> SmtpSettings:
    host = _string(table, "smtp_host", where, path, required=True)
    sender = _string(table, "smtp_from", where, path, required=True)
    tls_name = _string(table, "smtp_tls", where, path) or SmtpTls.STARTTLS
    if tls_name not in tuple(SmtpTls):
        raise ConfigError(f"{path}: {where}.smtp_tls must be one of starttls, tls, none")
    tls = SmtpTls(tls_name)
    port = table.get("smtp_port", _DEFAULT_PORTS[tls])
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"{path}: {where}.smtp_port must be an integer between 1 and 65535")
    user = _string(table, "smtp_user", where, path) or None
    password = _string(table, "smtp_password", where, path) or None
    if (user is None) != (password is None):
        raise ConfigError(f"{path}: {where}: smtp_user and smtp_password go together")
    if user is not None and tls is SmtpTls.NONE:
        raise ConfigError(f"{path}: {where}: a login needs smtp_tls starttls or tls")
    secret = None if password is None else Secret(password)
    return SmtpSettings(host, port, tls, sender, user, secret)


def _string(
    table: Mapping[str, Any], key: str, where: str, path: Path, *, required: bool = False
) -> str:
    value = table.get(key)
    if value is None or value == "":
        if required:
            raise ConfigError(f"{path}: {where}.{key} is required")
        return ""
    if not isinstance(value, str):
        raise ConfigError(f"{path}: {where}.{key} must be a string")
    return value


def _require_table(value: object, where: str, path: Path) -> None:
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {where} must be a table")


def _refuse_unknown(table: Mapping[str, Any], known: Iterable[str], where: str, path: Path) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ConfigError(f"{path}: unknown key {where}.{shown(unknown[0])}")

"""Delivery of one alert over its channel: SMTP mail, a generic JSON webhook, Slack, Teams.

Every failure is an :class:`AlertDeliveryError` whose message says what went wrong without a
password, a webhook URL or a server's reply body: it is stored with the attempt and logged.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from typing import Any

import aiohttp

from easytask.core.alerts import Alert, EmailEntry, SlackEntry, WebhookEntry
from easytask.core.errors import AlertDeliveryError
from easytask.core.text import shown
from easytask.scheduler.alert_config import (
    AlertSettings,
    Secret,
    SmtpConnection,
    SmtpSettings,
    SmtpTls,
    WebhookConnection,
)

DEFAULT_TIMEOUT = 15.0  # seconds for one attempt, connection included
_REPLY_LIMIT = 200


def slack_payload(text: str) -> dict[str, Any]:
    """The JSON a Slack incoming webhook takes."""
    return {"text": text}


def teams_payload(title: str | None, text: str) -> dict[str, Any]:
    """A Microsoft Teams MessageCard (legacy incoming webhook format)."""
    card: dict[str, Any] = {"@type": "MessageCard", "@context": "http://schema.org/extensions"}
    if title:
        card["title"] = title
    card["text"] = text
    return card


def email_message(smtp: SmtpSettings, entry: EmailEntry) -> EmailMessage:
    """The mail of an email entry, from the server's ``smtp_from``."""
    msg = EmailMessage()
    msg["From"] = smtp.smtp_from
    msg["To"] = ", ".join(entry.to)
    if entry.cc:
        msg["Cc"] = ", ".join(entry.cc)
    # A rendered subject may hold output lines; a header may not.
    msg["Subject"] = " ".join(entry.subject.splitlines())
    msg.set_content(entry.body)
    return msg


class AlertChannels:
    """Sends alerts; the settings are read per send, so a reload applies to the next attempt.

    Args:
        settings: Returns the current alert settings (``AlertConfigFile.current``).
        session: The HTTP client session (owned by the caller).
        timeout: Seconds one attempt may take.
        ssl_context: Verifies SMTP servers (default: the system's trust store).
    """

    def __init__(
        self,
        settings: Callable[[], AlertSettings],
        session: aiohttp.ClientSession,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._settings = settings
        self._session = session
        self._timeout = timeout
        self._ssl = ssl_context

    async def send(self, alert: Alert) -> None:
        """Deliver ``alert`` once.

        Raises:
            AlertDeliveryError: The attempt failed; the message names the cause.
        """
        entry = alert.entry
        if isinstance(entry, EmailEntry):
            await self._email(entry)
        elif isinstance(entry, WebhookEntry):
            body = entry.body if entry.body is not None else alert.record
            await self._post("webhook", Secret(entry.url), body, entry.headers)
        elif isinstance(entry, SlackEntry):
            url = self._webhook_url(entry.webhook_url, entry.connection)
            await self._post("slack", url, slack_payload(entry.text))
        else:
            url = self._webhook_url(entry.webhook_url, entry.connection)
            await self._post("msteams", url, teams_payload(entry.title, entry.text))

    def _webhook_url(self, inline: str | None, connection: str | None) -> Secret:
        if inline:
            return Secret(inline)
        if not connection:
            raise AlertDeliveryError("webhook_url or connection is required")
        found = self._settings().find_connection(connection)
        if found is None:
            raise AlertDeliveryError(f"connection {shown(connection)} does not exist")
        if not isinstance(found, WebhookConnection):
            raise AlertDeliveryError(f"connection {shown(connection)} is not a webhook")
        return found.webhook_url

    def _smtp(self, connection: str | None) -> SmtpSettings:
        settings = self._settings()
        if connection is None:
            if settings.smtp is None:
                raise AlertDeliveryError(f"no SMTP server configured in {settings.path.name}")
            return settings.smtp
        found = settings.find_connection(connection)
        if found is None:
            raise AlertDeliveryError(f"connection {shown(connection)} does not exist")
        if not isinstance(found, SmtpConnection):
            raise AlertDeliveryError(f"connection {shown(connection)} is not an SMTP setting")
        return found.smtp

    async def _email(self, entry: EmailEntry) -> None:
        smtp = self._smtp(entry.connection)
        msg = email_message(smtp, entry)
        context = self._ssl or ssl.create_default_context()
        try:
            async with asyncio.timeout(self._timeout):
                await asyncio.to_thread(_smtp_send, smtp, msg, self._timeout, context)
        except TimeoutError:
            raise AlertDeliveryError(f"SMTP {_server(smtp)}: timed out") from None

    async def _post(
        self,
        channel: str,
        url: Secret,
        payload: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        # The message is made inside each handler and raised after it, so the original error
        # (whose text holds the URL) is not even kept as the new one's context.
        try:
            async with self._session.post(
                url.reveal(), json=payload, headers=dict(headers or {}), timeout=timeout
            ) as reply:
                status, reason = reply.status, reply.reason or ""
            problem = None if status < 300 else f"HTTP {status} {reason}".rstrip()
        except TimeoutError:
            problem = "timed out"
        except aiohttp.ClientConnectionError as exc:
            problem = f"cannot connect ({type(exc).__name__})"
        except aiohttp.ClientError as exc:
            problem = type(exc).__name__
        except ValueError:  # a malformed URL
            problem = "the URL is not valid"
        if problem is not None:
            raise AlertDeliveryError(f"{channel}: {problem}")


def _server(smtp: SmtpSettings) -> str:
    return f"{smtp.smtp_host}:{smtp.smtp_port}"


def _smtp_send(
    smtp: SmtpSettings, msg: EmailMessage, timeout: float, context: ssl.SSLContext
) -> None:
    """Blocking: one SMTP session (run in a thread).

    Raises:
        AlertDeliveryError: The session failed; raised outside the handler so the original
            error is not kept as its context.
    """
    problem = _smtp_session(smtp, msg, timeout, context)
    if problem is not None:
        raise AlertDeliveryError(f"SMTP {_server(smtp)}: {problem}")


def _smtp_session(
    smtp: SmtpSettings, msg: EmailMessage, timeout: float, context: ssl.SSLContext
) -> str | None:
    """What went wrong in one SMTP session, or None when the mail was accepted."""
    try:
        client: smtplib.SMTP
        if smtp.smtp_tls is SmtpTls.TLS:
            client = smtplib.SMTP_SSL(smtp.smtp_host, smtp.smtp_port, timeout=timeout,
                                      context=context)  # fmt: skip
        else:
            client = smtplib.SMTP(smtp.smtp_host, smtp.smtp_port, timeout=timeout)
        with client:
            if smtp.smtp_tls is SmtpTls.STARTTLS:
                client.starttls(context=context)
            if smtp.smtp_user is not None and smtp.smtp_password is not None:
                client.login(smtp.smtp_user, smtp.smtp_password.reveal())
            client.send_message(msg)
    except smtplib.SMTPAuthenticationError as exc:
        return f"login refused ({exc.smtp_code})"
    except smtplib.SMTPRecipientsRefused as exc:
        return f"recipients refused: {shown(', '.join(sorted(exc.recipients)))}"
    except smtplib.SMTPResponseException as exc:
        return f"{exc.smtp_code} {_reply_text(exc.smtp_error)}"
    except smtplib.SMTPNotSupportedError:
        return "STARTTLS or AUTH not offered"
    except smtplib.SMTPException as exc:
        return type(exc).__name__
    except ssl.SSLError as exc:
        return f"TLS failed ({exc.reason})"
    except TimeoutError:
        return "timed out"
    except OSError as exc:
        return f"cannot connect ({exc.strerror or type(exc).__name__})"
    return None


def _reply_text(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return shown(" ".join(text.split())[:_REPLY_LIMIT])

"""Alert channels against real local servers: aiosmtpd for mail, aiohttp apps standing in for
the webhook, Slack and Teams endpoints."""

from __future__ import annotations

import asyncio
import datetime
import email
import email.policy
import ipaddress
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from easytask.core.alerts import Alert, alert_id, parse_alert
from easytask.core.errors import AlertDeliveryError
from easytask.scheduler.alert_channels import AlertChannels
from easytask.scheduler.alert_config import (
    AlertSettings,
    Connection,
    Secret,
    SmtpConnection,
    SmtpSettings,
    SmtpTls,
    WebhookConnection,
)

RECORD = {"run_id": "default:1001:1746793800000:3", "tid": 1001, "name": "nightly",
          "state": "FAILED", "return_code": 2, "alert_status": "none"}  # fmt: skip
PASSWORD = "pw-s3cr3t"
WAIT = 10.0


def make_alert(item: dict[str, Any], record: dict[str, Any] | None = None) -> Alert:
    entry = parse_alert({"integrations": [item]})[0]
    run_id = str(RECORD["run_id"])
    return Alert(alert_id(run_id, 0), run_id, entry, dict(record or RECORD))


@dataclass
class Endpoint:
    """A local HTTP server recording each POST; it can answer an error status or hold replies."""

    status: int = 200
    hold: asyncio.Event | None = None
    received: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    got: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0
    _runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append((request.path, dict(request.headers), await request.json()))
        self.got.set()
        if self.hold is not None:
            await self.hold.wait()
        return web.Response(status=self.status, text="reply body with a token s3cr3t")

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def __aenter__(self) -> Endpoint:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.hold is not None:
            self.hold.set()
        assert self._runner is not None
        await self._runner.cleanup()

    async def wait(self, count: int = 1) -> None:
        async with asyncio.timeout(WAIT):
            while len(self.received) < count:
                self.got.clear()
                await self.got.wait()


def settings(
    smtp: SmtpSettings | None = None, connections: dict[str, Connection] | None = None
) -> Callable[[], AlertSettings]:
    value = AlertSettings(Path("/home/easytask.toml"), smtp, connections or {})
    return lambda: value


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


# ---------------------------------------------------------------------------------------------
# SMTP


class Mailbox:
    """aiosmtpd handler keeping every mail; the authenticator accepts user/PASSWORD only."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.logins: list[str] = []
        self.got = asyncio.Event()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        self.got.set()
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"user",
            PASSWORD.encode(),
        )
        if ok:
            self.logins.append("user")
        return AuthResult(success=ok, handled=False)  # handled=False: the server replies 535

    def message(self, i: int = 0) -> email.message.EmailMessage:
        raw = self.envelopes[i].original_content or b""
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, email.message.EmailMessage)
        return msg


@dataclass
class Pki:
    ca_file: Path
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    out = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alert test smtp")])
    san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = out / "smtp.crt", out / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    return Pki(cert_file, server, ssl.create_default_context(cafile=str(cert_file)))


async def smtp_server(
    box: Mailbox, *, implicit_tls: ssl.SSLContext | None = None, **options: Any
) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(box, authenticator=box.authenticate, **options),
        "127.0.0.1",
        0,
        ssl=implicit_tls,
    )
    return server


def port_of(server: asyncio.Server) -> int:
    port: int = server.sockets[0].getsockname()[1]
    return port


MAIL = {"integration": "email", "to": ["ops@example.com", "dba@example.com"],
        "cc": ["lead@example.com"], "subject": "Task nightly Failed\nrc=2",
        "body": "rc=2 after 1.250s\nERROR: disk full\n"}  # fmt: skip


async def test_email_over_starttls_with_login(pki: Pki, session: aiohttp.ClientSession) -> None:
    box = Mailbox()
    server = await smtp_server(box, tls_context=pki.server, require_starttls=True,
                               auth_required=True)  # fmt: skip
    async with server:
        smtp = SmtpSettings("127.0.0.1", port_of(server), SmtpTls.STARTTLS,
                            "easytask@example.com", "user", Secret(PASSWORD))  # fmt: skip
        channels = AlertChannels(settings(smtp), session, ssl_context=pki.client)
        await channels.send(make_alert(MAIL))
    assert box.logins == ["user"]
    envelope = box.envelopes[0]
    assert envelope.mail_from == "easytask@example.com"
    assert envelope.rcpt_tos == ["ops@example.com", "dba@example.com", "lead@example.com"]
    msg = box.message()
    assert msg["Subject"] == "Task nightly Failed rc=2"  # one header line
    assert msg["To"] == "ops@example.com, dba@example.com"
    assert msg["Cc"] == "lead@example.com"
    # Lines travel as CRLF on the wire.
    assert msg.get_content().splitlines() == ["rc=2 after 1.250s", "ERROR: disk full"]


async def test_email_over_implicit_tls_through_a_connection(
    pki: Pki, session: aiohttp.ClientSession
) -> None:
    box = Mailbox()
    server = await smtp_server(box, implicit_tls=pki.server, auth_require_tls=False)
    async with server:
        base = SmtpSettings("127.0.0.1", 1, SmtpTls.NONE, "easytask@example.com")
        override = SmtpSettings("127.0.0.1", port_of(server), SmtpTls.TLS, "oncall@example.com",
                                "user", Secret(PASSWORD))  # fmt: skip
        connections: dict[str, Connection] = {"oncall": SmtpConnection("oncall", override)}
        channels = AlertChannels(settings(base, connections), session, ssl_context=pki.client)
        await channels.send(make_alert({**MAIL, "connection": "oncall"}))
    assert box.logins == ["user"]
    assert box.message()["From"] == "oncall@example.com"


async def test_email_without_tls_or_login(session: aiohttp.ClientSession) -> None:
    box = Mailbox()
    async with await smtp_server(box) as server:
        smtp = SmtpSettings("127.0.0.1", port_of(server), SmtpTls.NONE, "easytask@example.com")
        await AlertChannels(settings(smtp), session).send(make_alert(MAIL))
    assert box.logins == []
    assert box.message()["Subject"] == "Task nightly Failed rc=2"


async def test_email_with_a_wrong_password_fails_without_telling_it(
    pki: Pki, session: aiohttp.ClientSession
) -> None:
    box = Mailbox()
    server = await smtp_server(box, tls_context=pki.server, auth_required=True)
    async with server:
        smtp = SmtpSettings("127.0.0.1", port_of(server), SmtpTls.STARTTLS,
                            "easytask@example.com", "user", Secret("wrong-s3cr3t"))  # fmt: skip
        channels = AlertChannels(settings(smtp), session, ssl_context=pki.client)
        port = port_of(server)
        with pytest.raises(AlertDeliveryError) as info:
            await channels.send(make_alert(MAIL))
    assert str(info.value) == f"SMTP 127.0.0.1:{port}: login refused (535)"
    assert box.envelopes == []


async def test_email_to_an_untrusted_server_fails_on_tls(
    pki: Pki, session: aiohttp.ClientSession
) -> None:
    box = Mailbox()
    async with await smtp_server(box, implicit_tls=pki.server) as server:
        smtp = SmtpSettings("127.0.0.1", port_of(server), SmtpTls.TLS, "easytask@example.com")
        with pytest.raises(AlertDeliveryError, match="TLS failed"):
            # The system trust store does not know the test's certificate.
            await AlertChannels(settings(smtp), session).send(make_alert(MAIL))
    assert box.envelopes == []


async def test_email_to_a_closed_port_or_without_a_server(session: aiohttp.ClientSession) -> None:
    async with await smtp_server(Mailbox()) as server:
        port = port_of(server)
    smtp = SmtpSettings("127.0.0.1", port, SmtpTls.NONE, "easytask@example.com")
    with pytest.raises(AlertDeliveryError, match=rf"SMTP 127\.0\.0\.1:{port}: cannot connect"):
        await AlertChannels(settings(smtp), session).send(make_alert(MAIL))
    with pytest.raises(AlertDeliveryError, match=r"no SMTP server configured in easytask\.toml"):
        await AlertChannels(settings(), session).send(make_alert(MAIL))


# ---------------------------------------------------------------------------------------------
# HTTP


async def test_webhook_posts_the_run_record_by_default_with_headers(
    session: aiohttp.ClientSession,
) -> None:
    async with Endpoint() as hook:
        channels = AlertChannels(settings(), session)
        item = {"integration": "http", "url": hook.url("/a"), "headers": {"X-Token": "t1"}}
        await channels.send(make_alert(item))
        await channels.send(make_alert({**item, "url": hook.url("/b"), "body": {"k": [1, None]}}))
    (path_a, headers_a, body_a), (path_b, _, body_b) = hook.received
    assert (path_a, body_a) == ("/a", RECORD)
    assert headers_a["X-Token"] == "t1"
    assert headers_a["Content-Type"].startswith("application/json")
    assert (path_b, body_b) == ("/b", {"k": [1, None]})


async def test_slack_inline_and_through_a_connection(session: aiohttp.ClientSession) -> None:
    async with Endpoint() as slack:
        hidden = WebhookConnection("ops", Secret(slack.url("/services/T0/B0/s3cr3t")))
        channels = AlertChannels(settings(connections={"ops": hidden}), session)
        item = {"integration": "slack", "text": "nightly: Failed (rc=2)"}
        await channels.send(make_alert({**item, "webhook_url": slack.url("/inline")}))
        await channels.send(make_alert({**item, "connection": "ops"}))
    assert [(p, b) for p, _, b in slack.received] == [
        ("/inline", {"text": "nightly: Failed (rc=2)"}),
        ("/services/T0/B0/s3cr3t", {"text": "nightly: Failed (rc=2)"}),
    ]


async def test_teams_gets_a_message_card(session: aiohttp.ClientSession) -> None:
    async with Endpoint() as teams:
        channels = AlertChannels(settings(), session)
        item = {"integration": "teams", "webhook_url": teams.url(), "text": "rc=2"}
        await channels.send(make_alert({**item, "title": "nightly Failed"}))
        await channels.send(make_alert(item))
    assert [b for _, _, b in teams.received] == [
        {"@type": "MessageCard", "@context": "http://schema.org/extensions",
         "title": "nightly Failed", "text": "rc=2"},
        {"@type": "MessageCard", "@context": "http://schema.org/extensions", "text": "rc=2"},
    ]  # fmt: skip


async def test_http_errors_name_the_channel_and_status_but_not_the_url(
    session: aiohttp.ClientSession,
) -> None:
    async with Endpoint(status=500) as down:
        hidden = WebhookConnection("ops", Secret(down.url("/services/s3cr3t")))
        channels = AlertChannels(settings(connections={"ops": hidden}), session)
        with pytest.raises(AlertDeliveryError) as info:
            await channels.send(make_alert({"integration": "slack", "connection": "ops",
                                            "text": "t"}))  # fmt: skip
    assert str(info.value) == "slack: HTTP 500 Internal Server Error"
    closed = down.url("/services/s3cr3t")  # the server is gone now
    with pytest.raises(AlertDeliveryError) as info:
        await channels.send(make_alert({"integration": "teams", "webhook_url": closed,
                                        "text": "t"}))  # fmt: skip
    # ClientConnectorError, or ClientOSError on a kept-alive connection the server dropped.
    assert str(info.value).startswith("msteams: cannot connect (Client")
    assert "s3cr3t" not in repr(info.value.__cause__) + repr(info.value.__context__)


async def test_connections_that_name_nothing_or_the_wrong_kind(
    session: aiohttp.ClientSession,
) -> None:
    smtp = SmtpConnection("mail", SmtpSettings("h", 25, SmtpTls.NONE, "f"))
    hook = WebhookConnection("hook", Secret("https://h"))
    channels = AlertChannels(settings(connections={"mail": smtp, "hook": hook}), session)
    cases = [
        ({"integration": "slack", "connection": "nope", "text": "t"},
         "connection nope does not exist"),
        ({"integration": "slack", "connection": "mail", "text": "t"},
         "connection mail is not a webhook"),
        ({**MAIL, "connection": "hook"}, "connection hook is not an SMTP setting"),
    ]  # fmt: skip
    for item, message in cases:
        with pytest.raises(AlertDeliveryError) as info:
            await channels.send(make_alert(item))
        assert str(info.value) == message


async def test_a_channel_that_does_not_answer_times_out(session: aiohttp.ClientSession) -> None:
    async with Endpoint(hold=asyncio.Event()) as stalled:
        channels = AlertChannels(settings(), session, timeout=0.3)
        with pytest.raises(AlertDeliveryError) as info:
            await channels.send(make_alert({"integration": "http", "url": stalled.url()}))
    assert str(info.value) == "webhook: timed out"

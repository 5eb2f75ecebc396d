"""The [alerts] settings of <home>/easytask.toml: what is read, refused, and kept secret."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from easytask.core.alerts import parse_alert
from easytask.core.errors import ConfigError
from easytask.scheduler.alert_config import (
    AlertConfigFile,
    Secret,
    SmtpConnection,
    SmtpSettings,
    SmtpTls,
    WebhookConnection,
    config_path,
    load_alert_settings,
)

FULL = """
[server]                       # another setting's table: not ours, not refused
anything = 1

[alerts.smtp]
smtp_host = "mail.example.com"
smtp_user = "easytask"
smtp_password = "pw-s3cr3t"
smtp_from = "easytask@example.com"

[alerts.connections.ops_slack]
webhook_url = "https://hooks.slack.com/services/T000/B000/s3cr3t"

[alerts.connections.oncall_mail]
smtp_from = "oncall@example.com"
smtp_tls = "tls"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = config_path(tmp_path)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_full_file_is_read_with_defaults(tmp_path: Path) -> None:
    settings = load_alert_settings(write(tmp_path, FULL))
    assert settings.smtp == SmtpSettings(
        "mail.example.com", 587, SmtpTls.STARTTLS, "easytask@example.com", "easytask",
        Secret("pw-s3cr3t"),
    )  # fmt: skip
    slack = settings.find_connection("ops_slack")
    assert isinstance(slack, WebhookConnection)
    assert slack.webhook_url.reveal() == "https://hooks.slack.com/services/T000/B000/s3cr3t"
    mail = settings.find_connection("oncall_mail")
    assert isinstance(mail, SmtpConnection)
    # The override's keys over [alerts.smtp]; the port follows the override's TLS mode.
    assert (mail.smtp.smtp_host, mail.smtp.smtp_port, mail.smtp.smtp_tls) == (
        "mail.example.com",
        465,
        SmtpTls.TLS,
    )
    assert mail.smtp.smtp_from == "oncall@example.com"
    assert settings.find_connection("nope") is None


def test_a_missing_file_configures_nothing(tmp_path: Path) -> None:
    settings = load_alert_settings(tmp_path / "easytask.toml")
    assert settings.smtp is None and dict(settings.connections) == {}


def test_secrets_are_absent_from_reprs_and_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = AlertConfigFile(write(tmp_path, FULL)).current
    shown = repr(settings) + str(settings) + repr(settings.connections)
    logging.getLogger("test").info("settings %s %r", settings, settings)
    assert "s3cr3t" not in shown and "s3cr3t" not in caplog.text
    assert "'***'" in shown
    assert repr(Secret("x")) == str(Secret("x")) == "'***'"
    assert f"{Secret('x')}" == "'***'"


REFUSED = [
    ("[alerts.smtp]\nsmtp_host = 'h'\nsmtp_from = 'f'\nsmtp_prot = 25\n",
     "unknown key alerts.smtp.smtp_prot"),
    ("[alerts.smtp]\nsmtp_host = 'h'\nsmtp_from = 'f'\nsmtp_port = '25'\n",
     "alerts.smtp.smtp_port must be an integer between 1 and 65535"),
    ("[alerts.smtp]\nsmtp_host = 'h'\nsmtp_from = 'f'\nsmtp_port = true\n",
     "alerts.smtp.smtp_port must be an integer between 1 and 65535"),
    ("[alerts.smtp]\nsmtp_host = 'h'\nsmtp_from = 'f'\nsmtp_tls = 'ssl'\n",
     "alerts.smtp.smtp_tls must be one of starttls, tls, none"),
    ("[alerts.smtp]\nsmtp_host = 1\nsmtp_from = 'f'\n", "alerts.smtp.smtp_host must be a string"),
    ("[alerts.smtp]\nsmtp_from = 'f'\n", "alerts.smtp.smtp_host is required"),
    ("[alerts.smtp]\nsmtp_host = 'h'\nsmtp_from = 'f'\nsmtp_user = 'u'\n",
     "alerts.smtp: smtp_user and smtp_password go together"),
    ("[alerts.smtp]\nsmtp_host = 'h'\nsmtp_from = 'f'\nsmtp_user = 'u'\nsmtp_password = 'p'\n"
     "smtp_tls = 'none'\n", "alerts.smtp: a login needs smtp_tls starttls or tls"),
    ("[alerts]\nsmtpp = {}\n", "unknown key alerts.smtpp"),
    ("alerts = 3\n", "alerts must be a table"),
    ("[alerts.connections.x]\nurl = 'https://h'\n", "unknown key alerts.connections.x.url"),
    ("[alerts.connections.x]\nwebhook_url = 7\n",
     "alerts.connections.x.webhook_url must be a string"),
    ("[alerts.connections.x]\nwebhook_url = 'ftp://h'\n",
     "alerts.connections.x.webhook_url must be an http or https URL"),
    ("[alerts.connections.x]\nwebhook_url = 'https://h'\nsmtp_host = 'h'\n",
     "alerts.connections.x: webhook_url cannot be combined with smtp_ keys"),
    ("[alerts.connections.x]\nsmtp_from = 'f'\n", "alerts.connections.x.smtp_host is required"),
    ("[alerts.connections.x]\n", "alerts.connections.x needs webhook_url or smtp_ keys"),
    ("[alerts.connections.'a b']\nwebhook_url = 'https://h'\n",
     "alerts.connections.a b: a connection name may contain only letters, digits, _ - ."),
    ("[alerts.smtp\n", "not valid TOML"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), REFUSED)
def test_refused_naming_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_alert_settings(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_a_wrong_password_type_is_refused_without_its_value(tmp_path: Path) -> None:
    path = write(tmp_path, "[alerts.smtp]\nsmtp_host='h'\nsmtp_from='f'\nsmtp_password=[1234567]\n")
    with pytest.raises(ConfigError, match=r"alerts\.smtp\.smtp_password must be a string") as info:
        load_alert_settings(path)
    assert "1234567" not in str(info.value)


def test_reload_applies_a_good_file_and_keeps_the_old_one_after_a_bad_one(tmp_path: Path) -> None:
    path = write(tmp_path, "[alerts.connections.a]\nwebhook_url = 'https://one'\n")
    config = AlertConfigFile(path)
    assert set(config.current.connections) == {"a"}
    path.write_text("[alerts.connections.b]\nwebhook_url = 'https://two'\n", encoding="utf-8")
    assert set(config.reload().connections) == {"b"}
    path.write_text("[alerts.connections.c]\nwebhook_url = 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"alerts\.connections\.c\.webhook_url"):
        config.reload()
    assert set(config.current.connections) == {"b"}


def test_connection_names_are_checked_against_the_file(tmp_path: Path) -> None:
    settings = load_alert_settings(write(tmp_path, FULL))
    entries = parse_alert(
        {
            "integrations": [
                {"integration": "slack", "connection": "ops_slack", "text": "t"},
                {"integration": "teams", "connection": "nope", "text": "t"},
                {"integration": "teams", "connection": "oncall_mail", "text": "t"},
                {"integration": "email", "connection": "ops_slack", "to": ["a"], "subject": "s",
                 "body": "b"},
                {"integration": "email", "connection": "oncall_mail", "to": ["a"], "subject": "s",
                 "body": "b"},
            ]
        }
    )  # fmt: skip
    assert settings.connection_errors(entries) == [
        "connection nope does not exist",
        "connection oncall_mail is not a webhook",
        "connection ops_slack is not an SMTP setting",
    ]
    empty = load_alert_settings(tmp_path / "absent.toml")
    assert empty.connection_errors(entries[3:4]) == ["connection ops_slack does not exist"]
    mail = parse_alert(
        {"integrations": [{"integration": "email", "to": ["a"], "subject": "s", "body": "b"}]}
    )
    assert empty.connection_errors(mail) == ["no SMTP server configured in absent.toml"]

"""The CLI's logins file: private, one login per server, atomic, and in the token order."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from easytask.core.errors import CtlError
from easytask.ctl.client import build_config
from easytask.ctl.logins import LoginFile, StoredLogin, config_dir


def login(server: str = "h:1", token: str = "eta_a") -> StoredLogin:
    return StoredLogin(server, "vera", token, "etr_a", "2026-12-02T19:00:00.000Z", "default")


def test_kept_per_server_in_a_private_file(tmp_path: Path) -> None:
    logins = LoginFile(tmp_path / "cfg" / "easytask" / "logins.json")
    assert logins.get("h:1") is None
    logins.put(login("h:1"))
    logins.put(login("h:2", "eta_b"))
    assert logins.get("h:1") == login("h:1")
    assert logins.get("h:2") == login("h:2", "eta_b")
    assert stat.S_IMODE(logins.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(logins.path.parent.stat().st_mode) == 0o700
    assert logins.remove("h:1") == login("h:1")
    assert logins.get("h:1") is None and logins.get("h:2") is not None
    assert logins.remove("h:1") is None
    assert [p.name for p in logins.path.parent.iterdir()] == ["logins.json"]  # no temp left


def test_a_damaged_file_is_named_not_guessed(tmp_path: Path) -> None:
    logins = LoginFile(tmp_path / "logins.json")
    logins.path.write_text("{not json")
    with pytest.raises(CtlError, match=r"cannot read logins file .*logins\.json"):
        logins.get("h:1")
    logins.path.write_text(json.dumps({"h:1": {"username": "vera"}}))
    with pytest.raises(CtlError, match="the entry for h:1 lacks access_token"):
        logins.get("h:1")


def test_expiry() -> None:
    now = datetime(2026, 12, 2, 19, 0, tzinfo=UTC)
    assert login().expired(now)  # at the instant it expires
    assert not login().expired(datetime(2026, 12, 2, 18, 59, 59, tzinfo=UTC))
    unreadable = StoredLogin("h:1", "vera", "a", "r", "soon")
    assert unreadable.expired(now)


def test_config_dir_follows_xdg() -> None:
    assert config_dir({"XDG_CONFIG_HOME": "/x"}) == Path("/x/easytask")
    assert config_dir({"HOME": "/home/v"}) == Path("/home/v/.config/easytask")


def test_a_stored_login_comes_after_flag_and_env_before_the_credentials_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "credentials.json").write_text(json.dumps({"api_token": "from-file"}))
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "EASYTASK_HOME": str(tmp_path)}
    LoginFile.default(env).put(login("h:1", "from-login"))

    def token(flag: str | None = None, server: str = "h:1", **extra: str) -> str | None:
        config = build_config(server=server, token=flag, home=None, tls_ca=None, timeout=None,
                              environ={**env, **extra})  # fmt: skip
        return config.token

    assert token() == "from-login"
    assert token(server="h:2") == "from-file"  # no login for that server
    assert token(EASYTASK_TOKEN="from-env") == "from-env"
    assert token("from-flag", EASYTASK_TOKEN="from-env") == "from-flag"
    config = build_config(server="h:1", token=None, home=None, tls_ca=None, timeout=None,
                          environ=env)  # fmt: skip
    assert config.login == login("h:1", "from-login")
    assert config.metadata == (("authorization", "Bearer from-login"),)

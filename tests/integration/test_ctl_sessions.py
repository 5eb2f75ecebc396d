"""The CLI's stored login against a real scheduler whose clock the test moves: an access token
past its hour is refreshed before the call, one the server refuses is refreshed and the call
retried, parallel commands share one refresh, and a session past its refresh token ends."""

from __future__ import annotations

import asyncio
import functools
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from easytask.ctl.client import connect
from easytask.ctl.logins import LoginFile
from easytask.ctl.main import main
from easytask.rpc.v1 import api_pb2 as pb
from easytask.scheduler.accounts import ACCESS_TTL, REFRESH_TTL
from tests.integration.conftest import START, Harness

PASSWORD = "a-long-password-1"


@pytest.fixture
def logins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LoginFile:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("EASYTASK_TOKEN", raising=False)
    monkeypatch.setenv("EASYTASK_HOME", str(tmp_path / "no-credentials-here"))
    return LoginFile(tmp_path / "config" / "easytask" / "logins.json")


async def ctl(h: Harness, *args: str, clock: Any = None) -> int:
    """easytaskctl in a thread (it blocks), its clock the scheduler's unless told otherwise."""
    connector = functools.partial(connect, clock=clock or h.clock.now)
    argv = ["--server", f"127.0.0.1:{h.port}", *args]
    return await asyncio.to_thread(main, argv, connector=connector)


async def logged_in(h: Harness, logins: LoginFile) -> dict[str, str]:
    doc = {"username": "vera", "password": PASSWORD, "role": "viewer"}
    await h.api.CreateUser(pb.CreateUserRequest(user_json=json.dumps(doc)), metadata=h.md)
    assert await ctl(h, "auth", "login", "-u", "vera", "-p", PASSWORD) == 0
    return tokens(h, logins)


def tokens(h: Harness, logins: LoginFile) -> dict[str, str]:
    login = logins.get(f"127.0.0.1:{h.port}")
    assert login is not None
    return {"access": login.access_token, "refresh": login.refresh_token}


async def test_an_expired_access_token_is_refreshed_before_the_call(
    harness: Harness, logins: LoginFile, capsys: pytest.CaptureFixture[str]
) -> None:
    first = await logged_in(harness, logins)
    await harness.clock.advance(ACCESS_TTL.total_seconds() + 1)
    capsys.readouterr()
    assert await ctl(harness, "auth", "whoami", "-o", "json") == 0
    assert json.loads(capsys.readouterr().out)["username"] == "vera"
    second = tokens(harness, logins)
    assert second["access"] != first["access"] and second["refresh"] != first["refresh"]
    # The old pair is spent: the server knows neither any more.
    assert await ctl(harness, "--token", first["access"], "tasks", "list") == 3


async def test_a_token_the_server_refuses_is_refreshed_and_the_call_retried(
    harness: Harness, logins: LoginFile
) -> None:
    first = await logged_in(harness, logins)
    await harness.clock.advance(ACCESS_TTL.total_seconds() + 1)

    def behind() -> datetime:
        return START  # this machine's clock lags: it thinks the token is still good

    assert await ctl(harness, "tasks", "list", clock=behind) == 0
    assert tokens(harness, logins)["access"] != first["access"]


async def test_parallel_commands_share_one_refresh(harness: Harness, logins: LoginFile) -> None:
    await logged_in(harness, logins)
    await harness.clock.advance(ACCESS_TTL.total_seconds() + 1)
    codes = await asyncio.gather(*(ctl(harness, "tasks", "list") for _ in range(6)))
    assert codes == [0] * 6


async def test_a_session_past_its_refresh_token_ends(
    harness: Harness, logins: LoginFile, capsys: pytest.CaptureFixture[str]
) -> None:
    await logged_in(harness, logins)
    await harness.clock.advance(REFRESH_TTL.total_seconds() + 1)
    capsys.readouterr()
    assert await ctl(harness, "tasks", "list") == 3
    err = capsys.readouterr().err
    assert err.startswith(
        f"Error: not authenticated: the session of vera on 127.0.0.1:{harness.port}"
    )
    assert "log in again" in err
    # The login stays stored (so the CLI never falls back to another identity) until replaced.
    assert logins.get(f"127.0.0.1:{harness.port}") is not None
    assert await ctl(harness, "auth", "login", "-u", "vera", "-p", PASSWORD) == 0
    assert await ctl(harness, "tasks", "list") == 0

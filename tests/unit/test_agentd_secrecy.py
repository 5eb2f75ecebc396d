"""The agent's token hand-over: --token taken out of argv, the pipe read once and closed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from easytask.agentd.config import build_parser
from easytask.agentd.secrecy import (
    TOKEN_FD_ENV,
    must_hide,
    relaunch_prefix,
    split_token_flag,
    take_handed_token,
)
from easytask.core.errors import AuthError

BASE = ["--server", "h:1", "--name", "a"]


@pytest.mark.parametrize(
    ("argv", "token"),
    [
        (BASE, None),
        ([*BASE, "--token", "etg_x"], "etg_x"),
        (["--token=etg_x", *BASE], "etg_x"),
        ([*BASE, "--tok", "etg_x"], "etg_x"),  # argparse's unambiguous prefix
        ([*BASE, "--to=etg_x"], "etg_x"),
        (["--token", "first", *BASE, "--token=last"], "last"),  # argparse keeps the last one
        ([*BASE, "--token=", "--kill-grace", "1"], ""),
    ],
)
def test_split_token_flag_agrees_with_argparse(argv: list[str], token: str | None) -> None:
    rest, found = split_token_flag(argv)
    assert found == token
    assert build_parser().parse_args(argv).token == token
    assert build_parser().parse_args(rest).token is None
    assert all(token is None or token == "" or token not in arg for arg in rest)


def test_tls_ca_is_not_taken_for_the_token() -> None:
    argv = [*BASE, "--tls-ca", "ca.pem", "--t=x"]  # "--t" is ambiguous: argparse refuses it
    assert split_token_flag(argv) == (argv, None)


def test_must_hide_when_the_token_is_in_argv_or_environment() -> None:
    assert not must_hide(BASE, {"EASYTASK_HOME": "/h"})
    assert must_hide([*BASE, "--token", "x"], {})
    assert must_hide(BASE, {"EASYTASK_TOKEN": "x"})


def test_handed_token_is_read_once_and_its_fd_closed() -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b"etg_secret")
    os.close(write_end)
    env = {TOKEN_FD_ENV: str(read_end), "OTHER": "1"}
    assert take_handed_token(env) == "etg_secret"
    assert env == {"OTHER": "1"}  # commands never see the fd number
    with pytest.raises(OSError):
        os.fstat(read_end)
    assert take_handed_token(env) is None


def test_a_bad_token_fd_is_an_auth_error_naming_the_variable() -> None:
    with pytest.raises(AuthError, match=TOKEN_FD_ENV):
        take_handed_token({TOKEN_FD_ENV: "three"})
    read_end, write_end = os.pipe()
    os.close(read_end)
    os.close(write_end)
    with pytest.raises(AuthError, match=f"{TOKEN_FD_ENV}={read_end}"):
        take_handed_token({TOKEN_FD_ENV: str(read_end)})


def test_relaunch_prefix_without_sys_argv_runs_the_module() -> None:
    assert relaunch_prefix(from_sys_argv=False) == [sys.executable, "-m", "easytask.agentd.main"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux-only")
def test_make_undumpable_clears_the_dumpable_flag() -> None:
    code = (
        "import ctypes; from easytask.agentd.secrecy import make_undumpable; "
        "libc = ctypes.CDLL(None); before = libc.prctl(3, 0, 0, 0, 0); make_undumpable(); "
        "print(before, libc.prctl(3, 0, 0, 0, 0))"  # PR_GET_DUMPABLE
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "0"]

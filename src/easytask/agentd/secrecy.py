"""Keeping the agent token out of reach of commands: re-exec without it, hand it over by pipe.

A command runs as a child of the agent, so ``/proc/$PPID/cmdline`` (world-readable) and, for
the same user, ``/proc/$PPID/environ`` show it how the agent was started. Unsetting a variable
later does not help: ``environ`` shows the environment the image was exec'd with. So an agent
given its token by ``--token`` or ``EASYTASK_TOKEN`` replaces itself at once with an image whose
arguments and environment lack it, and passes the token through an inherited pipe whose fd
number is in ``EASYTASK_TOKEN_FD``; the new image reads the token and closes the pipe before it
spawns anything. The same hand-over serves a restart action. The agent is also made
non-dumpable, so a command running as the agent's (non-root) user cannot ptrace it or read its
``/proc`` entries that need that.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
from collections.abc import Mapping, MutableMapping, Sequence
from typing import NoReturn

from easytask.core.errors import AuthError

TOKEN_ENV = "EASYTASK_TOKEN"
TOKEN_FD_ENV = "EASYTASK_TOKEN_FD"
STARTED_ENV = "EASYTASK_AGENT_STARTED_AT_MS"  # kept across a restart action
TOKEN_FLAG = "--token"
_PIPE_CAPACITY = 65536  # Linux default: the whole token is written before the new image reads
_PR_SET_DUMPABLE = 4


def make_undumpable() -> None:
    """``prctl(PR_SET_DUMPABLE, 0)`` on Linux; a no-op where it is not available."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


def split_token_flag(argv: Sequence[str]) -> tuple[list[str], str | None]:
    """``argv`` without any ``--token`` (as argparse spells it) and the last value it gave.

    argparse takes ``--token V``, ``--token=V`` and unambiguous prefixes (``--tok V``); the only
    other option starting with ``--t`` is ``--tls-ca``, so ``--to`` and longer are ``--token``.
    """
    rest: list[str] = []
    token: str | None = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        opt, eq, value = arg.partition("=")
        if len(opt) >= 4 and TOKEN_FLAG.startswith(opt):
            if eq:
                token = value
            elif i + 1 < len(argv):
                token = argv[i + 1]
                i += 1
            else:
                rest.append(arg)  # no value: let argparse report it
            i += 1
            continue
        rest.append(arg)
        i += 1
    return rest, token


def take_handed_token(env: MutableMapping[str, str]) -> str | None:
    """The token a previous image handed over (read from the pipe, which is then closed).

    Removes ``EASYTASK_TOKEN_FD`` from ``env`` so that commands never see it. None when no
    token was handed over; AuthError when the fd cannot be read.
    """
    value = env.pop(TOKEN_FD_ENV, None)
    if value is None:
        return None
    try:
        fd = int(value)
    except ValueError:
        raise AuthError(f"{TOKEN_FD_ENV} must be a file descriptor number, not {value!r}") from None
    chunks = []
    try:
        try:
            while chunk := os.read(fd, _PIPE_CAPACITY):
                chunks.append(chunk)
        finally:
            os.close(fd)
    except OSError as exc:
        raise AuthError(f"cannot read the agent token from {TOKEN_FD_ENV}={fd}: {exc}") from None
    return b"".join(chunks).decode(errors="replace").strip() or None


def take_started_at(env: MutableMapping[str, str]) -> int | None:
    """When the first image of this agent started (Unix ms), as a previous image handed it over.

    Removes the variable from ``env`` (commands never see it); None when there is none.
    """
    value = env.pop(STARTED_ENV, None)
    try:
        return int(value) if value is not None and int(value) > 0 else None
    except ValueError:
        return None


def must_hide(argv: Sequence[str], env: Mapping[str, str]) -> bool:
    """True when the token is (or may be) in this image's arguments or environment."""
    return TOKEN_ENV in env or split_token_flag(argv)[1] is not None


def exec_agent(
    prefix: Sequence[str],
    args: Sequence[str],
    env: Mapping[str, str],
    token: str | None,
    started_at_ms: int,
) -> NoReturn:
    """Replace this process by ``prefix + args`` with ``token`` through an inherited pipe.

    ``args`` and ``env`` are used without any token in them; ``token`` None hands nothing over
    (the new image looks for ``credentials.json``). ``started_at_ms`` goes along in
    ``EASYTASK_AGENT_STARTED_AT_MS``. Raises OSError if the exec fails.
    """
    args, _ = split_token_flag(args)
    new_env = {k: v for k, v in env.items() if k not in (TOKEN_ENV, TOKEN_FD_ENV)}
    new_env[STARTED_ENV] = str(started_at_ms)
    if token:
        data = token.encode()
        if len(data) > _PIPE_CAPACITY:
            raise AuthError(f"agent token longer than {_PIPE_CAPACITY} bytes")
        read_end, write_end = os.pipe()
        try:
            os.write(write_end, data)
        finally:
            os.close(write_end)
        os.set_inheritable(read_end, True)
        new_env[TOKEN_FD_ENV] = str(read_end)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(prefix[0], [*prefix, *args], new_env)


def relaunch_prefix(from_sys_argv: bool) -> list[str]:
    """The interpreter and its options up to the agent's own arguments, to exec again.

    When the arguments are ``sys.argv[1:]``, this is how the process was started (so ``ps``
    still shows ``easytask-agentd``); otherwise ``python -m easytask.agentd.main``.
    """
    orig = list(getattr(sys, "orig_argv", ()))
    n_args = len(sys.argv) - 1
    if from_sys_argv and orig and len(orig) > n_args and orig[len(orig) - n_args :] == sys.argv[1:]:
        return [sys.executable, *orig[1 : len(orig) - n_args]]
    return [sys.executable, "-m", "easytask.agentd.main"]

"""Ad-hoc commands (spec 10 ADHOC): the command, its checks, and the kept tail of output.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from easytask.core.errors import FieldError, ValidationError
from easytask.core.text import text_problem

TAIL_BYTES = 64 * 1024  # kept per agent and stream (spec 16)
DEFAULT_STDOUT = "/tmp/adhoc.out"
DEFAULT_STDERR = "/tmp/adhoc.err"
DEFAULT_MAX_RUN_TIME = 3600
MAX_RUN_TIME = 172_800
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_LIMITS = {"cmd": 8192, "stdout": 128, "stderr": 128, "run_as_user": 64}


@dataclass(frozen=True, slots=True)
class AdhocCommand:
    name: str
    cmd: str
    stdout: str = DEFAULT_STDOUT
    stderr: str = DEFAULT_STDERR
    max_run_time: int = DEFAULT_MAX_RUN_TIME
    run_as_user: str = ""

    def to_args(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> AdhocCommand:
        return cls(
            name=str(args.get("name", "")),
            cmd=str(args.get("cmd", "")),
            stdout=str(args.get("stdout") or DEFAULT_STDOUT),
            stderr=str(args.get("stderr") or DEFAULT_STDERR),
            max_run_time=int(args.get("max_run_time") or DEFAULT_MAX_RUN_TIME),
            run_as_user=str(args.get("run_as_user", "")),
        )


@dataclass(frozen=True, slots=True)
class AdhocRequest:
    """An ADHOC event as a client asks for it (defaults and checks applied by the book)."""

    name: str
    cmd: str
    queues: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    all: bool = False
    stdout: str = ""
    stderr: str = ""
    max_run_time: int = 0
    run_as_user: str = ""
    origin: str = "API"


@dataclass(frozen=True, slots=True)
class Selection:
    """Which connected agents run the command: those serving ``queues``, those named, or all."""

    queues: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    all: bool = False

    def describe(self, chosen: list[str]) -> str:
        """The second line of the success message (spec 10)."""
        if self.queues:
            return f"Queue(s): {','.join(self.queues)}"
        return f"Agent(s): {','.join(chosen)}"

    @property
    def target(self) -> str:
        if self.queues:
            return "queues " + ",".join(self.queues)
        if self.agents:
            return "agents " + ",".join(self.agents)
        return "all agents"


def check_command(
    name: str, cmd: str, stdout: str, stderr: str, max_run_time: int, run_as_user: str
) -> AdhocCommand:
    """The command with its defaults; a ValidationError naming every bad field."""
    errors: list[FieldError] = []
    if not name:
        errors.append(FieldError("name", "name is required"))
    elif not _NAME.fullmatch(name):
        message = "name must be 1-128 letters, digits, _ - . (starting with a letter or digit)"
        errors.append(FieldError("name", message))
    if not cmd.strip():
        errors.append(FieldError("cmd", "cmd is required"))
    values = {"cmd": cmd, "stdout": stdout, "stderr": stderr, "run_as_user": run_as_user}
    for field, value in values.items():
        if len(value) > _LIMITS[field]:
            errors.append(FieldError(field, f"{field} must be at most {_LIMITS[field]} chars"))
        problem = text_problem(value, lines=field == "cmd")
        if problem is not None:
            errors.append(FieldError(field, f"{field} {problem}"))
    if max_run_time and not 1 <= max_run_time <= MAX_RUN_TIME:
        errors.append(FieldError("max_run_time", f"max_run_time must be 1-{MAX_RUN_TIME} s"))
    if errors:
        raise ValidationError(errors)
    return AdhocCommand(name, cmd, stdout or DEFAULT_STDOUT, stderr or DEFAULT_STDERR,
                        max_run_time or DEFAULT_MAX_RUN_TIME, run_as_user)  # fmt: skip


def check_selection(queues: list[str], agents: list[str], all_agents: bool) -> Selection:
    """Exactly one of queues, agents or all; a ValidationError otherwise."""
    q = tuple(dict.fromkeys(x.strip() for x in queues if x.strip()))
    a = tuple(dict.fromkeys(x.strip() for x in agents if x.strip()))
    given = [bool(q), bool(a), all_agents]
    if sum(given) != 1:
        message = "give exactly one of queues, agents or all"
        raise ValidationError([FieldError("selection", message)])
    return Selection(q, a, all_agents)


def keep_tail(kept: bytes, data: bytes, limit: int = TAIL_BYTES) -> tuple[bytes, bool]:
    """``kept`` + ``data`` cut to its last ``limit`` bytes; True when something was dropped."""
    joined = kept + data
    if len(joined) <= limit:
        return joined, False
    return joined[-limit:], True

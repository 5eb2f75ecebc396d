"""The agent's internal records: a task to run, its start and result, and outbound messages.

Proto types stay in ``session.py``; everything behind it speaks these dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import IntEnum
from typing import Any


class Stream(IntEnum):
    """Output stream numbers, equal to the proto ``OutputStream`` values."""

    STDOUT = 1
    STDERR = 2


@dataclass(slots=True, frozen=True)
class TaskSpec:
    """Everything a RunTask carries; journaled with the ``accepted`` record."""

    run_id: str
    tid: int
    name: str
    cmd: str
    stdout: str
    stderr: str
    run_as_user: str = ""
    profile: str = ""
    max_run_time: int = 0
    attempt: int = 1
    run_date: str = ""
    local_time: str = ""
    timezone: str = ""
    queue: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskSpec:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(slots=True, frozen=True)
class StartInfo:
    """A spawned process: what a restarted agent needs to find it again."""

    pid: int
    start_ticks: int  # field 22 of /proc/<pid>/stat, to tell a reused pid from ours
    started_at_ms: int
    started_mono: float  # CLOCK_MONOTONIC is system-wide, so it survives an agent restart
    stdout_path: str
    stderr_path: str
    stdout_start: int
    stderr_start: int
    same_file: bool = False  # stdout and stderr are one file: streamed once, as STDOUT

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StartInfo:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(slots=True, frozen=True)
class RunResult:
    """The final result of a run (RunFinished), spooled in the journal until acknowledged."""

    state: str  # SUCCESS, FAILED or TERMINATED
    reason: str
    return_code: int | None
    pid: int = 0
    started_at_ms: int = 0
    ended_at_ms: int = 0
    stdout_path: str = ""
    stderr_path: str = ""
    stdout_start: int = 0
    stdout_end: int = 0
    stderr_start: int = 0
    stderr_end: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


# ---------- agent -> scheduler ----------


@dataclass(slots=True, frozen=True)
class Accepted:
    run_id: str
    accepted_at_ms: int


@dataclass(slots=True, frozen=True)
class Declined:
    run_id: str
    reason: str


@dataclass(slots=True, frozen=True)
class Started:
    run_id: str
    pid: int
    started_at_ms: int
    stdout_path: str
    stderr_path: str


@dataclass(slots=True, frozen=True)
class Output:
    run_id: str
    stream: Stream
    offset: int  # bytes of this run's stream, counted from its range start
    data: bytes


@dataclass(slots=True, frozen=True)
class Finished:
    run_id: str
    result: RunResult


@dataclass(slots=True, frozen=True)
class Beat:
    sent_at_ms: int
    cpu_percent: float
    mem_percent: float
    running: int


@dataclass(slots=True, frozen=True)
class KnownRun:
    run_id: str
    state: str
    stdout_size: int
    stderr_size: int


Outbound = Accepted | Declined | Started | Output | Finished | Beat

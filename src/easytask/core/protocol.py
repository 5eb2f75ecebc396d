"""The agent protocol as both sides speak it: one dataclass per AgentService message.

The scheduler (hub, agent events) and the agent (session, runs, journal) use these; the
protobuf conversions of every one of them are in ``rpc/convert.py``. Times are epoch
milliseconds, as on the wire and in the agent's journal; the properties give datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from enum import IntEnum
from typing import Any

from easytask.core.runid import from_ms


class Stream(IntEnum):
    """An output stream; the values are the proto ``OutputStream`` numbers."""

    STDOUT = 1
    STDERR = 2

    @property
    def key(self) -> str:
        """ "stdout" or "stderr": how the store and the API name it."""
        return "stdout" if self is Stream.STDOUT else "stderr"


def _ms(value: int) -> datetime | None:
    return from_ms(value) if value > 0 else None


class _Record:
    """to_dict/from_dict for the agent's journal (unknown keys of older records are ignored)."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


# ----- scheduler -> agent -----


@dataclass(frozen=True, slots=True)
class RunOrder(_Record):
    """Everything an agent needs to execute one run (RunTask); journaled on acceptance."""

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


@dataclass(frozen=True, slots=True)
class Welcome:
    instance: str
    scheduler_version: str
    heartbeat_seconds: int


@dataclass(frozen=True, slots=True)
class ResultAck:
    run_id: str


@dataclass(frozen=True, slots=True)
class KillRun:
    run_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class ResendOutput:
    run_id: str
    stream: Stream
    offset: int


@dataclass(frozen=True, slots=True)
class SchedulerHeartbeat:
    sent_at_ms: int = 0


@dataclass(frozen=True, slots=True)
class RestartAgent:
    """An operator's restart action: the agent re-executes itself, its commands keep running."""

    requested_by: str = ""


SchedulerMessage = (
    Welcome | RunOrder | ResultAck | KillRun | ResendOutput | SchedulerHeartbeat | RestartAgent
)


# ----- agent -> scheduler -----


@dataclass(frozen=True, slots=True)
class KnownRun:
    """A run the agent holds, reported in Hello: its state and the output it has."""

    run_id: str
    state: str
    stdout_size: int = 0
    stderr_size: int = 0


@dataclass(frozen=True, slots=True)
class AgentHello:
    name: str
    host: str
    queues: tuple[str, ...]
    version: str
    pid: int
    cpu_cores: int = 0
    memory_mb: int = 0
    known_runs: tuple[KnownRun, ...] = ()
    max_runs: int = 0  # most runs the scheduler may hold here at once; 0 = no cap
    disk_total_mb: int = 0
    disk_free_mb: int = 0
    started_at_ms: int = 0


@dataclass(frozen=True, slots=True)
class RunAccepted:
    run_id: str
    accepted_at_ms: int = 0


@dataclass(frozen=True, slots=True)
class RunDeclined:
    run_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class RunStarted:
    run_id: str
    pid: int
    started_at_ms: int
    stdout_path: str
    stderr_path: str

    @property
    def started_at(self) -> datetime:
        return from_ms(self.started_at_ms)


@dataclass(frozen=True, slots=True)
class OutputChunk:
    run_id: str
    stream: Stream
    offset: int  # bytes of this run's stream, counted from its range start
    data: bytes


@dataclass(frozen=True, slots=True)
class RunResult(_Record):
    """The final result of a run; the agent spools it in its journal until acknowledged."""

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

    @property
    def started_at(self) -> datetime | None:
        return _ms(self.started_at_ms)

    @property
    def ended_at(self) -> datetime:
        return _ms(self.ended_at_ms) or from_ms(0)

    @property
    def stdout_range(self) -> tuple[int, int] | None:
        return (self.stdout_start, self.stdout_end) if self.stdout_path else None

    @property
    def stderr_range(self) -> tuple[int, int] | None:
        return (self.stderr_start, self.stderr_end) if self.stderr_path else None


@dataclass(frozen=True, slots=True)
class RunFinished:
    run_id: str
    result: RunResult


@dataclass(frozen=True, slots=True)
class AgentHeartbeat:
    sent_at_ms: int = 0
    cpu_percent: float = 0.0
    mem_percent: float = 0.0
    running: int = 0


AgentMessage = RunAccepted | RunDeclined | RunStarted | OutputChunk | RunFinished | AgentHeartbeat

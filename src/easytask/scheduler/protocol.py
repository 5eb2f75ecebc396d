"""Agent protocol messages as the scheduler sees them (rpc/convert.py maps them to protobuf)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from easytask.core.states import RunState

# ----- agent -> scheduler -----


@dataclass(frozen=True, slots=True)
class KnownRun:
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


@dataclass(frozen=True, slots=True)
class RunAccepted:
    run_id: str
    accepted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RunDeclined:
    run_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class RunStarted:
    run_id: str
    pid: int
    started_at: datetime
    stdout_path: str
    stderr_path: str


@dataclass(frozen=True, slots=True)
class OutputChunk:
    run_id: str
    stream: str  # "stdout" or "stderr"
    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
class RunFinished:
    run_id: str
    state: RunState
    reason: str
    return_code: int | None
    pid: int | None
    started_at: datetime | None
    ended_at: datetime
    stdout_path: str = ""
    stderr_path: str = ""
    stdout_range: tuple[int, int] | None = None
    stderr_range: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class AgentHeartbeat:
    cpu_percent: float = 0.0
    mem_percent: float = 0.0
    running: int = 0


AgentMessage = RunAccepted | RunDeclined | RunStarted | OutputChunk | RunFinished | AgentHeartbeat

# ----- scheduler -> agent -----


@dataclass(frozen=True, slots=True)
class Welcome:
    instance: str
    scheduler_version: str
    heartbeat_seconds: int


@dataclass(frozen=True, slots=True)
class RunOrder:
    """What an agent needs to execute one run (RunTask on the wire)."""

    run_id: str
    tid: int
    name: str
    cmd: str
    stdout: str
    stderr: str
    queue: str
    attempt: int
    run_date: str
    local_time: str
    timezone: str
    run_as_user: str = ""
    profile: str = ""
    max_run_time: int = 0


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
    stream: str
    offset: int


@dataclass(frozen=True, slots=True)
class SchedulerHeartbeat:
    sent_at: datetime | None = field(default=None)


SchedulerMessage = Welcome | RunOrder | ResultAck | KillRun | ResendOutput | SchedulerHeartbeat

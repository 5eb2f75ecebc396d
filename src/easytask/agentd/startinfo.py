"""StartInfo: a spawned process as the agent journals it, to find it again after a restart."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


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

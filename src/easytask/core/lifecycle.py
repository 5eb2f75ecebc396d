"""Scheduler lifecycle records (`scheduler logs`): each start, clean stop, restart and crash."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class LifecycleAction(StrEnum):
    STARTED = "STARTED"  # a start with no clean stop before it (the first, or after a crash)
    STOPPED = "STOPPED"  # a clean stop: the mark the next start looks for
    RESTARTED = "RESTARTED"  # a start after a clean stop
    CRASHED = "CRASHED"  # the previous run ended without a clean stop (seen at the next start)


@dataclass(frozen=True, slots=True)
class LifecycleEntry:
    id: int
    action: LifecycleAction
    host: str
    pid: int
    message: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class LifecycleNote:
    """An entry still to be recorded (the store hands out its id)."""

    action: LifecycleAction
    host: str
    pid: int
    message: str


def on_start(previous: LifecycleEntry | None, host: str, pid: int) -> list[LifecycleNote]:
    """What a start records, given the latest entry recorded before it.

    A previous run whose last entry is not STOPPED never stopped cleanly: it is recorded
    CRASHED (with its host and pid) before this start, which is then a plain STARTED.
    """
    if previous is None:
        return [LifecycleNote(LifecycleAction.STARTED, host, pid, "first start")]
    if previous.action is LifecycleAction.STOPPED:
        since = f"stopped cleanly at {previous.created_at:%Y-%m-%d %H:%M:%S} UTC"
        return [LifecycleNote(LifecycleAction.RESTARTED, host, pid, f"restarted; {since}")]
    seen = f"{previous.action.value} at {previous.created_at:%Y-%m-%d %H:%M:%S} UTC"
    crashed = LifecycleNote(
        LifecycleAction.CRASHED,
        previous.host,
        previous.pid,
        f"no clean stop recorded after the run {seen} (pid {previous.pid})",
    )
    return [crashed, LifecycleNote(LifecycleAction.STARTED, host, pid, "started after a crash")]

"""Run states (spec 7.1) and the transition table (spec 7.2)."""

from __future__ import annotations

from enum import StrEnum

from easytask.core.errors import TransitionError


class RunState(StrEnum):
    PENDING = "PENDING"
    TRIGGER = "TRIGGER"
    STARTED = "STARTED"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    FROZEN = "FROZEN"
    TERMINATED = "TERMINATED"
    SKIPPED = "SKIPPED"
    RUNNING = "RUNNING"
    RESTARTING = "RESTARTING"
    REJECTED = "REJECTED"
    IDLE = "IDLE"
    ACTIVE = "ACTIVE"
    PASSIVE = "PASSIVE"
    UNFREEZE = "UNFREEZE"

    @property
    def code(self) -> int:
        return _CODES[self]

    @property
    def display(self) -> str:
        return _DISPLAY[self]

    @property
    def letter(self) -> str | None:
        return _LETTERS.get(self)

    @property
    def final(self) -> bool:
        return self in FINAL_STATES


TIMED_OUT = "timed out"  # the reason of a run TERMINATED for exceeding max_run_time (spec 7.2)


def run_state_label(state: str, reason: str) -> str:
    """A run's state as a table shows it: its name, but ``Timed Out`` for a run TERMINATED
    because it exceeded ``max_run_time`` (spec 7.1: displayed "Timed Out")."""
    if state == RunState.TERMINATED and reason == TIMED_OUT:
        return "Timed Out"
    return state


_CODES: dict[RunState, int] = {
    RunState.PENDING: 0,
    RunState.TRIGGER: 1,
    RunState.STARTED: 2,
    RunState.SUCCESS: 3,
    RunState.FAILED: 4,
    RunState.FROZEN: 5,
    RunState.TERMINATED: 6,
    RunState.SKIPPED: 7,
    RunState.RUNNING: 8,
    RunState.RESTARTING: 9,
    RunState.REJECTED: 10,
    RunState.IDLE: 11,
    RunState.ACTIVE: 12,
    RunState.PASSIVE: 13,
    RunState.UNFREEZE: 14,
}

_DISPLAY: dict[RunState, str] = {
    RunState.PENDING: "Pending",
    RunState.TRIGGER: "Triggered",
    RunState.STARTED: "Started",
    RunState.SUCCESS: "Success",
    RunState.FAILED: "Failed",
    RunState.FROZEN: "Frozen",
    RunState.TERMINATED: "Terminated",
    RunState.SKIPPED: "Skipped",
    RunState.RUNNING: "Running",
    RunState.RESTARTING: "Restarting",
    RunState.REJECTED: "Rejected",
    RunState.IDLE: "Idle",
    RunState.ACTIVE: "Active",
    RunState.PASSIVE: "Passive",
    RunState.UNFREEZE: "Unfrozen",
}

_LETTERS: dict[RunState, str] = {
    RunState.IDLE: "I",
    RunState.PASSIVE: "P",
    RunState.ACTIVE: "A",
    RunState.TRIGGER: "Z",
    RunState.STARTED: "D",
    RunState.RUNNING: "R",
    RunState.REJECTED: "E",
    RunState.FAILED: "F",
    RunState.SUCCESS: "S",
    RunState.RESTARTING: "G",
    RunState.TERMINATED: "T",
    RunState.FROZEN: "O",
    RunState.UNFREEZE: "U",
}

FINAL_STATES: frozenset[RunState] = frozenset(
    {RunState.SUCCESS, RunState.FAILED, RunState.TERMINATED, RunState.REJECTED, RunState.SKIPPED}
)

# Initial states a new run record may be created in (the "—" rows of spec 7.2).
INITIAL_STATES: frozenset[RunState] = frozenset(
    {RunState.TRIGGER, RunState.FROZEN, RunState.SKIPPED, RunState.IDLE, RunState.RESTARTING}
)

S = RunState
# Transitions made by the scheduler, agents and the engine itself (spec 7.2). Operator
# MODIFY_TASK_STATUS is separate: see ``check_operator_status``.
TRANSITIONS: frozenset[tuple[RunState, RunState]] = frozenset(
    {
        (S.IDLE, S.ACTIVE),
        (S.IDLE, S.SKIPPED),
        (S.IDLE, S.FROZEN),
        (S.ACTIVE, S.FROZEN),
        (S.PENDING, S.FROZEN),
        (S.FROZEN, S.UNFREEZE),
        (S.UNFREEZE, S.ACTIVE),
        (S.UNFREEZE, S.IDLE),
        (S.ACTIVE, S.PENDING),
        (S.ACTIVE, S.TRIGGER),
        (S.PENDING, S.TRIGGER),
        (S.PENDING, S.SKIPPED),
        (S.TRIGGER, S.STARTED),
        (S.TRIGGER, S.REJECTED),
        (S.STARTED, S.RUNNING),
        (S.STARTED, S.SUCCESS),
        (S.RUNNING, S.SUCCESS),
        (S.STARTED, S.FAILED),
        (S.RUNNING, S.FAILED),
        (S.RUNNING, S.TERMINATED),
        (S.STARTED, S.TERMINATED),
        (S.TRIGGER, S.TERMINATED),
        (S.RESTARTING, S.TERMINATED),
        (S.RESTARTING, S.TRIGGER),
        (S.SKIPPED, S.ACTIVE),
    }
)
del S

OPERATOR_TARGETS: frozenset[RunState] = frozenset(
    {RunState.SUCCESS, RunState.FAILED, RunState.TERMINATED, RunState.SKIPPED, RunState.ACTIVE}
)


def can_transition(src: RunState, dst: RunState) -> bool:
    """True when the table allows ``src -> dst``."""
    return (src, dst) in TRANSITIONS


def check_transition(run_id: str, src: RunState, dst: RunState) -> None:
    """Raise TransitionError naming the run when ``src -> dst`` is not allowed."""
    if not can_transition(src, dst):
        raise TransitionError(f"run {run_id}: transition {src} -> {dst} is not allowed")


def check_operator_status(run_id: str, src: RunState, dst: RunState) -> None:
    """MODIFY_TASK_STATUS: any state except STARTED/RUNNING may be set to an operator target."""
    if src in (RunState.STARTED, RunState.RUNNING):
        raise TransitionError("run is in progress; terminate it first")
    if dst not in OPERATOR_TARGETS:
        raise TransitionError(
            f"run {run_id}: status must be one of SUCCESS, FAILED, TERMINATED, SKIPPED, ACTIVE"
        )

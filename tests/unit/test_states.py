"""Run states (spec 7.1), state letters (6.2) and the transition table (7.2)."""

from __future__ import annotations

import itertools

import pytest

from easytask.core.errors import TransitionError
from easytask.core.states import (
    FINAL_STATES,
    INITIAL_STATES,
    OPERATOR_TARGETS,
    TRANSITIONS,
    RunState,
    can_transition,
    check_operator_status,
    check_transition,
)

S = RunState

# (code, state, display, letter, final) — spec 7.1, letters from 6.2. PASSIVE is never a
# run state, so it is not final.
STATE_TABLE: list[tuple[int, RunState, str, str | None, bool]] = [
    (0, S.PENDING, "Pending", None, False),
    (1, S.TRIGGER, "Triggered", "Z", False),
    (2, S.STARTED, "Started", "D", False),
    (3, S.SUCCESS, "Success", "S", True),
    (4, S.FAILED, "Failed", "F", True),
    (5, S.FROZEN, "Frozen", "O", False),
    (6, S.TERMINATED, "Terminated", "T", True),
    (7, S.SKIPPED, "Skipped", None, True),
    (8, S.RUNNING, "Running", "R", False),
    (9, S.RESTARTING, "Restarting", "G", False),
    (10, S.REJECTED, "Rejected", "E", True),
    (11, S.IDLE, "Idle", "I", False),
    (12, S.ACTIVE, "Active", "A", False),
    (13, S.PASSIVE, "Passive", "P", False),
    (14, S.UNFREEZE, "Unfrozen", "U", False),
]

# Every From -> To pair of spec 7.2 (rows with "—" as From create runs and are INITIAL_STATES).
SPEC_TRANSITIONS: list[tuple[RunState, RunState]] = [
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
    (S.TRIGGER, S.TERMINATED),
    (S.RESTARTING, S.TERMINATED),
    (S.STARTED, S.TERMINATED),
    (S.RESTARTING, S.TRIGGER),
    (S.SKIPPED, S.ACTIVE),
]

REFUSED: list[tuple[RunState, RunState]] = [
    (S.SUCCESS, S.RUNNING),
    (S.TRIGGER, S.RUNNING),
    (S.FAILED, S.TRIGGER),
    (S.TRIGGER, S.SUCCESS),
    (S.TRIGGER, S.FAILED),
    (S.IDLE, S.TRIGGER),
    (S.FROZEN, S.ACTIVE),
    (S.FROZEN, S.TRIGGER),
    (S.RUNNING, S.STARTED),
    (S.RUNNING, S.REJECTED),
    (S.STARTED, S.REJECTED),
    (S.REJECTED, S.TRIGGER),
    (S.TERMINATED, S.RESTARTING),
    (S.FAILED, S.RESTARTING),
    (S.SUCCESS, S.FAILED),
    (S.SKIPPED, S.TRIGGER),
    (S.PASSIVE, S.ACTIVE),
    (S.ACTIVE, S.PASSIVE),
    (S.RUNNING, S.RUNNING),
]


@pytest.mark.parametrize(("code", "state", "display", "letter", "final"), STATE_TABLE)
def test_state_table(
    code: int, state: RunState, display: str, letter: str | None, final: bool
) -> None:
    assert state.value == state.name
    assert state.code == code
    assert state.display == display
    assert state.letter == letter
    assert state.final is final


def test_state_table_covers_every_state_once() -> None:
    assert [row[1] for row in STATE_TABLE] == list(RunState)
    assert sorted(s.code for s in RunState) == list(range(15))
    letters = [s.letter for s in RunState if s.letter is not None]
    assert len(letters) == len(set(letters)) == 13


def test_final_and_initial_sets() -> None:
    assert {S.SUCCESS, S.FAILED, S.TERMINATED, S.REJECTED, S.SKIPPED} == FINAL_STATES
    assert {S.TRIGGER, S.FROZEN, S.SKIPPED, S.IDLE, S.RESTARTING} == INITIAL_STATES


@pytest.mark.parametrize(("src", "dst"), SPEC_TRANSITIONS, ids=lambda s: str(s))
def test_spec_transition_allowed(src: RunState, dst: RunState) -> None:
    assert can_transition(src, dst)
    check_transition("default:1001:0:1", src, dst)


def test_table_is_exactly_the_spec() -> None:
    assert set(SPEC_TRANSITIONS) == TRANSITIONS
    assert len(SPEC_TRANSITIONS) == len(TRANSITIONS)


@pytest.mark.parametrize(("src", "dst"), REFUSED, ids=lambda s: str(s))
def test_transition_refused(src: RunState, dst: RunState) -> None:
    assert not can_transition(src, dst)
    with pytest.raises(TransitionError) as info:
        check_transition("default:1001:0:1", src, dst)
    assert str(info.value) == f"run default:1001:0:1: transition {src} -> {dst} is not allowed"


def test_every_pair_outside_the_table_is_refused() -> None:
    refused = [
        (a, b) for a, b in itertools.product(RunState, RunState) if (a, b) not in TRANSITIONS
    ]
    assert len(refused) == 15 * 15 - len(SPEC_TRANSITIONS)
    assert not any(can_transition(a, b) for a, b in refused)


def test_final_states_only_leave_through_skipped_reactivation() -> None:
    leaving = {(a, b) for a, b in TRANSITIONS if a in FINAL_STATES}
    assert leaving == {(S.SKIPPED, S.ACTIVE)}


def test_passive_is_never_a_run_state() -> None:
    assert not any(S.PASSIVE in pair for pair in TRANSITIONS)
    assert S.PASSIVE not in INITIAL_STATES


@pytest.mark.parametrize("src", [S.STARTED, S.RUNNING])
@pytest.mark.parametrize("dst", sorted(OPERATOR_TARGETS))
def test_operator_status_refused_while_in_progress(src: RunState, dst: RunState) -> None:
    with pytest.raises(TransitionError) as info:
        check_operator_status("default:1001:0:1", src, dst)
    assert str(info.value) == "run is in progress; terminate it first"


@pytest.mark.parametrize("src", [s for s in RunState if s not in (S.STARTED, S.RUNNING)])
def test_operator_status_allowed_from_any_other_state(src: RunState) -> None:
    for dst in OPERATOR_TARGETS:
        check_operator_status("default:1001:0:1", src, dst)


def test_operator_targets_are_the_spec_ones() -> None:
    assert {S.SUCCESS, S.FAILED, S.TERMINATED, S.SKIPPED, S.ACTIVE} == OPERATOR_TARGETS


@pytest.mark.parametrize("dst", [s for s in RunState if s not in OPERATOR_TARGETS])
def test_operator_status_refuses_other_targets(dst: RunState) -> None:
    with pytest.raises(TransitionError) as info:
        check_operator_status("default:1001:0:1", S.FAILED, dst)
    assert "status must be one of SUCCESS, FAILED, TERMINATED, SKIPPED, ACTIVE" in str(info.value)

"""Ad-hoc commands' pure parts (core/adhoc.py): defaults, field checks, selection, the tail."""

from __future__ import annotations

import pytest

from easytask.core.adhoc import (
    TAIL_BYTES,
    AdhocCommand,
    check_command,
    check_selection,
    keep_tail,
)
from easytask.core.errors import ValidationError


def fields_of(exc: pytest.ExceptionInfo[ValidationError]) -> dict[str, str]:
    return {e.field: e.message for e in exc.value.errors}


def test_defaults_are_the_specs() -> None:
    command = check_command("disk", "df -h", "", "", 0, "")
    assert command == AdhocCommand("disk", "df -h", "/tmp/adhoc.out", "/tmp/adhoc.err", 3600, "")
    assert AdhocCommand.from_args(command.to_args()) == command


def test_every_bad_field_is_named_at_once() -> None:
    with pytest.raises(ValidationError) as exc:
        check_command("bad name", " ", "x" * 129, "ok\x00", 172_801, "u" * 65)
    assert fields_of(exc) == {
        "name": "name must be 1-128 letters, digits, _ - . (starting with a letter or digit)",
        "cmd": "cmd is required",
        "stdout": "stdout must be at most 128 chars",
        "stderr": fields_of(exc)["stderr"],
        "run_as_user": "run_as_user must be at most 64 chars",
        "max_run_time": "max_run_time must be 1-172800 s",
    }
    assert "stderr" in fields_of(exc)["stderr"]


def test_a_command_may_span_lines_a_name_may_not() -> None:
    assert check_command("multi", "echo a\necho b", "", "", 0, "").cmd == "echo a\necho b"
    with pytest.raises(ValidationError):
        check_command("two\nlines", "true", "", "", 0, "")


@pytest.mark.parametrize(
    ("queues", "agents", "all_agents"),
    [([], [], False), (["q1"], ["a1"], False), (["q1"], [], True), ([" ", ""], [], False)],
)
def test_exactly_one_selection(queues: list[str], agents: list[str], all_agents: bool) -> None:
    with pytest.raises(ValidationError) as exc:
        check_selection(queues, agents, all_agents)
    assert fields_of(exc) == {"selection": "give exactly one of queues, agents or all"}


def test_a_selection_is_deduplicated_and_described() -> None:
    by_queue = check_selection(["q1", " q2", "q1"], [], False)
    assert by_queue.queues == ("q1", "q2") and by_queue.target == "queues q1,q2"
    assert by_queue.describe(["a1", "a2"]) == "Queue(s): q1,q2"
    by_agent = check_selection([], ["a2", "a1"], False)
    assert by_agent.describe(["a2", "a1"]) == "Agent(s): a2,a1"
    everyone = check_selection([], [], True)
    assert everyone.target == "all agents" and everyone.describe(["a1"]) == "Agent(s): a1"


def test_the_tail_keeps_the_last_64_kib_and_says_when_it_cut() -> None:
    kept, cut = keep_tail(b"", b"x" * 10)
    assert (kept, cut) == (b"x" * 10, False)
    kept, cut = keep_tail(b"a" * (TAIL_BYTES - 1), b"bc")
    assert len(kept) == TAIL_BYTES and kept.endswith(b"bc") and kept[0:1] == b"a" and cut
    assert keep_tail(b"", b"y" * (3 * TAIL_BYTES)) == (b"y" * TAIL_BYTES, True)

"""Text hygiene rules (core.text) and how task and group validation applies them (issue 7)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from easytask.core.errors import FieldError, ValidationError
from easytask.core.groups import GroupContext, validate_group
from easytask.core.text import (
    MAX_DEPTH,
    parse_json,
    quote,
    shown,
    text_problem,
)
from easytask.core.validation import TaskContext, stored_text_problem, validate_task
from easytask.rpc.errors import (
    DETAILS_LIMIT,
    FIELD_ERRORS_LIMIT,
    field_errors_payload,
    status_details,
)


def test_quote_escapes_and_cuts() -> None:
    assert quote("a\x00b") == "'a\\x00b'"
    assert quote("\udfff") == "'\\udfff'"
    assert quote("é") == "'\\xe9'"
    assert quote("x" * 100, limit=5) == "'xxxxx'…"
    assert shown("Europe/Paris") == "Europe/Paris"
    assert shown("x" * 100).endswith("'…") and len(shown("x" * 100)) < 80


@pytest.mark.parametrize(
    ("value", "lines", "expected"),
    [
        ("plain", False, None),
        ("a\tb\nc\r", True, None),
        ("a\tb", False, "must not contain control character U+0009 (at 1)"),
        ("ab\x00", True, "must not contain NUL (at 2)"),
        ("\x7f", True, "must not contain control character U+007F (at 0)"),
        ("x\udfff", True, "must be valid Unicode text (lone surrogate U+DFFF at 1)"),
        ("\ud83d\ude00", True, "must be valid Unicode text (lone surrogate U+D83D at 0)"),
        ("😀 ünïcode", False, None),
    ],
)
def test_text_problem(value: str, lines: bool, expected: str | None) -> None:
    assert text_problem(value, lines=lines) == expected


def test_parse_json_bounds_size_and_depth_before_parsing() -> None:
    with pytest.raises(ValidationError) as exc:
        parse_json(json.dumps({"cmd": "x" * 100}), "task", max_bytes=50)
    assert exc.value.errors == [FieldError("task", "task must be at most 50 bytes")]
    deep = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    with pytest.raises(ValidationError) as exc:
        parse_json(deep, "group")
    assert exc.value.errors == [FieldError("group", "group nests deeper than 32 levels")]
    assert parse_json("[" * MAX_DEPTH + "]" * MAX_DEPTH, "task") is not None
    # Brackets inside strings do not count; thousands never closed do not overflow the stack.
    assert parse_json(json.dumps({"cmd": "[" * 5000}), "task") == {"cmd": "[" * 5000}
    with pytest.raises(ValidationError) as exc:
        parse_json("[" * 5000, "task")
    assert exc.value.errors[0].field == "task"
    with pytest.raises(ValidationError) as exc:
        parse_json('{"a": ', "file")
    assert exc.value.errors[0].message.startswith("not valid JSON")


def _task_ctx() -> TaskContext:
    return TaskContext(
        instance="default",
        default_owner="admin",
        tid_exists=lambda t: False,
        name_tid=lambda n: None,
        next_tid=lambda: 1001,
        calendar_exists=lambda c: False,
        group_exists=lambda g: False,
    )


def _task(**fields: Any) -> dict[str, Any]:
    base = {"name": "t", "cmd": "true", "run_on_host": "q", "stdout": "/tmp/o",
            "stderr": "/tmp/e", "timezone": "UTC", "day_of_week": "1111111",
            "trigger_times": "08:00"}  # fmt: skip
    base.update(fields)
    return base


def _task_errors(raw: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as exc:
        validate_task(raw, _task_ctx())
    return [(e.field, e.message) for e in exc.value.errors]


@pytest.mark.parametrize("field", ["cmd", "stdout", "stderr", "run_as_user", "profile", "team"])
def test_nul_refused_in_every_task_text(field: str) -> None:
    assert _task_errors(_task(**{field: "a\x00b"})) == [
        (field, f"{field} must not contain NUL (at 1)")
    ]


@pytest.mark.parametrize("field", ["cmd", "description", "timezone", "name", "dependency"])
def test_lone_surrogate_refused(field: str) -> None:
    errors = _task_errors(_task(**{field: "x\udfff"}))
    assert (field, f"{field} must be valid Unicode text (lone surrogate U+DFFF at 1)") in errors


def test_cmd_and_description_may_hold_lines_names_may_not() -> None:
    task = validate_task(_task(cmd="echo a\n\techo b\r\n", description="two\nlines"), _task_ctx())
    assert task.cmd == "echo a\n\techo b\r\n"
    assert _task_errors(_task(stdout="/tmp/a\nb")) == [
        ("stdout", "stdout must not contain control character U+000A (at 6)")
    ]


def test_odd_keys_are_named_by_the_record() -> None:
    assert _task_errors(_task(**{"": 1})) == [("task", "unknown field ''")]
    assert _task_errors(_task(**{"\udfff": 1})) == [("task", "unknown field '\\udfff'")]
    assert _task_errors(_task(**{"k" * 200: 1})) == [("task", f"unknown field '{'k' * 64}'…")]
    assert _task_errors(_task(colour="red")) == [("colour", "unknown field")]


def test_alert_texts_are_checked_at_any_depth() -> None:
    alert = {"integrations": [{"integration": "email", "to": "a@b", "subject": "s",
                               "body": "x\x00"}]}  # fmt: skip
    assert _task_errors(_task(alert=alert)) == [("alert", "alert must not contain NUL (at 1)")]


def test_echoed_values_are_quoted_and_cut() -> None:
    errors = dict(_task_errors(_task(timezone="Z" * 20000)))
    assert len(errors["timezone"]) < 120
    assert _task_errors(_task(cmd="${E:\u00e9}", profile="p")) == [
        ("cmd", "Bad placeholder ${E:é}")
    ]


def test_group_validation_applies_the_same_rules() -> None:
    ctx = GroupContext(
        instance="default",
        gid_exists=lambda g: False,
        name_gid=lambda n: None,
        next_gid=lambda: 1,
        calendar_exists=lambda c: False,
    )
    raw = {"name": "g", "timezone": "UTC", "trigger_times": "08:00", "day_of_week": "1111111",
           "description": "\udfff", "": 2}  # fmt: skip
    with pytest.raises(ValidationError) as exc:
        validate_group(raw, ctx)
    assert [(e.field, e.message) for e in exc.value.errors] == [
        ("description", "description must be valid Unicode text (lone surrogate U+DFFF at 0)"),
        ("group", "unknown field ''"),
    ]


def test_stored_records_are_checked_field_by_field() -> None:
    good = validate_task(_task(cmd="echo a\necho b"), _task_ctx())
    assert stored_text_problem(good) is None
    assert stored_text_problem(replace(good, stderr="/tmp/\x00")) == (
        "stderr must not contain NUL (at 5)"
    )
    assert stored_text_problem(replace(good, cmd="\udfff")) == (
        "cmd must be valid Unicode text (lone surrogate U+DFFF at 0)"
    )


def test_field_errors_metadata_stays_small() -> None:
    errors = [FieldError(f"f{i}", "\udfff" * 1000) for i in range(100)]
    payload = field_errors_payload(errors)
    assert payload.isascii() and len(payload) <= FIELD_ERRORS_LIMIT
    entries = json.loads(payload)
    assert entries[-1]["message"].startswith("and ") and entries[-1]["message"].endswith("errors")
    assert all(e["field"] for e in entries)


def _wire(details: str) -> bytes:
    """grpc-message on the wire: printable ASCII but %, else %XX per UTF-8 byte."""
    out = bytearray()
    for byte in details.encode("utf-8"):
        out += bytes([byte]) if 0x20 <= byte <= 0x7E and byte != 0x25 else b"%%%02X" % byte
    return bytes(out)


@pytest.mark.parametrize("text", ["x" * 10_000, "unknown field k1\n" * 3000, "é€😀%" * 4000])
def test_status_details_fit_the_metadata_limit_once_encoded(text: str) -> None:
    """Details and field errors together stay under gRPC's 8 KiB soft metadata limit."""
    details = status_details(text)
    assert len(_wire(details)) <= DETAILS_LIMIT and details.endswith("…")
    assert DETAILS_LIMIT + FIELD_ERRORS_LIMIT < 8192 - 1024  # headers and keys need room


def test_short_details_are_kept_whole() -> None:
    assert status_details("task 1001 not found") == "task 1001 not found"
    assert status_details("bad \udfff") == "bad \\udfff"

"""easytaskctl output: value formats, tables, JSON records, the YAML emitter."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from easytask.core.states import run_state_label
from easytask.ctl.records import (
    day_of_week_compact,
    day_of_week_list,
    parse_day_of_week,
    run_to_dict,
    schedule_display,
    task_fields,
)
from easytask.ctl.render import (
    emit,
    format_duration,
    format_timestamp,
    make_console,
    page_line,
    render_fields,
    render_table,
    render_text_panel,
    to_yaml,
    yaml_scalar,
)
from easytask.ctl.scheduler import RUN_HEADERS, run_row, stats_panel
from easytask.rpc.v1 import api_pb2 as pb

RUN_ID = "default:1000002:1746793800000:1"


def render(*items: object) -> str:
    buf = io.StringIO()
    console = make_console(buf)
    for item in items:
        console.print(item)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, ""),
        (0.0, "0.0s"),
        (1.234, "1.2s"),
        (59.9, "59.9s"),
        (59.96, "1m 0s"),
        (60.0, "1m 0s"),
        (332.0, "5m 32s"),
        (332.6, "5m 33s"),
        (3723.0, "1h 2m 3s"),
        (7200.0, "2h 0m 0s"),
        (90061.0, "1d 1h 1m 1s"),
        (-3.0, "0.0s"),
    ],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("page", "per_page", "total", "text"),
    [
        (1, 25, 52, "Page 1 of 3 (52 total items)"),
        (3, 25, 52, "Page 3 of 3 (52 total items)"),
        (2, 25, 50, "Page 2 of 2 (50 total items)"),
        (1, 25, 0, "Page 1 of 1 (0 total items)"),
        (1, 25, 25, "Page 1 of 1 (25 total items)"),
    ],
)
def test_page_line(page: int, per_page: int, total: int, text: str) -> None:
    assert page_line(page, per_page, total) == text


def test_format_timestamp() -> None:
    assert format_timestamp("2025-05-09T12:30:00.055Z") == "2025-05-09 12:30:00"
    assert format_timestamp("") == ""
    assert format_timestamp(None) == ""
    assert format_timestamp("soon") == "soon"


def test_console_is_wide_when_not_a_tty() -> None:
    assert make_console(io.StringIO()).width == 200


def test_table_shows_whole_values_and_no_markup() -> None:
    table = render_table(
        ("Run ID", "Task", "Note"),
        [(RUN_ID, "task2", "[bold]not markup[/bold]"), ("x", None, True)],
        no_wrap={"Run ID"},
    )
    text = render(table)
    assert RUN_ID in text
    assert "[bold]not markup[/bold]" in text
    assert "Run ID" in text and "Task" in text
    assert " Y " in text  # bools as Y/N


def test_fields_panel_lists_labels_and_values() -> None:
    task = {"tid": 1000002, "name": "task2", "day_of_week": "1111100", "active": True}
    text = render(render_fields("Task 1000002 (task2)", task_fields(task)))
    assert "Task 1000002 (task2)" in text
    assert "Day of Week" in text and "MON,TUE,WED,THU,FRI" in text
    assert "Run On Host" in text  # absent fields are listed too


def test_stats_panel_orders_states_by_code() -> None:
    text = render(stats_panel({"RUNNING": 1, "SUCCESS": 5, "FAILED": 2, "PENDING": 0}))
    assert "Stats" in text
    assert "Total: 8   SUCCESS: 5   FAILED: 2   RUNNING: 1" in text
    assert "PENDING" not in text


def _run(**kw: object) -> pb.Run:
    base: dict[str, object] = {
        "run_id": RUN_ID,
        "tid": 1000002,
        "name": "task2",
        "instance": "default",
        "run_date": "20250509",
        "scheduled_utc": "2025-05-09T12:30:00.000Z",
        "local_time": "08:30",
        "timezone": "US/Eastern",
        "attempt": 1,
        "state": "SUCCESS",
        "state_code": 3,
        "queue": "production-server-1",
        "alert_status": "none",
    }
    base.update(kw)
    return pb.Run(**base)  # type: ignore[arg-type]


def test_run_record_uses_spec_names_and_nulls() -> None:
    record = run_to_dict(_run())
    assert list(record)[:4] == ["run_id", "tid", "name", "group"]
    for key in (
        "state_code",
        "return_code",
        "reason",
        "attempt",
        "scheduled_utc",
        "triggered_at",
        "dispatched_at",
        "acked_at",
        "started_at",
        "ended_at",
        "duration",
        "stdout_path",
        "stderr_path",
        "stdout_range",
        "stderr_range",
        "forced",
        "pid",
        "agent",
        "host",
    ):
        assert key in record
    assert record["return_code"] is None
    assert record["pid"] is None
    assert record["started_at"] is None
    assert record["duration"] is None
    assert record["group"] is None
    assert record["stdout_range"] is None
    assert "transitions" not in record
    json.dumps(record)  # JSON-serialisable as is


def test_run_record_known_values() -> None:
    run = _run(
        has_return_code=True,
        return_code=0,
        has_pid=True,
        pid=4242,
        started_at="2025-05-09T12:30:01.000Z",
        ended_at="2025-05-09T12:35:33.000Z",
        has_duration=True,
        duration=332.0,
        stdout_range=[10, 250],
        agent="agent-1",
    )
    run.transitions.add(to_state="TRIGGER", at="2025-05-09T12:30:00.001Z")
    record = run_to_dict(run, transitions=True)
    assert record["return_code"] == 0
    assert record["pid"] == 4242
    assert record["stdout_range"] == [10, 250]
    assert record["transitions"] == [
        {"from_state": None, "to_state": "TRIGGER", "at": "2025-05-09T12:30:00.001Z", "reason": ""}
    ]
    row = run_row(record)
    assert len(row) == len(RUN_HEADERS)
    assert row[10] == "5m 32s"
    assert row[12] == 0
    text = render(render_table(RUN_HEADERS, [row], no_wrap={"Run ID"}))
    assert RUN_ID in text and "5m 32s" in text and "2025-05-09 12:35:33" in text


def test_emit_json_and_yaml() -> None:
    data = [{"run_id": RUN_ID, "return_code": None, "forced": False}]
    out = io.StringIO()
    emit(Console(file=out), "json", data, lambda: [])
    assert json.loads(out.getvalue()) == data
    out = io.StringIO()
    emit(Console(file=out), "yaml", data, lambda: [])
    assert out.getvalue() == f"- run_id: {RUN_ID}\n  return_code: null\n  forced: false\n"
    out = io.StringIO()
    emit(make_console(out), "table", data, lambda: ["Page 1 of 1 (1 total items)"])
    assert out.getvalue() == "Page 1 of 1 (1 total items)\n"


# ---- YAML: exact text ------------------------------------------------------------------------


def test_yaml_nested_structure() -> None:
    data = {
        "name": "task2",
        "tid": 1000002,
        "active": True,
        "ratio": 0.5,
        "alert": {"alert_on": "failure", "integrations": [{"integration": "email", "to": ["a"]}]},
        "empty_list": [],
        "empty_map": {},
        "nothing": None,
        "matrix": [[1, 2], []],
    }
    assert to_yaml(data) == (
        "name: task2\n"
        "tid: 1000002\n"
        "active: true\n"
        "ratio: 0.5\n"
        "alert:\n"
        "  alert_on: failure\n"
        "  integrations:\n"
        "    - integration: email\n"
        "      to:\n"
        "        - a\n"
        "empty_list: []\n"
        "empty_map: {}\n"
        "nothing: null\n"
        "matrix:\n"
        "  - - 1\n"
        "    - 2\n"
        "  - []\n"
    )


def test_yaml_top_level_scalars_and_empty() -> None:
    assert to_yaml([]) == "[]\n"
    assert to_yaml({}) == "{}\n"
    assert to_yaml("x") == "x\n"
    assert to_yaml([1, "two", None]) == "- 1\n- two\n- null\n"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("hello world", "hello world"),
        ("US/Eastern", "US/Eastern"),
        ("/tmp/task1.out", "/tmp/task1.out"),
        (RUN_ID, RUN_ID),
        ("MON,TUE", "MON,TUE"),
        ("", '""'),
        ("08:30", '"08:30"'),
        ("8:30", '"8:30"'),  # YAML 1.1 sexagesimal int
        ("20250509", '"20250509"'),
        ("1e3", '"1e3"'),
        ("2025-05-09T12:30:00.055Z", '"2025-05-09T12:30:00.055Z"'),
        ("yes", '"yes"'),
        ("No", '"No"'),
        ("null", '"null"'),
        ("~", '"~"'),
        ("true", '"true"'),
        ("a: b", '"a: b"'),
        ("key:", '"key:"'),
        ("a #b", '"a #b"'),
        ("- x", '"- x"'),
        ("* star", '"* star"'),
        (" lead", '" lead"'),
        ("trail ", '"trail "'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("line1\nline2", '"line1\\nline2"'),
        ("tab\there", '"tab\\there"'),
        ("bell\x07", '"bell\\x07"'),
        ("ls -l ; sleep 120", "ls -l ; sleep 120"),
        ("café", '"café"'),
        ("sep\u2028x", '"sep\\u2028x"'),
        (None, "null"),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (-5, "-5"),
        (1.5, "1.5"),
        (1e20, "1.0e+20"),
        (float("nan"), ".nan"),
        (float("inf"), ".inf"),
        (float("-inf"), "-.inf"),
    ],
)
def test_yaml_scalar(value: object, text: str) -> None:
    assert yaml_scalar(value) == text


def test_yaml_quoted_keys() -> None:
    assert to_yaml({"08:30": 1, "yes": "no", "a b": "c"}) == '"08:30": 1\n"yes": "no"\na b: c\n'


def test_yaml_multiline_value_in_list() -> None:
    assert to_yaml({"lines": ["a\nb", "c"]}) == 'lines:\n  - "a\\nb"\n  - c\n'


# ---- task displays ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bits", "listed", "compact"),
    [
        ("1111100", "MON,TUE,WED,THU,FRI", "MON-FRI"),
        ("0000011", "SAT,SUN", "SAT,SUN"),
        ("0111110", "TUE,WED,THU,FRI,SAT", "TUE-SAT"),
        ("1010101", "MON,WED,FRI,SUN", "MON,WED,FRI,SUN"),
        ("1111111", "MON,TUE,WED,THU,FRI,SAT,SUN", "MON-SUN"),
        ("1101110", "MON,TUE,THU,FRI,SAT", "MON,TUE,THU-SAT"),
        ("bogus", "bogus", "bogus"),
    ],
)
def test_day_of_week_displays(bits: str, listed: str, compact: str) -> None:
    assert day_of_week_list(bits) == listed
    assert day_of_week_compact(bits) == compact


@pytest.mark.parametrize(
    ("value", "bits"),
    [
        ("1111100", "1111100"),
        ("MON-FRI", "1111100"),
        ("mon,wed,fri", "1010100"),
        ("sat-sun", "0000011"),
        ("Monday-Tuesday,SUN", "1100001"),
        ("FRI-MON", "FRI-MON"),  # not understood: left for the server to reject
        ("1111", "1111"),
        ("funday", "funday"),
    ],
)
def test_parse_day_of_week(value: str, bits: str) -> None:
    assert parse_day_of_week(value) == bits


@pytest.mark.parametrize(
    ("task", "text"),
    [
        ({"day_of_week": "1111100", "trigger_times": "08:30"}, "MON-FRI 08:30"),
        ({"day_of_week": "1111111", "trigger_times": "08:30,14:00"}, "MON-SUN 08:30,14:00"),
        (
            {"ordinal_day": "last  friday of every month", "trigger_times": "18:00"},
            "last friday 18:00",
        ),
        (
            {"day_of_week": "0000011", "run_frequency": "09:00-17:00-60"},
            "SAT,SUN 09:00-17:00 every 60m",
        ),
        ({"task_group": "etl", "name": "extract"}, "(group)"),
        ({}, ""),
    ],
)
def test_schedule_display(task: dict[str, str], text: str) -> None:
    assert schedule_display(task) == text


def test_a_timed_out_run_shows_timed_out_and_other_states_their_name() -> None:
    assert run_state_label("TERMINATED", "timed out") == "Timed Out"
    assert run_state_label("TERMINATED", "terminated by ops") == "TERMINATED"
    assert run_state_label("FAILED", "timed out") == "FAILED"
    record = {"run_id": RUN_ID, "tid": 1, "name": "t", "group": None, "run_date": "20260509",
              "local_time": "08:30", "attempt": 1, "state": "TERMINATED", "reason": "timed out",
              "started_at": None, "ended_at": None, "duration": None, "agent": None,
              "return_code": -15}  # fmt: skip
    assert "Timed Out" in run_row(record)


@pytest.mark.parametrize("body", ["(no output)", "x", ""])
def test_a_short_log_panel_keeps_its_whole_subtitle(body: str) -> None:
    out = render(render_text_panel("stdout", body, "Page 1 of 1 (0 total lines)"))
    assert "╰─ Page 1 of 1 (0 total lines) ─╯" in out, out
    widths = {len(line) for line in out.splitlines()}
    assert len(widths) == 1, "every line of the panel is as wide as the subtitle needs"


def test_a_long_log_panel_is_as_wide_as_its_longest_line() -> None:
    line = "x" * 60
    out = render(render_text_panel("stdout", line, "Page 1 of 1 (1 total lines)"))
    assert f"│ {line} │" in out

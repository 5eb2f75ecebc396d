"""Task validation (spec 2.1, 2.2): one case per rule and message, merge, defaults."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from easytask.core.errors import FieldError, ValidationError
from easytask.core.models import TaskDef
from easytask.core.validation import TaskContext, validate_task

EXISTING_TID = 2001
NEXT_TID = 5001
DROP = object()  # marks a key to remove from the base record

SINGLE: dict[str, Any] = {
    "name": "t1",
    "cmd": "echo hi",
    "run_on_host": "q1",
    "stdout": "t1.out",
    "stderr": "t1.err",
    "timezone": "UTC",
    "day_of_week": "1111100",
    "trigger_times": "08:30",
}
GROUPED: dict[str, Any] = {
    "name": "m1",
    "cmd": "echo hi",
    "run_on_host": "q1",
    "stdout": "m1.out",
    "stderr": "m1.err",
    "task_group": "etl",
}
EXAMPLE_2_3: dict[str, Any] = {
    "tid": 1000002,
    "name": "task2",
    "task_owner": "admin",
    "cmd": "ls -l ; sleep 120; ls -l ",
    "run_on_host": "production-server-1",
    "max_run_time": 300,
    "description": "A Stray task : Run an ls command",
    "retry_attempts": 3,
    "stderr": "task1.out",
    "stdout": "task1.err",
    "timezone": "US/Eastern",
    "active": True,
    "calendar": "US_HOLIDAYS",
    "instance": "default",
    "day_of_week": "1111111",
    "trigger_times": "08:30",
}
EMAIL = {"integration": "email", "to": ["ops@example.com"], "subject": "s", "body": "b"}


def make_ctx(names: dict[str, int] | None = None, instance: str = "default") -> TaskContext:
    taken = {"taken": EXISTING_TID, **(names or {})}
    return TaskContext(
        instance=instance,
        default_owner="alice",
        tid_exists=lambda tid: tid == EXISTING_TID or tid in taken.values(),
        name_tid=taken.get,
        next_tid=lambda: NEXT_TID,
        calendar_exists=lambda name: name in {"US_HOLIDAYS", "ops"},
        group_exists=lambda name: name in {"etl"},
    )


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    record = {**base, **changes}
    return {k: v for k, v in record.items() if v is not DROP}


def errors_of(
    raw: object, ctx: TaskContext | None = None, existing: TaskDef | None = None
) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        validate_task(raw, ctx or make_ctx(), existing)
    return [(e.field, e.message) for e in info.value.errors]


RANGE_CASES = [
    (field, value, f"{field} must be between {low} and {high}")
    for field, low, high in [
        ("max_run_time", 1, 172800),
        ("retry_attempts", 0, 10),
        ("retry_delay", 0, 86400),
        ("task_accept_expiry_time", 1, 86400),
        ("misfire_grace", 0, 604800),
    ]
    for value in (low - 1, high + 1)
]

# (id, record, [(field, message), ...]) — the exact and complete error list.
CASES: list[tuple[str, dict[str, Any], list[tuple[str, str]]]] = [
    # required / empty
    *[
        (f"{f}-missing", with_(SINGLE, **{f: DROP}), [(f, f"{f} is required")])
        for f in ("name", "cmd", "run_on_host", "stdout", "stderr")
    ],
    ("name-empty", with_(SINGLE, name=""), [("name", "name is required")]),
    ("cmd-blank", with_(SINGLE, cmd="   "), [("cmd", "cmd is required")]),
    ("stdout-null", with_(SINGLE, stdout=None), [("stdout", "stdout is required")]),
    # JSON types
    ("name-int", with_(SINGLE, name=5), [("name", "name must be a string")]),
    ("cmd-list", with_(SINGLE, cmd=["ls"]), [("cmd", "cmd must be a string")]),
    ("tid-str", with_(SINGLE, tid="1001"), [("tid", "tid must be an integer")]),
    ("tid-bool", with_(SINGLE, tid=True), [("tid", "tid must be an integer")]),
    ("tid-float", with_(SINGLE, tid=1001.0), [("tid", "tid must be an integer")]),
    (
        "retries-bool",
        with_(SINGLE, retry_attempts=False),
        [("retry_attempts", "retry_attempts must be an integer")],
    ),
    ("active-int", with_(SINGLE, active=1), [("active", "active must be a boolean")]),
    ("active-str", with_(SINGLE, active="true"), [("active", "active must be a boolean")]),
    ("alert-str", with_(SINGLE, alert="email"), [("alert", "alert must be an object")]),
    ("alert-list", with_(SINGLE, alert=[EMAIL]), [("alert", "alert must be an object")]),
    ("timezone-int", with_(SINGLE, timezone=5), [("timezone", "timezone must be a string")]),
    # lengths (spec 2.1 / 16)
    *[
        (
            f"{f}-too-long",
            with_(SINGLE, **{f: "a" * (n + 1)}),
            [(f, f"{f} must be at most {n} characters")],
        )
        for f, n in [
            ("name", 128),
            ("description", 256),
            ("task_owner", 64),
            ("team", 64),
            ("cmd", 8192),
            ("run_on_host", 128),
            ("run_as_user", 64),
            ("stdout", 128),
            ("stderr", 128),
            ("profile", 256),
        ]
    ],
    (
        "timezone-too-long",
        with_(SINGLE, timezone="A" * 65),
        [
            ("timezone", "timezone must be at most 64 characters"),
            ("timezone", "Unknown timezone '" + "A" * 64 + "'…"),
        ],
    ),
    (
        "calendar-too-long",
        with_(SINGLE, calendar="c" * 65),
        [
            ("calendar", "calendar must be at most 64 characters"),
            ("calendar", "calendar does not exist"),
        ],
    ),
    (
        "ordinal-too-long",
        with_(SINGLE, day_of_week=DROP, ordinal_day="first day of every month" + " " * 41),
        [("ordinal_day", "ordinal_day must be at most 64 characters")],
    ),
    (
        "dependency-too-long",
        with_(GROUPED, dependency="S:a and " * 256 + "S:b"),
        [("dependency", "dependency must be at most 2048 characters")],
    ),
    (
        "task_group-too-long",
        with_(GROUPED, task_group="g" * 129),
        [
            ("task_group", "task_group must be at most 128 characters"),
            ("task_group", "task_group does not exist"),
        ],
    ),
    # unknown fields
    ("unknown-field", with_(SINGLE, owner="bob"), [("owner", "unknown field")]),
    # tid
    ("tid-1000", with_(SINGLE, tid=1000), [("tid", "tid must be > 1000")]),
    ("tid-negative", with_(SINGLE, tid=-5), [("tid", "tid must be > 1000")]),
    ("tid-too-big", with_(SINGLE, tid=2147483648), [("tid", "tid must be at most 2147483647")]),
    ("tid-exists", with_(SINGLE, tid=EXISTING_TID), [("tid", "tid already exists")]),
    # name
    *[
        (
            f"name-{name!r}",
            with_(SINGLE, name=name),
            [("name", "name may contain only letters, digits, _ - . and cannot be and/or/not")],
        )
        for name in (
            "bad name",
            "-lead",
            "_lead",
            ".lead",
            "a/b",
            "a:b",
            "and",
            "or",
            "not",
            "tâche",
        )
    ],
    ("name-exists", with_(SINGLE, name="taken"), [("name", "name already exists")]),
    # schedule form of a single task
    (
        "trigger-and-frequency",
        with_(SINGLE, run_frequency="09:00-17:00-60"),
        [("trigger_times", "Both trigger_times and run_frequency defined")],
    ),
    (
        "trigger-nor-frequency",
        with_(SINGLE, trigger_times=DROP),
        [("trigger_times", "Neither trigger_times nor run_frequency defined")],
    ),
    (
        "trigger-empty-is-absent",
        with_(SINGLE, trigger_times=""),
        [("trigger_times", "Neither trigger_times nor run_frequency defined")],
    ),
    *[
        (
            f"trigger-bad-{text!r}",
            with_(SINGLE, trigger_times=text),
            [("trigger_times", "Bad entry in Trigger Times field")],
        )
        for text in ("24:00", "8:60", "2:30 PM", "08:30,,09:00", "0830", "((08:30))", "08:30,")
    ],
    *[
        (
            f"frequency-bad-{text!r}",
            with_(SINGLE, trigger_times=DROP, run_frequency=text),
            [("run_frequency", "Bad entry in Run Frequency field")],
        )
        for text in ("17:00-09:00-60", "09:00-17:00-0", "09:00-17:00-1441", "09:00-17:00", "x")
    ],
    *[
        (
            f"dow-bad-{text!r}",
            with_(SINGLE, day_of_week=text),
            [("day_of_week", "Bad entry in Day of Week field")],
        )
        for text in ("0000000", "111110", "11111000", "1111102", "MON-FRI")
    ],
    *[
        (
            f"ordinal-bad-{text!r}",
            with_(SINGLE, day_of_week=DROP, ordinal_day=text),
            [("ordinal_day", "Bad entry in Ordinal Day field")],
        )
        for text in ("first monday", "sixth day of every month", "last holiday of every month")
    ],
    (
        "dow-and-ordinal",
        with_(SINGLE, ordinal_day="last day of every month"),
        [("day_of_week", "Both day_of_week and ordinal_day defined")],
    ),
    (
        "dow-nor-ordinal",
        with_(SINGLE, day_of_week=DROP),
        [("day_of_week", "Neither day_of_week nor ordinal_day defined")],
    ),
    ("timezone-missing", with_(SINGLE, timezone=DROP), [("timezone", "timezone is required")]),
    (
        "timezone-unknown",
        with_(SINGLE, timezone="Mars/Olympus"),
        [("timezone", "Unknown timezone Mars/Olympus")],
    ),
    (
        "timezone-path",
        with_(SINGLE, timezone="/etc/localtime"),
        [("timezone", "Unknown timezone /etc/localtime")],
    ),
    (
        "dependency-single",
        with_(SINGLE, dependency="S:other"),
        [("dependency", "dependency cannot be defined for single task")],
    ),
    # grouped tasks
    (
        "group-trigger",
        with_(GROUPED, trigger_times="08:30"),
        [("trigger_times", "trigger_times/run_frequency defined for task in group")],
    ),
    (
        "group-frequency",
        with_(GROUPED, run_frequency="09:00-17:00-60"),
        [("run_frequency", "trigger_times/run_frequency defined for task in group")],
    ),
    (
        "group-timezone",
        with_(GROUPED, timezone="UTC"),
        [("timezone", "timezone defined for task in group")],
    ),
    *[
        (f"group-{f}", with_(GROUPED, **{f: v}), [(f, f"{f} defined for task in group")])
        for f, v in [
            ("day_of_week", "1111100"),
            ("ordinal_day", "first day of every month"),
            ("misfire_policy", "run_once"),
            ("misfire_grace", 3600),
        ]
    ],
    (
        "group-unknown",
        with_(GROUPED, task_group="nope"),
        [("task_group", "task_group does not exist")],
    ),
    # existence
    ("instance-other", with_(SINGLE, instance="prod"), [("instance", "instance does not exist")]),
    ("calendar-unknown", with_(SINGLE, calendar="XX"), [("calendar", "calendar does not exist")]),
    # placeholders and profile
    (
        "profile-for-cmd",
        with_(SINGLE, cmd="echo ${E:HOME}"),
        [("profile", "profile required for placeholders")],
    ),
    (
        "profile-for-stdout",
        with_(SINGLE, stdout="${E:YYYYMMDD}.out"),
        [("profile", "profile required for placeholders")],
    ),
    (
        "profile-for-stderr",
        with_(SINGLE, stderr="${T:task_name}.err", profile=""),
        [("profile", "profile required for placeholders")],
    ),
    *[
        (
            f"placeholder-bad-{text!r}",
            with_(SINGLE, cmd=f"echo {text} done", profile="etl"),
            [("cmd", f"Bad placeholder {token}")],
        )
        for text, token in [
            ("${X:foo}", "${X:foo}"),
            ("${e:HOME}", "${e:HOME}"),
            ("${HOME}", "${HOME}"),
            ("${}", "${}"),
            ("${E:}", "${E:}"),
            ("${E:A-B}", "${E:A-B}"),
            ("${E:A B}", "${E:A B}"),
            ("${T:task_owner}", "${T:task_owner}"),
            ("${P:cpu}", "${P:cpu}"),
        ]
    ],
    (
        "placeholder-unclosed",
        with_(SINGLE, stdout="out.${E:HH", profile="etl"),
        [("stdout", "Bad placeholder ${E:HH")],
    ),
    (
        "placeholder-p-in-cmd",
        with_(SINGLE, cmd="echo ${P:pid} ${P:status}", profile="etl"),
        [("cmd", "P: placeholders are allowed only in alerts")],
    ),
    (
        "placeholder-p-in-stderr",
        with_(SINGLE, stderr="${P:stderr}", profile="etl"),
        [("stderr", "P: placeholders are allowed only in alerts")],
    ),
    # ranges and enumerations
    *[(f"range-{f}-{v}", with_(SINGLE, **{f: v}), [(f, m)]) for f, v, m in RANGE_CASES],
    (
        "misfire-policy",
        with_(SINGLE, misfire_policy="sometimes"),
        [("misfire_policy", "misfire_policy must be one of run_once, skip, run_all")],
    ),
    *[
        (
            f"host-{host!r}",
            with_(SINGLE, run_on_host=host),
            [("run_on_host", "run_on_host may contain only letters, digits, _ - . :")],
        )
        for host in ("bad host", "q/1", "q@1", "ħost")
    ],
    # alert
    (
        "alert-on",
        with_(SINGLE, alert={"alert_on": "never", "integrations": [EMAIL]}),
        [("alert", "alert_on must be one of failure, success, always")],
    ),
    (
        "alert-on-entry",
        with_(SINGLE, alert={"integrations": [{**EMAIL, "alert_on": "sometimes"}]}),
        [("alert", "alert_on must be one of failure, success, always")],
    ),
    (
        "alert-integration",
        with_(SINGLE, alert={"integrations": [{"integration": "pager", "to": "x"}]}),
        [("alert", "unknown integration pager")],
    ),
    (
        "alert-integration-missing",
        with_(SINGLE, alert={"integrations": [{"to": ["x"]}]}),
        [("alert", "integration is required")],
    ),
    (
        "alert-no-integrations",
        with_(SINGLE, alert={"alert_on": "always"}),
        [("alert", "integrations is required")],
    ),
    (
        "alert-integrations-not-list",
        with_(SINGLE, alert={"integrations": EMAIL}),
        [("alert", "integrations must be a list of objects")],
    ),
    (
        "alert-email-keys",
        with_(SINGLE, alert={"integrations": [{"integration": "genericsmtp", "to": []}]}),
        [
            ("alert", "to is required"),
            ("alert", "subject is required"),
            ("alert", "body is required"),
        ],
    ),
    (
        "alert-webhook-keys",
        with_(SINGLE, alert={"integrations": [{"integration": "http"}]}),
        [("alert", "url is required")],
    ),
    (
        "alert-slack-keys",
        with_(SINGLE, alert={"integrations": [{"integration": "slack"}]}),
        [("alert", "webhook_url is required"), ("alert", "text is required")],
    ),
    (
        "alert-bad-placeholder",
        with_(
            SINGLE,
            alert={"integrations": [{"integration": "teams", "connection": "c", "text": "${Q:x}"}]},
        ),
        [("alert", "Bad placeholder ${Q:x}")],
    ),
]


@pytest.mark.parametrize(("record", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule(record: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert errors_of(record) == expected


VALID: list[tuple[str, dict[str, Any]]] = [
    ("single", SINGLE),
    ("grouped", GROUPED),
    ("grouped-dependency", with_(GROUPED, dependency="S:m0 and not F:m2")),
    ("tid-min", with_(SINGLE, tid=1001)),
    ("tid-max", with_(SINGLE, tid=2147483647)),
    ("name-max", with_(SINGLE, name="a" * 128)),
    ("name-charset", with_(SINGLE, name="9a_b-c.d")),
    ("name-keyword-inside", with_(SINGLE, name="android")),
    ("name-keyword-case", with_(SINGLE, name="AND")),
    ("host-charset", with_(SINGLE, run_on_host="prod-1.example.com:q_2")),
    ("run-frequency", with_(SINGLE, trigger_times=DROP, run_frequency="02:00-02:00-1440")),
    ("ordinal", with_(SINGLE, day_of_week=DROP, ordinal_day="last business day of every month")),
    ("legacy-zone", with_(SINGLE, timezone="US/Eastern")),
    ("calendar", with_(SINGLE, calendar="ops")),
    ("nulls-are-absent", with_(SINGLE, run_frequency=None, calendar=None, alert=None)),
    *[
        (f"range-{f}-{v}", with_(SINGLE, **{f: v}))
        for f, vs in [
            ("max_run_time", (1, 172800)),
            ("retry_attempts", (0, 10)),
            ("retry_delay", (0, 86400)),
            ("task_accept_expiry_time", (1, 86400)),
            ("misfire_grace", (0, 604800)),
        ]
        for v in vs
    ],
    *[(f"misfire-{p}", with_(SINGLE, misfire_policy=p)) for p in ("run_once", "skip", "run_all")],
    (
        "placeholders",
        with_(
            SINGLE,
            profile="etl",
            cmd="run ${E:YYYYMMDD} ${E:HH:MM} ${E:MY_VAR} ${T:task_name} ${T:task_id}",
            stdout="/logs/${T:task_id}.${E:HHMM}.out",
        ),
    ),
    ("profile-path", with_(SINGLE, profile="/etc/easytask/etl.env", stderr="${E:HH}.err")),
    ("dollar-without-brace", with_(SINGLE, cmd="echo $HOME $1 $")),
    (
        "alert-full",
        with_(
            SINGLE,
            alert={
                "alert_on": "failure",
                "integrations": [
                    {
                        "integration": "email",
                        "to": ["ops@example.com"],
                        "subject": "Task ${T:task_name} ${P:status}",
                        "body": "rc=${P:return_code} after ${P:duration}s\n${P:stderr}",
                    },
                    {
                        "integration": "slack",
                        "alert_on": "always",
                        "webhook_url": "https://hooks.example/x",
                        "text": "${T:task_name}: ${P:status}",
                    },
                    {"integration": "webhook", "url": "https://example/x", "body": {"a": 1}},
                    {"integration": "msteams", "connection": "ops", "text": "${P:stdout}"},
                ],
            },
        ),
    ),
]


@pytest.mark.parametrize("record", [c[1] for c in VALID], ids=[c[0] for c in VALID])
def test_valid(record: dict[str, Any]) -> None:
    task = validate_task(record, make_ctx())
    assert task.name == record["name"]


def test_example_2_3_is_valid() -> None:
    task = validate_task(EXAMPLE_2_3, make_ctx())
    assert task.to_json() == {
        **EXAMPLE_2_3,
        "team": "",
        "dependency": "",
        "profile": "",
        "retry_delay": 0,
        "misfire_policy": "run_once",
        "misfire_grace": 3600,
    }


def test_example_2_3_without_description_and_owner() -> None:
    record = with_(EXAMPLE_2_3, description=DROP, task_owner=DROP)
    task = validate_task(record, make_ctx())
    assert task.description == ""
    assert task.task_owner == "alice"


def test_not_an_object() -> None:
    assert errors_of(["name"]) == [("task", "task must be an object")]
    assert errors_of(None) == [("task", "task must be an object")]


def test_every_error_at_once_in_field_order() -> None:
    record = {
        "zzz": 1,
        "retry_attempts": 99,
        "name": "and",
        "tid": 5,
        "cmd": "",
        "run_on_host": "q 1",
        "active": "yes",
        "aaa": 2,
        "stdout": "o",
        "stderr": "e",
        "timezone": "Nowhere/City",
        "day_of_week": "1111100",
        "ordinal_day": "first day of every month",
        "dependency": "S:x",
    }
    assert errors_of(record) == [
        ("tid", "tid must be > 1000"),
        ("name", "name may contain only letters, digits, _ - . and cannot be and/or/not"),
        ("cmd", "cmd is required"),
        ("run_on_host", "run_on_host may contain only letters, digits, _ - . :"),
        ("active", "active must be a boolean"),
        ("timezone", "Unknown timezone Nowhere/City"),
        ("day_of_week", "Both day_of_week and ordinal_day defined"),
        ("trigger_times", "Neither trigger_times nor run_frequency defined"),
        ("dependency", "dependency cannot be defined for single task"),
        ("retry_attempts", "retry_attempts must be between 0 and 10"),
        ("zzz", "unknown field"),
        ("aaa", "unknown field"),
    ]


def test_validation_error_carries_field_errors() -> None:
    with pytest.raises(ValidationError) as info:
        validate_task(with_(SINGLE, name=DROP, tid=1), make_ctx())
    assert info.value.errors == [
        FieldError("tid", "tid must be > 1000"),
        FieldError("name", "name is required"),
    ]
    assert str(info.value) == "tid: tid must be > 1000; name: name is required"


def test_grouped_task_skips_single_task_rules() -> None:
    # No timezone, no schedule, a dependency: all fine for a member of a group.
    task = validate_task(with_(GROUPED, dependency="S:m0"), make_ctx())
    assert task.task_group == "etl"
    assert task.timezone is None
    assert task.dependency == "S:m0"


def test_grouped_task_with_many_schedule_fields() -> None:
    record = with_(
        GROUPED,
        timezone="UTC",
        trigger_times="bad",
        run_frequency="09:00-17:00-60",
        misfire_grace=10,
    )
    assert errors_of(record) == [
        ("timezone", "timezone defined for task in group"),
        ("trigger_times", "trigger_times/run_frequency defined for task in group"),
        ("run_frequency", "trigger_times/run_frequency defined for task in group"),
        ("misfire_grace", "misfire_grace defined for task in group"),
    ]


@pytest.mark.parametrize(
    ("field", "raw", "normalised"),
    [
        ("trigger_times", "(09:00, 14:00)", "09:00,14:00"),
        ("trigger_times", " 14:00,9:05 ,09:05", "09:05,14:00"),
        (
            "ordinal_day",
            "  Last   Business  DAY of every Month ",
            "last business day of every month",
        ),
        ("run_frequency", "9:00-17:00-060", "09:00-17:00-60"),
    ],
)
def test_normalisation(field: str, raw: str, normalised: str) -> None:
    drop = {"trigger_times": "run_frequency", "ordinal_day": "day_of_week"}
    other = drop.get(field, "trigger_times")
    record = with_(SINGLE, **{field: raw, other: DROP})
    task = validate_task(record, make_ctx())
    assert getattr(task, field) == normalised


def test_defaults_filled() -> None:
    task = validate_task(SINGLE, make_ctx(instance="prod"))
    assert task.tid == NEXT_TID
    assert task.task_owner == "alice"
    assert task.instance == "prod"
    assert task.active is True
    assert (task.description, task.team, task.dependency, task.profile) == ("", "", "", "")
    assert (task.retry_attempts, task.retry_delay) == (0, 0)
    assert (task.misfire_policy, task.misfire_grace) == ("run_once", 3600)
    assert task.max_run_time is None
    assert task.task_accept_expiry_time is None
    assert task.run_as_user is None
    assert task.calendar is None
    assert task.alert is None


def test_explicit_values_kept() -> None:
    task = validate_task(with_(SINGLE, tid=3000, task_owner="bob", active=False), make_ctx())
    assert (task.tid, task.task_owner, task.active) == (3000, "bob", False)


def test_blank_owner_gets_default() -> None:
    assert validate_task(with_(SINGLE, task_owner="  "), make_ctx()).task_owner == "alice"


def _stored(record: dict[str, Any]) -> tuple[TaskDef, TaskContext]:
    """A task as the store would hold it, and a context that knows its name."""
    task = validate_task(record, make_ctx())
    return task, make_ctx({task.name: task.tid})


def test_update_changes_one_field() -> None:
    existing, ctx = _stored(with_(SINGLE, calendar="ops", retry_attempts=2))
    updated = validate_task({"cmd": "echo bye"}, ctx, existing)
    assert updated.cmd == "echo bye"
    assert replace(updated, cmd="x") == replace(existing, cmd="x")


def test_update_keeps_own_name_and_tid() -> None:
    existing, ctx = _stored(SINGLE)
    updated = validate_task({"name": existing.name, "tid": existing.tid}, ctx, existing)
    assert updated == existing


def test_update_refuses_tid_change() -> None:
    existing, ctx = _stored(SINGLE)
    assert errors_of({"tid": existing.tid + 1}, ctx, existing) == [("tid", "tid cannot be changed")]


def test_update_null_tid_keeps_tid() -> None:
    existing, ctx = _stored(SINGLE)
    assert validate_task({"tid": None}, ctx, existing).tid == existing.tid


def test_update_null_removes_optional_field() -> None:
    existing, ctx = _stored(with_(SINGLE, calendar="ops", max_run_time=60, run_as_user="etl"))
    updated = validate_task({"calendar": None, "max_run_time": None}, ctx, existing)
    assert updated.calendar is None
    assert updated.max_run_time is None
    assert updated.run_as_user == "etl"


def test_update_null_on_required_field_is_refused() -> None:
    existing, ctx = _stored(SINGLE)
    assert errors_of({"cmd": None}, ctx, existing) == [("cmd", "cmd is required")]


def test_update_rename_to_taken_name() -> None:
    existing, ctx = _stored(SINGLE)
    assert errors_of({"name": "taken"}, ctx, existing) == [("name", "name already exists")]


def test_update_switch_schedule_form() -> None:
    existing, ctx = _stored(SINGLE)
    patch = {"trigger_times": None, "run_frequency": "09:00-17:00-30"}
    updated = validate_task(patch, ctx, existing)
    assert (updated.trigger_times, updated.run_frequency) == (None, "09:00-17:00-30")


def test_update_patch_is_validated_on_the_merged_record() -> None:
    existing, ctx = _stored(SINGLE)
    assert errors_of({"run_frequency": "09:00-17:00-30"}, ctx, existing) == [
        ("trigger_times", "Both trigger_times and run_frequency defined")
    ]


def test_update_grouped_task_does_not_inherit_stored_defaults() -> None:
    # The stored model carries misfire defaults; they must not count as "defined in group".
    existing, ctx = _stored(GROUPED)
    updated = validate_task({"cmd": "echo bye"}, ctx, existing)
    assert updated.cmd == "echo bye"
    assert updated.task_group == "etl"


def test_update_keeps_owner_and_does_not_consume_a_tid() -> None:
    existing, _ = _stored(with_(SINGLE, tid=3000, task_owner="bob"))
    calls: list[int] = []

    def next_tid() -> int:
        calls.append(NEXT_TID)
        return NEXT_TID

    ctx = replace(make_ctx({existing.name: existing.tid}), default_owner="carol", next_tid=next_tid)
    updated = validate_task({"team": "ops"}, ctx, existing)
    assert (updated.tid, updated.task_owner, updated.team) == (3000, "bob", "ops")
    assert calls == []


def test_update_move_single_task_into_group() -> None:
    existing, ctx = _stored(SINGLE)
    moved = {"task_group": "etl"}
    assert [f for f, _ in errors_of(moved, ctx, existing)] == [
        "timezone",
        "day_of_week",
        "trigger_times",
    ]
    cleared = {**moved, "timezone": None, "day_of_week": None, "trigger_times": None}
    assert validate_task(cleared, ctx, existing).task_group == "etl"


def test_update_unknown_field_in_patch() -> None:
    existing, ctx = _stored(SINGLE)
    assert errors_of({"colour": "red"}, ctx, existing) == [("colour", "unknown field")]

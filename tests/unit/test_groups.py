"""Task group validation (spec 3, 2.2 as it applies to groups): one case per rule and message."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from easytask.core.errors import FieldError, ValidationError
from easytask.core.groups import GROUP_FIELDS, GroupContext, GroupDef, validate_group

EXISTING_GID = 7
NEXT_GID = 42
DROP = object()  # marks a key to remove from the base record
NAME_MESSAGE = "name may contain only letters, digits, _ - . and cannot be and/or/not"

GROUP: dict[str, Any] = {
    "name": "etl",
    "timezone": "UTC",
    "day_of_week": "1111100",
    "trigger_times": "08:30",
}
NOT_ALLOWED: dict[str, Any] = {
    "run_on_host": "q1",
    "run_as_user": "etl",
    "profile": "etl",
    "max_run_time": 60,
    "cmd": "echo hi",
    "stdout": "g.out",
    "stderr": "g.err",
    "retry_attempts": 1,
    "task_group": "other",
}


def make_ctx(names: dict[str, int] | None = None, instance: str = "default") -> GroupContext:
    taken = {"taken": EXISTING_GID, **(names or {})}
    return GroupContext(
        instance=instance,
        gid_exists=lambda gid: gid in taken.values(),
        name_gid=taken.get,
        next_gid=lambda: NEXT_GID,
        calendar_exists=lambda name: name in {"US_HOLIDAYS", "ops"},
    )


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    record = {**base, **changes}
    return {k: v for k, v in record.items() if v is not DROP}


def errors_of(
    raw: object, ctx: GroupContext | None = None, existing: GroupDef | None = None
) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        validate_group(raw, ctx or make_ctx(), existing)
    return [(e.field, e.message) for e in info.value.errors]


def bad_dependency(detail: str) -> list[tuple[str, str]]:
    return [("dependency", f"Bad dependency expression ({detail})")]


# (id, record, [(field, message), ...]) — the exact and complete error list.
CASES: list[tuple[str, dict[str, Any], list[tuple[str, str]]]] = [
    # required / empty
    *[
        (f"{f}-missing", with_(GROUP, **{f: DROP}), [(f, f"{f} is required")])
        for f in ("name", "timezone", "trigger_times")
    ],
    ("name-empty", with_(GROUP, name=""), [("name", "name is required")]),
    (
        "trigger-blank",
        with_(GROUP, trigger_times="  "),
        [("trigger_times", "trigger_times is required")],
    ),
    ("timezone-null", with_(GROUP, timezone=None), [("timezone", "timezone is required")]),
    # JSON types
    ("gid-str", with_(GROUP, gid="3"), [("gid", "gid must be an integer")]),
    ("gid-bool", with_(GROUP, gid=True), [("gid", "gid must be an integer")]),
    ("gid-float", with_(GROUP, gid=3.0), [("gid", "gid must be an integer")]),
    ("name-int", with_(GROUP, name=5), [("name", "name must be a string")]),
    (
        "description-int",
        with_(GROUP, description=1),
        [("description", "description must be a string")],
    ),
    ("active-int", with_(GROUP, active=1), [("active", "active must be a boolean")]),
    (
        "run_day_of_week-str",
        with_(GROUP, run_day_of_week="true"),
        [("run_day_of_week", "run_day_of_week must be a boolean")],
    ),
    (
        "misfire_grace-bool",
        with_(GROUP, misfire_grace=False),
        [("misfire_grace", "misfire_grace must be an integer")],
    ),
    (
        "dependency-list",
        with_(GROUP, dependency=["S:a"]),
        [("dependency", "dependency must be a string")],
    ),
    (
        "trigger-int",
        with_(GROUP, trigger_times=830),
        [("trigger_times", "trigger_times must be a string")],
    ),
    # lengths (spec 3 / 16)
    *[
        (
            f"{f}-too-long",
            with_(GROUP, **{f: "a" * (n + 1)}),
            [(f, f"{f} must be at most {n} characters")],
        )
        for f, n in [("name", 128), ("description", 256), ("team", 64)]
    ],
    (
        "timezone-too-long",
        with_(GROUP, timezone="A" * 65),
        [
            ("timezone", "timezone must be at most 64 characters"),
            ("timezone", "Unknown timezone '" + "A" * 64 + "'…"),
        ],
    ),
    (
        "calendar-too-long",
        with_(GROUP, calendar="c" * 65),
        [
            ("calendar", "calendar must be at most 64 characters"),
            ("calendar", "calendar does not exist"),
        ],
    ),
    (
        "ordinal-too-long",
        with_(GROUP, day_of_week=DROP, ordinal_day="first day of every month" + " " * 41),
        [("ordinal_day", "ordinal_day must be at most 64 characters")],
    ),
    (
        "dependency-too-long",
        with_(GROUP, dependency="S:a and " * 256 + "S:b"),
        [("dependency", "dependency must be at most 2048 characters")],
    ),
    # unknown fields: not in section 3 and not one of the named task fields
    *[
        (f"unknown-{f}", with_(GROUP, **{f: v}), [(f, "unknown field")])
        for f, v in [
            ("owner", "bob"),
            ("task_owner", "bob"),
            ("retry_delay", 5),
            ("task_accept_expiry_time", 60),
            ("alert", {"integrations": []}),
            ("tid", 1001),
        ]
    ],
    # gid
    ("gid-0", with_(GROUP, gid=0), [("gid", "gid must be at least 1")]),
    ("gid-negative", with_(GROUP, gid=-3), [("gid", "gid must be at least 1")]),
    ("gid-too-big", with_(GROUP, gid=2147483648), [("gid", "gid must be at most 2147483647")]),
    ("gid-exists", with_(GROUP, gid=EXISTING_GID), [("gid", "gid already exists")]),
    # name
    *[
        (f"name-{name!r}", with_(GROUP, name=name), [("name", NAME_MESSAGE)])
        for name in ("bad name", "-lead", "_lead", ".lead", "a/b", "a:b", "and", "or", "not", "é")
    ],
    ("name-exists", with_(GROUP, name="taken"), [("name", "name already exists")]),
    # task-only fields
    (
        "run_frequency",
        with_(GROUP, run_frequency="09:00-17:00-60"),
        [("run_frequency", "run_frequency defined for task group")],
    ),
    (
        "run_frequency-instead-of-trigger",
        with_(GROUP, trigger_times=DROP, run_frequency="09:00-17:00-60"),
        [
            ("trigger_times", "trigger_times is required"),
            ("run_frequency", "run_frequency defined for task group"),
        ],
    ),
    *[
        (f"not-allowed-{f}", with_(GROUP, **{f: v}), [(f, f"{f} not allowed for task group")])
        for f, v in NOT_ALLOWED.items()
    ],
    (
        "not-allowed-wrong-type",
        with_(GROUP, cmd=5),
        [("cmd", "cmd not allowed for task group")],
    ),
    # day selection
    (
        "dow-and-ordinal",
        with_(GROUP, ordinal_day="last day of every month"),
        [("day_of_week", "Both day_of_week and ordinal_day defined")],
    ),
    (
        "dow-nor-ordinal",
        with_(GROUP, day_of_week=DROP),
        [("day_of_week", "Neither day_of_week nor ordinal_day defined")],
    ),
    (
        "dow-empty-is-absent",
        with_(GROUP, day_of_week=""),
        [("day_of_week", "Neither day_of_week nor ordinal_day defined")],
    ),
    *[
        (
            f"dow-bad-{text!r}",
            with_(GROUP, day_of_week=text),
            [("day_of_week", "Bad entry in Day of Week field")],
        )
        for text in ("0000000", "111110", "11111000", "1111102", "MON-FRI")
    ],
    *[
        (
            f"ordinal-bad-{text!r}",
            with_(GROUP, day_of_week=DROP, ordinal_day=text),
            [("ordinal_day", "Bad entry in Ordinal Day field")],
        )
        for text in ("first monday", "sixth day of every month", "last holiday of every month")
    ],
    # trigger_times and timezone
    *[
        (
            f"trigger-bad-{text!r}",
            with_(GROUP, trigger_times=text),
            [("trigger_times", "Bad entry in Trigger Times field")],
        )
        for text in ("24:00", "8:60", "2:30 PM", "08:30,,09:00", "0830", "((08:30))", "08:30,")
    ],
    (
        "timezone-unknown",
        with_(GROUP, timezone="Mars/Olympus"),
        [("timezone", "Unknown timezone Mars/Olympus")],
    ),
    (
        "timezone-path",
        with_(GROUP, timezone="/etc/localtime"),
        [("timezone", "Unknown timezone /etc/localtime")],
    ),
    # existence
    ("instance-other", with_(GROUP, instance="prod"), [("instance", "instance does not exist")]),
    ("calendar-unknown", with_(GROUP, calendar="XX"), [("calendar", "calendar does not exist")]),
    # misfire settings
    (
        "misfire-policy",
        with_(GROUP, misfire_policy="sometimes"),
        [("misfire_policy", "misfire_policy must be one of run_once, skip, run_all")],
    ),
    *[
        (
            f"misfire-grace-{v}",
            with_(GROUP, misfire_grace=v),
            [("misfire_grace", "misfire_grace must be between 0 and 604800")],
        )
        for v in (-1, 604801)
    ],
    # dependency syntax
    (
        "dependency-trailing-and",
        with_(GROUP, dependency="S:a and"),
        bad_dependency("unexpected end of expression"),
    ),
    (
        "dependency-letter",
        with_(GROUP, dependency="X:a"),
        bad_dependency("unknown state letter 'X' at position 0"),
    ),
    (
        "dependency-space",
        with_(GROUP, dependency="S: a"),
        bad_dependency("unexpected space after ':' at position 2"),
    ),
    (
        "dependency-nesting",
        with_(GROUP, dependency="(" * 33 + "S:a" + ")" * 33),
        bad_dependency("nesting deeper than 32"),
    ),
]


@pytest.mark.parametrize(("record", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule(record: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert errors_of(record) == expected


VALID: list[tuple[str, dict[str, Any]]] = [
    ("minimal", GROUP),
    ("gid-min", with_(GROUP, gid=1)),
    ("gid-max", with_(GROUP, gid=2147483647)),
    ("name-max", with_(GROUP, name="a" * 128)),
    ("name-charset", with_(GROUP, name="9a_b-c.d")),
    ("name-keyword-inside", with_(GROUP, name="android")),
    ("name-of-a-task-is-fine", with_(GROUP, name="t1")),
    ("ordinal", with_(GROUP, day_of_week=DROP, ordinal_day="last business day of every month")),
    ("legacy-zone", with_(GROUP, timezone="US/Eastern")),
    ("calendar", with_(GROUP, calendar="US_HOLIDAYS")),
    ("instance", with_(GROUP, instance="default")),
    ("dependency", with_(GROUP, dependency="(S:extract and not F:load) or S:other")),
    ("blank-dependency", with_(GROUP, dependency="   ")),
    ("nulls-are-absent", with_(GROUP, calendar=None, ordinal_day=None, cmd=None)),
    ("blank-task-field-is-absent", with_(GROUP, cmd="", run_frequency=" ")),
    ("free-text", with_(GROUP, description="Nightly ETL", team="data")),
    ("inactive", with_(GROUP, active=False, run_day_of_week=False)),
    *[(f"misfire-{p}", with_(GROUP, misfire_policy=p)) for p in ("run_once", "skip", "run_all")],
    *[(f"misfire-grace-{v}", with_(GROUP, misfire_grace=v)) for v in (0, 604800)],
]


@pytest.mark.parametrize("record", [c[1] for c in VALID], ids=[c[0] for c in VALID])
def test_valid(record: dict[str, Any]) -> None:
    group = validate_group(record, make_ctx())
    assert group.name == record["name"]


def test_not_an_object() -> None:
    assert errors_of(["etl"]) == [("group", "group must be an object")]
    assert errors_of(None) == [("group", "group must be an object")]


def test_every_error_at_once_in_field_order() -> None:
    record = {
        "zzz": 1,
        "cmd": "x",
        "misfire_grace": -1,
        "run_frequency": "09:00-17:00-60",
        "name": "or",
        "gid": 0,
        "active": "yes",
        "timezone": "Nowhere/City",
        "day_of_week": "1111100",
        "ordinal_day": "first day of every month",
        "dependency": "S:a or",
        "run_on_host": "q1",
    }
    assert errors_of(record) == [
        ("gid", "gid must be at least 1"),
        ("name", NAME_MESSAGE),
        ("active", "active must be a boolean"),
        ("timezone", "Unknown timezone Nowhere/City"),
        ("day_of_week", "Both day_of_week and ordinal_day defined"),
        ("trigger_times", "trigger_times is required"),
        ("dependency", "Bad dependency expression (unexpected end of expression)"),
        ("misfire_grace", "misfire_grace must be between 0 and 604800"),
        ("cmd", "cmd not allowed for task group"),
        ("run_on_host", "run_on_host not allowed for task group"),
        ("run_frequency", "run_frequency defined for task group"),
        ("zzz", "unknown field"),
    ]


def test_validation_error_text() -> None:
    with pytest.raises(ValidationError) as info:
        validate_group(with_(GROUP, name=DROP, gid=0), make_ctx())
    assert info.value.errors == [
        FieldError("gid", "gid must be at least 1"),
        FieldError("name", "name is required"),
    ]
    assert str(info.value) == "gid: gid must be at least 1; name: name is required"


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
    ],
)
def test_normalisation(field: str, raw: str, normalised: str) -> None:
    record = with_(GROUP, **{field: raw})
    if field == "ordinal_day":
        record = with_(record, day_of_week=DROP)
    assert getattr(validate_group(record, make_ctx()), field) == normalised


def test_defaults_filled() -> None:
    group = validate_group(GROUP, make_ctx(instance="prod"))
    assert group == GroupDef(
        gid=NEXT_GID,
        name="etl",
        timezone="UTC",
        trigger_times="08:30",
        day_of_week="1111100",
        instance="prod",
    )
    assert (group.description, group.team, group.dependency, group.calendar) == ("", "", "", None)
    assert (group.active, group.run_day_of_week) == (True, True)
    assert (group.misfire_policy, group.misfire_grace) == ("run_once", 3600)


def test_explicit_values_kept() -> None:
    record = with_(GROUP, gid=3, active=False, misfire_policy="skip", misfire_grace=0)
    group = validate_group(record, make_ctx())
    assert (group.gid, group.active, group.misfire_policy, group.misfire_grace) == (
        3,
        False,
        "skip",
        0,
    )


def test_to_json_in_spec_order_without_absent_fields() -> None:
    record = with_(GROUP, gid=3, dependency="S:extract", trigger_times="9:00")
    out = validate_group(record, make_ctx()).to_json()
    assert out == {
        "gid": 3,
        "name": "etl",
        "description": "",
        "team": "",
        "active": True,
        "instance": "default",
        "timezone": "UTC",
        "day_of_week": "1111100",
        "trigger_times": "09:00",
        "dependency": "S:extract",
        "misfire_policy": "run_once",
        "misfire_grace": 3600,
        "run_day_of_week": True,
    }
    assert list(out) == [f for f in GROUP_FIELDS if f in out]


def test_json_round_trip() -> None:
    group = validate_group(with_(GROUP, calendar="ops", team="data", gid=9), make_ctx())
    assert GroupDef.from_json_text(group.to_json_text()) == group
    assert GroupDef.from_dict(group.to_json()) == group
    assert validate_group(group.to_json(), make_ctx()) == group


def test_non_defaults() -> None:
    group = validate_group(with_(GROUP, gid=9, team="data"), make_ctx())
    assert group.non_defaults() == {
        "gid": 9,
        "name": "etl",
        "timezone": "UTC",
        "trigger_times": "08:30",
        "day_of_week": "1111100",
        "team": "data",
    }


def _stored(record: dict[str, Any]) -> tuple[GroupDef, GroupContext]:
    """A group as the store would hold it, and a context that knows its name and gid."""
    group = validate_group(record, make_ctx())
    return group, make_ctx({group.name: group.gid})


def test_update_changes_one_field() -> None:
    existing, ctx = _stored(with_(GROUP, calendar="ops", misfire_grace=10))
    updated = validate_group({"trigger_times": "(18:00, 6:00)"}, ctx, existing)
    assert updated.trigger_times == "06:00,18:00"
    assert replace(updated, trigger_times="x") == replace(existing, trigger_times="x")


def test_update_keeps_own_name_and_gid() -> None:
    existing, ctx = _stored(GROUP)
    assert validate_group({"name": "etl", "gid": existing.gid}, ctx, existing) == existing


def test_update_empty_patch_is_identity() -> None:
    existing, ctx = _stored(with_(GROUP, instance="default", team="t", active=False))
    assert validate_group({}, ctx, existing) == existing


def test_update_refuses_gid_change() -> None:
    existing, ctx = _stored(GROUP)
    assert errors_of({"gid": existing.gid + 1}, ctx, existing) == [("gid", "gid cannot be changed")]


def test_update_null_gid_keeps_gid() -> None:
    existing, ctx = _stored(GROUP)
    assert validate_group({"gid": None}, ctx, existing).gid == existing.gid


def test_update_null_removes_optional_field() -> None:
    existing, ctx = _stored(with_(GROUP, calendar="ops", dependency="S:x", team="data"))
    updated = validate_group({"calendar": None, "dependency": None}, ctx, existing)
    assert (updated.calendar, updated.dependency, updated.team) == (None, "", "data")


def test_update_null_on_required_field_is_refused() -> None:
    existing, ctx = _stored(GROUP)
    assert errors_of({"timezone": None}, ctx, existing) == [("timezone", "timezone is required")]


def test_update_rename_to_taken_name() -> None:
    existing, ctx = _stored(GROUP)
    assert errors_of({"name": "taken"}, ctx, existing) == [("name", "name already exists")]


def test_update_switch_day_selection() -> None:
    existing, ctx = _stored(GROUP)
    patch = {"day_of_week": None, "ordinal_day": "first Monday of every month"}
    updated = validate_group(patch, ctx, existing)
    assert (updated.day_of_week, updated.ordinal_day) == (None, "first monday of every month")


def test_update_adding_second_day_selection_is_refused() -> None:
    existing, ctx = _stored(GROUP)
    patch = {"ordinal_day": "first day of every month"}
    assert errors_of(patch, ctx, existing) == [
        ("day_of_week", "Both day_of_week and ordinal_day defined")
    ]


def test_update_refuses_task_fields() -> None:
    existing, ctx = _stored(GROUP)
    assert errors_of({"run_frequency": "01:00-02:00-5", "cmd": "x"}, ctx, existing) == [
        ("cmd", "cmd not allowed for task group"),
        ("run_frequency", "run_frequency defined for task group"),
    ]


def test_update_with_non_default_instance_keeps_it() -> None:
    ctx = make_ctx(instance="prod")
    existing = validate_group(GROUP, ctx)
    assert validate_group({"team": "x"}, ctx, existing).instance == "prod"

"""Instance-wide dependency checks (spec 6.3, 3): scope, cycles, renames, deletes, cascade."""

from __future__ import annotations

from dataclasses import replace

import pytest

from easytask.core.depcheck import (
    check_dependencies,
    clear_reference,
    dependency_errors_for_group,
    dependency_errors_for_task,
    group_delete_blockers,
    referenced_names,
    referrers,
    renaming_errors,
    task_delete_blockers,
)
from easytask.core.errors import FieldError
from easytask.core.groups import GroupDef
from easytask.core.models import TaskDef


def make_task(tid: int, name: str, group: str | None = None, dep: str = "") -> TaskDef:
    task = TaskDef(tid=tid, name=name, cmd="true", run_on_host="q", stdout="o", stderr="e")
    if group is None:
        return replace(task, timezone="UTC", day_of_week="1111111", trigger_times="08:00")
    return replace(task, task_group=group, dependency=dep)


def make_group(gid: int, name: str, dep: str = "") -> GroupDef:
    return GroupDef(
        gid=gid,
        name=name,
        timezone="UTC",
        trigger_times="08:00",
        day_of_week="1111111",
        dependency=dep,
    )


# The instance: group etl (extract <- transform <- load, extract <- audit), group rpt
# (report <- mail), a single task, and groups etl <- rpt, arch. A task and a group may share a
# name ("arch").
TASK_LIST = [
    make_task(1001, "extract", "etl"),
    make_task(1002, "transform", "etl", "S:extract"),
    make_task(1003, "load", "etl", "S:transform and not F:transform"),
    make_task(1004, "audit", "etl", "not S:extract"),
    make_task(1011, "report", "rpt"),
    make_task(1012, "mail", "rpt", "S:report"),
    make_task(1020, "lonely"),
    make_task(1021, "arch", "arch"),
]
TASKS = {t.tid: t for t in TASK_LIST}
BY_NAME = {t.name: t for t in TASK_LIST}
GROUPS = {
    g.gid: g for g in [make_group(1, "etl"), make_group(2, "rpt", "S:etl"), make_group(3, "arch")]
}
GROUP_BY_NAME = {g.name: g for g in GROUPS.values()}


def cycle(*path: str) -> FieldError:
    return FieldError("dependency", f"circular dependency detected ({' -> '.join(path)})")


def dep(message: str) -> FieldError:
    return FieldError("dependency", message)


def after(*changed: TaskDef) -> dict[int, TaskDef]:
    """The task map with ``changed`` applied (as the catalog passes it)."""
    return {**TASKS, **{t.tid: t for t in changed}}


def with_dep(name: str, text: str) -> TaskDef:
    return replace(BY_NAME[name], dependency=text)


# --- grouped and single tasks --------------------------------------------------------------------

TASK_CASES: list[tuple[str, TaskDef, list[FieldError]]] = [
    ("in-scope", with_dep("load", "S:transform and not F:audit"), []),
    ("no-dependency", with_dep("load", ""), []),
    ("unknown", with_dep("load", "S:nope"), [dep("dependency references unknown task nope")]),
    (
        "other-group",
        with_dep("load", "S:report"),
        [dep("dependency references report outside task group etl")],
    ),
    (
        "single-task",
        with_dep("load", "S:lonely"),
        [dep("dependency references lonely outside task group etl")],
    ),
    ("group-name", with_dep("load", "S:rpt"), [dep("dependency references unknown task rpt")]),
    ("self", with_dep("load", "S:load"), [cycle("load", "load")]),
    ("two-cycle", with_dep("extract", "S:transform"), [cycle("extract", "transform", "extract")]),
    (
        "three-cycle",
        with_dep("extract", "F:load"),
        [cycle("extract", "load", "transform", "extract")],
    ),
    (
        "cycle-found-from-middle",
        with_dep("transform", "S:extract or S:load"),
        [cycle("transform", "load", "transform")],
    ),
    (
        "syntax",
        with_dep("load", "S:transform and"),
        [dep("Bad dependency expression (unexpected end of expression)")],
    ),
    (
        "single-with-dependency",
        replace(BY_NAME["lonely"], dependency="S:extract"),
        [dep("dependency cannot be defined for single task")],
    ),
    (
        "everything-at-once",
        with_dep("extract", "S:zz or S:mail or S:load"),
        [
            dep("dependency references unknown task zz"),
            dep("dependency references mail outside task group etl"),
            cycle("extract", "load", "transform", "extract"),
        ],
    ),
    (
        "moved-out-while-referenced",
        replace(BY_NAME["transform"], task_group="rpt", dependency=""),
        [FieldError("task_group", "name is referenced by dependency of load")],
    ),
    (
        "became-single-while-referenced",
        replace(BY_NAME["extract"], task_group=None, timezone="UTC", trigger_times="08:00"),
        [FieldError("task_group", "name is referenced by dependency of audit, transform")],
    ),
    ("moved-unreferenced", replace(BY_NAME["load"], task_group="rpt", dependency="S:report"), []),
]


@pytest.mark.parametrize(
    ("task", "expected"), [c[1:] for c in TASK_CASES], ids=[c[0] for c in TASK_CASES]
)
def test_task_dependency(task: TaskDef, expected: list[FieldError]) -> None:
    assert dependency_errors_for_task(task, after(task)) == expected
    # The catalog may also pass the map without the changed task: same answer.
    without = {k: v for k, v in after(task).items() if k != task.tid}
    assert dependency_errors_for_task(task, without) == expected


def test_new_task_joins_group_and_depends() -> None:
    new = make_task(1005, "publish", "etl", "S:load and S:extract")
    assert dependency_errors_for_task(new, after(new)) == []


def test_new_task_closing_a_cycle() -> None:
    new = make_task(1005, "check", "etl", "S:load")
    changed = with_dep("extract", "S:check")
    tasks = after(new, changed)
    assert dependency_errors_for_task(changed, tasks) == [
        cycle("extract", "check", "load", "transform", "extract")
    ]


def test_cycle_elsewhere_is_not_blamed() -> None:
    # An older cycle the task does not reach (not possible after validation, but harmless).
    broken = after(with_dep("extract", "S:transform"))
    assert dependency_errors_for_task(BY_NAME["mail"], broken) == []


def test_long_chain_in_a_group() -> None:
    chain = [make_task(5000 + i, f"c{i}", "big", f"S:c{i + 1}") for i in range(3000)]
    last = make_task(8000, "c3000", "big")
    tasks = {t.tid: t for t in [*chain, last]}
    assert dependency_errors_for_task(chain[0], tasks) == []
    closing = replace(last, dependency="S:c0")
    tasks[last.tid] = closing
    errors = dependency_errors_for_task(closing, tasks)
    assert len(errors) == 1
    assert errors[0].message.startswith("circular dependency detected (c3000 -> c0 -> c1 ->")
    assert errors[0].message.endswith("c2999 -> c3000)")


# --- groups --------------------------------------------------------------------------------------

GROUP_CASES: list[tuple[str, GroupDef, list[FieldError]]] = [
    ("in-scope", replace(GROUP_BY_NAME["rpt"], dependency="S:etl and not F:arch"), []),
    ("none", GROUP_BY_NAME["arch"], []),
    (
        "task-name",
        replace(GROUP_BY_NAME["rpt"], dependency="S:extract"),
        [dep("dependency references extract which is not a task group")],
    ),
    (
        "unknown",
        replace(GROUP_BY_NAME["rpt"], dependency="S:nope or S:etl"),
        [dep("dependency references nope which is not a task group")],
    ),
    ("self", replace(GROUP_BY_NAME["arch"], dependency="S:arch"), [cycle("arch", "arch")]),
    (
        "two-cycle",
        replace(GROUP_BY_NAME["etl"], dependency="S:rpt"),
        [cycle("etl", "rpt", "etl")],
    ),
    (
        "syntax",
        replace(GROUP_BY_NAME["arch"], dependency="S:etl S:rpt"),
        [dep("Bad dependency expression (unexpected 'S:rpt' at position 6)")],
    ),
]


@pytest.mark.parametrize(
    ("group", "expected"), [c[1:] for c in GROUP_CASES], ids=[c[0] for c in GROUP_CASES]
)
def test_group_dependency(group: GroupDef, expected: list[FieldError]) -> None:
    groups = {**GROUPS, group.gid: group}
    assert dependency_errors_for_group(group, groups) == expected
    without = {k: v for k, v in groups.items() if k != group.gid}
    assert dependency_errors_for_group(group, without) == expected


def test_group_cycle_of_three() -> None:
    groups = {
        **GROUPS,
        3: replace(GROUP_BY_NAME["arch"], dependency="S:rpt"),
        1: replace(GROUP_BY_NAME["etl"], dependency="S:arch"),
    }
    assert dependency_errors_for_group(groups[1], groups) == [cycle("etl", "arch", "rpt", "etl")]


# --- the whole instance --------------------------------------------------------------------------


def test_consistent_instance() -> None:
    assert check_dependencies(TASKS, GROUPS) == {}


def test_whole_instance_errors() -> None:
    tasks = after(
        with_dep("extract", "S:transform"),  # cycle with transform
        with_dep("mail", "S:report and S:lonely"),  # out of scope
        replace(BY_NAME["lonely"], dependency="S:x"),  # single task with a dependency
        make_task(1030, "a", "g2", "S:b"),
        make_task(1031, "b", "g2", "S:a or S:b"),  # a <-> b and b -> b
    )
    groups = {**GROUPS, 1: replace(GROUP_BY_NAME["etl"], dependency="S:rpt and S:load")}
    assert check_dependencies(tasks, groups) == {
        ("task", 1001): [cycle("extract", "transform", "extract")],
        ("task", 1002): [cycle("transform", "extract", "transform")],
        ("task", 1012): [dep("dependency references lonely outside task group rpt")],
        ("task", 1020): [dep("dependency cannot be defined for single task")],
        ("task", 1030): [cycle("a", "b", "a")],
        ("task", 1031): [cycle("b", "a", "b")],
        ("group", 1): [
            dep("dependency references load which is not a task group"),
            cycle("etl", "rpt", "etl"),
        ],
        ("group", 2): [cycle("rpt", "etl", "rpt")],
    }


def test_whole_instance_syntax_error() -> None:
    tasks = after(with_dep("load", "S:transform and"))
    assert check_dependencies(tasks, GROUPS) == {
        ("task", 1003): [dep("Bad dependency expression (unexpected end of expression)")]
    }


def test_whole_instance_disjoint_cycles_in_one_group() -> None:
    tasks = {
        t.tid: t
        for t in [
            make_task(1, "a", "g", "S:b"),
            make_task(2, "b", "g", "S:a"),
            make_task(3, "c", "g", "S:d"),
            make_task(4, "d", "g", "S:c"),
        ]
    }
    assert sorted(check_dependencies(tasks, {})) == [
        ("task", 1),
        ("task", 2),
        ("task", 3),
        ("task", 4),
    ]


# --- renames -------------------------------------------------------------------------------------


def test_referrers() -> None:
    assert referrers("extract", TASKS.values()) == ["audit", "transform"]
    assert referrers("etl", GROUPS.values()) == ["rpt"]
    assert referrers("load", TASKS.values()) == []
    # Substrings and other name spaces do not count.
    assert referrers("extr", TASKS.values()) == []
    assert referrers("extract", GROUPS.values()) == []


@pytest.mark.parametrize(
    ("old", "new", "refs", "expected"),
    [
        (
            "extract",
            "extract2",
            ["transform", "load"],
            [FieldError("name", "name is referenced by dependency of load, transform")],
        ),
        ("extract", "extract", ["transform", "load"], []),
        ("load", "load2", [], []),
        ("etl", "etl2", ["rpt"], [FieldError("name", "name is referenced by dependency of rpt")]),
    ],
)
def test_renaming_errors(old: str, new: str, refs: list[str], expected: list[FieldError]) -> None:
    assert renaming_errors(old, new, refs) == expected


def test_rename_through_referrers() -> None:
    refs = referrers("etl", GROUPS.values())
    assert renaming_errors("etl", "etl_v2", refs) == [
        FieldError("name", "name is referenced by dependency of rpt")
    ]


# --- deletes and cascade -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("extract", ["name is referenced by dependency of audit, transform"]),
        ("transform", ["name is referenced by dependency of load"]),
        ("load", []),
        ("lonely", []),
    ],
)
def test_task_delete_blockers(name: str, expected: list[str]) -> None:
    assert task_delete_blockers(BY_NAME[name], TASKS) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("etl", ["group has 4 tasks", "name is referenced by dependency of rpt"]),
        ("rpt", ["group has 2 tasks"]),
        ("arch", ["group has 1 tasks"]),
    ],
)
def test_group_delete_blockers(name: str, expected: list[str]) -> None:
    assert group_delete_blockers(GROUP_BY_NAME[name], TASKS, GROUPS) == expected


def test_empty_unreferenced_group_can_be_deleted() -> None:
    empty = make_group(9, "empty")
    assert group_delete_blockers(empty, TASKS, {**GROUPS, 9: empty}) == []


@pytest.mark.parametrize(
    ("text", "name", "expected"),
    [
        ("S:extract", "extract", ""),
        ("(S:transform and not F:extract) or S:x", "extract", ""),
        ("S:extract2 and S:my.extract", "extract", "S:extract2 and S:my.extract"),
        ("S:transform", "extract", "S:transform"),
        ("", "extract", ""),
        ("S:extract and", "extract", "S:extract and"),  # unparsable: kept
    ],
)
def test_clear_reference(text: str, name: str, expected: str) -> None:
    assert clear_reference(text, name) == expected


def test_cascade_delete_leaves_a_consistent_instance() -> None:
    doomed = BY_NAME["extract"]
    tasks = {
        tid: replace(t, dependency=clear_reference(t.dependency, doomed.name))
        for tid, t in TASKS.items()
        if tid != doomed.tid
    }
    assert tasks[1002].dependency == ""
    assert tasks[1003].dependency == "S:transform and not F:transform"
    assert tasks[1004].dependency == ""
    assert tasks[1012].dependency == "S:report"
    assert check_dependencies(tasks, GROUPS) == {}


def test_referenced_names() -> None:
    assert referenced_names("S:a and (F:b or not S:a)") == {"a", "b"}
    assert referenced_names("  ") == frozenset()
    assert referenced_names("S:a or") == frozenset()

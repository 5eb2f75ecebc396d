"""Import planning (spec 12): each valid record applied, each invalid one listed, deletions only
when nothing failed, ``atomic`` all or nothing, unchanged records counted apart (issue 11)."""

from __future__ import annotations

from typing import Any

import pytest

from easytask.core.errors import ValidationError
from easytask.core.groups import GroupContext, GroupDef
from easytask.core.models import TaskDef
from easytask.core.validation import TaskContext
from easytask.scheduler.importer import ImportPlan, parse_import, plan_import

TCTX = TaskContext(instance="default", default_owner="ops", tid_exists=lambda _: False,
                   name_tid=lambda _: None, next_tid=lambda: 1001,
                   calendar_exists=lambda _: False, group_exists=lambda _: False)  # fmt: skip
GCTX = GroupContext(instance="default", gid_exists=lambda _: False, name_gid=lambda _: None,
                    next_gid=lambda: 1, calendar_exists=lambda _: False)  # fmt: skip


def doc(tid: int | None, name: str, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "cmd": "true", "run_on_host": "q", "stdout": "o",
                           "stderr": "e", "timezone": "UTC", "day_of_week": "1111111",
                           "trigger_times": "08:00", "task_owner": "ops", **extra}  # fmt: skip
    if tid is not None:
        out["tid"] = tid
    return out


def task(tid: int, name: str) -> TaskDef:
    return TaskDef(tid=tid, name=name, cmd="true", run_on_host="q", stdout="o", stderr="e",
                   timezone="UTC", day_of_week="1111111", trigger_times="08:00",
                   task_owner="ops")  # fmt: skip


def plan(records: list[dict[str, Any]], current: dict[int, TaskDef], **kw: Any) -> ImportPlan:
    return plan_import(records, [], current, {}, TCTX, GCTX, **kw)


def counts(p: ImportPlan) -> tuple[int, int, int, int]:
    r = p.result
    return r.created, r.updated, r.unchanged, r.deleted


def test_a_bad_record_is_listed_and_the_good_ones_still_apply() -> None:
    current = {1001: task(1001, "kept"), 1002: task(1002, "absent")}
    p = plan([doc(1001, "kept", cmd="echo new"), doc(1003, "fresh"), doc(7, "bad")],
             current)  # fmt: skip
    assert sorted(p.tasks) == [1001, 1003]
    assert [(k, n) for k, n, _ in p.result.errors] == [("task", "bad")]
    # Something failed: what the file leaves out is not deleted.
    assert p.doomed_tasks == [] and counts(p) == (1, 1, 0, 0)


def test_atomic_applies_nothing_when_any_record_fails() -> None:
    current = {1001: task(1001, "kept"), 1002: task(1002, "absent")}
    p = plan([doc(1003, "fresh"), doc(1004, "bad", trigger_times="25:00")], current, atomic=True)
    assert (p.tasks, p.doomed_tasks, counts(p)) == ({}, [], (0, 0, 0, 0))
    assert len(p.result.errors) == 1


def test_without_errors_the_file_is_the_whole_truth() -> None:
    current = {1001: task(1001, "kept"), 1002: task(1002, "absent")}
    p = plan([doc(1001, "kept"), doc(None, "fresh")], current, atomic=True)
    assert p.doomed_tasks == [1002]
    assert sorted(p.tasks) == [1003], "the unchanged record is not written"
    assert counts(p) == (1, 0, 1, 1)


def test_reimporting_an_unchanged_export_changes_nothing() -> None:
    current = {1001: task(1001, "a"), 1002: task(1002, "b")}
    records = [t.to_json() for t in current.values()]
    p = plan(records, current)
    assert (p.tasks, counts(p), p.result.errors) == ({}, (0, 0, 2, 0), [])


def test_a_record_depending_on_a_dropped_one_is_dropped_too() -> None:
    groups = [{"name": "g", "timezone": "UTC", "day_of_week": "1111111", "trigger_times": "08:00"}]
    member = {"cmd": "true", "run_on_host": "q", "stdout": "o", "stderr": "e", "task_group": "g"}
    records = [
        {"tid": 1001, "name": "first", **member, "dependency": "S:ghost"},
        {"tid": 1002, "name": "second", **member, "dependency": "S:first"},
        {"tid": 1003, "name": "third", **member},
    ]
    p = plan_import(records, groups, {}, {}, TCTX, GCTX)
    assert sorted(p.tasks) == [1003] and sorted(p.groups) == [1]
    assert [n for _, n, _ in p.result.errors] == ["first", "second"]


def test_members_of_a_refused_group_are_refused() -> None:
    member = {"cmd": "true", "run_on_host": "q", "stdout": "o", "stderr": "e", "task_group": "g"}
    p = plan_import([{"tid": 1001, "name": "m", **member}],
                    [{"name": "g", "timezone": "UTC"}], {}, {}, TCTX, GCTX)  # fmt: skip
    assert p.tasks == {} and {k for k, _, _ in p.result.errors} == {"group", "task"}


def test_a_retired_tid_is_taken_and_never_the_next_one() -> None:
    p = plan([doc(1005, "again"), doc(None, "new")], {}, retired_tids=frozenset({1005, 1009}))
    assert [(n, m) for _, n, m in p.result.errors] == [("again", "tid: tid already exists")]
    assert [t.tid for t in p.tasks.values()] == [1010]


@pytest.mark.parametrize("key", ["task", "calendars", "Tasks"])
def test_an_unknown_top_level_key_is_refused_naming_it(key: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_import(f'{{"tasks": [], "{key}": []}}')
    assert [e.field for e in info.value.errors] == [key]
    assert "unknown field" in info.value.errors[0].message


def test_group_ids_are_matched_and_unchanged_counted() -> None:
    g = GroupDef(gid=3, name="g", timezone="UTC", trigger_times="08:00", day_of_week="1111111")
    p = plan_import([], [g.to_json()], {}, {3: g}, TCTX, GCTX)
    assert (p.groups, counts(p)) == ({}, (0, 0, 1, 0))

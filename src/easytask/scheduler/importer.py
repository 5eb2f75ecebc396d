"""Import planning: make tasks and groups match a file, all or nothing (spec 12, issue 4)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from easytask.core.depcheck import check_dependencies
from easytask.core.errors import FieldError, ValidationError
from easytask.core.groups import GroupContext, GroupDef, validate_group
from easytask.core.models import TaskDef
from easytask.core.validation import TaskContext, validate_task

TaskContextFor = Callable[[dict[int, TaskDef], dict[int, GroupDef]], TaskContext]
GroupContextFor = Callable[[dict[int, GroupDef]], GroupContext]


@dataclass(slots=True)
class ImportResult:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, name, message)


@dataclass(slots=True)
class ImportPlan:
    tasks: dict[int, TaskDef] = field(default_factory=dict)
    groups: dict[int, GroupDef] = field(default_factory=dict)
    doomed_tasks: list[int] = field(default_factory=list)
    doomed_groups: list[int] = field(default_factory=list)
    result: ImportResult = field(default_factory=ImportResult)


def parse_import(text: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The file's task and group records; a ValidationError naming what is wrong otherwise."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError([FieldError("file", f"not valid JSON ({exc.msg})")]) from exc
    if not isinstance(data, dict):
        raise ValidationError([FieldError("file", 'must be an object {"tasks": [...]}')])
    out: list[list[dict[str, Any]]] = []
    for key in ("tasks", "groups"):
        records = data.get(key, [])
        if not isinstance(records, list):
            raise ValidationError([FieldError(key, f"{key} must be a list")])
        for i, rec in enumerate(records):
            if not isinstance(rec, dict):
                raise ValidationError([FieldError(f"{key}[{i}]", "must be an object")])
        out.append(records)
    return out[0], out[1]


def plan_import(
    task_records: list[dict[str, Any]],
    group_records: list[dict[str, Any]],
    current_tasks: dict[int, TaskDef],
    current_groups: dict[int, GroupDef],
    task_context: TaskContextFor,
    group_context: GroupContextFor,
) -> ImportPlan:
    """Validate every record (groups first) against the instance as the file would leave it."""
    plan = ImportPlan()
    res = plan.result
    for raw in group_records:
        existing = _match(current_groups, raw, "gid")
        other_groups = {
            k: v for k, v in current_groups.items() if existing is None or k != existing.gid
        }
        other_groups.update(plan.groups)
        record = dict(raw)
        if existing is not None:
            record.setdefault("gid", existing.gid)
        try:
            group = validate_group(record, group_context(other_groups))
        except ValidationError as exc:
            res.errors.extend(("group", _label(raw, "gid"), str(e)) for e in exc.errors)
            continue
        plan.groups[group.gid] = group
        res.created, res.updated = _count(res.created, res.updated, existing is None)
    for raw in task_records:
        existing = _match(current_tasks, raw, "tid")
        other_tasks = {
            k: v for k, v in current_tasks.items() if existing is None or k != existing.tid
        }
        other_tasks.update(plan.tasks)
        record = dict(raw)
        if existing is not None:
            record.setdefault("tid", existing.tid)
        try:
            task = validate_task(record, task_context(other_tasks, plan.groups))
        except ValidationError as exc:
            res.errors.extend(("task", _label(raw, "tid"), str(e)) for e in exc.errors)
            continue
        plan.tasks[task.tid] = task
        res.created, res.updated = _count(res.created, res.updated, existing is None)
    if not res.errors:
        by_key = check_dependencies(plan.tasks, plan.groups)
        for (kind, ident), errors in sorted(by_key.items()):
            name = plan.tasks[ident].name if kind == "task" else plan.groups[ident].name
            res.errors.extend((kind, name, str(e)) for e in errors)
    plan.doomed_tasks = [tid for tid in current_tasks if tid not in plan.tasks]
    plan.doomed_groups = [gid for gid in current_groups if gid not in plan.groups]
    res.deleted = len(plan.doomed_tasks) + len(plan.doomed_groups)
    if res.errors:
        res.created = res.updated = res.deleted = 0
    return plan


def _count(created: int, updated: int, new: bool) -> tuple[int, int]:
    return (created + 1, updated) if new else (created, updated + 1)


def _label(raw: dict[str, Any], id_key: str) -> str:
    return str(raw.get("name") or raw.get(id_key) or "?")


def _match(pool: dict[int, Any], raw: dict[str, Any], id_key: str) -> Any:
    ident = raw.get(id_key)
    if isinstance(ident, int) and not isinstance(ident, bool) and ident in pool:
        return pool[ident]
    name = raw.get("name")
    if ident is None and isinstance(name, str):
        for record in pool.values():
            if record.name == name:
                return record
    return None

"""Import planning: make tasks and groups match a file, all or nothing (spec 12, issue 4)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from easytask.core.depcheck import check_dependencies
from easytask.core.errors import FieldError, ValidationError
from easytask.core.groups import GroupContext, GroupDef, validate_group
from easytask.core.models import TaskDef
from easytask.core.text import parse_json, shown
from easytask.core.validation import TaskContext, validate_task

# An import file may be as large as one API message (the server's receive limit).
IMPORT_MAX_BYTES = 16 * 1024 * 1024


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
    data = parse_json(text, "file", max_bytes=IMPORT_MAX_BYTES)
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
    task_context: TaskContext,
    group_context: GroupContext,
    retired_tids: frozenset[int] = frozenset(),
    retired_gids: frozenset[int] = frozenset(),
) -> ImportPlan:
    """Validate every record (groups first) against the instance as the file would leave it.

    ``task_context``/``group_context`` give instance, owner and calendar lookups; their id and
    name lookups are replaced by ones over the planned instance, kept up to date record by
    record (linear in the file, not quadratic). ``retired_tids``/``retired_gids`` are the ids
    of deleted records: taken, and counted in the next free id (spec 12).
    """
    plan = ImportPlan()
    res = plan.result
    groups = _World(
        dict(current_groups), {g.name: g.gid for g in current_groups.values()}, 0, retired_gids
    )
    gctx = replace(group_context, gid_exists=groups.has, name_gid=groups.names.get,
                   next_gid=groups.next_id)  # fmt: skip
    for raw in group_records:
        existing = _match(current_groups, raw, "gid")
        record = groups.make_room(raw, existing, "gid")
        try:
            group = validate_group(record, gctx)
        except ValidationError as exc:
            groups.restore(existing)
            res.errors.extend(("group", _label(raw, "gid"), str(e)) for e in exc.errors)
            continue
        groups.add(group.gid, group.name, group)
        plan.groups[group.gid] = group
        res.created, res.updated = _count(res.created, res.updated, existing is None)
    planned = {g.name for g in plan.groups.values()}
    tasks = _World(
        dict(current_tasks), {t.name: t.tid for t in current_tasks.values()}, 1000, retired_tids
    )
    tctx = replace(task_context, tid_exists=tasks.has, name_tid=tasks.names.get,
                   next_tid=tasks.next_id, group_exists=planned.__contains__)  # fmt: skip
    for raw in task_records:
        existing = _match(current_tasks, raw, "tid")
        record = tasks.make_room(raw, existing, "tid")
        try:
            task = validate_task(record, tctx)
        except ValidationError as exc:
            tasks.restore(existing)
            res.errors.extend(("task", _label(raw, "tid"), str(e)) for e in exc.errors)
            continue
        tasks.add(task.tid, task.name, task)
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


@dataclass(slots=True)
class _World:
    """Ids and names of the instance as planned so far (the record being checked left out)."""

    pool: dict[int, Any]
    names: dict[str, int]
    floor: int
    retired: frozenset[int] = frozenset()
    top: int = 0

    def __post_init__(self) -> None:
        self.top = max(self.floor, max(self.pool, default=self.floor))
        self.top = max(self.top, max(self.retired, default=self.floor))

    def has(self, ident: int) -> bool:
        return ident in self.pool or ident in self.retired

    def next_id(self) -> int:
        return self.top + 1

    def make_room(self, raw: dict[str, Any], existing: Any, id_key: str) -> dict[str, Any]:
        """A matched record replaces the stored one whole: take the old one out first."""
        record = dict(raw)
        if existing is not None:
            record.setdefault(id_key, getattr(existing, id_key))
            self.pool.pop(getattr(existing, id_key), None)
            if self.names.get(existing.name) == getattr(existing, id_key):
                del self.names[existing.name]
        return record

    def restore(self, existing: Any) -> None:
        if existing is not None:
            ident = existing.tid if isinstance(existing, TaskDef) else existing.gid
            self.add(ident, existing.name, existing)

    def add(self, ident: int, name: str, record: Any) -> None:
        self.pool[ident] = record
        self.names[name] = ident
        self.top = max(self.top, ident)


def _count(created: int, updated: int, new: bool) -> tuple[int, int]:
    return (created + 1, updated) if new else (created, updated + 1)


def _label(raw: dict[str, Any], id_key: str) -> str:
    return shown(str(raw.get("name") or raw.get(id_key) or "?"))


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

"""Import planning: make tasks and groups match a file, record by record (spec 12, issue 11)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from easytask.core.depcheck import check_dependencies
from easytask.core.errors import FieldError, ValidationError
from easytask.core.groups import GroupContext, GroupDef, validate_group
from easytask.core.models import TaskDef
from easytask.core.text import parse_json, shown
from easytask.core.validation import TaskContext, validate_task

# An import file may be as large as one API message (the server's receive limit).
IMPORT_MAX_BYTES = 16 * 1024 * 1024
IMPORT_KEYS = ("tasks", "groups")
R = TypeVar("R", TaskDef, GroupDef)


@dataclass(slots=True)
class ImportResult:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, name, message)
    unchanged: int = 0


@dataclass(slots=True)
class ImportPlan:
    """What to write: new and changed records, the ids to delete, and the counts."""

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
    unknown = [k for k in data if k not in IMPORT_KEYS]
    if unknown:
        message = "unknown field (a file holds tasks and groups)"
        raise ValidationError([FieldError(shown(str(k)), message) for k in unknown])
    out: list[list[dict[str, Any]]] = []
    for key in IMPORT_KEYS:
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
    atomic: bool = False,
) -> ImportPlan:
    """Validate every record (groups first) and decide what the import writes (spec 12).

    Each valid record is applied and each invalid one listed; records absent from the file
    are deleted only when no record failed; with ``atomic`` nothing is applied when any
    record failed. A record equal to the stored one is counted unchanged and not written.

    ``task_context``/``group_context`` give instance, owner and calendar lookups; their id and
    name lookups are replaced by ones over the planned instance, kept up to date record by
    record (linear in the file, not quadratic). ``retired_tids``/``retired_gids`` are the ids
    of deleted records: taken, and counted in the next free id (spec 12).
    """
    res = ImportResult()
    groups = _World(
        dict(current_groups), {g.name: g.gid for g in current_groups.values()}, 0, retired_gids
    )
    gctx = replace(group_context, gid_exists=groups.has, name_gid=groups.names.get,
                   next_gid=groups.next_id)  # fmt: skip
    valid_groups: dict[int, GroupDef] = {}
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
        valid_groups[group.gid] = group
    planned = {g.name for g in valid_groups.values()}
    tasks = _World(
        dict(current_tasks), {t.name: t.tid for t in current_tasks.values()}, 1000, retired_tids
    )
    tctx = replace(task_context, tid_exists=tasks.has, name_tid=tasks.names.get,
                   next_tid=tasks.next_id, group_exists=planned.__contains__)  # fmt: skip
    valid_tasks: dict[int, TaskDef] = {}
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
        valid_tasks[task.tid] = task
    if not _settle(valid_tasks, valid_groups, current_tasks, current_groups, res.errors):
        valid_tasks, valid_groups = {}, {}  # a kept record would break: apply nothing
    if atomic and res.errors:
        valid_tasks, valid_groups = {}, {}
    return _plan(valid_tasks, valid_groups, current_tasks, current_groups, res)


def _settle(
    tasks: dict[int, TaskDef],
    groups: dict[int, GroupDef],
    current_tasks: dict[int, TaskDef],
    current_groups: dict[int, GroupDef],
    errors: list[tuple[str, str, str]],
) -> bool:
    """Drop the valid records whose dependencies (spec 6.3) fail in the instance the import
    leaves, until the rest hold; False when a record the file does not touch would break.

    Without any error the file is the whole instance; with one, absent records stay, so
    dropping a record can change the instance: the check repeats until nothing is dropped.
    """
    while True:
        whole = not errors
        all_tasks = ({} if whole else dict(current_tasks)) | tasks
        all_groups = ({} if whole else dict(current_groups)) | groups
        found = check_dependencies(all_tasks, all_groups)
        names = {g.name for g in all_groups.values()}
        for t in tasks.values():
            if t.task_group is not None and t.task_group not in names:
                found.setdefault(("task", t.tid), []).append(
                    FieldError("task_group", "task_group does not exist")
                )
        dropped = False
        for (kind, ident), errs in sorted(found.items()):
            pool: dict[int, Any] = tasks if kind == "task" else groups
            if ident in pool:
                errors.extend((kind, pool.pop(ident).name, str(e)) for e in errs)
                dropped = True
        if not dropped:
            for (kind, ident), errs in sorted(found.items()):
                name = (all_tasks[ident] if kind == "task" else all_groups[ident]).name
                errors.extend((kind, name, str(e)) for e in errs)
            return not found


def _plan(
    tasks: dict[int, TaskDef],
    groups: dict[int, GroupDef],
    current_tasks: dict[int, TaskDef],
    current_groups: dict[int, GroupDef],
    res: ImportResult,
) -> ImportPlan:
    plan = ImportPlan(result=res)
    plan.groups = _changed(groups, current_groups, res)
    plan.tasks = _changed(tasks, current_tasks, res)
    if not res.errors:
        plan.doomed_tasks = [tid for tid in current_tasks if tid not in tasks]
        plan.doomed_groups = [gid for gid in current_groups if gid not in groups]
    res.deleted = len(plan.doomed_tasks) + len(plan.doomed_groups)
    return plan


def _changed(planned: dict[int, R], current: dict[int, R], res: ImportResult) -> dict[int, R]:
    """The new and changed records, counted; an unchanged one is counted and left out."""
    out = {}
    for ident, record in planned.items():
        before = current.get(ident)
        if before is None:
            res.created += 1
        elif before == record:
            res.unchanged += 1
            continue
        else:
            res.updated += 1
        out[ident] = record
    return out


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

"""TaskCatalog: create, update, delete, import and export task definitions (validated, stored)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from easytask.core.clock import Clock
from easytask.core.depcheck import (
    clear_reference,
    dependency_errors_for_group,
    dependency_errors_for_task,
    group_delete_blockers,
    referrers,
    renaming_errors,
    task_delete_blockers,
)
from easytask.core.errors import (
    ConflictError,
    GroupNotFoundError,
    TaskNotFoundError,
    ValidationError,
)
from easytask.core.groups import GroupContext, GroupDef, validate_group
from easytask.core.models import TaskDef
from easytask.core.validation import TaskContext, validate_task
from easytask.scheduler.calendars import CalendarBook
from easytask.scheduler.engine import Engine
from easytask.scheduler.importer import ImportResult, parse_import, plan_import
from easytask.store.ports import Store

MAX_TID = 2147483647


class TaskCatalog:
    """The instance's task definitions. Every change is validated, committed, then scheduled."""

    def __init__(
        self,
        *,
        instance: str,
        store: Store,
        engine: Engine,
        calendars: CalendarBook,
        clock: Clock,
    ) -> None:
        self._instance = instance
        self._store = store
        self._engine = engine
        self._calendars = calendars
        self._clock = clock
        self._lock = asyncio.Lock()
        # Ids of deleted tasks and groups (spec 12: never handed out again), read from the
        # store on first use under the lock.
        self._retired: dict[str, set[int]] | None = None

    async def _load_retired(self) -> dict[str, set[int]]:
        if self._retired is None:
            kinds = ("task", "group")
            self._retired = {k: await self._store.retired_ids(k) for k in kinds}
        return self._retired

    def _retired_ids(self, kind: str) -> set[int]:
        return set() if self._retired is None else self._retired[kind]

    @property
    def tasks(self) -> dict[int, TaskDef]:
        return self._engine.index.tasks

    def _context(self, user: str, tasks: dict[int, TaskDef] | None = None) -> TaskContext:
        pool = self.tasks if tasks is None else tasks
        names = {t.name: t.tid for t in pool.values()}
        retired = self._retired_ids("task")
        return TaskContext(
            instance=self._instance,
            default_owner=user,
            tid_exists=lambda tid: tid in pool or tid in retired,
            name_tid=names.get,
            next_tid=lambda: max(1000, max(pool, default=1000), max(retired, default=1000)) + 1,
            calendar_exists=self._calendars.exists,
            group_exists=lambda name: self._engine.groups.group_by_name(name) is not None,
        )

    def _group_context(self, groups: dict[int, GroupDef] | None = None) -> GroupContext:
        pool = self.groups if groups is None else groups
        names = {g.name: g.gid for g in pool.values()}
        retired = self._retired_ids("group")
        return GroupContext(
            instance=self._instance,
            gid_exists=lambda gid: gid in pool or gid in retired,
            name_gid=names.get,
            next_gid=lambda: max(max(pool, default=0), max(retired, default=0)) + 1,
            calendar_exists=self._calendars.exists,
        )

    @property
    def groups(self) -> dict[int, GroupDef]:
        return self._engine.groups.groups

    def _check_task(self, task: TaskDef, existing: TaskDef | None) -> None:
        """Instance-wide checks (spec 6.3, 2.2) once the field checks passed."""
        after = dict(self.tasks)
        after[task.tid] = task
        errors = dependency_errors_for_task(task, after)
        if existing is not None:
            others = [t for t in self.tasks.values() if t.tid != existing.tid]
            errors += renaming_errors(existing.name, task.name, referrers(existing.name, others))
        if errors:
            raise ValidationError(errors)

    # ----- reads -----

    def get(self, tid: int = 0, name: str = "") -> TaskDef:
        if tid:
            task = self.tasks.get(tid)
            if task is None:
                raise TaskNotFoundError(tid)
            return task
        for task in self.tasks.values():
            if task.name == name:
                return task
        raise TaskNotFoundError(name)

    def list_tasks(
        self, active: bool | None, search: str, page: int, per_page: int
    ) -> tuple[list[TaskDef], int]:
        rows = [
            t
            for t in sorted(self.tasks.values(), key=lambda t: t.tid)
            if (active is None or t.active == active) and (search in t.name)
        ]
        start = (page - 1) * per_page
        return rows[start : start + per_page], len(rows)

    def export(self) -> dict[str, Any]:
        tasks = [t.to_json() for t in sorted(self.tasks.values(), key=lambda t: t.tid)]
        groups = [g.to_json() for g in sorted(self.groups.values(), key=lambda g: g.gid)]
        return {"tasks": tasks, "groups": groups}

    # ----- writes -----

    async def create(self, raw: object, user: str) -> TaskDef:
        async with self._lock:
            await self._load_retired()
            task = validate_task(raw, self._context(user))
            self._check_task(task, None)
            await self._store.put_tasks([task], self._clock.now())
            self._engine.put_task(task, self._clock.now())
            return task

    async def update(self, tid: int, name: str, patch: object, user: str) -> TaskDef:
        async with self._lock:
            existing = self.get(tid, name)
            task = validate_task(patch, self._context(user), existing)
            self._check_task(task, existing)
            await self._store.put_tasks([task], self._clock.now())
            self._engine.put_task(task, self._clock.now())
            return task

    async def delete(self, tid: int, name: str, cascade: bool = False) -> tuple[TaskDef, bool]:
        """Delete a task; runs in progress continue (spec 3).

        A task referenced by a dependency is refused unless ``cascade``: then the referencing
        expressions are cleared. Returns the task and whether any expression was cleared.
        """
        async with self._lock:
            task = self.get(tid, name)
            blockers = task_delete_blockers(task, self.tasks)
            if blockers and not cascade:
                raise ConflictError("; ".join(blockers))
            cleared = self._cleared_tasks(task.name, skip=task.tid)
            await self._store.put_tasks(cleared, self._clock.now())
            retired = await self._load_retired()
            await self._store.delete_tasks([task.tid])
            retired["task"].add(task.tid)
            self._engine.remove_task(task.tid)
            for t in cleared:
                self._engine.put_task(t, self._clock.now())
            return task, bool(cleared)

    def _cleared_tasks(self, name: str, skip: int) -> list[TaskDef]:
        out = []
        for t in self.tasks.values():
            if t.tid != skip and t.dependency:
                text = clear_reference(t.dependency, name)
                if text != t.dependency:
                    out.append(replace(t, dependency=text))
        return out

    # ----- groups -----

    def get_group(self, gid: int = 0, name: str = "") -> GroupDef:
        group = self.groups.get(gid) if gid else self._engine.groups.group_by_name(name)
        if group is None:
            raise GroupNotFoundError(gid or name)
        return group

    def list_groups(self, search: str, page: int, per_page: int) -> tuple[list[GroupDef], int]:
        rows = [g for g in sorted(self.groups.values(), key=lambda g: g.gid) if search in g.name]
        start = (page - 1) * per_page
        return rows[start : start + per_page], len(rows)

    def member_count(self, group: GroupDef) -> int:
        return len(self._engine.index.member_tids(group.name))

    async def create_group(self, raw: object) -> GroupDef:
        async with self._lock:
            await self._load_retired()
            group = validate_group(raw, self._group_context())
            self._check_group(group, None)
            await self._store.put_groups([group], self._clock.now())
            self._engine.groups.put_group(group, self._clock.now())
            return group

    async def update_group(self, gid: int, name: str, patch: object) -> GroupDef:
        async with self._lock:
            existing = self.get_group(gid, name)
            group = validate_group(patch, self._group_context(), existing)
            self._check_group(group, existing)
            members = []
            if group.name != existing.name:  # members follow their group's new name
                members = [replace(t, task_group=group.name) for t in self.tasks.values()
                           if t.task_group == existing.name]  # fmt: skip
            now = self._clock.now()
            await self._store.put_groups([group], now)
            await self._store.put_tasks(members, now)
            self._engine.groups.put_group(group, now)
            for t in members:
                self._engine.put_task(t, now)
            return group

    def _check_group(self, group: GroupDef, existing: GroupDef | None) -> None:
        after = dict(self.groups)
        after[group.gid] = group
        errors = dependency_errors_for_group(group, after)
        if existing is not None:
            others = [g for g in self.groups.values() if g.gid != existing.gid]
            errors += renaming_errors(existing.name, group.name, referrers(existing.name, others))
        if errors:
            raise ValidationError(errors)

    async def delete_group(self, gid: int, name: str, cascade: bool) -> tuple[GroupDef, int, bool]:
        """Delete a group; with ``cascade`` its members too and referencing expressions cleared."""
        async with self._lock:
            group = self.get_group(gid, name)
            blockers = group_delete_blockers(group, self.tasks, self.groups)
            if blockers and not cascade:
                raise ConflictError("; ".join(blockers))
            members = [t for t in self.tasks.values() if t.task_group == group.name]
            cleared = []
            for g in self.groups.values():
                if g.gid != group.gid and g.dependency:
                    text = clear_reference(g.dependency, group.name)
                    if text != g.dependency:
                        cleared.append(replace(g, dependency=text))
            now = self._clock.now()
            retired = await self._load_retired()
            await self._store.delete_tasks([t.tid for t in members])
            await self._store.put_groups(cleared, now)
            await self._store.delete_groups([group.gid])
            retired["task"].update(t.tid for t in members)
            retired["group"].add(group.gid)
            for t in members:
                self._engine.remove_task(t.tid)
            self._engine.groups.remove_group(group.gid)
            for g in cleared:
                self._engine.groups.put_group(g, now)
            return group, len(members), bool(cleared)

    async def import_tasks(
        self, text: str, user: str, dry_run: bool, atomic: bool = False
    ) -> ImportResult:
        """Apply each valid record of the file and list each invalid one (spec 12); records
        absent from the file are deleted only when none failed; ``atomic``: all or nothing."""
        task_records, group_records = parse_import(text)
        async with self._lock:
            retired = await self._load_retired()
            plan = plan_import(
                task_records,
                group_records,
                self.tasks,
                self.groups,
                self._context(user),
                self._group_context(),
                frozenset(retired["task"]),
                frozenset(retired["group"]),
                atomic,
            )
            if dry_run:
                return plan.result
            now = self._clock.now()
            # Queued in one loop turn, the four writes commit as one transaction: a failure
            # leaves nothing half-imported.
            await asyncio.gather(
                self._store.put_groups(plan.groups.values(), now),
                self._store.put_tasks(plan.tasks.values(), now),
                self._store.delete_tasks(plan.doomed_tasks),
                self._store.delete_groups(plan.doomed_groups),
            )
            retired["task"].update(plan.doomed_tasks)
            retired["group"].update(plan.doomed_groups)
            for tid in plan.doomed_tasks:
                self._engine.remove_task(tid)
            for gid in plan.doomed_groups:
                self._engine.groups.remove_group(gid)
            for group in plan.groups.values():
                self._engine.groups.put_group(group, now)
            for task in plan.tasks.values():
                self._engine.put_task(task, now)
            return plan.result

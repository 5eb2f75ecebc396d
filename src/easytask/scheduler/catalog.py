"""TaskCatalog: create, update, delete, import and export task definitions (validated, stored)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from easytask.core.clock import Clock
from easytask.core.errors import FieldError, TaskNotFoundError, ValidationError
from easytask.core.models import TaskDef
from easytask.core.validation import TaskContext, validate_task
from easytask.scheduler.calendars import CalendarBook
from easytask.scheduler.engine import Engine
from easytask.store.sqlite import SqliteStore

MAX_TID = 2147483647


@dataclass(slots=True)
class ImportResult:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)


class TaskCatalog:
    """The instance's task definitions. Every change is validated, committed, then scheduled."""

    def __init__(
        self,
        *,
        instance: str,
        store: SqliteStore,
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

    @property
    def tasks(self) -> dict[int, TaskDef]:
        return self._engine.tasks

    def _context(self, user: str, tasks: dict[int, TaskDef] | None = None) -> TaskContext:
        pool = self.tasks if tasks is None else tasks
        names = {t.name: t.tid for t in pool.values()}
        return TaskContext(
            instance=self._instance,
            default_owner=user,
            tid_exists=lambda tid: tid in pool,
            name_tid=names.get,
            next_tid=lambda: max(1000, max(pool, default=1000)) + 1,
            calendar_exists=self._calendars.exists,
            group_exists=lambda name: False,
        )

    # ----- reads -----

    def get(self, tid: int = 0, name: str = "") -> TaskDef:
        if tid:
            task = self.tasks.get(tid)
            if task is None:
                raise TaskNotFoundError(f"task {tid} not found")
            return task
        for task in self.tasks.values():
            if task.name == name:
                return task
        raise TaskNotFoundError(f"task {name!r} not found")

    def list(
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
        return {"tasks": tasks, "groups": []}

    # ----- writes -----

    async def create(self, raw: object, user: str) -> TaskDef:
        async with self._lock:
            task = validate_task(raw, self._context(user))
            await self._store.put_tasks([task], self._clock.now())
            self._engine.put_task(task, self._clock.now())
            return task

    async def update(self, tid: int, name: str, patch: object, user: str) -> TaskDef:
        async with self._lock:
            existing = self.get(tid, name)
            task = validate_task(patch, self._context(user), existing)
            await self._store.put_tasks([task], self._clock.now())
            self._engine.put_task(task, self._clock.now())
            return task

    async def delete(self, tid: int, name: str) -> TaskDef:
        """Delete a task; runs in progress continue (spec 3)."""
        async with self._lock:
            task = self.get(tid, name)
            await self._store.delete_tasks([task.tid])
            self._engine.remove_task(task.tid)
            return task

    async def import_tasks(self, text: str, user: str, dry_run: bool) -> ImportResult:
        """Make the stored tasks match the file; nothing changes if any record is invalid."""
        data = _parse_import(text)
        async with self._lock:
            result = ImportResult()
            planned: dict[int, TaskDef] = {}
            pool = dict(self.tasks)
            seen_names: set[str] = set()
            for raw in data:
                label = str(raw.get("name") or raw.get("tid") or "?")
                existing = _match(pool, raw)
                # A matched record replaces the stored one whole: validate it as a create
                # against every other task (stored ones and those planned from the file).
                others = {k: v for k, v in pool.items() if existing is None or k != existing.tid}
                others.update(planned)
                record = dict(raw)
                if existing is not None:
                    record.setdefault("tid", existing.tid)
                try:
                    task = validate_task(record, self._context(user, others))
                except ValidationError as exc:
                    result.errors.extend((label, str(e)) for e in exc.errors)
                    continue
                if task.name in seen_names:
                    result.errors.append((label, "name: name appears twice in the file"))
                    continue
                seen_names.add(task.name)
                planned[task.tid] = task
                if existing is None:
                    result.created += 1
                else:
                    result.updated += 1
            doomed = [tid for tid in pool if tid not in planned]
            result.deleted = len(doomed)
            if result.errors or dry_run:
                if result.errors:
                    result.created = result.updated = result.deleted = 0
                return result
            now = self._clock.now()
            await self._store.put_tasks(planned.values(), now)
            await self._store.delete_tasks(doomed)
            for tid in doomed:
                self._engine.remove_task(tid)
            for task in planned.values():
                self._engine.put_task(task, now)
            return result


def _match(pool: dict[int, TaskDef], raw: dict[str, Any]) -> TaskDef | None:
    tid = raw.get("tid")
    if isinstance(tid, int) and not isinstance(tid, bool) and tid in pool:
        return pool[tid]
    name = raw.get("name")
    if tid is None and isinstance(name, str):
        for task in pool.values():
            if task.name == name:
                return task
    return None


def _parse_import(text: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError([FieldError("file", f"not valid JSON ({exc})")]) from exc
    if not isinstance(data, dict) or not isinstance(data.get("tasks", []), list):
        raise ValidationError([FieldError("file", 'must be an object {"tasks": [...]}')])
    if data.get("groups"):
        raise ValidationError([FieldError("groups", "task groups are not supported yet")])
    records = data.get("tasks", [])
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise ValidationError([FieldError(f"tasks[{i}]", "must be an object")])
    return list(records)

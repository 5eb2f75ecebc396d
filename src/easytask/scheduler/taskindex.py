"""TaskIndex: the task definitions in memory, indexed by tid and by group member name."""

from __future__ import annotations

from easytask.core.models import TaskDef


class TaskIndex:
    """Every loaded task; group name -> {member name: tid}, so lookups never scan all tasks."""

    def __init__(self) -> None:
        self.tasks: dict[int, TaskDef] = {}
        self.members_by_group: dict[str, dict[str, int]] = {}

    def get(self, tid: int) -> TaskDef | None:
        return self.tasks.get(tid)

    def put(self, task: TaskDef) -> bool:
        """Add or replace a task; True when a group's membership or members changed."""
        grouped = self.remove(task.tid)
        self.tasks[task.tid] = task
        if task.task_group is not None:
            self.members_by_group.setdefault(task.task_group, {})[task.name] = task.tid
            return True
        return grouped

    def remove(self, tid: int) -> bool:
        """Forget a task; True when it was a group member."""
        old = self.tasks.pop(tid, None)
        if old is None or old.task_group is None:
            return False
        members = self.members_by_group.get(old.task_group, {})
        if members.get(old.name) == tid:
            del members[old.name]
        return True

    def member_tids(self, group: str) -> dict[str, int]:
        """Member name -> tid of a group (empty when it has none)."""
        return self.members_by_group.get(group, {})

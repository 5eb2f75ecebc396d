"""Instance-wide dependency checks (spec 6.3, 3): scope, cycles, rename and delete blockers.

Every function takes the instance's records as they are *after* the proposed change (the
catalog's in-memory maps with the change applied) and returns errors or messages; nothing
here raises for a rule violation. Task names and group names are separate spaces: task
expressions reference tasks, group expressions reference groups.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal, Protocol

from easytask.core.deps import Expr, check_scope, cycle_message, find_cycle, names, parse_dependency
from easytask.core.errors import DependencyError, FieldError
from easytask.core.groups import GroupDef
from easytask.core.models import TaskDef

RecordKey = tuple[Literal["task", "group"], int]
"""``("task", tid)`` or ``("group", gid)``."""

_NO_GROUPS: frozenset[str] = frozenset()


class Dependent(Protocol):
    """A record with a name and a dependency expression: a ``TaskDef`` or a ``GroupDef``."""

    @property
    def name(self) -> str: ...

    @property
    def dependency(self) -> str: ...


def referenced_names(text: str) -> frozenset[str]:
    """The names an expression references; empty when it is blank or not the grammar."""
    try:
        expr = parse_dependency(text)
    except DependencyError:
        return frozenset()
    return frozenset() if expr is None else frozenset(names(expr))


def referrers(name: str, records: Iterable[Dependent]) -> list[str]:
    """Names of the records whose expression references ``name``, sorted; ``name`` excluded.

    Args:
        name: A task name (pass tasks) or a group name (pass groups).
        records: The tasks or the groups of the instance.
    """
    # The substring test skips the parse for almost every record.
    return sorted(
        r.name
        for r in records
        if r.name != name and name in r.dependency and name in referenced_names(r.dependency)
    )


def dependency_errors_for_task(task: TaskDef, tasks: Mapping[int, TaskDef]) -> list[FieldError]:
    """Spec 6.3 checks of one created or updated task against the instance.

    Run after ``validate_task`` accepted ``task``. One pass over ``tasks``; only the
    expressions of ``task``'s group are parsed.

    Args:
        task: The task as it will be stored.
        tasks: Every task of the instance after the change; ``task`` itself may or may not
            be in it (it is matched by tid and replaced by ``task``).

    Returns:
        ``dependency`` errors: a syntax error (``Bad dependency expression (<detail>)``) or
        the scope errors of ``task``'s expression in order of appearance (``dependency
        references unknown task <name>`` / ``... <name> outside task group <group>``), then
        ``circular dependency detected (<task> -> ... -> <task>)``. Before them, a
        ``task_group`` error ``name is referenced by dependency of <names>`` when tasks of
        another group reference ``task`` (it moved groups or became a single task).
    """
    try:
        expr = parse_dependency(task.dependency)
    except DependencyError as exc:
        return [*_moved_errors(task, tasks), FieldError("dependency", exc.message)]
    wanted = names(expr) if expr is not None else set()
    scope_of: dict[str, str | None] = {}
    members: dict[str, str] = {task.name: task.dependency} if task.task_group else {}
    for other in tasks.values():
        if other.tid == task.tid:
            continue
        if other.name in wanted:
            scope_of[other.name] = other.task_group
        if task.task_group is not None and other.task_group == task.task_group:
            members[other.name] = other.dependency
    if task.name in wanted:
        scope_of[task.name] = task.task_group
    errors = _moved_errors(task, tasks)
    kind: Literal["grouped", "single"] = "single" if task.task_group is None else "grouped"
    scope = check_scope(kind, task.task_group, expr, scope_of, _NO_GROUPS)
    errors.extend(FieldError("dependency", m) for m in scope)
    if expr is not None and task.task_group is not None:
        errors.extend(_cycle_through(task.name, _edges(members, own=(task.name, expr))))
    return errors


def _moved_errors(task: TaskDef, tasks: Mapping[int, TaskDef]) -> list[FieldError]:
    """Tasks outside ``task``'s group that still reference it."""
    outside = (t for t in tasks.values() if t.tid != task.tid and t.task_group != task.task_group)
    found = referrers(task.name, outside)
    return [FieldError("task_group", _referenced_message(found))] if found else []


def dependency_errors_for_group(
    group: GroupDef, groups: Mapping[int, GroupDef]
) -> list[FieldError]:
    """Spec 3 / 6.3 checks of one created or updated group against the instance.

    Run after ``validate_group`` accepted ``group`` (which already rejects syntax errors).

    Args:
        group: The group as it will be stored.
        groups: Every group of the instance after the change; ``group`` itself may or may
            not be in it (it is matched by gid and replaced by ``group``).

    Returns:
        ``dependency`` errors: a syntax error, or ``dependency references <name> which is
        not a task group`` per name that is no group, then ``circular dependency detected
        (<group> -> ... -> <group>)``.
    """
    try:
        expr = parse_dependency(group.dependency)
    except DependencyError as exc:
        return [FieldError("dependency", exc.message)]
    if expr is None:
        return []
    texts = {g.name: g.dependency for g in groups.values() if g.gid != group.gid}
    texts[group.name] = group.dependency
    scope = check_scope("group", group.name, expr, {}, texts.keys())
    errors = [FieldError("dependency", m) for m in scope]
    errors.extend(_cycle_through(group.name, _edges(texts, own=(group.name, expr))))
    return errors


def check_dependencies(
    tasks: Mapping[int, TaskDef], groups: Mapping[int, GroupDef]
) -> dict[RecordKey, list[FieldError]]:
    """Every spec 6.3 error of a whole instance at once (for import and consistency checks).

    Each record is judged by its own expression: a reference to a task of another group is
    reported on the referencing task. Each cycle is reported on every record on it, the
    path starting at that record; overlapping cycles are reported at least once per
    strongly connected part.

    Args:
        tasks: Every task of the instance, by tid.
        groups: Every group of the instance, by gid.

    Returns:
        The ``dependency`` errors of each record that has any, keyed ``("task", tid)`` or
        ``("group", gid)``; empty when the instance is consistent.
    """
    out: dict[RecordKey, list[FieldError]] = {}
    scope_of = {t.name: t.task_group for t in tasks.values()}
    by_group: dict[str, dict[str, str]] = {}
    task_keys: dict[str, RecordKey] = {}
    for t in tasks.values():
        if t.task_group is not None:
            by_group.setdefault(t.task_group, {})[t.name] = t.dependency
        kind: Literal["grouped", "single"] = "single" if t.task_group is None else "grouped"
        task_keys[t.name] = ("task", t.tid)
        _check_record(out, ("task", t.tid), t.dependency, kind, t.task_group, scope_of, set())
    group_names = {g.name for g in groups.values()}
    for g in groups.values():
        _check_record(out, ("group", g.gid), g.dependency, "group", g.name, {}, group_names)
    for members in by_group.values():
        _report_cycles(out, _edges(members), task_keys)
    group_keys: dict[str, RecordKey] = {g.name: ("group", g.gid) for g in groups.values()}
    _report_cycles(out, _edges({g.name: g.dependency for g in groups.values()}), group_keys)
    return out


def _check_record(
    out: dict[RecordKey, list[FieldError]],
    key: RecordKey,
    text: str,
    kind: Literal["grouped", "group", "single"],
    owner_group: str | None,
    scope_of: Mapping[str, str | None],
    group_names: set[str],
) -> None:
    """Syntax and scope errors of one record's expression, added to ``out``."""
    try:
        expr = parse_dependency(text)
    except DependencyError as exc:
        out.setdefault(key, []).append(FieldError("dependency", exc.message))
        return
    for message in check_scope(kind, owner_group, expr, scope_of, group_names):
        out.setdefault(key, []).append(FieldError("dependency", message))


def _report_cycles(
    out: dict[RecordKey, list[FieldError]],
    edges: dict[str, set[str]],
    keys: Mapping[str, RecordKey],
) -> None:
    """Find disjoint cycles one by one; each node on a cycle gets it, rotated to start there."""
    graph = edges
    while (path := find_cycle(graph)) is not None:
        for node in path[:-1]:
            message = cycle_message(_rotated(path, node))
            out.setdefault(keys[node], []).append(FieldError("dependency", message))
        on_cycle = set(path)
        graph = {k: v - on_cycle for k, v in graph.items() if k not in on_cycle}


def _edges(texts: Mapping[str, str], own: tuple[str, Expr] | None = None) -> dict[str, set[str]]:
    """Owner -> the names it references that are nodes of this graph (keys of ``texts``).

    ``own`` is an expression already parsed, so its owner's text is not parsed again.
    """
    edges: dict[str, set[str]] = {}
    for owner, text in texts.items():
        refs = names(own[1]) if own is not None and own[0] == owner else referenced_names(text)
        edges[owner] = {n for n in refs if n in texts}
    return edges


def _cycle_through(start: str, edges: dict[str, set[str]]) -> list[FieldError]:
    """The cycle reachable from ``start`` as an error, rotated to begin at ``start``.

    Only the part of the graph ``start`` reaches is searched, so an older cycle elsewhere
    is not blamed on this record.
    """
    reach, todo = {start}, [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in reach:
                reach.add(nxt)
                todo.append(nxt)
    path = find_cycle({n: edges.get(n, set()) for n in reach})
    if path is None:
        return []
    return [FieldError("dependency", cycle_message(_rotated(path, start)))]


def _rotated(path: list[str], start: str) -> list[str]:
    """The closed path ``path`` beginning at ``start`` when ``start`` is on it."""
    ring = path[:-1]
    if start not in ring:
        return path
    i = ring.index(start)
    ring = ring[i:] + ring[:i]
    return [*ring, ring[0]]


def _referenced_message(names_: list[str]) -> str:
    return f"name is referenced by dependency of {', '.join(names_)}"


def renaming_errors(
    old_name: str, new_name: str, referrer_names: Iterable[str]
) -> list[FieldError]:
    """Spec 2.2: a task or group that a dependency references cannot be renamed.

    Args:
        old_name: The stored name.
        new_name: The name after the update.
        referrer_names: Who references ``old_name``: ``referrers(old_name, tasks.values())``
            for a task, ``referrers(old_name, groups.values())`` for a group.

    Returns:
        ``name: name is referenced by dependency of <names>`` (sorted, comma-separated)
        when the name changes and anything references it; else empty.
    """
    found = sorted(set(referrer_names) - {old_name})
    if old_name == new_name or not found:
        return []
    return [FieldError("name", _referenced_message(found))]


def task_delete_blockers(task: TaskDef, tasks: Mapping[int, TaskDef]) -> list[str]:
    """Why ``task`` cannot be deleted without ``cascade`` (spec 3); empty when it can.

    Returns:
        ``["name is referenced by dependency of <names>"]`` or ``[]``. With cascade, clear
        each referrer's expression with ``clear_reference``.
    """
    found = referrers(task.name, (t for t in tasks.values() if t.tid != task.tid))
    return [_referenced_message(found)] if found else []


def group_delete_blockers(
    group: GroupDef, tasks: Mapping[int, TaskDef], groups: Mapping[int, GroupDef]
) -> list[str]:
    """Why ``group`` cannot be deleted without ``cascade`` (spec 3); empty when it can.

    Returns:
        ``group has <n> tasks`` when it has members, then ``name is referenced by
        dependency of <names>`` when other groups reference it. With cascade, delete the
        members and clear each referrer's expression with ``clear_reference``.
    """
    blockers: list[str] = []
    count = sum(1 for t in tasks.values() if t.task_group == group.name)
    if count:
        blockers.append(f"group has {count} tasks")
    found = referrers(group.name, (g for g in groups.values() if g.gid != group.gid))
    if found:
        blockers.append(_referenced_message(found))
    return blockers


def clear_reference(text: str, name: str) -> str:
    """The expression after ``name`` is deleted with cascade: ``""`` if it references it.

    Spec 3 clears a referencing expression whole rather than editing it, since dropping
    one term can change what the rest means. An expression that does not parse is kept.
    """
    return "" if name in referenced_names(text) else text

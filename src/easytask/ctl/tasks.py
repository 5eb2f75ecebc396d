"""``easytaskctl tasks …``: create, update, get, list, delete, export, import."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from easytask.core.errors import CtlError
from easytask.ctl.client import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from easytask.ctl.context import (
    Context,
    add_output,
    add_paging,
    add_task_ref,
    run_date,
    task_ref,
    usage_error,
)
from easytask.ctl.records import (
    parse_day_of_week,
    parse_task_json,
    schedule_display,
    task_fields,
)
from easytask.ctl.render import emit, page_line, render_fields, render_table
from easytask.rpc.v1 import api_pb2 as pb

# Inline flags of create/update: (flags, task JSON field, help). `-n/--name` is the task's name on
# create; on update `-n` selects the task, so a rename there is `--new-name`.
_STR_FLAGS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("-c", "--cmd"), "cmd", "shell command"),
    (("--host",), "run_on_host", "queue that runs it (run_on_host)"),
    (("-d", "--description"), "description", "description"),
    (("--run-as-user",), "run_as_user", "OS user to run as"),
    (("-g", "--group"), "task_group", "task group name"),
    (("-z", "--timezone"), "timezone", "IANA time zone, e.g. US/Eastern"),
    (("--trigger-times",), "trigger_times", "comma-separated HH:MM"),
    (("--day-of-week",), "day_of_week", "7 × 0/1 (Mon first), or names: MON-FRI, mon,wed"),
    (("--ordinal-day",), "ordinal_day", 'e.g. "last friday of every month"'),
    (("--run-frequency",), "run_frequency", "START-END-INTERVAL, e.g. 09:00-17:00-60"),
    (("--calendar",), "calendar", "holiday calendar, e.g. US_HOLIDAYS"),
    (("--dependency",), "dependency", 'dependency expression, e.g. "S:extract and S:load"'),
    (("--stdout",), "stdout", "stdout file"),
    (("--stderr",), "stderr", "stderr file"),
    (("--profile",), "profile", "env profile name or path"),
    (("--task-owner",), "task_owner", "owner user name"),
    (("--team",), "team", "team"),
    (("--misfire-policy",), "misfire_policy", "run_once, skip or run_all"),
)
_INT_FLAGS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("--max-run-time",), "max_run_time", "seconds before the attempt is killed"),
    (("--retry-attempts",), "retry_attempts", "retries after a failure (0-10)"),
    (("--retry-delay",), "retry_delay", "seconds between retries"),
    (("--task-accept-expiry-time",), "task_accept_expiry_time", "seconds to wait for an agent"),
    (("--misfire-grace",), "misfire_grace", "seconds a missed slot may still run"),
)
_DEST = "field_"


def add_field_flags(parser: argparse.ArgumentParser, *, update: bool) -> None:
    """The inline task-field flags (all default to 'not given')."""
    group = parser.add_argument_group("task fields")
    if update:
        group.add_argument("--new-name", dest=f"{_DEST}name", metavar="NAME", help="rename")
    else:
        group.add_argument("-n", "--name", dest=f"{_DEST}name", metavar="NAME", help="task name")
        group.add_argument(
            "--tid", dest=f"{_DEST}tid", type=int, metavar="TID", help="task id (> 1000)"
        )
    for flags, name, text in _STR_FLAGS:
        group.add_argument(*flags, dest=_DEST + name, metavar=name.upper(), help=text)
    for flags, name, text in _INT_FLAGS:
        group.add_argument(*flags, dest=_DEST + name, type=int, metavar="N", help=text)
    active = group.add_mutually_exclusive_group()
    active.add_argument(
        "--active", dest=f"{_DEST}active", action="store_const", const=True, help="active: true"
    )
    active.add_argument(
        "--inactive", dest=f"{_DEST}active", action="store_const", const=False, help="active: false"
    )
    if update:
        group.add_argument(
            "--clear",
            action="append",
            default=[],
            metavar="FIELD",
            help="remove an optional field (sent as null); repeatable",
        )


def fields_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The task JSON fields given as inline flags, in the order the spec lists them."""
    fields: dict[str, Any] = {}
    for key, value in vars(args).items():
        if key.startswith(_DEST) and value is not None:
            fields[key.removeprefix(_DEST)] = value
    if isinstance(fields.get("day_of_week"), str):
        fields["day_of_week"] = parse_day_of_week(fields["day_of_week"])
    for name in getattr(args, "clear", []):
        fields[name] = None
    return fields


def load_json_object(path: str) -> tuple[str, dict[str, Any]]:
    """Read FILE (``-`` = stdin): its text and the object it holds.

    A missing, unreadable or malformed file is a usage error (exit 2) naming the file.
    """
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CtlError(f"cannot read {path}: {exc.strerror}", EXIT_USAGE) from None
    except UnicodeDecodeError:
        raise CtlError(f"{path}: not a UTF-8 text file", EXIT_USAGE) from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CtlError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
            EXIT_USAGE,
        ) from None
    if not isinstance(value, dict):
        message = f"{path}: expected a JSON object, got {_json_type(value)}"
        raise CtlError(message, EXIT_USAGE)
    return text, value


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def _payload(args: argparse.Namespace, what: str) -> str:
    """JSON to send: the file as-is, or the inline fields, or the file with flags on top."""
    fields = fields_from_args(args)
    if args.file is None and not fields:
        raise usage_error(f"give -f FILE or inline field flags ({what})")
    if args.file is None:
        return json.dumps(fields)
    text, data = load_json_object(args.file)
    if not fields:
        return text
    data.update(fields)
    return json.dumps(data)


def cmd_create(args: argparse.Namespace, ctx: Context) -> int:
    body = _payload(args, "the task to create")
    reply = ctx.client().create_task(body)
    task = parse_task_json(reply.task_json)
    print("Task validation completed")
    print(f"Task inserted successfully (tid {task.get('tid')})")
    return EXIT_OK


def cmd_update(args: argparse.Namespace, ctx: Context) -> int:
    ref = task_ref(args)
    body = _payload(args, "the fields to change")
    reply = ctx.client().update_task(ref, body)
    task = parse_task_json(reply.task_json)
    print("Task validation completed")
    print(f"Task {task.get('tid', ref.tid or ref.name)} updated.")
    return EXIT_OK


def cmd_get(args: argparse.Namespace, ctx: Context) -> int:
    reply = ctx.client().get_task(task_ref(args))
    task = parse_task_json(reply.task_json)
    title = f"Task {task.get('tid', '')} ({task.get('name', '')})"
    emit(ctx.out, args.output, task, lambda: [render_fields(title, task_fields(task))])
    return EXIT_OK


def cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    active = pb.ListTasksRequest.ALL
    if args.active is True:
        active = pb.ListTasksRequest.ACTIVE_ONLY
    elif args.active is False:
        active = pb.ListTasksRequest.INACTIVE_ONLY
    request = pb.ListTasksRequest(
        active=active,
        search=args.search or "",
        page=args.page,
        per_page=args.per_page,
        group=args.group or "",
    )
    reply = ctx.client().list_tasks(request)
    tasks = [parse_task_json(text) for text in reply.tasks_json]
    statuses = list(reply.task_status)
    records = [
        {**task, "task_status": statuses[i] if i < len(statuses) else ""}
        for i, task in enumerate(tasks)
    ]
    headers = ("TID", "Name", "Active", "Queue", "Group", "Schedule", "Status")
    rows = [
        (
            t.get("tid"),
            t.get("name"),
            "Y" if t.get("active", True) else "N",
            t.get("run_on_host"),
            t.get("task_group"),
            schedule_display(t),
            t.get("task_status"),
        )
        for t in records
    ]
    page = reply.page or args.page
    per_page = reply.per_page or args.per_page
    emit(
        ctx.out,
        args.output,
        records,
        lambda: [render_table(headers, rows), page_line(page, per_page, reply.total)],
    )
    return EXIT_OK


def cmd_delete(args: argparse.Namespace, ctx: Context) -> int:
    reply = ctx.client().delete_task(task_ref(args), args.cascade)
    print(f"Task deleted: {reply.name} (tid {reply.tid})")
    if reply.dependencies_cleared:
        print("Dependencies cascade deleted.")
    return EXIT_OK


def cmd_export(args: argparse.Namespace, ctx: Context) -> int:
    reply = ctx.client().export_tasks()
    text = reply.json if reply.json.endswith("\n") else reply.json + "\n"
    if args.file in (None, "-"):
        sys.stdout.write(text)
        return EXIT_OK
    try:
        Path(args.file).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CtlError(f"cannot write {args.file}: {exc.strerror}") from None
    print(f"Exported to {args.file}")
    return EXIT_OK


def cmd_import(args: argparse.Namespace, ctx: Context) -> int:
    text, _ = load_json_object(args.import_file)
    reply = ctx.client().import_tasks(text, args.dry_run, args.atomic)
    print(
        f"Import complete: {reply.created} created, {reply.updated} updated, "
        f"{reply.unchanged} unchanged, {reply.deleted} deleted"
    )
    if args.dry_run:
        print("Dry run: nothing was changed.")
    if reply.errors:
        print("Errors:")
        for error in reply.errors:
            kind = "Group" if error.kind == "group" else "Task"
            print(f'- {kind} "{error.name}": {error.message}')
        return EXIT_FAILED
    return EXIT_OK


def cmd_why(args: argparse.Namespace, ctx: Context) -> int:
    """Why is it not running? One line per clause, the first one that holds it back first."""
    reply = ctx.client().explain_task(task_ref(args), args.run_date or "")
    record = {
        "tid": reply.tid, "name": reply.name, "run_date": reply.run_date,
        "verdict": reply.verdict,
        "clauses": [{"clause": c.clause, "ok": c.ok, "detail": c.detail} for c in reply.clauses],
    }  # fmt: skip

    def table() -> list[Any]:
        rows = [("✔" if c.ok else "✘", c.clause, c.detail) for c in reply.clauses]
        title = f"Task {reply.tid} ({reply.name}) on {reply.run_date}: {reply.verdict}"
        return [title, render_table(("", "Clause", "Detail"), rows)]

    emit(ctx.out, args.output, record, table)
    return EXIT_OK


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    tasks = sub.add_parser("tasks", help="task definitions", description="Task definitions.")
    cmds = tasks.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)

    p = cmds.add_parser("create", parents=[common], help="create a task from a file or flags")
    p.add_argument("-f", "--file", help="task JSON object (- = stdin)")
    add_field_flags(p, update=False)
    p.set_defaults(handler=cmd_create)

    p = cmds.add_parser("update", parents=[common], help="change fields of a task")
    add_task_ref(p)
    p.add_argument("-f", "--file", help="JSON object of the fields to change (- = stdin)")
    add_field_flags(p, update=True)
    p.set_defaults(handler=cmd_update)

    p = cmds.add_parser("get", parents=[common], help="show one task")
    add_task_ref(p)
    add_output(p)
    p.set_defaults(handler=cmd_get)

    p = cmds.add_parser("list", parents=[common], help="list tasks")
    active = p.add_mutually_exclusive_group()
    active.add_argument(
        "--active", dest="active", action="store_const", const=True, help="active tasks only"
    )
    active.add_argument(
        "--inactive", dest="active", action="store_const", const=False, help="inactive tasks only"
    )
    p.add_argument("-s", "--search", help="name contains")
    p.add_argument("-g", "--group", metavar="GROUP", help="members of a group (gid or name)")
    add_paging(p)
    add_output(p)
    p.set_defaults(handler=cmd_list)

    p = cmds.add_parser("why", parents=[common], help="explain what a task is waiting for")
    add_task_ref(p)
    p.add_argument("--run-date", type=run_date, metavar="YYYYMMDD", help="default: today")
    add_output(p)
    p.set_defaults(handler=cmd_why)

    p = cmds.add_parser("delete", parents=[common], help="delete a task")
    add_task_ref(p)
    p.add_argument(
        "--cascade", action="store_true", help="also clear dependency expressions naming it"
    )
    p.set_defaults(handler=cmd_delete)

    p = cmds.add_parser("export", parents=[common], help="export every task and group as JSON")
    p.add_argument("-f", "--file", help="write to PATH instead of stdout")
    p.set_defaults(handler=cmd_export)

    p = cmds.add_parser("import", parents=[common], help="create/update/delete tasks from JSON")
    p.add_argument("import_file", metavar="FILE", help='{"tasks": [...], "groups": [...]}')
    p.add_argument("--dry-run", action="store_true", help="validate and count; change nothing")
    p.add_argument(
        "--atomic",
        action="store_true",
        help="apply nothing when any record fails (default: apply each valid one)",
    )
    p.set_defaults(handler=cmd_import)

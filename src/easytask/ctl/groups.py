"""`easytaskctl groups …`: task group definitions (spec 3, 12)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from easytask.ctl.client import EXIT_OK
from easytask.ctl.context import Context, add_output, add_paging, usage_error
from easytask.ctl.records import day_of_week_list, parse_task_json, schedule_display
from easytask.ctl.render import emit, page_line, render_fields, render_table
from easytask.ctl.tasks import load_json_object
from easytask.rpc.v1 import api_pb2 as pb

_DEST = "gfield_"
_FLAGS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("-d", "--description"), "description", "description"),
    (("--team",), "team", "team"),
    (("-z", "--timezone"), "timezone", "IANA time zone"),
    (("--trigger-times",), "trigger_times", "HH:MM[,HH:MM…]"),
    (("--day-of-week",), "day_of_week", "7 × 0/1, Monday first"),
    (("--ordinal-day",), "ordinal_day", "e.g. 'last business day of every month'"),
    (("--calendar",), "calendar", "holiday calendar"),
    (("--dependency",), "dependency", "expression over other groups, e.g. S:extract"),
    (("--misfire-policy",), "misfire_policy", "run_once, skip or run_all"),
)


def add_group_ref(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("gid", nargs="?", type=int, metavar="GID", help="group id")
    parser.add_argument("-n", "--name", dest="ref_name", metavar="NAME", help="group name")


def group_ref(args: argparse.Namespace) -> pb.GroupRef:
    if (args.gid is None) == (args.ref_name is None):
        raise usage_error("give GID or -n NAME (exactly one)")
    return pb.GroupRef(gid=args.gid) if args.gid is not None else pb.GroupRef(name=args.ref_name)


def _add_fields(parser: argparse.ArgumentParser, update: bool) -> None:
    g = parser.add_argument_group("group fields")
    if update:
        g.add_argument("--new-name", dest=f"{_DEST}name", metavar="NAME", help="rename")
    else:
        g.add_argument("-n", "--name", dest=f"{_DEST}name", metavar="NAME", help="group name")
        g.add_argument("--gid", dest=f"{_DEST}gid", type=int, metavar="GID", help="group id")
    for flags, name, text in _FLAGS:
        g.add_argument(*flags, dest=_DEST + name, metavar=name.upper(), help=text)
    active = g.add_mutually_exclusive_group()
    active.add_argument("--active", dest=f"{_DEST}active", action="store_const", const=True)
    active.add_argument("--inactive", dest=f"{_DEST}active", action="store_const", const=False)


def _payload(args: argparse.Namespace) -> str:
    fields = {k.removeprefix(_DEST): v for k, v in vars(args).items()
              if k.startswith(_DEST) and v is not None}  # fmt: skip
    if args.file is None:
        if not fields:
            raise usage_error("give -f FILE or inline field flags")
        return json.dumps(fields)
    text, data = load_json_object(args.file)
    if not fields:
        return text
    return json.dumps({**data, **fields})


def _record(reply: pb.GroupReply) -> dict[str, Any]:
    group = parse_task_json(reply.group_json)
    return {**group, "member_count": reply.member_count, "state": reply.state}


def cmd_create(args: argparse.Namespace, ctx: Context) -> int:
    reply = ctx.client().create_group(_payload(args))
    print("Group validation completed")
    print(f"Group inserted successfully (gid {_record(reply).get('gid')})")
    return EXIT_OK


def cmd_update(args: argparse.Namespace, ctx: Context) -> int:
    ref = group_ref(args)
    reply = ctx.client().update_group(ref, _payload(args))
    print("Group validation completed")
    print(f"Group {_record(reply).get('gid')} updated.")
    return EXIT_OK


def cmd_get(args: argparse.Namespace, ctx: Context) -> int:
    group = _record(ctx.client().get_group(group_ref(args)))
    title = f"Group {group.get('gid')} ({group.get('name')})"
    pairs = [(k.replace("_", " ").title(), day_of_week_list(v) if k == "day_of_week" else v)
             for k, v in group.items()]  # fmt: skip
    emit(ctx.out, args.output, group, lambda: [render_fields(title, pairs)])
    return EXIT_OK


def cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    request = pb.ListGroupsRequest(search=args.search or "", page=args.page, per_page=args.per_page)
    reply = ctx.client().list_groups(request)
    records = [_record(g) for g in reply.groups]
    headers = ("GID", "Name", "Active", "Members", "Schedule", "Dependency", "State")
    rows = [
        (g.get("gid"), g.get("name"), "Y" if g.get("active", True) else "N", g["member_count"],
         schedule_display(g), g.get("dependency") or "", g["state"] or "—")
        for g in records
    ]  # fmt: skip
    footer = page_line(reply.page, reply.per_page, reply.total)
    emit(ctx.out, args.output, records, lambda: [render_table(headers, rows), footer])
    return EXIT_OK


def cmd_delete(args: argparse.Namespace, ctx: Context) -> int:
    reply = ctx.client().delete_group(group_ref(args), args.cascade)
    print(f"Group deleted: {reply.name} (gid {reply.gid})")
    if reply.tasks_deleted:
        print(f"Member tasks deleted: {reply.tasks_deleted}")
    if reply.dependencies_cleared:
        print("Dependencies cascade deleted.")
    return EXIT_OK


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    groups = sub.add_parser("groups", help="task groups", description="Task groups.")
    cmds = groups.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)
    p = cmds.add_parser("create", parents=[common], help="create a group from a file or flags")
    p.add_argument("-f", "--file", help="group JSON object (- = stdin)")
    _add_fields(p, update=False)
    p.set_defaults(handler=cmd_create)
    p = cmds.add_parser("update", parents=[common], help="change fields of a group")
    add_group_ref(p)
    p.add_argument("-f", "--file", help="JSON object of the fields to change")
    _add_fields(p, update=True)
    p.set_defaults(handler=cmd_update)
    p = cmds.add_parser("get", parents=[common], help="show one group")
    add_group_ref(p)
    add_output(p)
    p.set_defaults(handler=cmd_get)
    p = cmds.add_parser("list", parents=[common], help="list groups with member counts")
    p.add_argument("-s", "--search", help="name contains")
    add_paging(p)
    add_output(p)
    p.set_defaults(handler=cmd_list)
    p = cmds.add_parser("delete", parents=[common], help="delete a group")
    add_group_ref(p)
    p.add_argument("--cascade", action="store_true",
                   help="also delete its tasks and clear expressions naming it")  # fmt: skip
    p.set_defaults(handler=cmd_delete)

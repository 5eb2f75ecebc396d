"""``easytaskctl calendars …``: holiday calendars and their entries (spec 5 and 12)."""

from __future__ import annotations

import argparse

from easytask.ctl.client import EXIT_OK
from easytask.ctl.context import Context, add_output, add_paging, iso_date, positive_int
from easytask.ctl.records import calendar_to_dict, holiday_to_dict
from easytask.ctl.render import emit, page_line, render_table
from easytask.rpc.v1 import api_pb2 as pb

CALENDAR_HEADERS = ("Name", "Kind", "Entries", "Description")
HOLIDAY_HEADERS = ("From", "To", "Reason", "Source", "ID")


def cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    request = pb.ListCalendarsRequest(
        include_builtin=args.builtin, page=args.page, per_page=args.per_page
    )
    reply = ctx.client().list_calendars(request)
    calendars = [calendar_to_dict(c) for c in reply.calendars]
    rows = [(c["name"], c["kind"], c["entries"], c["description"]) for c in calendars]
    page, per_page = reply.page or args.page, reply.per_page or args.per_page
    emit(
        ctx.out,
        args.output,
        calendars,
        lambda: [render_table(CALENDAR_HEADERS, rows), page_line(page, per_page, reply.total)],
    )
    return EXIT_OK


def cmd_get(args: argparse.Namespace, ctx: Context) -> int:
    reply = ctx.client().get_calendar(args.name, args.year or 0)
    calendar = calendar_to_dict(reply.calendar)
    entries = [holiday_to_dict(e) for e in reply.entries]
    data = {**calendar, "year": reply.year, "holidays": entries}
    rows = [(e["start_date"], e["end_date"], e["reason"], e["source"], e["id"]) for e in entries]
    # Generated dates are those of one year; a user calendar lists every year unless asked.
    yearly = calendar["kind"] == "builtin" or args.year
    title = f"{calendar['name']} ({calendar['kind']}{f', {reply.year}' if yearly else ''})"
    emit(ctx.out, args.output, data, lambda: [render_table(HOLIDAY_HEADERS, rows, title=title)])
    return EXIT_OK


def cmd_create(args: argparse.Namespace, ctx: Context) -> int:
    calendar = ctx.client().create_calendar(args.name, args.description or "")
    print(f"Calendar created: {calendar.name}")
    return EXIT_OK


def cmd_add_holiday(args: argparse.Namespace, ctx: Context) -> int:
    request = pb.AddHolidayRequest(
        name=args.name, start_date=args.date, end_date=args.to or "", reason=args.reason
    )
    entry = ctx.client().add_holiday(request)
    span = entry.start_date
    if entry.end_date != entry.start_date:
        span += f"..{entry.end_date}"
    print(f"Holiday added to {args.name}: {span} ({entry.reason}) [id {entry.id}]")
    return EXIT_OK


def cmd_remove_holiday(args: argparse.Namespace, ctx: Context) -> int:
    entry = ctx.client().remove_holiday(args.name, args.entry)
    print(f"Holiday {entry.id} removed from {args.name}")
    return EXIT_OK


def cmd_delete(args: argparse.Namespace, ctx: Context) -> int:
    if args.entry is not None:
        return cmd_remove_holiday(args, ctx)
    calendar = ctx.client().delete_calendar(args.name)
    print(f"Calendar deleted: {calendar.name}")
    return EXIT_OK


def _add_entry(parser: argparse.ArgumentParser, required: bool, help_text: str) -> None:
    parser.add_argument(
        "--entry", type=positive_int, required=required, metavar="ID", help=help_text
    )


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    calendars = sub.add_parser(
        "calendars", help="holiday calendars", description="Holiday calendars and their entries."
    )
    cmds = calendars.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)

    p = cmds.add_parser("list", parents=[common], help="user calendars (and built-in ones)")
    p.add_argument(
        "--builtin", action="store_true", help="also list every built-in <CODE>_HOLIDAYS calendar"
    )
    add_output(p)
    add_paging(p, what="calendars")
    p.set_defaults(handler=cmd_list)

    p = cmds.add_parser("get", parents=[common], help="the holidays of a calendar")
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "--year",
        type=positive_int,
        metavar="YYYY",
        help="year (default: the current year; for a user calendar, every entry)",
    )
    add_output(p)
    p.set_defaults(handler=cmd_get)

    p = cmds.add_parser("create", parents=[common], help="create a user calendar")
    p.add_argument("name", metavar="NAME", help="1-64 characters: letters, digits, space, _ - .")
    p.add_argument("-d", "--description", help="what the calendar is for")
    p.set_defaults(handler=cmd_create)

    p = cmds.add_parser(
        "add-holiday", parents=[common], help="add a holiday date or date range to a calendar"
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--date", type=iso_date, required=True, metavar="YYYY-MM-DD", help="first day")
    p.add_argument("--to", type=iso_date, metavar="YYYY-MM-DD", help="last day (inclusive)")
    p.add_argument("--reason", required=True, help="why the date is a holiday")
    p.set_defaults(handler=cmd_add_holiday)

    p = cmds.add_parser("remove-holiday", parents=[common], help="remove a holiday entry")
    p.add_argument("name", metavar="NAME")
    _add_entry(p, True, "entry id (see `calendars get`)")
    p.set_defaults(handler=cmd_remove_holiday)

    p = cmds.add_parser(
        "delete", parents=[common], help="delete a user calendar, or one entry with --entry"
    )
    p.add_argument("name", metavar="NAME")
    _add_entry(p, False, "remove only this entry (same as remove-holiday)")
    p.set_defaults(handler=cmd_delete)

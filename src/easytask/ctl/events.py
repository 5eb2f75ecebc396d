"""``easytaskctl events …``: operator events (spec 10). Issue scope: force-run, refresh-calendar."""

from __future__ import annotations

import argparse

from easytask.ctl.client import EXIT_OK, CtlError
from easytask.ctl.context import Context, add_task_ref, run_date, task_ref
from easytask.rpc.v1 import api_pb2 as pb

ORIGIN = "CLI"


def cmd_force_run(args: argparse.Namespace, ctx: Context) -> int:
    ref = task_ref(args)
    request = pb.ForceRunRequest(ref=ref, run_date=args.run_date or "", origin=ORIGIN)
    reply = ctx.client().force_run(request)
    if reply.status != "SUCCESS":
        raise CtlError(reply.message or f"force run of task {ref.tid or ref.name} failed")
    message = reply.message or f"Force run triggered for task {ref.tid or ref.name}"
    print(message)
    if reply.run_date and "Run date:" not in message:
        print(f"Run date: {reply.run_date}")
    if reply.run_id:
        print(f"Run ID: {reply.run_id}")
    return EXIT_OK


def cmd_refresh_calendar(args: argparse.Namespace, ctx: Context) -> int:
    reply = ctx.client().refresh_calendars(ORIGIN)
    if reply.status != "SUCCESS":
        raise CtlError(reply.message or "refreshing the holiday calendars failed")
    print(reply.message)
    return EXIT_OK


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    events = sub.add_parser("events", help="operator events", description="Operator events.")
    cmds = events.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)

    p = cmds.add_parser(
        "force-run", parents=[common], help="start a run now, ignoring schedule and dependencies"
    )
    add_task_ref(p)
    p.add_argument(
        "--run-date",
        type=run_date,
        metavar="YYYYMMDD",
        help="run date (default: today in the task's time zone)",
    )
    p.set_defaults(handler=cmd_force_run)

    p = cmds.add_parser(
        "refresh-calendar", parents=[common], help="reload every holiday calendar from the store"
    )
    p.set_defaults(handler=cmd_refresh_calendar)

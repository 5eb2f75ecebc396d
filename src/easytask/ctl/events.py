"""``easytaskctl events …``: operator events (spec 10) and the event log (list, get, ack)."""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from easytask.core.errors import CtlError
from easytask.ctl import adhoc
from easytask.ctl.client import EXIT_OK
from easytask.ctl.context import (
    Context,
    add_output,
    add_paging,
    add_task_ref,
    positive_float,
    run_date,
    task_ref,
    usage_error,
)
from easytask.ctl.records import event_to_dict
from easytask.ctl.render import emit, format_timestamp, page_line, render_fields, render_table
from easytask.rpc.v1 import api_pb2 as pb

ORIGIN = "CLI"
EVENT_HEADERS = ("ID", "Event", "Target", "Status", "Origin", "Published By", "Time")
MODIFY_STATUSES = ("SUCCESS", "FAILED", "TERMINATED", "SKIPPED", "ACTIVE")
DEFAULT_ACK_TIMEOUT = 10.0
_HHMM = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def trigger_time(text: str) -> str:
    """``HH:MM`` (``8:30`` accepted) -> ``08:30``."""
    match = _HHMM.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"expected HH:MM: {text!r}")
    return f"{int(match.group(1)):02d}:{match.group(2)}"


def modify_status(text: str) -> str:
    value = text.strip().upper()
    if value not in MODIFY_STATUSES:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(MODIFY_STATUSES)}: {text!r}")
    return value


def event_name(text: str) -> str:
    """``terminate-task`` or ``TERMINATE_TASK`` -> ``TERMINATE_TASK``."""
    return text.strip().upper().replace("-", "_")


# ---- publishing ----------------------------------------------------------------------------


def _target(args: argparse.Namespace, request: pb.PublishEventRequest) -> None:
    """Fill the event's target: ``--group GID``, or ``TID --group`` (modify-status), or a task."""
    group = getattr(args, "group", None)
    if isinstance(group, int) and not isinstance(group, bool):
        if args.tid is not None or args.ref_name is not None:
            raise usage_error("give a task (TID or -n NAME) or --group GID, not both")
        request.group.gid = group
    elif group is True:
        if args.tid is None:
            raise usage_error("give the group's GID")
        request.group.gid = args.tid
    elif hasattr(args, "ref_name"):
        request.task.CopyFrom(task_ref(args))


def _report(reply: pb.EventReply, event: str) -> int:
    """SUCCESS: the scheduler's message on stdout. FAILURE: ``Error: <message>``, exit 1."""
    if reply.status != "SUCCESS":
        raise CtlError(reply.message or f"{event} failed (event {reply.event_id})")
    print(reply.message)
    return EXIT_OK


def publish(args: argparse.Namespace, ctx: Context, event: str) -> int:
    """Send ``event`` with whatever target and arguments the command has."""
    request = pb.PublishEventRequest(
        event=event,
        run_date=getattr(args, "run_date", None) or "",
        trigger_time=getattr(args, "trigger_time", None) or "",
        status=getattr(args, "new_status", None) or "",
        run_id=getattr(args, "run_id", None) or "",
        origin=ORIGIN,
    )
    _target(args, request)
    return _report(ctx.client().publish_event(request), event)


def cmd_publish(args: argparse.Namespace, ctx: Context) -> int:
    return publish(args, ctx, args.event)


def cmd_debug(args: argparse.Namespace, ctx: Context) -> int:
    return publish(args, ctx, "ENABLE_DEBUG" if args.switch == "on" else "DISABLE_DEBUG")


def cmd_refresh_group(args: argparse.Namespace, ctx: Context) -> int:
    request = pb.PublishEventRequest(event="REFRESH_TASK_GROUP_DEFINITION", origin=ORIGIN)
    request.group.gid = args.gid
    return _report(ctx.client().publish_event(request), "REFRESH_TASK_GROUP_DEFINITION")


def cmd_force_run(args: argparse.Namespace, ctx: Context) -> int:
    if args.group is not None:
        group_request = pb.PublishEventRequest(
            event="FORCE_RUN_TASK", run_date=args.run_date or "", origin=ORIGIN
        )
        _target(args, group_request)
        return _report(ctx.client().publish_event(group_request), "FORCE_RUN_TASK")
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


# ---- the event log -------------------------------------------------------------------------


def event_row(event: Mapping[str, object]) -> tuple[object, ...]:
    return (
        event["id"],
        event["event"],
        event["target"],
        event["status"],
        event["origin"],
        event["published_by"],
        format_timestamp(str(event["created_at"] or "")),
    )


def event_fields(event: Mapping[str, object]) -> list[tuple[str, object]]:
    return [
        ("ID", event["id"]),
        ("Event", event["event"]),
        ("Target", event["target"]),
        ("Args", json.dumps(event["args"], ensure_ascii=False)),
        ("Status", event["status"]),
        ("Message", event["message"]),
        ("Origin", event["origin"]),
        ("Published By", event["published_by"]),
        ("Created At", event["created_at"]),
        ("ACK Time", event["acked_at"]),
        ("Scheduler", event["acked_by"]),
    ]


def cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    request = pb.ListEventsRequest(
        task_name=args.task_name or "",
        event_name=args.event_name or "",
        status=(args.status or "").upper(),
        origin=(args.origin or "").upper(),
        since_hours=args.since or 0.0,
        page=args.page,
        per_page=args.per_page,
    )
    reply = ctx.client().list_events(request)
    events = [event_to_dict(e) for e in reply.events]
    page, per_page = reply.page or args.page, reply.per_page or args.per_page
    emit(
        ctx.out,
        args.output,
        events,
        lambda: [
            render_table(EVENT_HEADERS, [event_row(e) for e in events], no_wrap={"Event"}),
            page_line(page, per_page, reply.total),
        ],
    )
    return EXIT_OK


def cmd_get(args: argparse.Namespace, ctx: Context) -> int:
    event = event_to_dict(ctx.client().get_event(args.event_id))
    title = f"Event {event['id']} ({event['event']})"
    emit(ctx.out, args.output, event, lambda: [render_fields(title, event_fields(event))])
    return EXIT_OK


def cmd_ack(args: argparse.Namespace, ctx: Context) -> int:
    """Wait until the scheduler has acknowledged the event (``acked_at`` set)."""
    client = ctx.client()
    limit: float = args.ack_timeout
    deadline = time.monotonic() + limit
    delay = 0.05
    while True:
        record = client.get_event(args.event_id)
        if record.acked_at:
            print("Status ACKNOWLEDGED")
            print(f"ACK Time {record.acked_at}")
            print(f"Scheduler {record.acked_by}")
            return EXIT_OK
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CtlError(
                f"event {args.event_id} not acknowledged within {limit:g} s "
                f"(status {record.status or 'unknown'})"
            )
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.5)


# ---- argument tree -------------------------------------------------------------------------

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]


def _add_slot(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run-date",
        type=run_date,
        metavar="YYYYMMDD",
        help="run date (default: today in the task's time zone)",
    )
    parser.add_argument(
        "--trigger-time", type=trigger_time, metavar="HH:MM", help="one slot of the date"
    )


def _add_group_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--group", type=int, metavar="GID", help="a task group")


def _task_event(
    cmds: Sub, common: argparse.ArgumentParser, name: str, event: str, help_text: str
) -> argparse.ArgumentParser:
    p = cmds.add_parser(name, parents=[common], help=help_text, description=help_text)
    add_task_ref(p)
    p.set_defaults(handler=cmd_publish, event=event)
    return p


def _register_task_events(cmds: Sub, common: argparse.ArgumentParser) -> None:
    p = _task_event(cmds, common, "enable", "ENABLE_TASK", "enable a task from its next slot on")
    _add_group_id(p)
    p = _task_event(cmds, common, "disable", "DISABLE_TASK", "disable a task (runs continue)")
    _add_group_id(p)
    p = _task_event(cmds, common, "freeze", "FREEZE_TASK", "freeze a date or one slot of it")
    _add_slot(p)
    p = _task_event(cmds, common, "unfreeze", "UNFREEZE_TASK", "lift a freeze")
    _add_slot(p)
    p = _task_event(
        cmds, common, "modify-status", "MODIFY_TASK_STATUS", "set the latest attempt's state"
    )
    p.add_argument(
        "--status",
        dest="new_status",
        type=modify_status,
        required=True,
        metavar="STATUS",
        help=f"one of {', '.join(MODIFY_STATUSES)} (ACTIVE starts a new attempt)",
    )
    _add_slot(p)
    p.add_argument("--group", action="store_true", help="the id is a group")
    p = _task_event(cmds, common, "terminate", "TERMINATE_TASK", "kill a task's running attempt")
    _add_slot(p)
    p.add_argument("--run-id", metavar="RUN_ID", help="that run only")
    _task_event(
        cmds, common, "refresh-task", "REFRESH_TASK_DEFINITION", "reload one task from the store"
    )

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
    _add_group_id(p)
    p.set_defaults(handler=cmd_force_run)


def _register_instance_events(cmds: Sub, common: argparse.ArgumentParser) -> None:
    p = cmds.add_parser("refresh-group", parents=[common], help="reload a group")
    p.add_argument("gid", type=int, metavar="GID", help="group id")
    p.set_defaults(handler=cmd_refresh_group)

    p = cmds.add_parser("refresh-graph", parents=[common], help="rebuild the dependency graph")
    p.set_defaults(handler=cmd_publish, event="REFRESH_GRAPH")

    p = cmds.add_parser(
        "refresh-calendar", parents=[common], help="reload every holiday calendar from the store"
    )
    p.set_defaults(handler=cmd_refresh_calendar)

    p = cmds.add_parser("debug", parents=[common], help="scheduler log level DEBUG or INFO")
    p.add_argument("switch", choices=("on", "off"), help="on: DEBUG, off: back to INFO")
    p.set_defaults(handler=cmd_debug)


def _register_log(
    cmds: Sub, common: argparse.ArgumentParser, untimed: argparse.ArgumentParser
) -> None:
    p = cmds.add_parser("list", parents=[common], help="recorded events, newest first")
    p.add_argument("--task-name", metavar="TEXT", help="target contains")
    p.add_argument("--event-name", type=event_name, metavar="EVENT", help="e.g. TERMINATE_TASK")
    p.add_argument("--status", help="PENDING, SUCCESS or FAILURE")
    p.add_argument("--origin", help="CLI, UI or API")
    p.add_argument("--since", type=positive_float, metavar="HOURS", help="default: 24")
    add_paging(p)
    add_output(p)
    p.set_defaults(handler=cmd_list)

    p = cmds.add_parser("get", parents=[common], help="one event record")
    p.add_argument("event_id", type=int, metavar="EVENT_ID")
    add_output(p)
    p.set_defaults(handler=cmd_get)

    # -t/--timeout here is the wait for the acknowledgment, hence the parent without --timeout.
    p = cmds.add_parser("ack", parents=[untimed], help="wait for the scheduler's acknowledgment")
    p.add_argument("event_id", type=int, metavar="EVENT_ID")
    p.add_argument(
        "-t",
        "--timeout",
        dest="ack_timeout",
        type=positive_float,
        default=DEFAULT_ACK_TIMEOUT,
        metavar="SECONDS",
        help=f"give up after SECONDS (default: {DEFAULT_ACK_TIMEOUT:g})",
    )
    p.set_defaults(handler=cmd_ack)


def register(sub: Sub, common: argparse.ArgumentParser, untimed: argparse.ArgumentParser) -> None:
    """``untimed``: the global options without ``--timeout`` (taken by ``ack -t/--timeout``)."""
    events = sub.add_parser("events", help="operator events", description="Operator events.")
    cmds = events.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)
    _register_log(cmds, common, untimed)
    _register_task_events(cmds, common)
    _register_instance_events(cmds, common)
    adhoc.register(cmds, common)

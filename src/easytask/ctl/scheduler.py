"""``easytaskctl scheduler …``: task-runs, task-run-logs, upcoming, health, task-statuses,
state-codes, logs."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from typing import IO

from rich.panel import Panel
from rich.text import Text

from easytask.core.errors import CtlError
from easytask.core.states import RunState, run_state_label
from easytask.ctl.client import EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE
from easytask.ctl.context import (
    Context,
    add_output,
    add_paging,
    iso_date,
    positive_float,
    positive_int,
    run_date,
    usage_error,
)
from easytask.ctl.records import health_to_dict, run_to_dict, stream_to_dict, upcoming_to_dict
from easytask.ctl.render import (
    emit,
    format_duration,
    format_timestamp,
    page_count,
    page_line,
    render_fields,
    render_table,
    render_text_panel,
)
from easytask.rpc.v1 import api_pb2 as pb

RUN_HEADERS = (
    "Run ID",
    "TID",
    "Task",
    "Group",
    "Run Date",
    "Local",
    "Attempt",
    "State",
    "Started",
    "Finished",
    "Duration",
    "Agent",
    "RC",
)
UPCOMING_HEADERS = (
    "TID",
    "Task",
    "Next Run (UTC)",
    "Local Run",
    "Timezone",
    "Group",
    "Queue",
    "Note",
)
_STREAMS = {None: pb.BOTH, "stdout": pb.STDOUT_ONLY, "stderr": pb.STDERR_ONLY}


def _state_order(name: str) -> tuple[int, str]:
    try:
        return RunState(name).code, name
    except ValueError:
        return 99, name


def stats_panel(stats: Mapping[str, int]) -> Panel:
    """Panel ``Stats``: ``Total: 7   SUCCESS: 5   FAILED: 2`` (states in code order)."""
    parts = [f"Total: {sum(stats.values())}"]
    parts += [f"{name}: {stats[name]}" for name in sorted(stats, key=_state_order) if stats[name]]
    return Panel(Text("   ".join(parts)), title=Text("Stats"), title_align="left", expand=False)


def run_row(run: Mapping[str, object]) -> tuple[object, ...]:
    duration = run["duration"]
    return (
        run["run_id"],
        run["tid"],
        run["name"],
        run["group"],
        run["run_date"],
        run["local_time"],
        run["attempt"],
        run_state_label(str(run["state"]), str(run["reason"] or "")),
        format_timestamp(str(run["started_at"] or "")),
        format_timestamp(str(run["ended_at"] or "")),
        format_duration(float(duration) if isinstance(duration, int | float) else None),
        run["agent"],
        run["return_code"],
    )


def cmd_task_runs(args: argparse.Namespace, ctx: Context) -> int:
    request = pb.ListRunsRequest(
        status=(args.status or "").upper(),
        search=args.search or "",
        tid=args.tid or 0,
        run_date=args.run_date or "",
        since_hours=args.since or 0.0,
        page=args.page,
        per_page=args.per_page,
        group=args.group or "",
    )
    reply = ctx.client().list_runs(request)
    runs = [run_to_dict(run) for run in reply.runs]
    page = reply.page or args.page
    per_page = reply.per_page or args.per_page
    emit(
        ctx.out,
        args.output,
        runs,
        lambda: [
            stats_panel(dict(reply.stats)),
            render_table(RUN_HEADERS, [run_row(r) for r in runs], no_wrap={"Run ID"}),
            page_line(page, per_page, reply.total),
        ],
    )
    return EXIT_OK


def _log_panel(name: str, lines: pb.StreamLines, page: int, per_page: int) -> Panel:
    body = "\n".join(line.rstrip("\n") for line in lines.lines) or "(no output)"
    pages = page_count(lines.total_lines, per_page)
    subtitle = f"Page {page} of {pages} ({lines.total_lines} total lines)"
    if lines.truncated:
        subtitle += " · stored copy truncated (head and tail kept)"
    return render_text_panel(name, body, subtitle)


def cmd_task_run_logs(args: argparse.Namespace, ctx: Context) -> int:
    if args.follow:
        return _follow(args, ctx)
    request = pb.RunLogsRequest(
        run_id=args.run_id, stream=_STREAMS[args.stream], page=args.page, per_page=args.per_page
    )
    reply = ctx.client().get_run_logs(request)
    names = [args.stream] if args.stream else ["stdout", "stderr"]
    data: dict[str, object] = {"run_id": args.run_id, "state": reply.state}
    for name in names:
        data[name] = stream_to_dict(getattr(reply, name))
    emit(
        ctx.out,
        args.output,
        data,
        lambda: [_log_panel(n, getattr(reply, n), args.page, args.per_page) for n in names],
    )
    return EXIT_OK


def _binary(stream: IO[str]) -> IO[bytes] | None:
    stream.flush()
    buffer = getattr(stream, "buffer", None)
    return buffer if buffer is not None and hasattr(buffer, "write") else None


def _write_raw(stream: IO[str], data: bytes) -> None:
    raw = _binary(stream)
    if raw is not None:
        raw.write(data)
        raw.flush()
    else:
        stream.write(data.decode("utf-8", errors="replace"))
        stream.flush()


FOLLOW_RETRIES = 5  # attempts in a row without new output before a follow gives up
FOLLOW_RETRY_SECONDS = 2.0


def _follow(args: argparse.Namespace, ctx: Context) -> int:
    """Raw bytes as they arrive (stdout data to stdout, stderr data to stderr).

    After any gap (the stream breaks, the scheduler restarts, output reaches it late) the
    follow resumes from the last offset printed: the scheduler's stored copy is the source of
    truth, so every byte is printed once, in order. Exits non-zero when the whole output
    cannot be delivered.
    """
    ends = {"stdout": 0, "stderr": 0}
    failures, received = 0, False
    problem, code = "the log stream ended before the run finished", EXIT_FAILED
    while True:
        request = pb.FollowRunLogsRequest(
            run_id=args.run_id,
            stream=_STREAMS[args.stream],
            stdout_offset=ends["stdout"],
            stderr_offset=ends["stderr"],
        )
        try:
            for chunk in ctx.client().follow_run_logs(request):
                received = True
                if chunk.data and chunk.end > ends.get(chunk.stream, 0):
                    _write_raw(sys.stderr if chunk.stream == "stderr" else sys.stdout, chunk.data)
                    ends[chunk.stream] = chunk.end
                    failures = 0
                if chunk.final_state and chunk.complete:
                    print(f"Run finished: {chunk.final_state}", file=sys.stderr)
                    return EXIT_OK
                if chunk.final_state:
                    problem = f"the run finished {chunk.final_state} but its output is incomplete"
                    code = EXIT_FAILED
        except CtlError as exc:
            if exc.exit_code != EXIT_UNREACHABLE or not received:
                raise
            problem, code = exc.message, exc.exit_code
        failures += 1
        if failures > FOLLOW_RETRIES:
            raise CtlError(
                f"output of run {args.run_id} not fully delivered: {problem} "
                f"(printed stdout up to byte {ends['stdout']}, stderr up to {ends['stderr']})",
                code,
            )
        time.sleep(FOLLOW_RETRY_SECONDS)


def cmd_upcoming(args: argparse.Namespace, ctx: Context) -> int:
    if (args.from_date is None) != (args.to_date is None):
        raise usage_error("--from and --to go together")
    if args.task and args.group:
        raise usage_error("give --task or --group, not both")
    request = pb.UpcomingRequest(
        gid=args.group or 0,
        tid=args.task or 0,
        hours=args.hours or 0.0,
        from_date=args.from_date or "",
        to_date=args.to_date or "",
        count=args.count or 0,
    )
    reply = ctx.client().upcoming(request)
    entries = [upcoming_to_dict(e) for e in reply.entries]
    rows = [
        (
            e["tid"] or "",
            e["name"],
            format_timestamp(e["next_run_utc"]),
            e["local_run"],
            e["timezone"],
            e["group"],
            e["queue"],
            e["note"],
        )
        for e in entries
    ]
    emit(ctx.out, args.output, entries, lambda: [render_table(UPCOMING_HEADERS, rows)])
    return EXIT_OK


STATUS_HEADERS = ("TID", "Task", "Status", "Last Result")
STATE_CODE_HEADERS = ("Code", "State", "Letter", "Display")
LOG_HEADERS = ("ID", "Action", "Host", "PID", "Message", "Time")
LOG_ACTIONS = ("STARTED", "STOPPED", "RESTARTED", "CRASHED")


def cmd_task_statuses(args: argparse.Namespace, ctx: Context) -> int:
    request = pb.ListTaskStatusesRequest(
        search=args.search or "", group=args.group or "", page=args.page, per_page=args.per_page
    )
    reply = ctx.client().list_task_statuses(request)
    records = [
        {"tid": s.tid, "name": s.name, "status": s.status, "last_result": s.last_result or None}
        for s in reply.statuses
    ]
    rows = [(r["tid"], r["name"], r["status"], r["last_result"]) for r in records]
    page = reply.page or args.page
    per_page = reply.per_page or args.per_page
    emit(
        ctx.out,
        args.output,
        records,
        lambda: [render_table(STATUS_HEADERS, rows), page_line(page, per_page, reply.total)],
    )
    return EXIT_OK


def cmd_state_codes(args: argparse.Namespace, ctx: Context) -> int:
    reply = ctx.client().list_state_codes()
    records = [
        {"code": c.code, "state": c.state, "letter": c.letter or None, "display": c.display}
        for c in reply.codes
    ]
    rows = [(r["code"], r["state"], r["letter"], r["display"]) for r in records]
    emit(ctx.out, args.output, records, lambda: [render_table(STATE_CODE_HEADERS, rows)])
    return EXIT_OK


def log_action(text: str) -> str:
    value = text.strip().upper()
    if value not in LOG_ACTIONS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(LOG_ACTIONS)}: {text!r}")
    return value


def cmd_logs(args: argparse.Namespace, ctx: Context) -> int:
    request = pb.ListSchedulerLogsRequest(
        action=args.action or "", search=args.search or "", page=args.page, per_page=args.per_page
    )
    reply = ctx.client().list_scheduler_logs(request)
    records = [
        {
            "id": e.id,
            "action": e.action,
            "host": e.host,
            "pid": e.pid,
            "message": e.message,
            "created_at": e.created_at,
        }
        for e in reply.entries
    ]
    rows = [
        (
            r["id"],
            r["action"],
            r["host"],
            r["pid"],
            r["message"],
            format_timestamp(str(r["created_at"])),
        )
        for r in records
    ]
    page = reply.page or args.page
    per_page = reply.per_page or args.per_page
    emit(
        ctx.out,
        args.output,
        records,
        lambda: [render_table(LOG_HEADERS, rows), page_line(page, per_page, reply.total)],
    )
    return EXIT_OK


def health_fields(health: Mapping[str, object]) -> list[tuple[str, object]]:
    age = health["heartbeat_age"]
    return [
        ("Instance", health["instance"]),
        ("Status", health["status"]),
        ("Heartbeat Age", format_duration(float(age) if isinstance(age, int | float) else None)),
        ("Started At", health["started_at"]),
        ("Version", health["version"]),
        ("Agents Online", health["agents_online"]),
        ("Active Runs", health["active_runs"]),
        ("Triggers (24h)", health["triggers_24h"]),
        ("Debug", "on" if health["debug"] else "off"),
        ("Timezone", health["timezone"]),
    ]


def cmd_health(args: argparse.Namespace, ctx: Context) -> int:
    health = health_to_dict(ctx.client().health())
    emit(
        ctx.out,
        args.output,
        health,
        lambda: [render_fields("Scheduler", health_fields(health))],
    )
    return EXIT_OK


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    sched = sub.add_parser("scheduler", help="runs, logs, upcoming slots, scheduler health")
    cmds = sched.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)

    p = cmds.add_parser("task-runs", parents=[common], help="runs, newest first")
    p.add_argument("-s", "--status", help="state, e.g. FAILED")
    p.add_argument("--search", help="task name contains")
    p.add_argument("--tid", type=int, help="task id")
    p.add_argument("-g", "--group", metavar="GROUP", help="runs of a group (gid or name)")
    p.add_argument("--run-date", type=run_date, metavar="YYYYMMDD")
    p.add_argument("--since", type=positive_float, metavar="HOURS", help="default: 24")
    add_paging(p)
    add_output(p)
    p.set_defaults(handler=cmd_task_runs)

    p = cmds.add_parser("task-run-logs", parents=[common], help="stdout and stderr of a run")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--stream", choices=("stdout", "stderr"), help="default: both")
    add_paging(p, per_page=500, what="lines")
    p.add_argument("--follow", action="store_true", help="stream live until the run is final")
    add_output(p)
    p.set_defaults(handler=cmd_task_run_logs)

    p = cmds.add_parser("upcoming", parents=[common], help="next scheduled slots")
    p.add_argument("--task", type=int, metavar="TID", help="one task only")
    p.add_argument("--group", type=positive_int, metavar="GID", help="a group's occurrences")
    p.add_argument("--hours", type=positive_float, help="look-ahead (default: 24)")
    p.add_argument("--from", dest="from_date", type=iso_date, metavar="YYYY-MM-DD")
    p.add_argument("--to", dest="to_date", type=iso_date, metavar="YYYY-MM-DD")
    p.add_argument("--count", type=positive_int, metavar="N", help="at most N (default: 50)")
    add_output(p)
    p.set_defaults(handler=cmd_upcoming)

    p = cmds.add_parser("health", parents=[common], help="scheduler status")
    add_output(p)
    p.set_defaults(handler=cmd_health)

    p = cmds.add_parser("task-statuses", parents=[common], help="each task's status (spec 7.1)")
    p.add_argument("-s", "--search", help="task name contains")
    p.add_argument("-g", "--group", metavar="GROUP", help="members of a group (gid or name)")
    add_paging(p)
    add_output(p)
    p.set_defaults(handler=cmd_task_statuses)

    p = cmds.add_parser("state-codes", parents=[common], help="the run states and their codes")
    add_output(p)
    p.set_defaults(handler=cmd_state_codes)

    p = cmds.add_parser("logs", parents=[common], help="scheduler starts, stops and crashes")
    p.add_argument("-a", "--action", type=log_action, metavar="ACTION",
                   help=f"one of {', '.join(LOG_ACTIONS)}")  # fmt: skip
    p.add_argument("-s", "--search", help="message or host contains")
    add_paging(p)
    add_output(p)
    p.set_defaults(handler=cmd_logs)

"""``easytaskctl agents …``: connected and known agents."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping

from easytask.ctl.client import EXIT_OK
from easytask.ctl.context import Context, add_output
from easytask.ctl.records import agent_to_dict
from easytask.ctl.render import (
    NONE_MARK,
    emit,
    format_duration,
    format_timestamp,
    render_fields,
    render_table,
)

AGENT_HEADERS = ("Name", "Status", "Host", "Queues", "Version", "CPU%", "Mem%", "Uptime", "Running")


def agent_row(agent: Mapping[str, object]) -> tuple[object, ...]:
    online = agent["status"] == "online"
    cpu, mem, uptime = agent["cpu_percent"], agent["mem_percent"], agent["uptime_seconds"]
    return (
        agent["name"],
        agent["status"],
        agent["host"],
        agent["queues"],
        agent["version"],
        f"{cpu:.1f}" if online and isinstance(cpu, float) else NONE_MARK,
        f"{mem:.1f}" if online and isinstance(mem, float) else NONE_MARK,
        format_duration(uptime) if online and isinstance(uptime, float) else NONE_MARK,
        agent["running"],
    )


def cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    agents = [agent_to_dict(a) for a in ctx.client().list_agents().agents]
    agents.sort(key=lambda a: (a["status"] != "online", str(a["name"])))  # online first
    online = sum(1 for a in agents if a["status"] == "online")
    summary = f"{online} online, {len(agents) - online} offline"
    rows = [agent_row(a) for a in agents]
    emit(ctx.out, args.output, agents, lambda: [summary, render_table(AGENT_HEADERS, rows)])
    return EXIT_OK


def agent_fields(agent: Mapping[str, object]) -> list[tuple[str, object]]:
    """The ``agents get`` panel: the list's columns, then PID, resources and history."""
    row = dict(zip(AGENT_HEADERS, agent_row(agent), strict=True))
    total, free = agent["disk_total_mb"], agent["disk_free_mb"]
    disk = f"{free} MB free of {total} MB" if total else NONE_MARK
    changes = agent["changes"] if isinstance(agent["changes"], list) else []
    history = [
        f"{c['status']} {format_timestamp(c['at'])}" + (f" ({c['reason']})" if c["reason"] else "")
        for c in changes
    ]
    running = agent["running_run_ids"] if isinstance(agent["running_run_ids"], list) else []
    return [
        *((k, row[k]) for k in AGENT_HEADERS),
        ("PID", agent["pid"] or NONE_MARK),
        ("CPU Cores", agent["cpu_cores"] or NONE_MARK),
        ("Memory MB", agent["memory_mb"] or NONE_MARK),
        ("Disk", disk),
        ("Max Runs", agent["max_runs"] or "no cap"),
        ("Connected Since", format_timestamp(str(agent["connected_since"] or "")) or NONE_MARK),
        ("Last Seen", format_timestamp(str(agent["last_seen"] or "")) or NONE_MARK),
        ("Running Run IDs", "\n".join(running) or NONE_MARK),
        ("Status Changes", "\n".join(history) or NONE_MARK),
    ]


def cmd_get(args: argparse.Namespace, ctx: Context) -> int:
    agent = agent_to_dict(ctx.client().get_agent(args.name))
    title = f"Agent {agent['name']}"
    emit(ctx.out, args.output, agent, lambda: [render_fields(title, agent_fields(agent))])
    return EXIT_OK


def cmd_restart(args: argparse.Namespace, ctx: Context) -> int:
    print(ctx.client().restart_agent(args.name).message)
    return EXIT_OK


TOKEN_HEADERS = ("Name", "Created", "Created By", "Last Used")


def cmd_token_create(args: argparse.Namespace, ctx: Context) -> int:
    reply = ctx.client().create_agent_token(args.name)
    print(f"Agent token for {reply.token.name}: {reply.secret}")
    print("Shown this once; give it to the agent with --token or EASYTASK_TOKEN.", file=sys.stderr)
    return EXIT_OK


def cmd_token_list(args: argparse.Namespace, ctx: Context) -> int:
    tokens = [
        {"name": t.name, "created_at": t.created_at, "created_by": t.created_by,
         "last_used": t.last_used or None}
        for t in ctx.client().list_agent_tokens().tokens
    ]  # fmt: skip
    rows = [
        (t["name"], format_timestamp(t["created_at"]), t["created_by"],
         format_timestamp(t["last_used"]) or NONE_MARK)
        for t in tokens
    ]  # fmt: skip
    emit(ctx.out, args.output, tokens, lambda: [render_table(TOKEN_HEADERS, rows)])
    return EXIT_OK


def cmd_token_revoke(args: argparse.Namespace, ctx: Context) -> int:
    print(f"Agent token revoked: {ctx.client().revoke_agent_token(args.name).name}")
    return EXIT_OK


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    agents = sub.add_parser("agents", help="worker agents", description="Worker agents.")
    cmds = agents.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)

    p = cmds.add_parser("list", parents=[common], help="agents, online first")
    add_output(p)
    p.set_defaults(handler=cmd_list)

    p = cmds.add_parser("get", parents=[common], help="one agent, with its resources and history")
    p.add_argument("name", metavar="NAME", help="agent name")
    add_output(p)
    p.set_defaults(handler=cmd_get)

    p = cmds.add_parser(
        "restart", parents=[common], help="the agent re-executes itself; its commands keep running"
    )
    p.add_argument("name", metavar="NAME", help="agent name")
    p.set_defaults(handler=cmd_restart)

    token = cmds.add_parser("token", help="per-agent tokens", description="Per-agent tokens.")
    tcmds = token.add_subparsers(dest="token_command", metavar="COMMAND", required=True)
    p = tcmds.add_parser("create", parents=[common], help="issue a token bound to NAME")
    p.add_argument("name", metavar="NAME", help="agent name")
    p.set_defaults(handler=cmd_token_create)
    p = tcmds.add_parser("list", parents=[common], help="issued tokens (never the secrets)")
    add_output(p)
    p.set_defaults(handler=cmd_token_list)
    p = tcmds.add_parser("revoke", parents=[common], help="revoke; its stream closes at once")
    p.add_argument("name", metavar="NAME", help="agent name")
    p.set_defaults(handler=cmd_token_revoke)

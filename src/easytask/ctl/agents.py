"""``easytaskctl agents …``: connected and known agents."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from easytask.ctl.client import EXIT_OK
from easytask.ctl.context import Context, add_output
from easytask.ctl.records import agent_to_dict
from easytask.ctl.render import NONE_MARK, emit, format_duration, render_table

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


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    agents = sub.add_parser("agents", help="worker agents", description="Worker agents.")
    cmds = agents.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)

    p = cmds.add_parser("list", parents=[common], help="agents, online first")
    add_output(p)
    p.set_defaults(handler=cmd_list)

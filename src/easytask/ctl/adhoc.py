"""``easytaskctl events adhoc``: one command on selected agents (spec 10 ADHOC, spec 12)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from easytask.core.errors import CtlError
from easytask.ctl.client import EXIT_FAILED, EXIT_OK
from easytask.ctl.context import Context, positive_int
from easytask.ctl.records import adhoc_result_to_dict
from easytask.ctl.render import NONE_MARK, render_text_panel
from easytask.rpc.v1 import api_pb2 as pb

FINAL = ("SUCCESS", "FAILED", "TERMINATED")
POLL_SECONDS = 0.3
DEFAULT_MAX_RUN_TIME = 3600


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list: {text!r}")
    return names


def result_block(result: Mapping[str, object]) -> list[object]:
    """One agent's block: name, state, return code, then its output."""
    rc = result["return_code"]
    reason = f" ({result['reason']})" if result["reason"] else ""
    title = (
        f"{result['agent']} ({result['host']}) · {result['state']}{reason} · "
        f"return code {NONE_MARK if rc is None else rc}"
    )
    blocks: list[object] = []
    for stream, label in (("stdout", title), ("stderr", f"{result['agent']} stderr")):
        text = str(result[stream])
        if text or stream == "stdout":  # the stdout panel carries the title, empty or not
            cut = "earlier output cut; last 64 KiB" if result[f"{stream}_cut"] else None
            blocks.append(render_text_panel(label, text, cut))
    return blocks


def cmd_adhoc(args: argparse.Namespace, ctx: Context) -> int:
    request = pb.AdhocRequest(
        name=args.name,
        cmd=args.cmd,
        queues=args.queues or [],
        agents=args.agents or [],
        all=args.all,
        stdout=args.stdout or "",
        stderr=args.stderr or "",
        max_run_time=args.max_run_time,
        run_as_user=args.run_as_user or "",
        origin="CLI",
    )
    client = ctx.client()
    reply = client.run_adhoc(request)
    if reply.status != "SUCCESS":
        raise CtlError(reply.message or f"adhoc command {args.name!r} refused")
    print(reply.message, flush=True)
    if not args.wait:
        return EXIT_OK
    return _wait(ctx, reply.event_id)


def _wait(ctx: Context, event_id: int) -> int:
    """Print one block per agent as each finishes; exit 1 when any did not succeed."""
    client = ctx.client()
    shown: set[str] = set()
    failed = False
    while True:
        results = [adhoc_result_to_dict(r) for r in client.get_event(event_id).results]
        for result in results:
            run_id = str(result["run_id"])
            if run_id in shown or result["state"] not in FINAL:
                continue
            shown.add(run_id)
            failed = failed or result["state"] != "SUCCESS"
            for block in result_block(result):
                ctx.out.print(block)
            ctx.out.file.flush()
        if len(shown) == len(results):
            return EXIT_FAILED if failed else EXIT_OK
        time.sleep(POLL_SECONDS)


if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]


def register(cmds: Sub, common: argparse.ArgumentParser) -> None:
    p = cmds.add_parser(
        "adhoc",
        parents=[common],
        help="run a one-off command on selected connected agents",
        description="Run a one-off command once on every selected connected agent (ADHOC).",
    )
    p.add_argument("-n", "--name", required=True, help="a name for the command")
    p.add_argument("-c", "--cmd", required=True, help="the command (bash -c)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("-q", "--queues", type=_names, metavar="Q1,Q2", help="agents serving these")
    where.add_argument("--agents", type=_names, metavar="A1,A2", help="these agents")
    where.add_argument("--all", action="store_true", help="every connected agent")
    p.add_argument("--stdout", metavar="PATH", help="default /tmp/adhoc.out")
    p.add_argument("--stderr", metavar="PATH", help="default /tmp/adhoc.err")
    p.add_argument(
        "--max-run-time",
        type=positive_int,
        default=DEFAULT_MAX_RUN_TIME,
        metavar="SECONDS",
        help=f"terminate after SECONDS (default {DEFAULT_MAX_RUN_TIME})",
    )
    p.add_argument("--run-as-user", metavar="USER", help="run as this user")
    p.add_argument("--wait", action="store_true", help="print each agent's result as it finishes")
    p.set_defaults(handler=cmd_adhoc)

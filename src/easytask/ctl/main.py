"""``easytaskctl`` entry point: the argument tree, global options, dispatch and exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from easytask import __version__
from easytask.core.errors import CtlError
from easytask.ctl import admin, agents, auth, calendars, events, groups, health, scheduler, tasks
from easytask.ctl.client import (
    DEFAULT_SERVER,
    DEFAULT_TIMEOUT,
    EXIT_FAILED,
    Connector,
    build_config,
    connect,
)
from easytask.ctl.context import Context, Handler, positive_float

EXIT_INTERRUPTED = 130


def _add_globals(parser: argparse.ArgumentParser, *, call_timeout: bool = True) -> None:
    parser.add_argument(
        "--server",
        metavar="HOST:PORT",
        help=f"scheduler API (env EASYTASK_SERVER, default {DEFAULT_SERVER})",
    )
    parser.add_argument(
        "--token",
        help="API token (env EASYTASK_TOKEN, else api_token of <home>/credentials.json)",
    )
    parser.add_argument(
        "--home", metavar="DIR", help="data directory (env EASYTASK_HOME, default ./.easytask)"
    )
    parser.add_argument(
        "--tls-ca", metavar="FILE", help="CA certificate: use TLS (env EASYTASK_TLS_CA)"
    )
    if call_timeout:
        parser.add_argument(
            "--timeout",
            type=positive_float,
            metavar="SECONDS",
            help=f"deadline of each call (default {DEFAULT_TIMEOUT:g})",
        )


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree. Global options work before or after the command words."""
    parser = argparse.ArgumentParser(
        prog="easytaskctl", description="Command line of the EasyTask workload scheduler."
    )
    _add_globals(parser)
    parser.add_argument("--version", action="version", version=f"easytaskctl {__version__}")
    # Leaf commands repeat the global options; SUPPRESS keeps a value given before the command.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    _add_globals(common)
    # For leaves whose own -t/--timeout means something else (`events ack`).
    untimed = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    _add_globals(untimed, call_timeout=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    health.register(sub, common)
    tasks.register(sub, common)
    groups.register(sub, common)
    events.register(sub, common, untimed)
    scheduler.register(sub, common)
    agents.register(sub, common)
    calendars.register(sub, common)
    auth.register(sub, common)
    admin.register(sub, common)
    return parser


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return EXIT_FAILED


def main(argv: Sequence[str] | None = None, *, connector: Connector = connect) -> int:
    """Run one command and return its exit code (0 ok, 1 failed, 2 usage, 3 unreachable)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # -h, --version and usage errors
        return _exit_code(exc)
    handler: Handler = args.handler
    try:
        config = build_config(
            server=args.server,
            token=args.token,
            home=args.home,
            tls_ca=args.tls_ca,
            timeout=args.timeout,
        )
        ctx = Context(config, connector)
        try:
            return handler(args, ctx)
        finally:
            ctx.close()
    except CtlError as exc:
        sys.stdout.flush()
        for line in exc.lines():
            print(line, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `easytaskctl … | head`: the reader left; nothing left to say.
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())

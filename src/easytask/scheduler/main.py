"""easytask-scheduler command line: parse options, set up logging, run SchedulerService."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

from easytask.core.errors import ConfigError
from easytask.scheduler.logs import setup_logging
from easytask.scheduler.retention import DEFAULT_RETENTION_DAYS, parse_retention_days
from easytask.scheduler.service import SchedulerConfig, SchedulerService


def default_home() -> Path:
    return Path(os.environ.get("EASYTASK_HOME") or "./.easytask").resolve()


def _retention_days(text: str) -> int:
    try:
        return parse_retention_days(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="easytask-scheduler", description="Run the EasyTask scheduler for one instance."
    )
    parser.add_argument("--home", type=Path, help="data directory ($EASYTASK_HOME, ./.easytask)")
    parser.add_argument("--grpc-listen", default="127.0.0.1:7070", help="API and agent address")
    parser.add_argument(
        "--http-listen", default="127.0.0.1:8002", help="dashboard address ('' to disable)"
    )
    parser.add_argument("--instance", default="default", help="instance (namespace) name")
    parser.add_argument("--tls-cert", type=Path, help="PEM certificate for the gRPC port")
    parser.add_argument("--tls-key", type=Path, help="PEM private key for the gRPC port")
    parser.add_argument(
        "--tls-ca",
        type=Path,
        help="PEM CA of agent certificates: agents connect to --agent-listen with mutual TLS, "
        "their name taken from their certificate (needs --tls-cert/--tls-key)",
    )
    parser.add_argument(
        "--agent-listen",
        default="127.0.0.1:7071",
        help="mutual-TLS address for agents, with --tls-ca (default 127.0.0.1:7071)",
    )
    parser.add_argument(
        "--heartbeat-seconds", type=int, default=10, help="beat to agents (default 10)"
    )
    parser.add_argument(
        "--offline-after",
        type=int,
        default=30,
        help="seconds without a word before an agent is offline (default 30)",
    )
    parser.add_argument(
        "--insecure", action="store_true", help="allow a non-loopback bind without TLS"
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING")
    parser.add_argument(
        "--retention-days",
        type=_retention_days,
        default=DEFAULT_RETENTION_DAYS,
        metavar="N",
        help="purge finished runs and their stored output N days after they ended "
        f"(default {DEFAULT_RETENTION_DAYS}; 0 keeps them forever)",
    )
    parser.add_argument(
        "--clock-offset", type=float, default=0.0, help=argparse.SUPPRESS
    )  # tests: shift the wall clock by N seconds
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    home = (args.home or default_home()).resolve()
    setup_logging("scheduler", home / "logs" / "scheduler.log", args.log_level)
    if bool(args.tls_cert) != bool(args.tls_key):
        print("Error: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    if args.tls_ca and not args.tls_cert:
        print("Error: --tls-ca needs --tls-cert and --tls-key (the server's own)", file=sys.stderr)
        return 2
    try:
        service = SchedulerService(
            SchedulerConfig(
                home=home,
                grpc_listen=args.grpc_listen,
                http_listen=args.http_listen,
                instance=args.instance,
                insecure=args.insecure,
                tls_cert=args.tls_cert,
                tls_key=args.tls_key,
                tls_ca=args.tls_ca,
                agent_listen=args.agent_listen if args.tls_ca else "",
                heartbeat_seconds=args.heartbeat_seconds,
                offline_after_seconds=args.offline_after,
                clock_offset=args.clock_offset,
                retention_days=args.retention_days,
            )
        )
    except ConfigError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, service.stop)
        await service.run()

    try:
        asyncio.run(run())
    except OSError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

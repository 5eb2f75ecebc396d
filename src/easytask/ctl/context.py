"""What a command handler gets: the lazily connected client, consoles, shared argument helpers."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console

from easytask.core.errors import CtlError, ValidationError
from easytask.core.rundate import parse_run_date
from easytask.ctl.client import EXIT_USAGE, ApiClient, ClientConfig, Connector
from easytask.ctl.render import OUTPUT_FORMATS, make_console
from easytask.rpc.v1 import api_pb2 as pb


@dataclass(slots=True)
class Context:
    """Per-invocation state. The client connects on first use, so commands that fail on local
    input (a bad file) never touch the network."""

    config: ClientConfig
    connector: Connector
    _client: ApiClient | None = field(default=None)

    def client(self) -> ApiClient:
        if self._client is None:
            self._client = self.connector(self.config)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def out(self) -> Console:
        return make_console(sys.stdout)


Handler = Callable[[argparse.Namespace, Context], int]


def usage_error(message: str) -> CtlError:
    """A usage problem found after parsing (exit 2)."""
    return CtlError(message, EXIT_USAGE)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0: {text!r}")
    return value


def run_date(text: str) -> str:
    """``YYYYMMDD`` or ``YYYY-MM-DD`` -> ``YYYYMMDD``; a real calendar date or a usage error."""
    try:
        return parse_run_date(text)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(exc.errors[0].message) from None


def iso_date(text: str) -> str:
    """``YYYY-MM-DD`` (``YYYYMMDD`` accepted) -> ``YYYY-MM-DD``; a real calendar date."""
    try:
        value = parse_run_date(text, "date")
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(exc.errors[0].message) from None
    return f"{value[:4]}-{value[4:6]}-{value[6:]}"


def add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        choices=OUTPUT_FORMATS,
        default="table",
        help="output format (default: table)",
    )


def add_paging(parser: argparse.ArgumentParser, per_page: int = 25, what: str = "items") -> None:
    parser.add_argument("-p", "--page", type=positive_int, default=1, help="page (default: 1)")
    parser.add_argument(
        "--per-page",
        type=positive_int,
        default=per_page,
        help=f"{what} per page (default: {per_page})",
    )


def add_task_ref(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("tid", nargs="?", type=int, metavar="TID", help="task id")
    parser.add_argument("-n", "--name", dest="ref_name", metavar="NAME", help="task name")


def task_ref(args: argparse.Namespace) -> pb.TaskRef:
    """The task named by ``TID`` or ``-n NAME`` (exactly one)."""
    tid: int | None = args.tid
    name: str | None = args.ref_name
    if tid is not None and name is not None:
        raise usage_error("give TID or -n NAME, not both")
    if tid is None and name is None:
        raise usage_error("give TID or -n NAME")
    if tid is not None:
        return pb.TaskRef(tid=tid)
    return pb.TaskRef(name=name or "")

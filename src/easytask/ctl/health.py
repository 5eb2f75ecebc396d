"""``easytaskctl health``: can we reach the API and the dashboard?"""

from __future__ import annotations

import argparse
import ipaddress
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from easytask.core.errors import CtlError
from easytask.ctl.client import DEFAULT_HOME, EXIT_OK, EXIT_UNREACHABLE
from easytask.ctl.context import Context

DASHBOARD_TIMEOUT = 3.0
DASHBOARD_FILE = "dashboard.url"  # written by a local scheduler at each start


def check_dashboard(url: str, timeout: float = DASHBOARD_TIMEOUT) -> str | None:
    """None when ``GET <url>/healthz`` answers 2xx, else what went wrong."""
    target = url.rstrip("/") + "/healthz"
    try:
        with urllib.request.urlopen(target, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return str(reason)
    return None if 200 <= status < 300 else f"HTTP {status}"


def local_dashboard(home: str | None) -> str:
    """The dashboard address a scheduler on this machine wrote to ``<home>/dashboard.url``."""
    base = Path(home or os.environ.get("EASYTASK_HOME") or DEFAULT_HOME)
    try:
        return (base / DASHBOARD_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def _loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def reachable_url(url: str, server: str) -> str:
    """The scheduler reports its dashboard as it sees it (``http://127.0.0.1:8002/``); a CLI on
    another machine reaches it at the host it reaches the API on."""
    if not url:
        return url
    parts = urllib.parse.urlsplit(url)
    server_host = server.rsplit(":", 1)[0] if ":" in server else server
    if not _loopback(parts.hostname or "") or _loopback(server_host.strip("[]")):
        return url
    netloc = f"{server_host}:{parts.port}" if parts.port else server_host
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def cmd_health(args: argparse.Namespace, ctx: Context) -> int:
    """The dashboard's address: ``--dashboard``, else the scheduler's Health reply, else
    ``<home>/dashboard.url`` (the API unreachable)."""
    code = EXIT_OK
    url = args.dashboard or ""
    try:
        reply = ctx.client().health()
    except CtlError as exc:
        print(f"✘ API reachable ({exc.message})")
        code = EXIT_UNREACHABLE
        url = url or local_dashboard(getattr(args, "home", None))
    else:
        print("✔ API reachable")
        url = url or reachable_url(reply.dashboard_url, ctx.config.server)
    problem = check_dashboard(url) if url else "address unknown: the scheduler reports none"
    if problem is None:
        print("✔ Dashboard reachable")
    else:
        print(f"✘ Dashboard reachable ({problem})")
        code = EXIT_UNREACHABLE
    return code


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser("health", parents=[common], help="check that the API and dashboard answer")
    p.add_argument("--dashboard", metavar="URL", help="check URL/healthz (default: the "
                   "scheduler's dashboard)")  # fmt: skip
    p.set_defaults(handler=cmd_health)

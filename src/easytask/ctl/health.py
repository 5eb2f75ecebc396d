"""``easytaskctl health``: can we reach the API (and, when asked, the dashboard)?"""

from __future__ import annotations

import argparse
import urllib.error
import urllib.request

from easytask.core.errors import CtlError
from easytask.ctl.client import EXIT_OK, EXIT_UNREACHABLE
from easytask.ctl.context import Context

DASHBOARD_TIMEOUT = 3.0


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


def cmd_health(args: argparse.Namespace, ctx: Context) -> int:
    code = EXIT_OK
    try:
        ctx.client().health()
    except CtlError as exc:
        print(f"✘ API reachable ({exc.message})")
        code = EXIT_UNREACHABLE
    else:
        print("✔ API reachable")
    if args.dashboard:
        problem = check_dashboard(args.dashboard)
        if problem is None:
            print("✔ Dashboard reachable")
        else:
            print(f"✘ Dashboard reachable ({problem})")
            code = EXIT_UNREACHABLE
    return code


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser("health", parents=[common], help="check that the API is reachable")
    p.add_argument("--dashboard", metavar="URL", help="also check URL/healthz")
    p.set_defaults(handler=cmd_health)

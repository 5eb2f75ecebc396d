"""Command line and settings of easytask-agentd (flags, environment, credentials file)."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from easytask.agentd.sysinfo import hostname
from easytask.core.errors import AuthError

DEFAULT_SERVER = "127.0.0.1:7070"
DEFAULT_PROFILES_DIR = "/etc/easytask/profiles"


@dataclass(slots=True, frozen=True)
class AgentConfig:
    server: str
    name: str
    queues: tuple[str, ...]
    home: Path
    token: str
    tls_ca: Path | None
    tls_cert: Path | None  # the agent's own certificate and key: mutual TLS
    tls_key: Path | None
    profiles_dir: Path
    kill_grace: float
    max_parallel: int
    log_level: str
    max_runs: int = 0  # sent in Hello: most runs the scheduler may hold here at once; 0 = no cap

    @property
    def agent_dir(self) -> Path:
        return self.home / "agent" / self.name


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="easytask-agentd",
        description="EasyTask agent: runs commands for the scheduler it dials out to.",
    )
    p.add_argument(
        "--server", help=f"scheduler HOST:PORT (env EASYTASK_SERVER, default {DEFAULT_SERVER})"
    )
    p.add_argument("--name", help="unique agent name (default: hostname)")
    p.add_argument("--queues", help="comma-separated queues served (default: hostname)")
    p.add_argument("--home", help="data directory (env EASYTASK_HOME, default ./.easytask)")
    p.add_argument(
        "--token", help="agent token (else env EASYTASK_TOKEN, else <home>/credentials.json)"
    )
    p.add_argument("--tls-ca", help="PEM CA bundle: use TLS to reach the scheduler")
    p.add_argument(
        "--tls-cert",
        help="PEM certificate of this agent (its common name = --name): mutual TLS to the "
        "scheduler's --agent-listen port, no token needed",
    )
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument("--profiles-dir", default=DEFAULT_PROFILES_DIR, help="default %(default)s")
    p.add_argument(
        "--kill-grace", type=float, default=10.0, help="SIGTERM to SIGKILL, seconds (default 10)"
    )
    p.add_argument(
        "--max-parallel",
        type=int,
        default=64,
        help="commands running at once; more wait in arrival order (default 64)",
    )
    p.add_argument(
        "--max-runs",
        type=int,
        help="most runs the scheduler may hand this agent at once, 0 for no cap "
        "(env EASYTASK_MAX_RUNS, default 0)",
    )
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def load_config(
    argv: Sequence[str] | None, env: Mapping[str, str], *, token: str | None = None
) -> AgentConfig:
    """Parse flags (argparse exits 2 on misuse); AuthError when no token can be found.

    ``token`` is one handed over by a previous image of the agent (see ``secrecy``): it wins.
    """
    args = build_parser().parse_args(argv)
    host = hostname()
    name = args.name or host
    queues = tuple(q.strip() for q in (args.queues or host).split(",") if q.strip()) or (host,)
    home = Path(args.home or env.get("EASYTASK_HOME") or ".easytask").absolute()
    if args.kill_grace < 0 or args.max_parallel < 1:
        build_parser().error("--kill-grace must be >= 0 and --max-parallel >= 1")
    max_runs = args.max_runs
    if max_runs is None:
        raw = env.get("EASYTASK_MAX_RUNS", "").strip() or "0"
        try:
            max_runs = int(raw)
        except ValueError:
            build_parser().error(f"EASYTASK_MAX_RUNS must be a whole number >= 0, not {raw!r}")
        if max_runs < 0:
            build_parser().error(f"EASYTASK_MAX_RUNS must be >= 0, not {max_runs}")
    elif max_runs < 0:
        build_parser().error(f"--max-runs must be >= 0 (0 for no cap), not {max_runs}")
    return AgentConfig(
        server=args.server or env.get("EASYTASK_SERVER") or DEFAULT_SERVER,
        name=name,
        queues=queues,
        home=home,
        token=token or _token(args, env, home),
        tls_ca=Path(args.tls_ca) if args.tls_ca else None,
        tls_cert=Path(args.tls_cert) if args.tls_cert else None,
        tls_key=Path(args.tls_key) if args.tls_key else None,
        profiles_dir=Path(args.profiles_dir),
        kill_grace=args.kill_grace,
        max_parallel=args.max_parallel,
        log_level=args.log_level,
        max_runs=max_runs,
    )


def _token(args: argparse.Namespace, env: Mapping[str, str], home: Path) -> str:
    """The token; with a client certificate none is needed (the certificate names the agent)."""
    if bool(args.tls_cert) != bool(args.tls_key):
        build_parser().error("--tls-cert and --tls-key go together")
    if args.tls_cert and not args.tls_ca:
        build_parser().error("--tls-cert needs --tls-ca (the scheduler's CA)")
    if args.tls_cert and not (args.token or env.get("EASYTASK_TOKEN")):
        return ""
    return find_token(args.token, env, home)


def find_token(flag: str | None, env: Mapping[str, str], home: Path) -> str:
    """--token, else $EASYTASK_TOKEN, else ``agent_token`` of ``<home>/credentials.json``."""
    if flag:
        return flag
    if env.get("EASYTASK_TOKEN"):
        return env["EASYTASK_TOKEN"]
    path = home / "credentials.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise AuthError(
            f"no agent token: pass --token, set EASYTASK_TOKEN, or provide {path}"
        ) from None
    except (OSError, ValueError) as exc:
        raise AuthError(f"cannot read agent token from {path}: {exc}") from None
    token = data.get("agent_token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token:
        raise AuthError(f"no agent_token in {path}")
    return token


def read_tls_ca(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None else None


def read_tls_client(config: AgentConfig) -> tuple[bytes, bytes] | None:
    """(private key, certificate chain) for mutual TLS, or None."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    return config.tls_key.read_bytes(), config.tls_cert.read_bytes()


def process_env() -> dict[str, str]:
    return dict(os.environ)

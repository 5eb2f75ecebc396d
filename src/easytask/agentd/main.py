"""easytask-agentd entry point: the composition root of the agent process.

Exit codes: 0 after SIGTERM/SIGINT, 1 a restart action that could not re-execute, 2 usage
error, 3 no token or token refused on the first connect. On SIGTERM/SIGINT the agent declines new
RunTasks, closes its stream and exits; running commands are left running (own process groups,
output straight to files) and are adopted from the journal by the next agent process with the
same ``--home`` and ``--name``. A restart action (RestartAgent from the scheduler) does the same
and then re-executes the agent with the same arguments (same pid, same start time in Hello), so
the new image adopts those commands.

A token given by ``--token`` or ``EASYTASK_TOKEN`` never stays in the process's arguments or
environment, where a command could read it through ``/proc/$PPID``: see ``secrecy``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import easytask
from easytask.agentd.config import AgentConfig, load_config, read_tls_ca, read_tls_client
from easytask.agentd.journal import Journal
from easytask.agentd.logs import setup_logging
from easytask.agentd.outbox import Outbox
from easytask.agentd.placeholders import CommandPreparer
from easytask.agentd.recovery import restore_runs
from easytask.agentd.runner import ProcessRunner
from easytask.agentd.runs import RunManager
from easytask.agentd.secrecy import (
    TOKEN_ENV,
    exec_agent,
    make_undumpable,
    must_hide,
    relaunch_prefix,
    split_token_flag,
    take_handed_token,
    take_started_at,
)
from easytask.agentd.session import AgentSession
from easytask.agentd.sysinfo import SystemClock, cpu_cores, hostname, memory_mb, now_ms
from easytask.core.errors import AuthError
from easytask.core.protocol import AgentHello

log = logging.getLogger("easytask.agentd.main")  # not __name__: it is "__main__" under -m

EXIT_RESTART_FAILED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3


def main(argv: Sequence[str] | None = None) -> None:
    """The process entry point: first of all, take the token out of reach of commands."""
    args = list(sys.argv[1:] if argv is None else argv)
    prefix = relaunch_prefix(from_sys_argv=argv is None)
    make_undumpable()
    started_at_ms = take_started_at(os.environ) or now_ms()
    try:
        handed = take_handed_token(os.environ)
        if must_hide(args, os.environ):
            token = split_token_flag(args)[1] or handed or os.environ.get(TOKEN_ENV)
            exec_agent(prefix, args, os.environ, token, started_at_ms)
    except AuthError as exc:
        sys.stderr.write(f"easytask-agentd: error: {exc}\n")
        sys.exit(EXIT_AUTH)
    except OSError as exc:
        sys.stderr.write(f"easytask-agentd: error: cannot re-execute without the token: {exc}\n")
        sys.exit(EXIT_USAGE)
    sys.exit(run(args, token=handed, started_at_ms=started_at_ms, relaunch=prefix))


def run(
    argv: Sequence[str] | None = None,
    *,
    token: str | None = None,
    started_at_ms: int = 0,
    relaunch: Sequence[str] | None = None,
) -> int:
    """Run the agent with ``argv``; ``token``, when given, wins over every other source.

    ``started_at_ms`` is when this agent first started (now when 0), reported in Hello.
    ``relaunch`` is how to exec the agent again for a restart action (``secrecy``); after a
    restart action this function does not return unless the exec fails (exit code 1).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    started_at_ms = started_at_ms or now_ms()
    try:
        config = load_config(args, os.environ, token=token)
        tls_ca = read_tls_ca(config.tls_ca)
        tls_client = read_tls_client(config)
    except AuthError as exc:
        sys.stderr.write(f"easytask-agentd: error: {exc}\n")
        return EXIT_AUTH
    except OSError as exc:
        sys.stderr.write(f"easytask-agentd: error: cannot read a TLS file: {exc}\n")
        return EXIT_USAGE
    stopped = asyncio.run(serve(config, tls_ca, started_at_ms, tls_client))
    if stopped.restart_by is None:
        return stopped.exit_code
    prefix = relaunch or relaunch_prefix(from_sys_argv=argv is None)
    log.info("agent %s (pid %d) re-executing itself", config.name, os.getpid())
    try:
        exec_agent(prefix, args, os.environ, config.token, started_at_ms)
    except (OSError, AuthError) as exc:
        log.error("agent %s cannot re-execute itself for the restart: %s", config.name, exc)
    return EXIT_RESTART_FAILED


@dataclass(slots=True)
class Stopped:
    """How ``serve()`` ended: its exit code, or a restart action to carry out."""

    exit_code: int = 0
    restart_by: str | None = None


async def serve(
    config: AgentConfig,
    tls_ca: bytes | None,
    started_at_ms: int,
    tls_client: tuple[bytes, bytes] | None = None,
) -> Stopped:
    """Wire the agent together and run it until SIGTERM/SIGINT (0), a refused token (3) or a
    restart action (the caller re-executes the agent)."""
    setup_logging(config.home, config.name, config.log_level)
    clock = SystemClock()
    journal = Journal(config.agent_dir / "journal.jsonl")
    entries = journal.load()
    runner = ProcessRunner(config.agent_dir, clock, kill_grace=config.kill_grace)
    # Commands never see the agent's own secret, whatever user they run as.
    task_env = {k: v for k, v in os.environ.items() if k != "EASYTASK_TOKEN"}
    preparer = CommandPreparer(config.profiles_dir, task_env, clock)
    outbox = Outbox()
    manager = RunManager(
        journal=journal,
        runner=runner,
        preparer=preparer,
        outbox=outbox,
        max_parallel=config.max_parallel,
    )
    stop = asyncio.Event()
    stopped = Stopped()

    def restart(requested_by: str) -> None:
        if stopped.restart_by is None:
            stopped.restart_by = requested_by or "-"
            manager.stop_accepting()  # at once: a RunTask right behind the restart is declined
            stop.set()

    identity = AgentHello(
        name=config.name,
        host=hostname(),
        queues=config.queues,
        version=easytask.__version__,
        pid=os.getpid(),
        cpu_cores=cpu_cores(),
        memory_mb=memory_mb(),
        max_runs=config.max_runs,
        started_at_ms=started_at_ms,
    )
    session = AgentSession(
        target=config.server,
        token=config.token,
        tls_ca=tls_ca,
        tls_client=tls_client,
        identity=identity,
        manager=manager,
        outbox=outbox,
        disk_path=config.home,
        on_restart=restart,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def connect() -> None:
        try:
            await session.run()
        except AuthError:
            stopped.exit_code = EXIT_AUTH
            stop.set()

    log.info(
        "agent %s (pid %d, version %s) starting: home %s, queues %s, server %s",
        config.name,
        os.getpid(),
        easytask.__version__,
        config.home,
        ",".join(config.queues),
        config.server,
    )
    try:
        async with asyncio.TaskGroup() as tg:
            writer = tg.create_task(journal.run(), name="journal")
            ticker = tg.create_task(runner.run_ticker(), name="output ticker")
            runs = tg.create_task(manager.serve(restore_runs(entries, runner, preparer, clock)))
            link = tg.create_task(connect(), name="session")
            await stop.wait()
            if stopped.restart_by is None:
                log.info("agent %s stopping; running commands are left running", config.name)
            else:
                log.info(
                    "agent %s restarting (requested by %s); running commands are left running",
                    config.name,
                    stopped.restart_by,
                )
            manager.stop_accepting()
            session.close()
            for task in (link, runs):
                task.cancel()
                await asyncio.wait({task})
            await journal.close()
            await asyncio.wait({writer})
            ticker.cancel()
    finally:
        runner.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    if stopped.restart_by is None:
        log.info("agent %s stopped (exit code %d)", config.name, stopped.exit_code)
    return stopped


if __name__ == "__main__":
    main()

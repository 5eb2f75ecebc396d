"""The restart action: easytask-agentd re-executes itself and its running commands go on."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from easytask.rpc.v1 import agent_pb2 as pb
from tests.e2e.harness import pid_alive
from tests.integration.agentd_support import AgentProcess, FakeScheduler, is_msg, start_server

pytestmark = pytest.mark.e2e

TOKEN = "test-agent-token-restart"


def restart(by: str) -> pb.SchedulerMessage:
    return pb.SchedulerMessage(restart=pb.RestartAgent(requested_by=by))


def proc_text(pid: int, entry: str) -> str:
    with open(f"/proc/{pid}/{entry}", "rb") as fh:
        return fh.read().decode(errors="replace")


async def reaped(parent: int, child: int, timeout: float = 10.0) -> None:
    """Wait until ``child`` is no longer a child (zombie included) of ``parent``."""
    async with asyncio.timeout(timeout):
        while True:
            if child not in children_of(parent):
                return
            await asyncio.sleep(0.05)  # a zombie being reaped wakes nobody here


def children_of(pid: int) -> set[int]:
    found = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(name))
    return found


async def test_restart_action_reexecs_and_a_running_command_finishes_once(tmp_path: Path) -> None:
    fs = FakeScheduler(TOKEN)
    server, port = await start_server(fs)
    agent = AgentProcess(tmp_path / "home", port, TOKEN)
    agent.start(env={"HOME": str(tmp_path)})
    assert agent.proc is not None
    try:
        await fs.connected()
        first = fs.hellos[0]
        await fs.run("r-long", "sleep 3; echo done", tmp_path)
        started = (await fs.wait_for(lambda m: is_msg(m, "started", "r-long"))).started
        await fs.send(restart("admin"))

        await fs.connected(streams=2)
        second = fs.hellos[1]
        assert agent.proc.poll() is None  # never exited: the same process, a new image
        assert (second.pid, second.started_at_ms) == (first.pid, first.started_at_ms)
        assert {k.run_id: k.state for k in second.known_runs} == {"r-long": "RUNNING"}
        assert pid_alive(started.pid)

        fin = await fs.finished("r-long", timeout=30)
        assert (fin.state, fin.return_code, fin.pid) == ("SUCCESS", 0, started.pid)
        assert fs.output("r-long", pb.STDOUT) == b"done\n"
        assert (tmp_path / "r-long.out").read_bytes()[fin.stdout_start : fin.stdout_end] == (
            b"done\n"
        )
        await fs.ack("r-long")
        await fs.run("r-new", "echo again", tmp_path)
        assert (await fs.finished("r-new")).state == "SUCCESS"
        assert len(fs.matching(lambda m: is_msg(m, "finished", "r-long"))) == 1
        # The new image reaped the command the old one spawned, and keeps the token hidden.
        await reaped(agent.proc.pid, started.pid)
        for entry in ("cmdline", "environ"):
            assert TOKEN not in proc_text(agent.proc.pid, entry)
        log = agent.log_text()
        assert "restart requested by admin" in log
        assert "restarting (requested by admin); running commands are left running" in log
        assert "r-long recovered: pid" in log
        assert TOKEN not in log
    finally:
        assert await agent.stop() == 0
        await server.stop(None)


async def test_restart_keeps_a_token_from_the_environment_out_of_proc(tmp_path: Path) -> None:
    fs = FakeScheduler(TOKEN)
    server, port = await start_server(fs)
    agent = AgentProcess(tmp_path / "home", port, "")
    agent.argv.remove("--token")
    agent.argv.remove("")
    agent.start(env={"HOME": str(tmp_path), "EASYTASK_TOKEN": TOKEN})
    assert agent.proc is not None
    try:
        await fs.connected()
        await fs.send(restart(""))
        await fs.connected(streams=2)
        await fs.send(restart("again"))  # a second restart works as well
        await fs.connected(streams=3)
        assert {h.pid for h in fs.hellos} == {agent.proc.pid}
        environ = proc_text(agent.proc.pid, "environ")
        assert TOKEN not in environ
        assert "EASYTASK_TOKEN_FD=" in environ  # handed over through the pipe
        await fs.run("r-after", "echo token=${EASYTASK_TOKEN:-absent}", tmp_path)
        assert (await fs.finished("r-after")).state == "SUCCESS"
        assert (tmp_path / "r-after.out").read_text() == "token=absent\n"
    finally:
        assert await agent.stop() == 0
        await server.stop(None)

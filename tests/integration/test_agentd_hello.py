"""What easytask-agentd says about itself in Hello: run cap, disk, when it started."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.integration.agentd_support import AgentProcess, FakeScheduler, start_server

pytestmark = pytest.mark.e2e

TOKEN = "test-agent-token-hello"


async def test_hello_carries_max_runs_disk_and_start_time(tmp_path: Path) -> None:
    fs = FakeScheduler(TOKEN)
    server, port = await start_server(fs)
    before = time.time_ns() // 1_000_000
    agent = AgentProcess(tmp_path / "home", port, TOKEN, args=["--max-runs", "3"]).start()
    try:
        await fs.connected()
        hello = fs.hellos[0]
        usage = shutil.disk_usage(tmp_path / "home")
        assert hello.max_runs == 3
        assert hello.disk_total_mb == usage.total // (1024 * 1024)
        assert 0 < hello.disk_free_mb <= hello.disk_total_mb
        assert abs(hello.disk_free_mb - usage.free // (1024 * 1024)) < 1024  # other writers
        assert before <= hello.started_at_ms <= time.time_ns() // 1_000_000
        fs.drop()
        await fs.connected(streams=2)
        assert fs.hellos[1].started_at_ms == hello.started_at_ms  # the process, not the stream
    finally:
        assert await agent.stop() == 0
        await server.stop(None)


async def test_max_runs_from_the_environment(tmp_path: Path) -> None:
    fs = FakeScheduler(TOKEN)
    server, port = await start_server(fs)
    agent = AgentProcess(tmp_path / "home", port, TOKEN).start(env={"EASYTASK_MAX_RUNS": "4"})
    try:
        await fs.connected()
        assert fs.hellos[0].max_runs == 4
    finally:
        assert await agent.stop() == 0
        await server.stop(None)

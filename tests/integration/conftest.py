"""In-process scheduler on a real gRPC port and a real SQLite file, driven by a FakeClock."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import grpc
import pytest
from argon2 import PasswordHasher

from easytask.rpc.v1 import agent_pb2 as apb
from easytask.rpc.v1 import agent_pb2_grpc, api_pb2_grpc
from easytask.rpc.v1 import api_pb2 as pb
from easytask.scheduler.service import SchedulerConfig, SchedulerService
from tests.support.fakeclock import FakeClock

T = TypeVar("T")
START = datetime(2026, 6, 1, 11, 59, 0, tzinfo=UTC)  # a Monday


async def eventually(what: str, check: Callable[[], Awaitable[T | None]], timeout: float = 20) -> T:
    """Await check() until it returns something truthy, or fail naming ``what``."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                value = await check()
                if value:
                    return value
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


class ScriptedAgent:
    """A hand-driven agent speaking the real protocol over a real stream."""

    def __init__(self, port: int, token: str, name: str, queues: list[str]) -> None:
        self.port, self.token, self.name, self.queues = port, token, name, queues
        self.channel: grpc.aio.Channel | None = None
        self.call: Any = None
        self.buffer: list[apb.SchedulerMessage] = []

    async def connect(
        self, known: list[apb.KnownRun] | None = None, pid: int = 1, max_runs: int = 0
    ) -> apb.Welcome:
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.port}")
        stub = agent_pb2_grpc.AgentServiceStub(self.channel)
        self.call = stub.Connect(metadata=(("authorization", f"Bearer {self.token}"),))
        hello = apb.Hello(name=self.name, host=f"{self.name}.host", queues=self.queues,
                          version="test", pid=pid, known_runs=known or [],
                          max_runs=max_runs)  # fmt: skip
        await self.call.write(apb.AgentMessage(hello=hello))
        first = await self.recv("welcome")
        assert isinstance(first, apb.Welcome)
        return first

    async def recv(self, kind: str, timeout: float = 20) -> Any:
        """The next message of ``kind``; others that arrive first are kept for later calls.

        Batches are unpacked, so tests see the messages whether or not they shared a write.
        """
        async with asyncio.timeout(timeout):
            while True:
                for i, msg in enumerate(self.buffer):
                    if msg.WhichOneof("msg") == kind:
                        del self.buffer[i]
                        return getattr(msg, kind)
                msg = await self.call.read()
                assert msg is not grpc.aio.EOF, "stream closed"
                if msg.WhichOneof("msg") == "batch":
                    self.buffer.extend(msg.batch.messages)
                elif msg.WhichOneof("msg") != "heartbeat":
                    self.buffer.append(msg)

    async def send(self, **kw: Any) -> None:
        await self.call.write(apb.AgentMessage(**kw))

    async def close(self) -> None:
        if self.call is not None:
            await self.call.done_writing()
        if self.channel is not None:
            await self.channel.close()


class Harness:
    def __init__(self, service: SchedulerService, clock: FakeClock, home: Path) -> None:
        self.service, self.clock, self.home = service, clock, home
        creds = json.loads((home / "credentials.json").read_text())
        self.api_token, self.agent_token = creds["api_token"], creds["agent_token"]
        assert service.grpc_port
        self.port = service.grpc_port
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.port}")
        self.api = api_pb2_grpc.EasyTaskApiStub(self.channel)
        self.md = (("authorization", f"Bearer {self.api_token}"),)
        self.agents: list[ScriptedAgent] = []

    async def agent(self, name: str, queues: list[str], **kw: Any) -> ScriptedAgent:
        agent = ScriptedAgent(self.port, self.agent_token, name, queues)
        await agent.connect(**kw)
        self.agents.append(agent)
        return agent

    async def create(self, **task: Any) -> dict[str, Any]:
        base = {"name": f"t{task.get('tid', 0)}", "cmd": "true", "run_on_host": "q1",
                "stdout": "/tmp/o", "stderr": "/tmp/e", "timezone": "UTC",
                "day_of_week": "1111111", "trigger_times": "12:00"}  # fmt: skip
        base.update(task)
        reply = await self.api.CreateTask(
            pb.CreateTaskRequest(task_json=json.dumps(base)), metadata=self.md
        )
        result: dict[str, Any] = json.loads(reply.task_json)
        return result

    async def run(self, run_id: str) -> pb.Run:
        return await self.api.GetRun(pb.GetRunRequest(run_id=run_id), metadata=self.md)

    async def runs(self, tid: int) -> list[pb.Run]:
        reply = await self.api.ListRuns(
            pb.ListRunsRequest(tid=tid, per_page=100, since_hours=1e6), metadata=self.md
        )
        return sorted(reply.runs, key=lambda r: (r.scheduled_utc, r.attempt))

    async def wait_state(self, run_id: str, state: str) -> pb.Run:
        async def check() -> pb.Run | None:
            try:
                run = await self.run(run_id)
            except grpc.aio.AioRpcError:
                return None
            return run if run.state == state else None

        return await eventually(f"{run_id} in {state}", check)


# Argon2id with cheap parameters: the same algorithm, milliseconds per hash instead of ~0.2 s.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@contextlib.asynccontextmanager
async def running_service(
    home: Path, clock: FakeClock, http_listen: str = "", **config: Any
) -> AsyncIterator[SchedulerService]:
    """A scheduler on ephemeral ports with the test's clock, stopped at the end."""
    service = SchedulerService(
        SchedulerConfig(home=home, grpc_listen="127.0.0.1:0", http_listen=http_listen, **config),
        clock=clock,
        password_hasher=CHEAP_HASHER,
    )
    task = asyncio.create_task(service.run())
    await asyncio.wait_for(service.ready.wait(), 10)
    try:
        yield service
    finally:
        service.stop()
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    clock = FakeClock(START)
    home = tmp_path / "home"
    async with running_service(home, clock) as service:
        h = Harness(service, clock, home)
        try:
            yield h
        finally:
            for agent in h.agents:
                await agent.close()
            await h.channel.close()


# ----- the dashboard over real HTTP -----


class Dash:
    def __init__(self, service: SchedulerService, clock: FakeClock, home: Path) -> None:
        self.service, self.clock = service, clock
        self.base = f"http://127.0.0.1:{service.http_port}"
        self.password = json.loads((home / "credentials.json").read_text())["password"]
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def login(self) -> aiohttp.ClientResponse:
        form = {"username": "easytask_superuser", "password": self.password, "next": "/tasks"}
        return await self.http.post(self.base + "/login", data=form, allow_redirects=False)

    def csrf(self) -> str:
        for cookie in self.http.cookie_jar:
            if cookie.key == "et_csrf":
                return cookie.value
        return ""


@pytest.fixture
async def dash(tmp_path: Path) -> AsyncIterator[Dash]:
    clock = FakeClock(START)
    home = tmp_path / "home"
    async with running_service(home, clock, http_listen="127.0.0.1:0") as service:
        d = Dash(service, clock, home)
        try:
            yield d
        finally:
            await d.http.close()

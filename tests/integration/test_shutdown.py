"""Ordered shutdown: every queued write is committed before the store closes (issue 8)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from grpc._cython import cygrpc

from easytask.core.records import AgentIdentity
from easytask.rpc.agent import AgentServicer
from easytask.rpc.v1 import agent_pb2 as apb
from easytask.scheduler.hub import AgentHub, RunEvents
from easytask.scheduler.service import DB_FILE, SchedulerConfig, SchedulerService
from easytask.store.sqlite import SqliteStore
from easytask.store.writer import BatchWriter
from tests.integration.conftest import START, Harness
from tests.support.fakeclock import FakeClock

META = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = 1"


async def test_stopping_the_service_commits_every_queued_write(tmp_path: Path) -> None:
    home = tmp_path / "home"
    service = SchedulerService(
        SchedulerConfig(home=home, grpc_listen="127.0.0.1:0", http_listen=""),
        clock=FakeClock(START),
    )
    task = asyncio.create_task(service.run())
    await asyncio.wait_for(service.ready.wait(), 10)
    assert service.app is not None
    store = service.store
    assert store is not None
    for i in range(25_000):  # more than one batch (BatchWriter.MAX_BATCH)
        store.set_meta(f"bulk-{i}", "x")
    service.stop()
    await asyncio.wait_for(task, 60)
    with sqlite3.connect(home / DB_FILE) as db:
        (count,) = db.execute("SELECT COUNT(*) FROM meta WHERE key LIKE 'bulk-%'").fetchone()
    assert count == 25_000


async def test_a_cancelled_commit_keeps_its_batch_queued(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "easytask.db")
    try:
        writer: BatchWriter = store.writer
        for i in range(3):
            writer.write_nowait(META, (f"k{i}", "x"))
        commit = asyncio.create_task(writer._commit_some())  # one commit, cut short
        await asyncio.sleep(0)  # inside BEGIN/executemany
        commit.cancel()
        await asyncio.gather(commit, return_exceptions=True)
        assert writer.pending == 3
        # A later drain commits them once (a transaction the cancel left open is rolled back
        # by the failed BEGIN's error path, then the retry commits).
        writer.stop()
        await asyncio.wait_for(writer.run(), 10)
        assert writer.pending == 0
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "easytask.db") as db:
        (count,) = db.execute("SELECT COUNT(*) FROM meta WHERE key LIKE 'k_'").fetchone()
    assert count == 3


async def test_writes_queued_after_stop_still_commit_before_the_loop_ends(
    tmp_path: Path,
) -> None:
    store = await SqliteStore.open(tmp_path / "easytask.db")
    try:
        loop = asyncio.create_task(store.writer.run())
        first = store.writer.write(META, ("a", "1"))
        store.writer.stop()
        late = store.writer.write(META, ("b", "1"))  # e.g. an agent stream's last record
        await asyncio.wait_for(loop, 10)
        assert first.done() and late.done() and late.exception() is None
    finally:
        await store.close()


async def test_a_session_the_hub_drops_ends_its_stream(harness: Harness) -> None:
    """Marked offline (missed heartbeats): the RPC ends too, so the agent reconnects."""
    agent = await harness.agent("a1", ["q1"])
    hub = harness.service.hub
    assert hub is not None
    hub.disconnect(hub.sessions["a1"])

    async def stream_end() -> None:
        while True:
            msg = await agent.call.read()
            if msg is grpc.aio.EOF:
                return

    await asyncio.wait_for(stream_end(), 5)
    assert await agent.call.code() == grpc.StatusCode.OK


class _Context:
    """The servicer context of one stream, as far as Connect uses it."""

    def __init__(self) -> None:
        self.written: list[apb.SchedulerMessage] = []

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()

    async def write(self, msg: apb.SchedulerMessage) -> None:
        self.written.append(msg)

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise AssertionError(f"aborted: {code} {details}")


class _AnyAgent:
    """Agent authentication that lets this stream in (the test is about its end)."""

    def identify(self, secret: str, peer: str) -> AgentIdentity | None:
        return AgentIdentity(None)


class _Quiet:
    """Hub events that change nothing (this test is about the stream, not the runs)."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args: None


async def test_a_stream_the_stopping_server_ends_is_no_servicer_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """grpc ends a read with its own "server already stopped" error when the server stops
    during a burst (seen under load): the session ends quietly and the agent is forgotten."""

    async def stream() -> AsyncIterator[apb.AgentMessage]:
        yield apb.AgentMessage(hello=apb.Hello(name="a1", host="h", queues=["q1"], pid=1))
        await asyncio.sleep(0)
        raise cygrpc._ServerStoppedError("Server already stopped.")

    hub = AgentHub(FakeClock(START))
    hub.bind(cast(RunEvents, _Quiet()))
    servicer = AgentServicer(hub, "default", _AnyAgent())
    context = _Context()
    with caplog.at_level(logging.INFO):
        await asyncio.wait_for(servicer.Connect(stream(), cast(Any, context)), 5)
    assert context.written[0].WhichOneof("msg") == "welcome"
    assert "a1" not in hub.sessions
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert any("stream ended" in r.getMessage() for r in caplog.records)

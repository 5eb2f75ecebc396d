"""Ordered shutdown: every queued write is committed before the store closes (issue 8)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import grpc

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

"""Backpressure from the store (store/writer.room): producers that could outrun the disk wait
until commits catch up, so the queue of writes, and the memory it holds, stays bounded."""

from __future__ import annotations

import asyncio
from pathlib import Path

from easytask.store.sqlite import SqliteStore

META = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = 1"


async def test_room_waits_until_the_queue_is_below_the_limit(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "easytask.db")
    try:
        writer = store.writer
        await writer.room(0)  # not running: never waits
        for i in range(30_000):  # more than one batch (MAX_BATCH 20,000)
            writer.write_nowait(META, (f"k{i}", "x" * 100))
        loop = asyncio.create_task(writer.run())
        await asyncio.wait_for(writer.room(100), 30)
        assert writer.pending <= 100
        writer.stop()
        await asyncio.wait_for(loop, 30)
        await asyncio.wait_for(writer.room(0), 1)  # a stopped writer releases every waiter
    finally:
        await store.close()


async def test_room_also_bounds_the_payload_queued(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "easytask.db")
    try:
        writer = store.writer
        for i in range(40):  # 40 MiB of output in rows of up to 1 MiB
            for part in range(16):
                at = (i * 16 + part) * 65536
                store.append_output("r1", "stdout", at, b"x" * 65536)
        loop = asyncio.create_task(writer.run())
        await asyncio.wait_for(writer.room(10_000, max_bytes=8 * 1024 * 1024), 30)
        assert writer.queued_bytes <= 8 * 1024 * 1024
        writer.stop()
        await asyncio.wait_for(loop, 30)
        assert writer.queued_bytes == 0
    finally:
        await store.close()


async def test_a_late_write_runs_after_the_batch_it_lands_in(tmp_path: Path) -> None:
    """The output trims are late: queued before a row (the row joined later), they still see
    it. Without that a 1 GiB stream ended with middle rows left (found by the benchmark)."""
    store = await SqliteStore.open(tmp_path / "easytask.db")
    try:
        writer = store.writer
        writer.write_nowait("UPDATE meta SET value = 'late' WHERE key = 'k'", (), late=True)
        writer.write_nowait("INSERT INTO meta (key, value) VALUES ('k', 'first')", ())
        loop = asyncio.create_task(writer.run())
        await asyncio.sleep(0)  # the writer runs
        await writer.flush()
        assert await store.get_meta("k") == "late"
        writer.stop()
        await asyncio.wait_for(loop, 10)
    finally:
        await store.close()


async def test_a_committed_write_keeps_no_payload(tmp_path: Path) -> None:
    """Handles the store keeps on queued output rows (to join chunks) hold nothing once the
    row is committed: a finished stream's last row is not kept in memory."""
    store = await SqliteStore.open(tmp_path / "easytask.db")
    try:
        queued = store.writer.write_nowait(
            "INSERT INTO meta (key, value) VALUES (?, ?)", ("k", "x" * 1_000_000), nbytes=1_000_000
        )
        loop = asyncio.create_task(store.writer.run())
        await asyncio.sleep(0)
        await store.writer.flush()
        assert (queued.open, queued.params, store.writer.queued_bytes) == (False, (), 0)
        store.writer.stop()
        await asyncio.wait_for(loop, 10)
    finally:
        await store.close()

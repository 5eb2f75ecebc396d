"""The store contract runs over every implementation of the port: SQLite and memory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from easytask.store.memory import MemoryStore
from easytask.store.ports import Store
from easytask.store.sqlite import SqliteStore


async def _serve(store: SqliteStore | MemoryStore) -> AsyncIterator[SqliteStore | MemoryStore]:
    writer = asyncio.create_task(store.run_writer())
    try:
        yield store
    finally:
        store.stop_writer()
        await asyncio.wait_for(writer, 10)
        await store.close()


@pytest.fixture(params=["sqlite", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        impl: SqliteStore | MemoryStore = await SqliteStore.open(tmp_path / "db" / "easytask.db")
    else:
        impl = MemoryStore()
    async for s in _serve(impl):
        yield s


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """For what only SQLite has: migrations, a disk that fills up."""
    s = await SqliteStore.open(tmp_path / "db" / "easytask.db")
    async for served in _serve(s):
        assert isinstance(served, SqliteStore)
        yield served

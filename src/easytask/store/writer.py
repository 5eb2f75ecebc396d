"""BatchWriter: one task that commits queued writes in batches (group commit)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import aiosqlite

from easytask.core.errors import EasyTaskError

log = logging.getLogger(__name__)

Params = Sequence[Any]
_BARRIER = "-- barrier"


class StoreWriteError(EasyTaskError):
    """A batch could not be committed (disk full, I/O error); nothing of it was stored."""


class BatchWriter:
    """Queues (sql, params) writes and commits everything queued so far in one transaction.

    ``write`` never waits for the disk; ``await writer.write(...)`` or ``await writer.flush()``
    when the caller must know the row is committed (the dispatch path does).
    """

    MAX_BATCH = 20_000

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._queue: list[tuple[str, Params, asyncio.Future[None] | None]] = []
        self._wake = asyncio.Event()
        self._closed = False

    def write(self, sql: str, params: Params) -> asyncio.Future[None]:
        """Queue one statement; the returned future resolves when its batch is committed."""
        if self._closed:
            raise StoreWriteError("store is closed")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((sql, params, fut))
        self._wake.set()
        return fut

    def write_nowait(self, sql: str, params: Params) -> None:
        """Queue one statement whose commit nobody waits for."""
        if self._closed:
            raise StoreWriteError("store is closed")
        self._queue.append((sql, params, None))
        self._wake.set()

    def barrier(self) -> asyncio.Future[None]:
        """A future that resolves once everything queued before this call is committed."""
        return self.write(_BARRIER, ())

    async def flush(self) -> None:
        """Return once everything queued before this call is committed."""
        if self._queue or self._wake.is_set():
            await self.barrier()

    async def run(self) -> None:
        """The writer loop; runs until cancelled, then commits what is left."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._queue:
                    await self._commit_some()
        finally:
            self._closed = True
            # Commit what is queued before the loop was cancelled (shutdown drains).
            while self._queue:
                await asyncio.shield(self._commit_some())

    async def _commit_some(self) -> None:
        batch = self._queue[: self.MAX_BATCH]
        del self._queue[: self.MAX_BATCH]
        # Group by statement so each group is one executemany; order within a group is kept,
        # and statements of different groups touch rows independently (full-row upserts).
        groups: dict[str, list[Params]] = {}
        for sql, params, _ in batch:
            if sql is not _BARRIER:
                groups.setdefault(sql, []).append(params)
        try:
            await self._db.execute("BEGIN IMMEDIATE")
            for sql, rows in groups.items():
                await self._db.executemany(sql, rows)
            await self._db.execute("COMMIT")
        except Exception as exc:
            log.error("store write of %d statements failed: %s", len(batch), exc)
            # A rollback after a failed BEGIN has nothing to undo and raises; that is fine.
            with contextlib.suppress(Exception):
                await self._db.execute("ROLLBACK")
            err = StoreWriteError(f"store write failed: {exc}")
            for _, _, fut in batch:
                if fut is not None and not fut.done():
                    fut.set_exception(err)
                    fut.exception()  # a caller that did not wait must not warn "never retrieved"
            return
        for _, _, fut in batch:
            if fut is not None and not fut.done():
                fut.set_result(None)

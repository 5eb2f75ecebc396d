"""BatchWriter: one task that commits queued writes in batches (group commit)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from easytask.core.errors import StoreWriteError

log = logging.getLogger(__name__)

Params = Sequence[Any]
_BARRIER = "-- barrier"
MAX_BACKOFF_SECONDS = 30.0


@dataclass(slots=True)
class _Write:
    sql: str
    params: Params
    fut: asyncio.Future[None] | None
    durable: bool
    taken: bool = False  # in a batch being committed: its params are the writer's now
    nbytes: int = 0  # payload the write holds (output), for ``room``
    late: bool = False  # run after every other statement of its batch (clean-ups)


class QueuedWrite:
    """A handle on a queued write: its params may still be changed while ``open``."""

    __slots__ = ("_write", "_writer")

    def __init__(self, write: _Write, writer: BatchWriter) -> None:
        self._write = write
        self._writer = writer

    @property
    def open(self) -> bool:
        """Not yet taken into a commit (single-threaded: true until the writer slices it)."""
        return not self._write.taken

    @property
    def params(self) -> Params:
        """Its parameters (released, ``()``, once committed)."""
        return self._write.params

    def cancel(self) -> None:
        """Never run it (what it would write is already obsolete); only while ``open``."""
        item = self._write
        if item.taken:
            return
        item.sql, item.params = _BARRIER, ()
        self._writer._queued_bytes -= item.nbytes
        item.nbytes = 0

    def grew(self, nbytes: int) -> None:
        """Its payload grew by ``nbytes`` (counted against ``room``'s byte limit)."""
        self._write.nbytes += nbytes
        self._writer._queued_bytes += nbytes


class BatchWriter:
    """Queues (sql, params) writes and commits everything queued so far in one transaction.

    ``write`` never waits for the disk; await its future when the caller must know the row is
    committed (the dispatch path does). When a commit fails (disk full, I/O error), *durable*
    writes (run state, output) stay queued and are retried with backoff until they commit, so the
    engine never loses a state change; other writes fail at once with StoreWriteError so an API
    caller gets an answer.
    """

    MAX_BATCH = 20_000
    LINGER_SECONDS = 0.002
    LINGER_BELOW = 256

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._queue: list[_Write] = []
        self._wake = asyncio.Event()
        self._closed = False
        self._running = False
        self._stopping = False
        self._failures = 0
        self._committed = asyncio.Event()  # set after each commit, for ``room``
        self._queued_bytes = 0  # payload of the queued writes

    def write(self, sql: str, params: Params, durable: bool = False) -> asyncio.Future[None]:
        """Queue one statement; the returned future resolves when its batch is committed."""
        if self._closed:
            raise StoreWriteError("store is closed")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Write(sql, params, fut, durable))
        self._wake.set()
        return fut

    def write_nowait(
        self, sql: str, params: Params, durable: bool = True, nbytes: int = 0, late: bool = False
    ) -> QueuedWrite:
        """Queue one statement whose commit nobody waits for; ``nbytes``: the payload it holds;
        ``late``: a clean-up run after every other statement of the batch it lands in (a trim
        that must see the rows written with it)."""
        if self._closed:
            raise StoreWriteError("store is closed")
        item = _Write(sql, params, None, durable, nbytes=nbytes, late=late)
        self._queue.append(item)
        self._queued_bytes += nbytes
        self._wake.set()
        return QueuedWrite(item, self)

    def barrier(self) -> asyncio.Future[None]:
        """A future that resolves once everything queued before this call is committed."""
        return self.write(_BARRIER, (), durable=True)

    async def flush(self) -> None:
        """Return once everything queued before this call is committed.

        Always a barrier while the writer runs: a batch may be committing right now with the
        queue already empty. Without a running writer there is nothing in flight.
        """
        if not self._running:
            if self._queue:
                raise StoreWriteError("store writer is not running; queued writes cannot commit")
            return
        await self.barrier()

    @property
    def failing(self) -> bool:
        """True while the last commit attempt failed."""
        return self._failures > 0

    @property
    def pending(self) -> int:
        """Writes queued and not yet committed."""
        return len(self._queue)

    @property
    def queued_bytes(self) -> int:
        """Payload (output) held by the queued writes."""
        return self._queued_bytes

    async def room(self, max_pending: int, max_bytes: int = 64 * 1024 * 1024) -> None:
        """Return once at most ``max_pending`` writes holding at most ``max_bytes`` of payload
        are queued (at once when the writer is not running): producers that could outrun the
        disk (agents streaming output) wait here, so the queue's memory stays bounded."""
        while (
            (len(self._queue) > max_pending or self._queued_bytes > max_bytes)
            and self._running
            and not self._closed
        ):
            self._committed.clear()
            await self._committed.wait()

    def stop(self) -> None:
        """Ask ``run`` to return once everything queued, now or until then, is committed."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """The writer loop: until ``stop`` and an empty queue (or until cancelled).

        A batch stays queued until its commit succeeds, so a cancellation mid-commit loses
        nothing that a later drain could still write; what is left at cancellation is logged.
        """
        self._running = True
        try:
            while self._queue or not self._stopping:
                if not self._queue:
                    await self._wake.wait()
                if len(self._queue) < self.LINGER_BELOW and not self._stopping:
                    # Group commit: let a burst gather so one transaction carries it.
                    await asyncio.sleep(self.LINGER_SECONDS)
                self._wake.clear()
                while self._queue:
                    if not await self._commit_some():
                        delay = min(MAX_BACKOFF_SECONDS, 0.25 * 2 ** min(self._failures, 8))
                        await asyncio.sleep(delay)
        finally:
            self._running = False
            self._closed = True
            self._committed.set()  # nobody waits for room in a writer that is gone
            if self._queue:
                log.error("store writer stopped with %d writes not committed", len(self._queue))

    async def _commit_some(self) -> bool:
        batch = self._queue[: self.MAX_BATCH]
        for item in batch:
            item.taken = True
        # Group by statement so each group is one executemany; order within a group is kept,
        # and statements of different groups touch rows independently (full-row upserts);
        # late ones (clean-ups such as the output trims) run after all the others.
        groups: dict[str, list[Params]] = {}
        late: dict[str, list[Params]] = {}
        for item in batch:
            if item.sql is not _BARRIER:
                (late if item.late else groups).setdefault(item.sql, []).append(item.params)
        try:
            await self._db.execute("BEGIN IMMEDIATE")
            for sql, rows in [*groups.items(), *late.items()]:
                await self._db.executemany(sql, rows)
            await self._db.execute("COMMIT")
        except Exception as exc:
            # A rollback after a failed BEGIN has nothing to undo and raises; that is fine.
            with contextlib.suppress(Exception):
                await self._db.execute("ROLLBACK")
            self._fail(len(batch), exc)
            return False
        # Writes only ever append, so the batch is still the head of the queue.
        del self._queue[: len(batch)]
        self._queued_bytes -= sum(item.nbytes for item in batch)
        if self._failures:
            log.warning("store writes succeed again after %d failed attempts", self._failures)
        self._failures = 0
        for item in batch:
            item.params = ()  # a handle kept by a caller holds no payload after the commit
            if item.fut is not None and not item.fut.done():
                item.fut.set_result(None)
        self._committed.set()
        return True

    def _fail(self, count: int, exc: Exception) -> None:
        """The first ``count`` queued writes failed: durable ones stay at the head for retry."""
        self._failures += 1
        batch = self._queue[:count]
        kept = [item for item in batch if item.durable]
        log.error(
            "store write of %d statements failed (attempt %d): %s; %d kept for retry",
            len(batch), self._failures, exc, len(kept),
        )  # fmt: skip
        err = StoreWriteError(f"store write failed: {exc}")
        for item in batch:
            if not item.durable and item.fut is not None and not item.fut.done():
                item.fut.set_exception(err)
                item.fut.exception()  # a caller that did not wait must not warn "never retrieved"
        self._queued_bytes -= sum(item.nbytes for item in batch if not item.durable)
        self._queue[:count] = kept

"""A FIFO limit on concurrently running commands (``--max-parallel``); queued runs can be killed."""

from __future__ import annotations

import asyncio
from collections import deque


class Slots:
    """Like a fair semaphore, but a waiter can be turned away (``abandon``) by a KillRun."""

    def __init__(self, limit: int) -> None:
        self._free = max(1, limit)
        self._waiters: deque[asyncio.Future[bool]] = deque()

    @property
    def queued(self) -> int:
        return sum(1 for fut in self._waiters if not fut.done())

    def try_acquire(self) -> bool:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    def enqueue(self) -> asyncio.Future[bool]:
        """A future that becomes True when a slot is handed over, False when abandoned."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        return fut

    async def wait(self, fut: asyncio.Future[bool]) -> bool:
        """Await an ``enqueue`` ticket; if cancelled, a slot already handed over is returned."""
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and fut.result():
                self.release()
            raise

    @staticmethod
    def abandon(fut: asyncio.Future[bool] | None) -> None:
        if fut is not None and not fut.done():
            fut.set_result(False)

    def release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(True)
                return
        self._free += 1

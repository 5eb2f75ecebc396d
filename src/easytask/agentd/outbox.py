"""The bounded queue between the agent's producers (runs, heartbeats) and the stream writer.

Messages are only queued while a stream is open; a producer that finds the queue full waits
(back-pressure). When the stream closes, queued and waiting messages are dropped: what matters
is re-sent after the reconnect (Hello known_runs, RunStarted, RunFinished), output gaps are
filled by ResendOutput.
"""

from __future__ import annotations

import asyncio
from collections import deque

from easytask.core.protocol import AgentMessage, RunFinished, RunStarted


class Outbox:
    """Bounded, generation-stamped outbound queue (one generation per stream).

    Producers blocked on a full queue wait in FIFO order and are woken one per freed slot.
    When the stream is backlogged (``coalesce_depth`` or more messages queued), a RunStarted
    still queued when its run's RunFinished is queued is dropped: RunFinished carries the same
    pid, start time and paths, and the scheduler takes STARTED -> final directly (as it must
    after a reconnect anyway). Without a backlog every RunStarted is sent.
    """

    def __init__(self, maxsize: int = 1024, coalesce_depth: int = 64) -> None:
        self._max = maxsize
        self._coalesce_depth = coalesce_depth
        self._items: deque[AgentMessage] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()
        self._getter: asyncio.Future[None] | None = None
        self._queued_started: dict[str, RunStarted] = {}
        self._superseded: set[int] = set()  # ids of queued RunStarted objects to skip
        self._open = False
        self._generation = 0

    def wants_output(self) -> bool:
        return self._open

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        """Start a new stream generation (call in the same step as taking the replay snapshot)."""
        self._drop()
        self._open = True

    def close(self) -> None:
        """The stream ended: drop everything queued and release waiting producers."""
        self._drop()
        self._open = False

    def _drop(self) -> None:
        self._generation += 1
        self._items.clear()
        self._queued_started.clear()
        self._superseded.clear()
        putters, self._putters = self._putters, deque()
        for fut in putters:
            if not fut.done():
                fut.set_result(None)

    async def put(self, msg: AgentMessage) -> None:
        """Queue ``msg`` for the current stream; dropped if there is none or it ends meanwhile."""
        generation = self._generation
        woken = False
        while self._open and self._generation == generation:
            if len(self._items) < self._max and (woken or not self._putters):
                self._items.append(msg)
                if isinstance(msg, RunStarted):
                    self._queued_started[msg.run_id] = msg
                elif isinstance(msg, RunFinished):
                    started = self._queued_started.pop(msg.run_id, None)
                    if started is not None and len(self._items) > self._coalesce_depth:
                        self._superseded.add(id(started))
                getter = self._getter
                if getter is not None and not getter.done():
                    getter.set_result(None)
                return
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._putters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._wake_putter()  # pass the freed slot on
                raise
            woken = True

    def _wake_putter(self) -> None:
        while self._putters:
            fut = self._putters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    async def get(self) -> AgentMessage:
        """Next message (single consumer: the stream writer)."""
        while True:
            while not self._items:
                self._getter = asyncio.get_running_loop().create_future()
                try:
                    await self._getter
                finally:
                    self._getter = None
            msg = self._pop()
            if msg is not None:
                return msg

    async def get_many(self, limit: int) -> list[AgentMessage]:
        """The next message and whatever else is queued right now, up to ``limit``, in order."""
        out = [await self.get()]
        while self._items and len(out) < limit:
            msg = self._pop()
            if msg is not None:
                out.append(msg)
        return out

    def _pop(self) -> AgentMessage | None:
        """Take the head message; None when it was a superseded RunStarted (skip it)."""
        msg = self._items.popleft()
        self._wake_putter()
        if isinstance(msg, RunStarted):
            if self._queued_started.get(msg.run_id) is msg:
                del self._queued_started[msg.run_id]
            elif id(msg) in self._superseded:
                self._superseded.discard(id(msg))
                return None
        return msg

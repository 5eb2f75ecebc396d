"""Bus: in-process pub/sub of run updates for log followers and the dashboard."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass

from easytask.core.states import RunState


@dataclass(frozen=True, slots=True)
class OutputAppended:
    run_id: str
    stream: str
    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
class RunStateChanged:
    run_id: str
    tid: int
    state: RunState


BusEvent = OutputAppended | RunStateChanged
ALL_RUNS = "*"  # the topic of every run's state changes (not their output)


class Subscription:
    """A bounded queue of events for one subscriber; overflow drops and sets ``overflowed``.

    A slow subscriber never slows the engine: it loses events and must resync from the store.
    """

    def __init__(self, bus: Bus, run_id: str, maxsize: int) -> None:
        self._bus = bus
        self.run_id = run_id
        self.queue: asyncio.Queue[BusEvent] = asyncio.Queue(maxsize)
        self.overflowed = False

    def offer(self, event: BusEvent) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True

    def close(self) -> None:
        self._bus.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class Bus:
    """Run-scoped topics: subscribers of a run id get its output and state changes."""

    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = defaultdict(set)

    def subscribe(self, run_id: str, maxsize: int = 2048) -> Subscription:
        sub = Subscription(self, run_id, maxsize)
        self._subs[run_id].add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.run_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.run_id]

    def subscribe_all(self, maxsize: int = 4096) -> Subscription:
        """Every run's state changes (the dashboard's board and lists)."""
        return self.subscribe(ALL_RUNS, maxsize)

    def publish(self, event: BusEvent) -> None:
        for sub in self._subs.get(event.run_id, ()):
            sub.offer(event)
        if type(event) is RunStateChanged:
            for sub in self._subs.get(ALL_RUNS, ()):
                sub.offer(event)

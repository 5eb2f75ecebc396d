"""TimerWheel: one pending deadline per key, popped in time order by ``advance(now)``."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(order=True, slots=True)
class _Entry:
    due: datetime
    seq: int
    key: Any = field(compare=False)
    payload: Any = field(compare=False)
    live: bool = field(default=True, compare=False)


class TimerWheel(Generic[K]):
    """A min-heap of deadlines with O(log n) replace and lazy cancellation.

    Each key has at most one live deadline: scheduling a key again replaces its old entry,
    which is what "a changed task's wheel entry is replaced" needs.
    """

    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        self._by_key: dict[K, _Entry] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._by_key)

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def schedule(self, key: K, due: datetime, payload: Any = None) -> None:
        """Set ``key``'s deadline to ``due``, replacing any earlier one."""
        self.cancel(key)
        entry = _Entry(due, next(self._seq), key, payload)
        self._by_key[key] = entry
        heapq.heappush(self._heap, entry)

    def cancel(self, key: K) -> None:
        entry = self._by_key.pop(key, None)
        if entry is not None:
            entry.live = False
        # Keep dead entries from piling up when keys are replaced often.
        if len(self._heap) > 64 and len(self._heap) > 2 * len(self._by_key):
            self._heap = [e for e in self._heap if e.live]
            heapq.heapify(self._heap)

    def due_of(self, key: K) -> datetime | None:
        entry = self._by_key.get(key)
        return entry.due if entry else None

    def payload_of(self, key: K) -> Any:
        entry = self._by_key.get(key)
        return entry.payload if entry else None

    def next_due(self) -> datetime | None:
        """The earliest live deadline, or None when the wheel is empty."""
        heap = self._heap
        while heap and not heap[0].live:
            heapq.heappop(heap)
        return heap[0].due if heap else None

    def in_order(self) -> Iterator[tuple[K, datetime, Any]]:
        """Live (key, deadline, payload) in deadline order, read lazily without changing the
        wheel: the first k of n entries cost O(k log k), not O(n). Consume it before the wheel
        changes."""
        heap = self._heap
        frontier: list[tuple[_Entry, int]] = [(heap[0], 0)] if heap else []
        while frontier:
            entry, i = heapq.heappop(frontier)
            if entry.live:
                yield entry.key, entry.due, entry.payload
            for child in (2 * i + 1, 2 * i + 2):
                if child < len(heap):
                    heapq.heappush(frontier, (heap[child], child))

    def advance(self, now: datetime) -> list[tuple[K, Any]]:
        """Remove and return every (key, payload) whose deadline is at or before ``now``."""
        fired: list[tuple[K, Any]] = []
        heap = self._heap
        while heap and (not heap[0].live or heap[0].due <= now):
            entry = heapq.heappop(heap)
            if entry.live:
                entry.live = False
                del self._by_key[entry.key]
                fired.append((entry.key, entry.payload))
        return fired

"""Timers: the timer wheel every scheduler part arms, and the loop that fires it on the clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from easytask.core.clock import Clock
from easytask.core.timerwheel import TimerWheel

WheelKey = tuple[str, Any]
Fire = Callable[[WheelKey, Any, datetime], None]


class Timers:
    """One deadline per key (``("task", tid)``, ``("retry", run_id)``, …) and a waker.

    Arming an entry wakes the loop, so an entry earlier than the one it sleeps for is not late.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._wheel: TimerWheel[WheelKey] = TimerWheel()
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._wheel)

    def schedule(self, key: WheelKey, due: datetime, payload: Any = None) -> None:
        self._wheel.schedule(key, due, payload)
        self._wake.set()

    def cancel(self, key: WheelKey) -> None:
        self._wheel.cancel(key)

    def payload_of(self, key: WheelKey) -> Any:
        return self._wheel.payload_of(key)

    def in_order(self) -> Iterator[tuple[WheelKey, datetime, Any]]:
        """Pending entries in deadline order, lazily (see TimerWheel.in_order)."""
        return self._wheel.in_order()

    async def run(self, fire: Fire) -> None:
        """Call ``fire`` for every entry at its instant; wake early when an earlier one is armed."""
        while True:
            due = self._wheel.next_due()
            if due is None:
                await self._wake.wait()
                self._wake.clear()
                continue
            if due > self._clock.now():
                self._wake.clear()
                sleeper = asyncio.ensure_future(self._clock.sleep_until(due))
                waker = asyncio.ensure_future(self._wake.wait())
                try:
                    await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    sleeper.cancel()
                    waker.cancel()
                continue
            now = self._clock.now()
            for key, payload in self._wheel.advance(now):
                fire(key, payload, now)

"""FakeClock: a Clock whose time moves only when a test calls ``advance``."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self._now = start
        self._mono = 1000.0
        self._changed = asyncio.Condition()

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    async def sleep_until(self, when: datetime) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._now >= when)

    async def advance(self, seconds: float) -> None:
        """Move time forward and let every sleeper whose deadline passed wake up."""
        self._now += timedelta(seconds=seconds)
        self._mono += seconds
        async with self._changed:
            self._changed.notify_all()
        # Give woken tasks a chance to run before the test looks at the result.
        for _ in range(5):
            await asyncio.sleep(0)

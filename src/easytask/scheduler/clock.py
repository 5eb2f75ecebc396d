"""SystemClock: the real Clock (wall time for schedules, monotonic for timeouts)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime


class SystemClock:
    """Reads the machine's clocks. ``offset`` shifts wall time (tests of far-future slots)."""

    def __init__(self, offset_seconds: float = 0.0) -> None:
        self._offset = offset_seconds

    def now(self) -> datetime:
        return datetime.fromtimestamp(time.time() + self._offset, tz=UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep_until(self, when: datetime) -> None:
        delay = (when - self.now()).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)

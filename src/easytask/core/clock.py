"""The Clock protocol: the only way services read time (core itself takes time as arguments)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    """Wall clock for schedules and stored timestamps, monotonic for timeouts."""

    def now(self) -> datetime:
        """Current aware UTC datetime."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, never going backwards."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Return once ``now() >= when`` (may return early if cancelled)."""
        ...

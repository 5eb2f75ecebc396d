"""Retention (spec 16): purge finished runs and their output once past the retention period."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from easytask.core.clock import Clock
from easytask.scheduler.engine import GROUP_HISTORY_DAYS
from easytask.store.ports import PurgeCursor, Store

log = logging.getLogger(__name__)

DEFAULT_RETENTION_DAYS = 30
MAX_RETENTION_DAYS = 36_500
BATCH_RUNS = 500  # runs examined per batch: one short transaction in the store's writer
BATCH_PAUSE_SECONDS = 0.05  # between batches, so the engine's own commits go first
EVERY = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """One purge pass."""

    ended_before: datetime
    runs: int
    group_runs: int
    batches: int


class Retention:
    """Purges, at start and then every hour of the clock, the finished runs that ended more
    than ``days`` ago (0 keeps everything), with their state history and stored output.

    The store keeps what the scheduler still reads (see ``Store.purge_runs``); occurrences
    the engine tracks (the last ``GROUP_HISTORY_DAYS`` days) keep their runs too.
    """

    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        days: int,
        batch: int = BATCH_RUNS,
        pause: float = BATCH_PAUSE_SECONDS,
    ) -> None:
        self._store = store
        self._clock = clock
        self.days = days
        self._batch = batch
        self._pause = pause
        self.last: PurgeReport | None = None  # for diagnostics and tests

    async def run(self) -> None:
        """The background loop (a child of the scheduler's TaskGroup)."""
        if self.days <= 0:
            log.info("retention: stored runs and output are kept forever (--retention-days 0)")
            return
        while True:
            began = self._clock.now()
            try:
                self.last = await self.purge(began)
            except Exception:  # a failed pass is retried at the next one; the loop lives on
                log.exception("retention: purge pass failed; retried in %s", EVERY)
            await self._clock.sleep_until(began + EVERY)

    async def purge(self, now: datetime) -> PurgeReport:
        """One pass over every run that ended before ``now`` minus the retention."""
        ended_before = now - timedelta(days=self.days)
        groups_before = min(ended_before, now - timedelta(days=GROUP_HISTORY_DAYS))
        started = self._clock.monotonic()
        runs = group_runs = batches = 0
        cursor: PurgeCursor | None = None
        while True:
            batch = await self._store.purge_runs(ended_before, groups_before, cursor, self._batch)
            batches += 1
            runs += batch.runs
            group_runs += batch.group_runs
            cursor = batch.cursor
            if cursor is None:
                break
            await asyncio.sleep(self._pause)
        log.info(
            "retention: purged %d runs and %d group occurrences ended before %s "
            "(%d days) in %d batches, %.1f s",
            runs, group_runs, ended_before.isoformat(), self.days, batches,
            self._clock.monotonic() - started,
        )  # fmt: skip
        return PurgeReport(ended_before, runs, group_runs, batches)


def parse_retention_days(text: str) -> int:
    """``--retention-days``: a whole number of days, 0 (keep forever) to MAX_RETENTION_DAYS.

    Raises:
        ValueError: naming what is allowed (the caller names the flag).
    """
    value = text.strip()
    if not value.isdigit() or int(value) > MAX_RETENTION_DAYS:
        raise ValueError(
            f"must be a whole number of days from 0 (keep forever) to {MAX_RETENTION_DAYS}, "
            f"got {text!r}"
        )
    return int(value)

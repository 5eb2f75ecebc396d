"""AlertWorker: sends due alerts from a queue, one task per alert, retried 5 s, 30 s, 120 s later.

The queue is durable in the scheduler (an alert is due in the same transaction as its run's final
state), so the worker keeps nothing it cannot read again: after a restart ``pending()`` returns
the unfinished alerts with their attempts so far and delivery resumes where it stopped. An alert
whose send succeeded but whose outcome was not yet recorded when the process died is sent again
on restart: delivery is at least once, and at most once per recorded outcome.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from easytask.core.alerts import Alert, AlertStatus, Channel
from easytask.core.clock import Clock
from easytask.core.errors import AlertDeliveryError

logger = logging.getLogger(__name__)

RETRY_DELAYS = (timedelta(seconds=5), timedelta(seconds=30), timedelta(seconds=120))


class AlertQueue(Protocol):
    """Where due alerts wait and their attempts are recorded (the store's alert table)."""

    async def pending(self) -> list[Alert]:
        """Every alert not finished, with ``attempts`` and ``last_attempt_at`` so far."""
        ...

    async def record_attempt(
        self, alert_id: str, ok: bool, error: str | None, at: datetime
    ) -> None:
        """Record one attempt; resolves once it is durable."""
        ...

    async def finish(self, alert_id: str, status: AlertStatus) -> None:
        """Mark the alert ``sent`` or ``failed`` (and its run's ``alert_status``)."""
        ...


class AlertSender(Protocol):
    """Delivers one alert once (``AlertChannels``)."""

    async def send(self, alert: Alert) -> None:
        """Raises AlertDeliveryError when the attempt failed."""
        ...


@dataclass(frozen=True, slots=True)
class AlertAttempt:
    """One recorded attempt."""

    alert_id: str
    ok: bool
    error: str | None
    at: datetime


class MemoryAlertQueue:
    """An AlertQueue in memory (tests; the store's table replaces it in the scheduler)."""

    def __init__(self) -> None:
        self._alerts: dict[str, Alert] = {}
        self.attempts: list[AlertAttempt] = []
        self.finished: dict[str, AlertStatus] = {}
        self.changed = asyncio.Event()  # set on every record; tests clear and wait on it

    def add(self, alert: Alert) -> None:
        self._alerts[alert.alert_id] = alert

    def attempts_of(self, alert_id: str) -> list[AlertAttempt]:
        return [a for a in self.attempts if a.alert_id == alert_id]

    async def pending(self) -> list[Alert]:
        return [a for i, a in self._alerts.items() if i not in self.finished]

    async def record_attempt(
        self, alert_id: str, ok: bool, error: str | None, at: datetime
    ) -> None:
        self.attempts.append(AlertAttempt(alert_id, ok, error, at))
        alert = self._alerts[alert_id]
        self._alerts[alert_id] = dataclasses.replace(
            alert, attempts=alert.attempts + 1, last_attempt_at=at
        )
        self.changed.set()

    async def finish(self, alert_id: str, status: AlertStatus) -> None:
        self.finished[alert_id] = status
        self.changed.set()


class AlertWorker:
    """Delivers the queue's alerts until stopped; a slow channel holds up only its own alerts.

    Args:
        queue: The due alerts and their attempts.
        sender: Delivers one alert once.
        clock: Times the retries.
        delays: Waits before the second, third, ... attempt (spec 15: 5 s, 30 s, 120 s).
        max_sending: Attempts in flight at once, all channels together.
        per_channel: Attempts in flight at once on one channel.
        grace: Seconds ``stop()`` lets attempts in flight finish before cancelling them.
    """

    def __init__(
        self,
        queue: AlertQueue,
        sender: AlertSender,
        clock: Clock,
        *,
        delays: Sequence[timedelta] = RETRY_DELAYS,
        max_sending: int = 16,
        per_channel: int = 8,
        grace: float = 5.0,
    ) -> None:
        self._queue = queue
        self._sender = sender
        self._clock = clock
        self._delays = tuple(delays)
        self._all = asyncio.Semaphore(max_sending)
        self._per_channel = {c: asyncio.Semaphore(per_channel) for c in Channel}
        self._grace = grace
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._sending: set[str] = set()
        self._wakeup = asyncio.Event()
        self._done = asyncio.Event()
        self._started = False
        self._stopping = False

    @property
    def max_attempts(self) -> int:
        return len(self._delays) + 1

    def wake(self) -> None:
        """Look at the queue again (call after an alert became due)."""
        self._wakeup.set()

    async def run(self) -> None:
        """Deliver alerts until :meth:`stop`; a child of the process's TaskGroup."""
        if self._started:
            raise RuntimeError("AlertWorker.run() called twice")
        self._started = True
        try:
            async with asyncio.TaskGroup() as tg:
                while not self._stopping:
                    self._wakeup.clear()
                    self._spawn(tg, await self._queue.pending())
                    await self._wakeup.wait()
                await self._drain()
        finally:
            self._done.set()

    async def stop(self) -> None:
        """Stop taking alerts, let attempts in flight finish for ``grace``, cancel the rest.

        Unfinished alerts stay in the queue for the next start. Idempotent.
        """
        self._stopping = True
        self._wakeup.set()
        if self._started:
            await self._done.wait()

    def _spawn(self, tg: asyncio.TaskGroup, alerts: list[Alert]) -> None:
        # Only tasks done before pending() was read are dropped: one finishing meanwhile may
        # still be in that list, and its entry keeps it from being sent twice.
        for done in [i for i, t in self._tasks.items() if t.done()]:
            del self._tasks[done]
        for alert in alerts:
            if alert.alert_id not in self._tasks:
                task = tg.create_task(self._deliver(alert), name=f"alert {alert.alert_id}")
                self._tasks[alert.alert_id] = task

    async def _drain(self) -> None:
        in_flight = [self._tasks[i] for i in self._sending if i in self._tasks]
        if in_flight:
            await asyncio.wait(in_flight, timeout=self._grace)
        for task in self._tasks.values():
            task.cancel()

    async def _deliver(self, alert: Alert) -> None:
        attempts, last, error = alert.attempts, alert.last_attempt_at, None
        while True:
            if attempts >= self.max_attempts:  # every attempt was made before a restart
                spent = error or "no attempt left after a restart"
                await self._finish(alert, AlertStatus.FAILED, attempts, spent)
                return
            if attempts > 0 and last is not None:
                await self._clock.sleep_until(last + self._delays[attempts - 1])
            if self._stopping:
                return
            error = await self._attempt(alert)
            attempts, last = attempts + 1, self._clock.now()
            await asyncio.shield(
                self._queue.record_attempt(alert.alert_id, error is None, error, last)
            )
            if error is None:
                await self._finish(alert, AlertStatus.SENT, attempts, None)
                return
            if attempts < self.max_attempts:
                logger.warning(
                    "alert %s of run %s: attempt %d failed (%s); next in %d s",
                    alert.alert_id,
                    alert.run_id,
                    attempts,
                    error,
                    self._delays[attempts - 1].total_seconds(),
                )
            if self._stopping:
                return

    async def _attempt(self, alert: Alert) -> str | None:
        """One send; the error message when it failed, None when it was delivered."""
        async with self._all, self._per_channel[alert.entry.channel]:
            self._sending.add(alert.alert_id)
            try:
                await self._sender.send(alert)
            except AlertDeliveryError as exc:
                return str(exc)
            except Exception as exc:
                # Not our error: its text may hold a URL or a password, so only its type is told.
                logger.error(
                    "alert %s of run %s: unexpected %s from channel %s",
                    alert.alert_id,
                    alert.run_id,
                    type(exc).__name__,
                    alert.entry.channel,
                )
                return f"unexpected error ({type(exc).__name__})"
            finally:
                self._sending.discard(alert.alert_id)
        return None

    async def _finish(
        self, alert: Alert, status: AlertStatus, attempts: int, error: str | None
    ) -> None:
        await asyncio.shield(self._record_outcome(alert, status, attempts, error))

    async def _record_outcome(
        self, alert: Alert, status: AlertStatus, attempts: int, error: str | None
    ) -> None:
        """Store the outcome, then log it (together, even when the worker is being stopped)."""
        await self._queue.finish(alert.alert_id, status)
        if status is AlertStatus.SENT:
            logger.info(
                "alert %s of run %s sent by %s (attempt %d)",
                alert.alert_id,
                alert.run_id,
                alert.entry.channel,
                attempts,
            )
        else:
            logger.error(
                "alert %s of run %s failed after %d attempts: %s",
                alert.alert_id,
                alert.run_id,
                attempts,
                error,
            )

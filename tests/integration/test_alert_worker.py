"""AlertWorker with real channels on local servers: retries on the fake clock, every attempt
recorded, a slow channel holding up only its own alert, resume after a stop, no secret logged."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from easytask.core.alerts import Alert, AlertStatus, alert_id, parse_alert
from easytask.scheduler.alert_channels import AlertChannels
from easytask.scheduler.alert_config import Connection, Secret, WebhookConnection
from easytask.scheduler.alert_worker import AlertWorker, MemoryAlertQueue
from tests.integration.test_alert_channels import RECORD, Endpoint, settings
from tests.support.fakeclock import FakeClock

START = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)
WAIT = 10.0
TEST_SERVER_LOGGERS = ("aiohttp.access", "aiohttp.server", "aiohttp.web", "mail.log")


def alert(run: str, item: dict[str, Any]) -> Alert:
    entry = parse_alert({"integrations": [item]})[0]
    run_id = f"default:1001:{run}:1"
    return Alert(alert_id(run_id, 0), run_id, entry, {**RECORD, "run_id": run_id})


async def until(queue: MemoryAlertQueue, what: str, check: Callable[[], bool]) -> None:
    """Wait for the queue to record something that makes ``check()`` true."""
    try:
        async with asyncio.timeout(WAIT):
            while True:
                queue.changed.clear()
                if check():
                    return
                await queue.changed.wait()
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


@contextlib.asynccontextmanager
async def running(worker: AlertWorker) -> AsyncIterator[AlertWorker]:
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        await worker.stop()
        await task


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def worker_for(
    queue: MemoryAlertQueue,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    connections: dict[str, Connection] | None = None,
    **options: Any,
) -> AlertWorker:
    channels = AlertChannels(settings(connections=connections), session, timeout=WAIT)
    return AlertWorker(queue, channels, clock, **options)


async def test_a_channel_that_is_down_is_retried_after_5_30_120_s_then_failed(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    clock, queue = FakeClock(START), MemoryAlertQueue()
    async with Endpoint(status=503) as down:
        secret = Secret(down.url("/services/T0/B0/s3cr3t"))
        connections: dict[str, Connection] = {"ops": WebhookConnection("ops", secret)}
        a = alert("1", {"integration": "slack", "connection": "ops", "text": "nightly Failed"})
        queue.add(a)
        async with running(worker_for(queue, session, clock, connections)):
            await until(queue, "attempt 1", lambda: len(queue.attempts) == 1)
            for seconds in (5, 30, 120):
                count = len(queue.attempts)
                await clock.advance(seconds - 1)
                await clock.advance(1)
                await until(queue, f"attempt {count + 1}", lambda n=count: len(queue.attempts) > n)
            await until(queue, "the outcome", lambda: a.alert_id in queue.finished)
    assert queue.finished == {a.alert_id: AlertStatus.FAILED}
    attempts = queue.attempts_of(a.alert_id)
    # Each retry at exactly its delay after the previous attempt: not one early.
    assert [x.at - START for x in attempts] == [timedelta(seconds=s) for s in (0, 5, 35, 155)]
    assert [(x.ok, x.error) for x in attempts] == [
        (False, "slack: HTTP 503 Service Unavailable")
    ] * 4
    assert len(down.received) == 4
    assert f"alert {a.alert_id} of run {a.run_id} failed after 4 attempts" in caplog.text
    # The stand-in endpoint's own access log shows its path; everything on our side must not.
    ours = [r for r in caplog.records if not r.name.startswith(TEST_SERVER_LOGGERS)]
    assert ours and not any("s3cr3t" in r.getMessage() for r in ours)


async def test_a_retry_that_succeeds_ends_sent(session: aiohttp.ClientSession) -> None:
    clock, queue = FakeClock(START), MemoryAlertQueue()
    async with Endpoint(status=500) as hook:
        a = alert("1", {"integration": "webhook", "url": hook.url()})
        queue.add(a)
        async with running(worker_for(queue, session, clock)):
            await until(queue, "attempt 1", lambda: len(queue.attempts) == 1)
            hook.status = 200
            await clock.advance(5)
            await until(queue, "the outcome", lambda: a.alert_id in queue.finished)
    assert queue.finished[a.alert_id] is AlertStatus.SENT
    assert [(x.ok, x.at - START) for x in queue.attempts] == [
        (False, timedelta(0)),
        (True, timedelta(seconds=5)),
    ]
    assert [body for _, _, body in hook.received] == [a.record, a.record]


async def test_a_slow_channel_does_not_delay_another_alert(session: aiohttp.ClientSession) -> None:
    clock, queue = FakeClock(START), MemoryAlertQueue()
    async with Endpoint(hold=asyncio.Event()) as slow, Endpoint() as fast:
        stuck = alert("1", {"integration": "webhook", "url": slow.url()})
        quick = alert("2", {"integration": "webhook", "url": fast.url()})
        queue.add(stuck)
        worker = worker_for(queue, session, clock)
        async with running(worker):
            await slow.wait()  # the first alert is in flight and its endpoint does not answer
            queue.add(quick)
            worker.wake()
            await until(queue, "the quick alert", lambda: quick.alert_id in queue.finished)
            assert stuck.alert_id not in queue.finished
            assert slow.hold is not None
            slow.hold.set()
            await until(queue, "the slow alert", lambda: stuck.alert_id in queue.finished)
    assert queue.finished == {quick.alert_id: AlertStatus.SENT, stuck.alert_id: AlertStatus.SENT}
    assert [x.alert_id for x in queue.attempts] == [quick.alert_id, stuck.alert_id]


async def test_a_stopped_worker_leaves_the_alert_and_the_next_one_resumes_it(
    session: aiohttp.ClientSession,
) -> None:
    clock, queue = FakeClock(START), MemoryAlertQueue()
    async with Endpoint(status=502) as down:
        a = alert("1", {"integration": "http", "url": down.url()})
        queue.add(a)
        async with running(worker_for(queue, session, clock)):
            await until(queue, "attempt 1", lambda: len(queue.attempts) == 1)
            await clock.advance(5)
            await until(queue, "attempt 2", lambda: len(queue.attempts) == 2)
        # Stopped while waiting 30 s for attempt 3: nothing finished, nothing lost.
        assert queue.finished == {}
        (resumed,) = await queue.pending()
        assert (resumed.attempts, resumed.last_attempt_at) == (2, START + timedelta(seconds=5))
        down.status = 200
        async with running(worker_for(queue, session, clock)):
            await clock.advance(29)
            await clock.advance(1)
            await until(queue, "the outcome", lambda: a.alert_id in queue.finished)
    assert queue.finished == {a.alert_id: AlertStatus.SENT}
    assert [x.at - START for x in queue.attempts] == [timedelta(seconds=s) for s in (0, 5, 35)]
    assert len(down.received) == 3


async def test_an_alert_whose_attempts_are_spent_ends_failed_without_a_send(
    session: aiohttp.ClientSession,
) -> None:
    clock, queue = FakeClock(START), MemoryAlertQueue()
    async with Endpoint() as hook:
        spent = alert("1", {"integration": "http", "url": hook.url()})
        queue.add(Alert(spent.alert_id, spent.run_id, spent.entry, spent.record, 4, START))
        async with running(worker_for(queue, session, clock)):
            await until(queue, "the outcome", lambda: spent.alert_id in queue.finished)
    assert queue.finished == {spent.alert_id: AlertStatus.FAILED}
    assert hook.received == [] and queue.attempts == []


class LeakySender:
    """A channel failing with an unexpected error whose text holds a secret."""

    async def send(self, alert: Alert) -> None:
        raise RuntimeError("POST https://hooks.example/s3cr3t failed")


async def test_an_unexpected_error_is_recorded_by_its_type_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    clock, queue = FakeClock(START), MemoryAlertQueue()
    a = alert("1", {"integration": "slack", "webhook_url": "https://hooks.example/s3cr3t",
                    "text": "t"})  # fmt: skip
    queue.add(a)
    worker = AlertWorker(queue, LeakySender(), clock, delays=[])
    async with running(worker):
        await until(queue, "the outcome", lambda: a.alert_id in queue.finished)
    assert queue.finished == {a.alert_id: AlertStatus.FAILED}
    assert [x.error for x in queue.attempts] == ["unexpected error (RuntimeError)"]
    assert "unexpected RuntimeError from channel slack" in caplog.text
    assert "s3cr3t" not in caplog.text


async def test_stop_is_idempotent_and_works_before_run() -> None:
    worker = AlertWorker(MemoryAlertQueue(), LeakySender(), FakeClock(START))
    await worker.stop()
    await worker.stop()
    await asyncio.wait_for(worker.run(), WAIT)  # returns at once: it was stopped


async def test_concurrency_is_bounded_per_channel(session: aiohttp.ClientSession) -> None:
    clock, queue = FakeClock(START), MemoryAlertQueue()
    async with Endpoint(hold=asyncio.Event()) as slow, Endpoint() as fast:
        first = alert("1", {"integration": "webhook", "url": slow.url()})
        second = alert("2", {"integration": "webhook", "url": fast.url()})
        slack = alert("3", {"integration": "slack", "webhook_url": fast.url(), "text": "t"})
        queue.add(first)
        worker = worker_for(queue, session, clock, per_channel=1)
        async with running(worker):
            await slow.wait()
            queue.add(second)
            queue.add(slack)
            worker.wake()
            # The webhook channel's one slot is taken; Slack has its own.
            await until(queue, "the slack alert", lambda: slack.alert_id in queue.finished)
            assert second.alert_id not in queue.finished and len(fast.received) == 1
            assert slow.hold is not None
            slow.hold.set()
            await until(queue, "all three", lambda: len(queue.finished) == 3)
    assert [x.alert_id for x in queue.attempts] == [slack.alert_id, first.alert_id, second.alert_id]
    assert set(queue.finished.values()) == {AlertStatus.SENT}

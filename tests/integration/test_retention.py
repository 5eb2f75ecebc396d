"""Retention in a running scheduler: an hourly pass on the injected clock purges in batches
while the engine keeps firing (spec 16: retention 30 days)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

import pytest

from easytask.core.models import Run, StateChange
from easytask.core.records import RunFilter
from easytask.core.runid import make_run_id
from easytask.core.states import RunState
from easytask.scheduler.retention import BATCH_RUNS, PurgeReport, Retention
from easytask.store.sqlite import SqliteStore
from tests.integration.conftest import START, Harness, eventually, running_service
from tests.support.fakeclock import FakeClock

OLD = 12_000  # runs that pass the 30 days one hour after the start: 24 batches
TIDS = range(9001, 10001)  # many tasks: start-up reads each task's latest run


def finished(tid: int, ended_ago: timedelta, i: int) -> Run:
    at = START - ended_ago - timedelta(minutes=5)
    at += timedelta(milliseconds=i)
    return Run(run_id=make_run_id("default", tid, at, 1), tid=tid, name=f"old{tid}",
               instance="default", run_date=f"{at:%Y%m%d}", scheduled_utc=at, local_time="12:00",
               timezone="UTC", attempt=1, state=RunState.SUCCESS, queue="q1", created_at=at,
               updated_at=at, started_at=at, ended_at=at + timedelta(minutes=5))  # fmt: skip


async def preload(home: Path) -> None:
    """The store of a scheduler that ran for a month: OLD runs ended 29 days 23 h before the
    start (with history and output), and one recent run per task."""
    store = await SqliteStore.open(home / "easytask.db")
    writer = asyncio.create_task(store.run_writer())
    await asyncio.sleep(0)
    for i in range(OLD):
        r = finished(TIDS[i % len(TIDS)], timedelta(days=29, hours=23, minutes=10), i)
        store.save_run(r, StateChange(r.run_id, RunState.RUNNING, RunState.SUCCESS, r.updated_at))
        store.append_output(r.run_id, "stdout", 0, b"x" * 200)
        if i % 2000 == 1999:
            await store.flush()
    for tid in TIDS:
        store.save_run(finished(tid, timedelta(days=1), 0))
    store.stop_writer()
    await writer
    await store.close()


async def old_runs_left(harness: Harness) -> int:
    assert harness.service.store is not None
    await harness.service.store.flush()
    old = RunFilter(date_to=f"{START - timedelta(days=20):%Y%m%d}")
    _, total, _ = await harness.service.store.list_runs(old, 0, 0)
    return total


async def test_a_purge_in_batches_does_not_hold_up_a_due_timer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="easytask.scheduler.retention")
    home = tmp_path / "home"
    await preload(home)
    clock = FakeClock(START)
    async with running_service(home, clock) as service:
        h = Harness(service, clock, home)
        try:
            retention = service.retention
            assert retention is not None and retention.days == 30
            # The pass at start finds nothing past 30 days yet.
            first = await eventually("the pass at start", lambda: _pass(retention, 0))
            assert (first.runs, first.ended_before) == (0, START - timedelta(days=30))
            assert await old_runs_left(h) == OLD
            await h.create(tid=5001, trigger_times="13:00")
            # An hour on the clock: the next pass starts, the old runs are now past 30 days...
            await clock.advance(3600)
            await eventually("the purge under way", lambda: _under_way(h))
            # ...and a slot falls due while it works: it fires at once, not after the purge.
            await clock.advance(60)
            due = START.replace(hour=13, minute=0)
            run = await h.wait_state(make_run_id("default", 5001, due, 1), "TRIGGER")
            left = await old_runs_left(h)
            assert 0 < left < OLD, f"the timer fired with {left} of {OLD} old runs left"
            assert run.triggered_at.startswith(due.strftime("%Y-%m-%dT%H:%M:%S"))
            done = await eventually("the purge done", lambda: _pass(retention, OLD), 60)
            assert done.runs == OLD and done.batches >= OLD // BATCH_RUNS
            assert await old_runs_left(h) == 0
            assert service.store is not None
            latest = await service.store.latest_run_states()
            assert {tid for tid in TIDS} <= set(latest)
            lines = [
                r.getMessage() for r in caplog.records if "retention: purged" in r.getMessage()
            ]
            assert lines[0].startswith("retention: purged 0 runs")
            assert lines[1].startswith(f"retention: purged {OLD} runs and 0 group occurrences")
            assert f"in {done.batches} batches" in lines[1]
        finally:
            await h.channel.close()


async def _pass(retention: Retention, runs: int) -> PurgeReport | None:
    last = retention.last
    return last if last is not None and last.runs == runs else None


async def _under_way(h: Harness) -> bool:
    return await old_runs_left(h) < OLD


async def test_retention_0_keeps_everything(tmp_path: Path) -> None:
    home = tmp_path / "home"
    await preload(home)
    clock = FakeClock(START + timedelta(days=400))
    async with running_service(home, clock, retention_days=0) as service:
        assert service.retention is not None
        await clock.advance(3600)
        assert service.retention.last is None
        assert service.store is not None
        _, total, _ = await service.store.list_runs(RunFilter(), 0, 0)
        assert total == OLD + len(TIDS)

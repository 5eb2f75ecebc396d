"""Each task rolls over at its own local midnight: day eligibility and run date are local."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.integration.conftest import Harness


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


async def test_tasks_in_different_zones_fire_at_their_own_local_midnight(
    harness: Harness,
) -> None:
    # Tuesday-only tasks at 00:05 local. The clock starts Monday 2026-06-01 11:59Z.
    zones = {5001: "Pacific/Auckland", 5002: "Asia/Kolkata", 5003: "US/Eastern"}
    for tid, zone in zones.items():
        await harness.create(tid=tid, timezone=zone, trigger_times="00:05", day_of_week="0100000")
    expected = {
        5001: "2026-06-01T12:05:00",  # NZST +12: Tuesday 00:05 is Monday 12:05 UTC
        5002: "2026-06-01T18:35:00",  # IST +5:30
        5003: "2026-06-02T04:05:00",  # EDT -4
    }
    for tid in sorted(expected, key=expected.__getitem__):
        due = ms(expected[tid])
        now_ms = int(harness.clock.now().timestamp() * 1000)
        await harness.clock.advance((due - now_ms) / 1000 - 1)
        assert await harness.runs(tid) == [], f"task {tid} fired early"
        await harness.clock.advance(1)
        run = await harness.wait_state(f"default:{tid}:{due}:1", "TRIGGER")
        assert (run.run_date, run.local_time, run.timezone) == ("20260602", "00:05", zones[tid])
    # None of them fires on the Monday that precedes, nor again before next Tuesday.
    await harness.clock.advance(6 * 86400)
    assert [len(await harness.runs(tid)) for tid in zones] == [1, 1, 1]

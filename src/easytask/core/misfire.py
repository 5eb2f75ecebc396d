"""Misfire policies (spec 4.6): which slots missed during downtime run now and which are skipped."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from easytask.core.schedule import Slot

MISSED_REASON = "missed while scheduler was down"
CATCH_UP_REASON = "catch-up after scheduler downtime"


def plan_misfires(
    policy: str, grace_seconds: int, missed: Sequence[Slot], now: datetime
) -> list[tuple[Slot, bool]]:
    """Decide, per missed slot in slot order, whether it runs now (True) or is skipped (False).

    Args:
        policy: ``run_once``, ``skip`` or ``run_all``.
        grace_seconds: how old a slot may be and still run.
        missed: the missed slots, in increasing UTC order.
        now: the start-up instant.
    """

    def fresh(slot: Slot) -> bool:
        return (now - slot.scheduled_utc).total_seconds() <= grace_seconds

    if policy == "skip" or not missed:
        return [(slot, False) for slot in missed]
    if policy == "run_all":
        return [(slot, fresh(slot)) for slot in missed]
    latest = missed[-1]
    return [(slot, slot is latest and fresh(slot)) for slot in missed]

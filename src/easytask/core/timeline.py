"""A run's timeline (spec 8): triggered <= dispatched <= acked <= started <= ended, always."""

from __future__ import annotations

from datetime import datetime

from easytask.core.models import Run

STEPS = ("triggered_at", "dispatched_at", "acked_at", "started_at", "ended_at")


def onto_timeline(
    floor: datetime | None, started: datetime | None, ended: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """An agent's start and end as the run records them, after the scheduler's ``floor``.

    The agent stamps its start and end with its own clock, while the scheduler stamps the
    acknowledgment when the message arrives: an acceptance and a start sent together (or a
    clock a little behind) put the start before the acknowledgment. Both are then moved
    later by as much as the start is early, keeping the duration the agent measured; an end
    is never before the start (or the floor).

    Args:
        floor: The run's latest scheduler step (acked, else dispatched, else triggered).
        started: The agent's process start, if any.
        ended: The agent's end, if any.
    """
    if started is not None and floor is not None and started < floor:
        shift = floor - started
        started = floor
        ended = None if ended is None else ended + shift
    lower = started or floor
    if ended is not None and lower is not None and ended < lower:
        ended = lower
    return started, ended


def floor_of(run: Run) -> datetime | None:
    """The latest step the scheduler itself stamped: what an agent's times must not precede."""
    return run.acked_at or run.dispatched_at or run.triggered_at


def out_of_order(run: Run) -> list[str]:
    """The steps recorded before the one reached before them (empty when monotonic)."""
    problems: list[str] = []
    last: tuple[str, datetime] | None = None
    for step in STEPS:
        at: datetime | None = getattr(run, step)
        if at is None:
            continue
        if last is not None and at < last[1]:
            problems.append(f"{step} {at.isoformat()} before {last[0]} {last[1].isoformat()}")
        last = (step, at) if last is None or at >= last[1] else last
    return problems

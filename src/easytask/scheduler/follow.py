"""Following a run's output live from any offset, to its end (FollowRunLogs, the dashboard)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from easytask.core.models import Run, StateChange
from easytask.core.records import FollowEnd, FollowPiece
from easytask.scheduler.bus import Bus, OutputAppended, RunStateChanged, Subscription
from easytask.store.ports import Store

FINAL_OUTPUT_WAIT = 10.0  # seconds without new output before following a final run gives up


def reported_size(run: Run, stream: str) -> int:
    """Bytes of ``stream`` the agent reported for a final run (0 when it reported none).

    One file for both streams is streamed once, as stdout: nothing is owed on stderr.
    """
    span = run.stdout_range if stream == "stdout" else run.stderr_range
    if span is None:
        return 0
    if stream == "stderr" and (
        run.stderr_path == run.stdout_path or run.stderr_range == run.stdout_range
    ):
        return 0
    return max(0, span[1] - span[0])


async def _output_arrives(sub: Subscription, wait: float) -> bool:
    """Whether any output event reaches ``sub`` within ``wait`` seconds."""
    try:
        async with asyncio.timeout(wait):
            while not isinstance(await sub.queue.get(), OutputAppended):
                pass
    except TimeoutError:
        return False
    sub.overflowed = False
    return True


async def follow_output(
    store: Store,
    bus: Bus,
    get_run: Callable[[str], Awaitable[tuple[Run, list[StateChange]]]],
    run_id: str,
    streams: tuple[str, ...],
    start: dict[str, int] | None = None,
) -> AsyncIterator[FollowPiece | FollowEnd]:
    """Yield the run's output from ``start`` (offsets per stream, default 0), live, then
    its end.

    The stored copy is the source of truth: every piece is read from it or follows on
    from what was read, by offset. A run can become final before all its output is in
    (a result replayed after a reconnect overtakes the re-sent output), so the end waits
    for the sizes the agent reported; ``complete`` is False when output stopped arriving
    for ``FINAL_OUTPUT_WAIT`` seconds short of them.
    """
    await get_run(run_id)
    with bus.subscribe(run_id) as sub:
        sent = {s: (start or {}).get(s, 0) for s in streams}
        while True:
            await store.flush()
            run, _ = await get_run(run_id)
            for stream in streams:
                # By offset, not length: a long output's stored middle is cut (spec 16).
                data, end = await store.read_output_from(run_id, stream, sent[stream])
                if data:
                    yield FollowPiece(stream, data, end)
                sent[stream] = max(sent[stream], end)
            if run.state.final:
                if all(sent[s] >= reported_size(run, s) for s in streams):
                    yield FollowEnd(run.state, True)
                    return
                if not await _output_arrives(sub, FINAL_OUTPUT_WAIT):
                    yield FollowEnd(run.state, False)
                    return
                continue
            sub.overflowed = False
            # Live path: apply bus events until the run ends or the queue overflowed.
            while not sub.overflowed:
                event = await sub.queue.get()
                if isinstance(event, RunStateChanged):
                    if event.state.final:
                        break
                elif isinstance(event, OutputAppended) and event.stream in sent:
                    end = event.offset + len(event.data)
                    if event.offset <= sent[event.stream] < end:
                        data = event.data[sent[event.stream] - event.offset :]
                        yield FollowPiece(event.stream, data, end)
                        sent[event.stream] = end

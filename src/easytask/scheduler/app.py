"""SchedulerApp: the application layer the public API (and later the dashboard) calls."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from easytask import __version__
from easytask.core.clock import Clock
from easytask.core.errors import RunNotFoundError
from easytask.core.models import Run, StateChange, TaskDef
from easytask.core.records import AgentRecord, RunFilter
from easytask.core.schedule import Slot, next_slot
from easytask.core.states import RunState
from easytask.scheduler.bus import Bus, OutputAppended, RunStateChanged, Subscription
from easytask.scheduler.calendars import CalendarBook
from easytask.scheduler.catalog import TaskCatalog
from easytask.scheduler.engine import Engine
from easytask.scheduler.events import EventOutcome, EventRequest, EventService
from easytask.scheduler.holidays import HolidayService
from easytask.scheduler.hub import AgentHub
from easytask.scheduler.why import Explanation, explain
from easytask.store.ports import Store

STREAMS = ("stdout", "stderr")
FINAL_OUTPUT_WAIT = 10.0  # seconds without new output before following a final run gives up


@dataclass(frozen=True, slots=True)
class FollowPiece:
    """Output of a followed run: ``data`` ends at stream offset ``end``."""

    stream: str
    data: bytes
    end: int


@dataclass(frozen=True, slots=True)
class FollowEnd:
    """The followed run is final; ``complete``: every byte the agent reported was delivered."""

    state: RunState
    complete: bool


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


@dataclass(frozen=True, slots=True)
class UpcomingRun:
    task: TaskDef
    slot: Slot
    note: str


@dataclass(frozen=True, slots=True)
class AgentView:
    record: AgentRecord
    online: bool
    cpu_percent: float
    mem_percent: float
    uptime_seconds: float
    running_run_ids: list[str]


@dataclass(frozen=True, slots=True)
class Health:
    instance: str
    started_at: datetime
    heartbeat_age: float
    version: str
    agents_online: int
    active_runs: int
    triggers_24h: int


class SchedulerApp:
    """Thin use cases over the catalog, engine, hub and store."""

    def __init__(
        self,
        *,
        instance: str,
        store: Store,
        engine: Engine,
        hub: AgentHub,
        catalog: TaskCatalog,
        calendars: CalendarBook,
        holidays: HolidayService,
        events: EventService,
        bus: Bus,
        clock: Clock,
    ) -> None:
        self.instance = instance
        self.store = store
        self.engine = engine
        self.hub = hub
        self.catalog = catalog
        self.calendars = calendars
        self.holidays = holidays
        self.events = events
        self.bus = bus
        self.clock = clock
        self.started_at = clock.now()

    # ----- runs -----

    async def list_runs(
        self, flt: RunFilter, page: int, per_page: int
    ) -> tuple[list[Run], int, dict[str, int]]:
        return await self.store.list_runs(flt, (page - 1) * per_page, per_page)

    async def get_run(self, run_id: str) -> tuple[Run, list[StateChange]]:
        run = self.engine.runs.live.get(run_id) or await self.store.find_run(run_id)
        if run is None:
            raise RunNotFoundError(f"run {run_id} not found")
        return run, await self.store.transitions(run_id)

    async def run_output(self, run_id: str) -> tuple[Run, dict[str, tuple[bytes, bool]]]:
        """Each stream's stored copy (the cut marked) and whether it was cut."""
        run, _ = await self.get_run(run_id)
        await self.store.flush()
        return run, {s: await self.store.read_output_view(run_id, s) for s in STREAMS}

    async def follow_output(
        self, run_id: str, streams: tuple[str, ...], start: dict[str, int] | None = None
    ) -> AsyncIterator[FollowPiece | FollowEnd]:
        """Yield the run's output from ``start`` (offsets per stream, default 0), live, then
        its end.

        The stored copy is the source of truth: every piece is read from it or follows on
        from what was read, by offset. A run can become final before all its output is in
        (a result replayed after a reconnect overtakes the re-sent output), so the end waits
        for the sizes the agent reported; ``complete`` is False when output stopped arriving
        for ``FINAL_OUTPUT_WAIT`` seconds short of them.
        """
        await self.get_run(run_id)
        with self.bus.subscribe(run_id) as sub:
            sent = {s: (start or {}).get(s, 0) for s in streams}
            while True:
                await self.store.flush()
                run, _ = await self.get_run(run_id)
                for stream in streams:
                    # By offset, not length: a long output's stored middle is cut (spec 16).
                    data, end = await self.store.read_output_from(run_id, stream, sent[stream])
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

    # ----- events -----

    async def force_run(
        self, tid: int, name: str, run_date: str, user: str, origin: str
    ) -> EventOutcome:
        """FORCE_RUN_TASK, recorded as an event (refusals too)."""
        req = EventRequest("FORCE_RUN_TASK", tid=tid, name=name, run_date=run_date, origin=origin)
        return await self.events.publish(req, user)

    async def refresh_calendars(self, user: str, origin: str) -> EventOutcome:
        """REFRESH_CALENDAR: reload every calendar from the store, recorded as an event."""
        return await self.events.publish(EventRequest("REFRESH_CALENDAR", origin=origin), user)

    async def explain(self, tid: int, name: str, run_date: str) -> Explanation:
        """`tasks why`: what holds the task back on ``run_date`` (default: today, local)."""
        task = self.catalog.get(tid, name)
        now = self.clock.now()
        run_date = (
            run_date or f"{now.astimezone(ZoneInfo(self.engine.groups.zone_of(task))):%Y%m%d}"
        )
        await self.store.flush()
        runs, _, _ = await self.store.list_runs(RunFilter(tid=task.tid, run_date=run_date), 0, 500)
        return explain(self.engine, task, run_date, runs, now)

    # ----- schedule preview -----

    def upcoming(self, tid: int, start: datetime, end: datetime, count: int) -> list[UpcomingRun]:
        """The next ``count`` occurrences in (start, end], merged across tasks in time order."""
        tasks = [self.catalog.get(tid)] if tid else list(self.catalog.tasks.values())
        heap: list[tuple[datetime, int, Slot]] = []
        for task in tasks:
            schedule = self.engine.schedule_of(task.tid)
            if schedule is None:
                continue
            slot = next_slot(schedule, start, self.calendars.holiday_check(task.calendar))
            if slot is not None and slot.scheduled_utc <= end:
                heap.append((slot.scheduled_utc, task.tid, slot))
        heapq.heapify(heap)
        out: list[UpcomingRun] = []
        while heap and len(out) < count:
            _, task_tid, slot = heapq.heappop(heap)
            task = self.catalog.tasks[task_tid]
            out.append(UpcomingRun(task, slot, self._note(task, slot)))
            schedule = self.engine.schedule_of(task_tid)
            holidays = self.calendars.holiday_check(task.calendar)
            nxt = next_slot(schedule, slot.scheduled_utc, holidays) if schedule else None
            if nxt is not None and nxt.scheduled_utc <= end:
                heapq.heappush(heap, (nxt.scheduled_utc, task_tid, nxt))
        return out

    def _note(self, task: TaskDef, slot: Slot) -> str:
        if task.calendar:
            reason = self.calendars.holiday_reason(task.calendar, slot.local_date)
            if reason is not None:
                return f"holiday in calendar {task.calendar}: {reason}"
        return slot.note

    # ----- health and agents -----

    async def health(self) -> Health:
        now = self.clock.now()
        tick = self.engine.last_tick or self.started_at
        return Health(
            instance=self.instance,
            started_at=self.started_at,
            heartbeat_age=(now - tick).total_seconds(),
            version=__version__,
            agents_online=len(self.hub.sessions),
            active_runs=len(self.engine.runs.live),
            triggers_24h=await self.store.count_runs_since(now - timedelta(hours=24)),
        )

    async def agents(self) -> list[AgentView]:
        stored = {a.name: a for a in await self.store.load_agents()}
        now = self.clock.now()
        views: list[AgentView] = []
        for name, session in self.hub.sessions.items():
            h = session.hello
            stored[name] = AgentRecord(
                name, h.host, list(h.queues), h.version, h.pid, h.cpu_cores, h.memory_mb,
                session.connected_at, now,
            )  # fmt: skip
        for name in sorted(stored):
            online = self.hub.sessions.get(name)
            rec = stored[name]
            if online is None:
                views.append(AgentView(rec, False, 0.0, 0.0, 0.0, []))
                continue
            views.append(
                AgentView(
                    rec,
                    True,
                    online.heartbeat.cpu_percent,
                    online.heartbeat.mem_percent,
                    (now - online.connected_at).total_seconds(),
                    sorted(online.active),
                )
            )
        return views

    def local_now(self, task: TaskDef) -> datetime:
        return self.clock.now().astimezone(ZoneInfo(task.timezone or "UTC"))

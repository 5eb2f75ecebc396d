"""RunBook: the run lifecycle. Every create, state change, finish and retry of a run goes here.

It owns the live (non-final) runs, the latest run and state per task and the stored output
size per stream. The engine (firing), the group runtime and agent-event handling change runs
only through it; it tells the group runtime about member changes through ``MemberListener``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from datetime import datetime, timedelta
from typing import Protocol

from easytask.core.models import Run, StateChange, TaskDef
from easytask.core.protocol import RunOrder
from easytask.core.runid import make_run_id
from easytask.core.states import RunState, check_transition
from easytask.scheduler.bus import Bus, RunStateChanged
from easytask.scheduler.logs import log_run, validation
from easytask.scheduler.taskindex import TaskIndex
from easytask.scheduler.timers import Timers
from easytask.store.ports import RunWrites

log = logging.getLogger(__name__)

S = RunState
OUTPUT_SIZES_KEPT = 100_000
TASK_DELETED = "task deleted before the run was dispatched"


class Dispatcher(Protocol):
    """What the run lifecycle asks of the agent hub."""

    def submit(self, order: RunOrder) -> None: ...
    def withdraw(self, run_id: str) -> str | None: ...
    def kill(self, agent: str, run_id: str, reason: str) -> None: ...
    def finished_elsewhere(self, run_id: str) -> None: ...


class MemberListener(Protocol):
    """Told after every state change of a run that belongs to a group occurrence."""

    def member_changed(self, run: Run) -> None: ...


class RunBook:
    def __init__(
        self,
        *,
        instance: str,
        store: RunWrites,
        hub: Dispatcher,
        timers: Timers,
        index: TaskIndex,
        bus: Bus,
    ) -> None:
        self.instance = instance
        self._store = store
        self._hub = hub
        self._timers = timers
        self._index = index
        self._bus = bus
        self._members: MemberListener | None = None
        self.live: dict[str, Run] = {}
        self.latest: dict[int, tuple[str, RunState]] = {}
        self.output_sizes: dict[tuple[str, str], int] = {}

    def follow_members(self, listener: MemberListener) -> None:
        self._members = listener

    def adopt(
        self,
        latest: dict[int, tuple[str, RunState]],
        live: list[Run],
        output_sizes: dict[tuple[str, str], int],
        now: datetime,
    ) -> None:
        """Start-up: take the stored latest states and non-final runs, and resume each."""
        self.latest = latest
        self.output_sizes = output_sizes
        for run in live:
            self.live[run.run_id] = run
        for run in live:
            self._resume(run, now)

    def _resume(self, run: Run, now: datetime) -> None:
        task = self._index.get(run.tid)
        if task is None and run.state in (S.TRIGGER, S.RESTARTING):
            self.finish(run, S.TERMINATED, TASK_DELETED, now)
        elif run.state is S.TRIGGER and task is not None:
            self._arm_expiry(run, task)
            self._hub.submit(self.order(run, task))
        elif run.state is S.RESTARTING and task is not None:
            due = run.created_at + timedelta(seconds=task.retry_delay)
            self._timers.schedule(("retry", run.run_id), max(due, now))
        # STARTED and RUNNING runs wait for their agent's hello (AgentEvents.agent_connected).

    # ----- creation -----

    def new_run(
        self,
        task: TaskDef,
        scheduled: datetime,
        run_date: str,
        local_time: str,
        now: datetime,
        attempt: int = 1,
    ) -> Run:
        return Run(
            run_id=make_run_id(self.instance, task.tid, scheduled, attempt),
            tid=task.tid,
            name=task.name,
            instance=self.instance,
            run_date=run_date,
            scheduled_utc=scheduled,
            local_time=local_time,
            timezone=task.timezone or "UTC",
            attempt=attempt,
            state=S.TRIGGER,
            queue=task.run_on_host,
            created_at=now,
            updated_at=now,
        )

    def next_attempt(self, run: Run, task: TaskDef, now: datetime) -> Run:
        """The slot's next attempt: same slot, occurrence and forcing, attempt + 1."""
        nxt = self.new_run(
            task, run.scheduled_utc, run.run_date, run.local_time, now, run.attempt + 1
        )
        nxt.forced, nxt.forced_by = run.forced, run.forced_by
        nxt.group, nxt.group_run_id, nxt.timezone = run.group, run.group_run_id, run.timezone
        return nxt

    def create(self, run: Run, state: RunState, reason: str, now: datetime) -> asyncio.Future[None]:
        """Record a new run in its initial state."""
        run.state = state
        run.reason = reason
        if state is S.TRIGGER:
            run.triggered_at = now
        if state.final:
            run.ended_at = now
        else:
            self.live[run.run_id] = run
        self.latest[run.tid] = (run.run_id, state)
        return self._recorded(run, StateChange(run.run_id, None, state, now, reason))

    def trigger(
        self,
        run: Run,
        task: TaskDef,
        now: datetime,
        src: RunState | None,
        reason: str = "",
        dependency: str | None = None,
    ) -> None:
        """Put a run in TRIGGER, commit it, then offer it to an agent (invariant 1).

        ``dependency``: the member's expression and the value it was just found to have.
        """
        # A member of a forced occurrence still honours freezes and its dependency (spec 10).
        freeze = "none" if run.group_run_id else None
        checks = validation(
            task, "TRIGGER", forced=run.forced, freeze=freeze, dependency=dependency
        )
        log_run(run, "Task Validated", checks)
        if src is None:
            fut = self.create(run, S.TRIGGER, reason, now)
        else:
            run.triggered_at = now
            fut = self.set_state(run, S.TRIGGER, now, reason)
        self._arm_expiry(run, task)
        order = self.order(run, task)
        fut.add_done_callback(lambda f: self._dispatch_committed(f, order))

    def _dispatch_committed(self, fut: asyncio.Future[None], order: RunOrder) -> None:
        if fut.exception() is not None:
            log.error("run %s not dispatched: its record was not stored", order.run_id)
            return
        run = self.live.get(order.run_id)
        if run is not None and run.state is S.TRIGGER:
            self._hub.submit(order)

    def _arm_expiry(self, run: Run, task: TaskDef) -> None:
        seconds = task.task_accept_expiry_time
        if seconds and run.triggered_at is not None:
            due = run.triggered_at + timedelta(seconds=seconds)
            self._timers.schedule(("expire", run.run_id), due, seconds)

    def order(self, run: Run, task: TaskDef) -> RunOrder:
        return RunOrder(
            run_id=run.run_id,
            tid=task.tid,
            name=task.name,
            cmd=task.cmd,
            stdout=task.stdout,
            stderr=task.stderr,
            queue=task.run_on_host,
            attempt=run.attempt,
            run_date=run.run_date,
            local_time=run.local_time,
            timezone=run.timezone,
            run_as_user=task.run_as_user or "",
            profile=task.profile,
            max_run_time=task.max_run_time or 0,
        )

    # ----- state changes -----

    def set_state(
        self, run: Run, state: RunState, now: datetime, reason: str | None = None
    ) -> asyncio.Future[None]:
        """A state change the transition table allows (raises TransitionError otherwise)."""
        check_transition(run.run_id, run.state, state)
        change = StateChange(run.run_id, run.state, state, now, reason or "")
        run.state = state
        if reason is not None:
            run.reason = reason
        return self._changed(run, change, now)

    def force_state(
        self, run: Run, state: RunState, now: datetime, reason: str
    ) -> asyncio.Future[None]:
        """An operator-set state: bypasses the table (already checked), never retried."""
        change = StateChange(run.run_id, run.state, state, now, reason)
        run.state, run.reason = state, reason
        if state.final:
            run.ended_at = run.ended_at or now
            self._hub.finished_elsewhere(run.run_id)
        log_run(run, "Status Updated", f"{change.from_state} -> {state} ({reason})")
        # No output is expected from a run an operator decided: late chunks are not kept.
        return self._changed(run, change, now, keep_output=False)

    def reopen(self, run: Run, now: datetime) -> None:
        """SKIPPED (unmet dependency) -> ACTIVE after an operator changed an upstream state."""
        run.ended_at = None
        self.set_state(run, S.ACTIVE, now, "")

    def _changed(
        self, run: Run, change: StateChange, now: datetime, keep_output: bool = True
    ) -> asyncio.Future[None]:
        """The bookkeeping every state change shares: live set, latest state, timers, output."""
        run.updated_at = now
        if run.state.final:
            self.live.pop(run.run_id, None)
            self._timers.cancel(("expire", run.run_id))
            if keep_output:
                self._keep_output_sizes(run.run_id)
        else:
            self.live[run.run_id] = run
        latest = self.latest.get(run.tid)
        if latest is None or latest[0] == run.run_id:
            self.latest[run.tid] = (run.run_id, run.state)
        return self._recorded(run, change)

    def _recorded(self, run: Run, change: StateChange) -> asyncio.Future[None]:
        self._bus.publish(RunStateChanged(run.run_id, run.tid, run.state))
        fut = self._store.save_run(run, change)
        if run.group_run_id and self._members is not None:
            self._members.member_changed(run)
        return fut

    def finish(self, run: Run, state: RunState, reason: str, now: datetime) -> asyncio.Future[None]:
        """Make a run final and, for a failure with attempts left, create the next attempt."""
        if run.ended_at is None:
            run.ended_at = now
        fut = self.set_state(run, state, now, reason)
        self._hub.finished_elsewhere(run.run_id)
        log_run(
            run,
            "Execution Result",
            f"status={state} duration={_fmt_duration(run.duration)} "
            f"return_code={run.return_code} reason={reason or '-'}",
        )
        task = self._index.get(run.tid)
        retryable = state is S.FAILED or (state is S.TERMINATED and reason == "timed out")
        if task is not None and retryable and run.attempt <= task.retry_attempts:
            self._retry(run, task, now)
        return fut

    def _retry(self, run: Run, task: TaskDef, now: datetime) -> None:
        nxt = self.next_attempt(run, task, now)
        reason = f"retry {run.attempt} of {task.retry_attempts} after {run.state}"
        # Queued in the same batch as the previous attempt's final state: one transaction.
        self.create(nxt, S.RESTARTING, reason, now)
        log_run(nxt, "Status Updated", f"{run.state} -> RESTARTING ({reason})")
        if task.retry_delay:
            self._timers.schedule(("retry", nxt.run_id), now + timedelta(seconds=task.retry_delay))
        else:
            self.trigger(nxt, task, now, S.RESTARTING)

    # ----- timers -----

    def retry_due(self, run_id: str, now: datetime) -> None:
        """A retry delay ran out: the RESTARTING attempt is triggered."""
        run = self.live.get(run_id)
        if run is None or run.state is not S.RESTARTING:
            return
        task = self._index.get(run.tid)
        if task is None:
            self.finish(run, S.TERMINATED, TASK_DELETED, now)
        else:
            self.trigger(run, task, now, S.RESTARTING)

    def expiry_due(self, run_id: str, seconds: int, now: datetime) -> None:
        """No agent accepted the run in ``task_accept_expiry_time``: REJECTED."""
        run = self.live.get(run_id)
        if run is None or run.state is not S.TRIGGER:
            return
        agent = self._hub.withdraw(run.run_id)
        if agent is not None:
            self._hub.kill(agent, run.run_id, "rejected")
        self.finish(run, S.REJECTED, f"not accepted within {seconds} s", now)

    # ----- output -----

    def _keep_output_sizes(self, run_id: str) -> None:
        """Remember a final run's stored output size for late chunks; forget the oldest ones."""
        for stream in ("stdout", "stderr"):
            self.output_sizes.setdefault((run_id, stream), 0)
        if len(self.output_sizes) > OUTPUT_SIZES_KEPT:
            for key in list(itertools.islice(self.output_sizes, OUTPUT_SIZES_KEPT // 5)):
                if key[0] not in self.live:
                    del self.output_sizes[key]

    def tracks_output(self, run_id: str) -> bool:
        """Output of this run still counts: it is live or became final recently."""
        return run_id in self.live or (run_id, "stdout") in self.output_sizes


def _fmt_duration(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.3f}s"

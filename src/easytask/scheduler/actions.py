"""RunActions: what an operator does to runs (spec 10); scheduler/events.py picks the targets."""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from easytask.core.clock import Clock
from easytask.core.errors import GroupNotFoundError, TaskNotFoundError, TransitionError
from easytask.core.models import Run
from easytask.core.records import Freeze
from easytask.core.runid import make_run_id
from easytask.core.states import RunState, check_operator_status
from easytask.scheduler.freezes import Freezes
from easytask.scheduler.groups import GroupRunner
from easytask.scheduler.logs import log_run, log_triggered
from easytask.scheduler.runs import RunBook
from easytask.scheduler.taskindex import TaskIndex
from easytask.scheduler.timers import Timers
from easytask.store.ports import Store

S = RunState


class AgentReach(Protocol):
    """What operator actions ask of the agent hub."""

    def withdraw(self, run_id: str) -> str | None: ...
    def kill(self, agent: str, run_id: str, reason: str) -> None: ...
    def is_connected(self, agent: str) -> bool: ...


class RunActions:
    def __init__(
        self,
        *,
        runs: RunBook,
        groups: GroupRunner,
        index: TaskIndex,
        timers: Timers,
        freezes: Freezes,
        hub: AgentReach,
        store: Store,
        clock: Clock,
    ) -> None:
        self._runs = runs
        self._groups = groups
        self._index = index
        self._timers = timers
        self._freezes = freezes
        self._hub = hub
        self._store = store
        self._clock = clock

    async def force_run(self, tid: int, run_date: str | None, by: str) -> Run:
        """FORCE_RUN_TASK: a new run now, ignoring schedule, calendar and ``active``."""
        task = self._index.get(tid)
        if task is None:
            raise TaskNotFoundError(tid)
        zone = self._groups.zone_of(task)
        now = self._clock.now()
        local = now.astimezone(ZoneInfo(zone))
        # Millisecond run ids: two force-runs in the same millisecond would collide.
        while any(
            r.run_id == make_run_id(self._runs.instance, tid, now, 1)
            for r in self._runs.live.values()
        ):
            now += timedelta(milliseconds=1)
        run = self._runs.new_run(task, now, run_date or f"{local:%Y%m%d}", f"{local:%H:%M:%S}", now)
        run.timezone = zone  # a forced member runs on its own, outside any occurrence
        run.forced = True
        run.forced_by = by
        log_triggered(run)
        self._runs.trigger(run, task, now, None)
        await self._store.flush()
        return run

    async def force_run_group(self, gid: int, run_date: str | None, by: str) -> str:
        """FORCE_RUN_TASK on a group: a new occurrence now; members follow their dependencies."""
        group = self._groups.groups.get(gid)
        if group is None:
            raise GroupNotFoundError(gid)
        now = self._clock.now()
        local = now.astimezone(ZoneInfo(group.timezone))
        occurrence = self._groups.open_occurrence(
            group, now, run_date or f"{local:%Y%m%d}", f"{local:%H:%M:%S}", now, forced=True
        )
        await self._store.flush()
        return occurrence.run_date if occurrence else (run_date or f"{local:%Y%m%d}")

    def freeze(self, tid: int, run_date: str, trigger_time: str, by: str) -> int:
        """Store a freeze and freeze the slot's existing IDLE/ACTIVE/PENDING runs at once."""
        now = self._clock.now()
        self._freezes.add((tid, run_date, trigger_time))
        self._store.add_freeze(Freeze(tid, run_date, trigger_time), by, now)
        frozen = 0
        for run in self._slot_runs(tid, run_date, trigger_time):
            if run.state in (S.IDLE, S.ACTIVE, S.PENDING):
                self._runs.set_state(run, S.FROZEN, now, f"frozen by {by}")
                frozen += 1
        return frozen

    def unfreeze(self, tid: int, run_date: str, trigger_time: str, by: str) -> int:
        """Lift a stored freeze; FROZEN runs go through UNFREEZE back into evaluation."""
        now = self._clock.now()
        self._freezes.discard((tid, run_date, trigger_time))
        self._store.remove_freeze(Freeze(tid, run_date, trigger_time))
        released = 0
        for run in self._slot_runs(tid, run_date, trigger_time):
            if run.state is S.FROZEN and not self._freezes.covers(tid, run_date, run.local_time):
                self._runs.set_state(run, S.UNFREEZE, now, f"unfrozen by {by}")
                task = self._index.get(tid)
                if run.group_run_id is not None and run.group_run_id in self._groups.occurrences:
                    # A member waits for its occurrence and its dependency as usual (spec 7.3).
                    opened = self._groups.is_open(run.group_run_id)
                    self._runs.set_state(run, S.ACTIVE if opened else S.IDLE, now, "")
                else:
                    self._runs.set_state(run, S.ACTIVE, now, "")
                    if task is not None:
                        self._runs.trigger(run, task, now, S.ACTIVE)
                released += 1
        return released

    def _slot_runs(self, tid: int, run_date: str, trigger_time: str) -> list[Run]:
        return [
            r
            for r in self._runs.live.values()
            if r.tid == tid
            and r.run_date == run_date
            and (not trigger_time or r.local_time == trigger_time)
        ]

    def terminate(self, run: Run, by: str) -> None:
        """TERMINATE_TASK: end a run not yet on an agent, or ask its agent to kill it."""
        reason = f"terminated by {by}"
        now = self._clock.now()
        if run.state in (S.TRIGGER, S.RESTARTING):
            self._timers.cancel(("retry", run.run_id))
            self._hub.withdraw(run.run_id)
            log_run(run, "Status Updated", f"{run.state} -> TERMINATED ({reason})")
            self._runs.finish(run, S.TERMINATED, reason, now)
        elif run.state in (S.STARTED, S.RUNNING):
            assert run.agent is not None
            self._hub.kill(run.agent, run.run_id, reason)
            if self._hub.is_connected(run.agent):
                log_run(run, "Status Updated", f"terminate requested from agent {run.agent}")
            else:
                # The agent is offline: the run ends now and the kill waits for its return, so
                # an operator is never stuck with a run on a machine that is gone.
                log_run(run, "Status Updated", f"{run.state} -> TERMINATED ({reason}; agent "
                        f"{run.agent} offline, kill delivered when it reconnects)")  # fmt: skip
                self._runs.finish(run, S.TERMINATED, f"{reason} (agent offline)", now)
        else:
            raise TransitionError(f"run {run.run_id} is {run.state}; only a running run ends")

    def modify_status(self, run: Run, status: RunState, by: str) -> Run:
        """MODIFY_TASK_STATUS on the latest attempt of a slot; ACTIVE starts a new attempt."""
        check_operator_status(run.run_id, run.state, status)
        now = self._clock.now()
        reason = f"status modified by {by}"
        live = self._runs.live.get(run.run_id)
        if live is not None:
            run = live
            self._timers.cancel(("retry", run.run_id))
            self._hub.withdraw(run.run_id)
        task = self._index.get(run.tid)
        if status is S.ACTIVE:
            if task is None:
                raise TaskNotFoundError(run.tid)
            if not run.state.final:
                self._runs.force_state(run, S.TERMINATED, now, reason)
            nxt = self._runs.next_attempt(run, task, now)
            self._runs.create(nxt, S.ACTIVE, reason, now)
            if nxt.group_run_id is None or nxt.group_run_id not in self._groups.occurrences:
                self._runs.trigger(nxt, task, now, S.ACTIVE)
            # A member goes through dependency evaluation in its occurrence (GroupRunner).
            return nxt
        self._runs.force_state(run, status, now, reason)
        return run

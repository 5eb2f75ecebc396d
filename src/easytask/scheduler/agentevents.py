"""AgentEvents: what agents report (RunEvents), applied to the engine's runs."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Protocol

from easytask.core.clock import Clock
from easytask.core.models import Run
from easytask.core.protocol import (
    OutputChunk,
    ResendOutput,
    ResultAck,
    RunAccepted,
    RunFinished,
    RunOrder,
    RunStarted,
    Stream,
)
from easytask.core.records import AgentChange, AgentRecord
from easytask.core.runid import is_adhoc_run_id
from easytask.core.states import RunState
from easytask.core.timeline import floor_of, onto_timeline
from easytask.scheduler.bus import Bus, OutputAppended
from easytask.scheduler.hub import AgentSession
from easytask.scheduler.logs import log_run
from easytask.scheduler.runs import RunBook
from easytask.store.ports import Store


class AgentControl(Protocol):
    """What reconciling an agent's report asks of the hub."""

    def kill(self, agent: str, run_id: str, reason: str) -> None: ...
    def adopt(self, session: AgentSession, run_id: str) -> None: ...


log = logging.getLogger(__name__)

S = RunState


class AgentEvents:
    """The hub's RunEvents: acknowledgments, starts, output and results of runs."""

    def __init__(
        self, *, runs: RunBook, hub: AgentControl, store: Store, bus: Bus, clock: Clock
    ) -> None:
        self._runs = runs
        self._hub = hub
        self._store = store
        self._bus = bus
        self._clock = clock

    def agent_connected(self, session: AgentSession) -> None:
        """Reconcile the runs the agent reports with those assigned to it."""
        now = self._clock.now()
        self._save_agent(session, now)
        h = session.hello
        reason = f"host {h.host}, pid {h.pid}, version {h.version}"
        self._store.fleet.add_agent_change(AgentChange(session.name, "ONLINE", now, reason))
        known = {k.run_id: k for k in session.hello.known_runs}
        for run in list(self._runs.live.values()):
            lost = run.state in (S.STARTED, S.RUNNING) and run.run_id not in known
            if lost and run.agent == session.name:
                log_run(run, "Status Updated", f"{run.state} -> FAILED (lost control)")
                self._runs.finish(run, S.FAILED, "lost control", now)
        for run_id, k in known.items():
            if is_adhoc_run_id(run_id):
                continue  # the AdhocBook's
            self._resend_missing_output(session, run_id, k.stdout_size, k.stderr_size)
            held = self._runs.live.get(run_id)
            if held is None:
                if k.state in ("STARTED", "RUNNING"):
                    # Final here (an operator decided) yet still running there: stop it.
                    self._hub.kill(session.name, run_id, "run is no longer due")
                continue
            run = held
            if run.agent not in (None, session.name) and run.state in (S.STARTED, S.RUNNING):
                self._hub.kill(session.name, run_id, "run is held by another agent")
                continue
            self._hub.adopt(session, run_id)
            if run.state is S.TRIGGER:
                self._accept(run, session, now)
            if run.state is S.STARTED and k.state in ("RUNNING", "SUCCESS", "FAILED", "TERMINATED"):
                self._runs.set_state(run, S.RUNNING, now)

    def _resend_missing_output(
        self, session: AgentSession, run_id: str, stdout_size: int, stderr_size: int
    ) -> None:
        if not self._runs.tracks_output(run_id):
            return
        for stream, size in ((Stream.STDOUT, stdout_size), (Stream.STDERR, stderr_size)):
            have = self._runs.output_sizes.get((run_id, stream.key), 0)
            if size > have:
                session.send(ResendOutput(run_id, stream, have))

    def agent_disconnected(self, session: AgentSession) -> None:
        # Runs stay as they are; the agent reports them when it is back (spec 7.3).
        now = self._clock.now()
        self._save_agent(session, now)
        self._store.fleet.add_agent_change(
            AgentChange(session.name, "OFFLINE", now, session.close_reason)
        )

    def _save_agent(self, session: AgentSession, now: datetime) -> None:
        h = session.hello
        self._store.save_agent(
            AgentRecord(
                h.name,
                h.host,
                list(h.queues),
                h.version,
                h.pid,
                h.cpu_cores,
                h.memory_mb,
                session.connected_at,
                now,
            )
        )

    def run_dispatched(self, run_id: str, session: AgentSession) -> None:
        run = self._runs.live.get(run_id)
        if run is None or run.state is not S.TRIGGER:
            return  # an offer again to an agent that already acknowledged changes no step
        run.dispatched_at = self._clock.now()
        run.agent = session.name
        # Not saved on its own: the acknowledgment (STARTED) follows within milliseconds and
        # carries it; a restart in between re-dispatches the TRIGGER run anyway.
        log_run(run, "Task Dispatched", f"queue={run.queue} agent={session.name}")

    def run_accepted(self, session: AgentSession, msg: RunAccepted) -> None:
        run = self._runs.live.get(msg.run_id)
        now = self._clock.now()
        if run is None:
            # Final already (rejected, terminated by an operator) or unknown: stop it there.
            log.warning("agent %s accepted run %s which is no longer due", session.name, msg.run_id)
            session.active.discard(msg.run_id)
            self._hub.kill(session.name, msg.run_id, "run is no longer due")
            return
        if run.state is S.TRIGGER:
            self._accept(run, session, now)
        elif run.agent is not None and run.agent != session.name:
            # Offered twice (a stream dropped before the first acceptance arrived): the run
            # belongs to the agent that acknowledged first; the other copy is stopped.
            log.warning("run %s: agent %s accepted it too; it runs on %s, stopping the copy",
                        run.run_id, session.name, run.agent)  # fmt: skip
            session.active.discard(msg.run_id)
            self._hub.kill(session.name, msg.run_id, "run is held by another agent")

    def _accept(self, run: Run, session: AgentSession, now: datetime) -> None:
        run.agent = session.name
        run.host = session.hello.host
        run.acked_at = now
        self._runs.set_state(run, S.STARTED, now, "")
        log_run(run, "Agent Acknowledgment", f"agent={session.name} host={session.hello.host}")

    def run_started(self, session: AgentSession, msg: RunStarted) -> None:
        run = self._runs.live.get(msg.run_id)
        if run is None:
            return
        now = self._clock.now()
        if run.state is S.TRIGGER:
            self._accept(run, session, now)
        run.pid = msg.pid
        run.started_at, _ = onto_timeline(floor_of(run), msg.started_at, None)
        run.stdout_path = msg.stdout_path
        run.stderr_path = msg.stderr_path
        if run.state is S.STARTED:
            self._runs.set_state(run, S.RUNNING, now)
            log_run(run, "Status Updated", f"STARTED -> RUNNING pid={msg.pid}")
        else:
            self._store.save_run(run)

    def run_output(self, session: AgentSession, msg: OutputChunk) -> None:
        key = (msg.run_id, msg.stream.key)
        # Output of a run that just became final still counts: a result replayed after a
        # reconnect arrives before the output the scheduler asked to be re-sent.
        if msg.run_id not in self._runs.live and key not in self._runs.output_sizes:
            return
        have = self._runs.output_sizes.get(key, 0)
        data = new_output(session, msg, self._runs.output_sizes)
        if data is None:
            return
        self._store.append_output(msg.run_id, key[1], have, data)
        self._bus.publish(OutputAppended(msg.run_id, key[1], have, data))

    def run_undeliverable(self, session: AgentSession, order: RunOrder, reason: str) -> None:
        """The order could not be encoded: the run fails here, as a preparation error would
        on the agent (TRIGGER -> STARTED -> FAILED), and nothing reaches the agent."""
        run = self._runs.live.get(order.run_id)
        if run is None or run.state is not S.TRIGGER:
            return
        now = self._clock.now()
        self._accept(run, session, now)
        log_run(run, "Status Updated", f"STARTED -> FAILED ({reason})")
        self._runs.finish(run, S.FAILED, reason, now)

    def run_finished(self, session: AgentSession, msg: RunFinished) -> None:
        run = self._runs.live.get(msg.run_id)
        if run is None:
            # Already final (a duplicate, or an operator decided first): ack once stored.
            log.info("run %s: duplicate or late result from %s ignored", msg.run_id, session.name)
            self._store.barrier().add_done_callback(lambda f: session.send(ResultAck(msg.run_id)))
            return
        now = self._clock.now()
        if run.state is S.TRIGGER:
            self._accept(run, session, now)
        res = msg.result
        run.pid = res.pid or run.pid
        run.return_code = res.return_code
        run.started_at, run.ended_at = onto_timeline(
            floor_of(run), res.started_at or run.started_at, res.ended_at
        )
        run.stdout_path = res.stdout_path or run.stdout_path
        run.stderr_path = res.stderr_path or run.stderr_path
        run.stdout_range = res.stdout_range
        run.stderr_range = res.stderr_range
        fut = self._runs.finish(run, RunState(res.state), res.reason, now)
        fut.add_done_callback(lambda f: _ack_if_stored(f, session, msg.run_id))


def new_output(
    session: AgentSession, msg: OutputChunk, sizes: dict[tuple[str, str], int]
) -> bytes | None:
    """The part of a chunk not seen yet (``sizes``: bytes of each run's stream so far, moved
    on); None for a duplicate, or for a chunk past a gap, which asks the agent to resend."""
    key = (msg.run_id, msg.stream.key)
    have = sizes.get(key, 0)
    end = msg.offset + len(msg.data)
    if msg.offset > have:
        session.send(ResendOutput(msg.run_id, msg.stream, have))
        return None
    if end <= have:
        return None  # a duplicate after a resend
    sizes[key] = end
    return msg.data[have - msg.offset :]


def _ack_if_stored(fut: asyncio.Future[None], session: AgentSession, run_id: str) -> None:
    if fut.exception() is None:
        session.send(ResultAck(run_id))

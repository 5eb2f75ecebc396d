"""AdhocBook: ad-hoc commands (spec 10 ADHOC), one execution per selected connected agent.

Each execution is a run pinned to its agent (run id ``<instance>:adhoc-<event>-<index>``) and
speaks the same protocol as a task's run; what it reports lands in the event's per-agent
result (state, return code, last 64 KiB of each stream), committed before the result is
acknowledged to the agent. Results are written before the command is sent, so a restarted
scheduler resumes every execution not final: it sends again what no agent acknowledged and
adopts what its agent still holds.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from easytask.core.adhoc import (
    AdhocCommand,
    AdhocRequest,
    Selection,
    check_command,
    check_selection,
    keep_tail,
)
from easytask.core.clock import Clock
from easytask.core.errors import ConflictError, EasyTaskError, ValidationError
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
from easytask.core.records import AdhocResult, EventOutcome
from easytask.core.runid import from_ms, is_adhoc_run_id, make_adhoc_run_id
from easytask.scheduler.agentevents import new_output
from easytask.scheduler.bus import Bus, OutputAppended
from easytask.scheduler.hub import AgentSession
from easytask.store.ports import Store

log = logging.getLogger(__name__)

EVENT = "ADHOC"


class AdhocHub(Protocol):
    """What ad-hoc commands ask of the hub."""

    sessions: dict[str, AgentSession]

    def submit_to(self, agent: str, order: RunOrder) -> None: ...
    def adopt(self, session: AgentSession, run_id: str) -> None: ...
    def kill(self, agent: str, run_id: str, reason: str) -> None: ...


class AdhocBook:
    """The executions of ad-hoc commands not final yet, and the RunEvents of their runs."""

    def __init__(
        self, *, instance: str, hub: AdhocHub, store: Store, bus: Bus, clock: Clock
    ) -> None:
        self._instance = instance
        self._hub = hub
        self._store = store
        self._bus = bus
        self._clock = clock
        self.live: dict[str, AdhocResult] = {}
        self._commands: dict[int, AdhocCommand] = {}
        self._sizes: dict[tuple[str, str], int] = {}  # bytes of each stream seen so far

    async def load(self) -> None:
        """Resume every execution a previous start left unfinished."""
        for result in await self._store.fleet.unfinished_adhoc_results():
            command = await self._command(result.event_id)
            if command is None:
                continue
            self.live[result.run_id] = result
            if result.state == "TRIGGER":
                self._hub.submit_to(result.agent, self._order(result, command))
        if self.live:
            log.info("resumed %d ad-hoc executions", len(self.live))

    async def _command(self, event_id: int) -> AdhocCommand | None:
        if event_id not in self._commands:
            event = await self._store.get_event(event_id)
            if event is None:
                return None
            self._commands[event_id] = AdhocCommand.from_args(event.args)
        return self._commands[event_id]

    # ----- submitting -----

    async def publish(self, req: AdhocRequest, user: str) -> EventOutcome:
        """Record the ADHOC event and send the command to every selected connected agent.

        A refusal (bad field, nothing selected) is recorded too, FAILURE with its message.
        """
        created = self._clock.now()
        args: dict[str, object] = {"name": req.name, "cmd": req.cmd}
        target = "-"
        chosen: list[AgentSession] = []
        try:
            command = check_command(
                req.name, req.cmd, req.stdout, req.stderr, req.max_run_time, req.run_as_user
            )
            selection = check_selection(list(req.queues), list(req.agents), req.all)
            target = selection.target
            args = {**command.to_args(), "queues": list(selection.queues),
                    "agents": list(selection.agents), "all": selection.all}  # fmt: skip
            chosen = self._select(selection)
            names = [s.name for s in chosen]
            message = f"Adhoc command '{command.name}' submitted.\n{selection.describe(names)}"
            status = "SUCCESS"
        except EasyTaskError as exc:
            if isinstance(exc, ValidationError):
                message = "; ".join(str(e) for e in exc.errors)
            else:
                message = str(exc.args[0]) if exc.args else type(exc).__name__
            status = "FAILURE"
        event_id = await self._store.add_event(
            EVENT, target, args, status, message, req.origin or "API", user, created,
            self._clock.now(), self._instance,
        )  # fmt: skip
        if status == "SUCCESS":
            self._commands[event_id] = command
            await self._start(event_id, command, chosen)
            log.info("event ADHOC on %s by %s: %s", target, user, message.replace("\n", "; "))
        else:
            log.info("event ADHOC on %s by %s refused: %s", target, user, message)
        return EventOutcome(event_id, status, message, None, "")

    def _select(self, selection: Selection) -> list[AgentSession]:
        online = {n: s for n, s in sorted(self._hub.sessions.items()) if not s.closed}
        if selection.agents:
            missing = [a for a in selection.agents if a not in online]
            if missing:
                raise ConflictError(f"agent(s) not connected: {', '.join(missing)}")
            return [online[a] for a in selection.agents]
        if selection.queues:
            chosen = [s for s in online.values() if set(s.hello.queues) & set(selection.queues)]
            if not chosen:
                queues = ",".join(selection.queues)
                raise ConflictError(f"no connected agent serves queue(s) {queues}")
            return chosen
        if not online:
            raise ConflictError("no agent is connected")
        return list(online.values())

    async def _start(
        self, event_id: int, command: AdhocCommand, chosen: list[AgentSession]
    ) -> None:
        instance = self._instance
        results = [
            AdhocResult(event_id, i, s.name, s.hello.host, make_adhoc_run_id(instance, event_id, i))
            for i, s in enumerate(chosen)
        ]
        for r in results:
            self._store.fleet.save_adhoc_result(r)
            self.live[r.run_id] = r
        await self._store.flush()  # committed before any agent sees the command
        for r in results:
            self._hub.submit_to(r.agent, self._order(r, command))

    def _order(self, result: AdhocResult, command: AdhocCommand) -> RunOrder:
        now = self._clock.now()
        return RunOrder(
            run_id=result.run_id,
            tid=0,
            name=command.name,
            cmd=command.cmd,
            stdout=command.stdout,
            stderr=command.stderr,
            run_as_user=command.run_as_user,
            max_run_time=command.max_run_time,
            attempt=1,
            run_date=f"{now:%Y%m%d}",
            local_time=f"{now:%H:%M:%S}",
            timezone="UTC",
        )

    async def results(self, event_id: int) -> list[AdhocResult]:
        """The event's per-agent results, the live ones as they are now."""
        stored = await self._store.fleet.adhoc_results(event_id)
        return [self.live.get(r.run_id, r) for r in stored]

    # ----- what agents report -----

    def _save(self, result: AdhocResult) -> None:
        self._store.fleet.save_adhoc_result(result)  # both stores take a snapshot

    def agent_connected(self, session: AgentSession) -> None:
        known = {k.run_id: k for k in session.hello.known_runs}
        for r in list(self.live.values()):
            if r.agent != session.name:
                continue
            k = known.get(r.run_id)
            if k is None:
                if r.state in ("STARTED", "RUNNING"):
                    self._end(r, "FAILED", "lost control", None)
                continue
            self._hub.adopt(session, r.run_id)
            if r.state == "TRIGGER":
                r.state = "STARTED"
            if k.state != "STARTED" and r.state == "STARTED":
                r.state = "RUNNING"
            self._save(r)
            for stream, size in ((Stream.STDOUT, k.stdout_size), (Stream.STDERR, k.stderr_size)):
                have = self._sizes.get((r.run_id, stream.key), 0)
                if size > have:
                    session.send(ResendOutput(r.run_id, stream, have))
        for run_id, k in known.items():
            running = k.state in ("STARTED", "RUNNING")
            if running and is_adhoc_run_id(run_id) and run_id not in self.live:
                self._hub.kill(session.name, run_id, "ad-hoc command is no longer known")

    def run_accepted(self, session: AgentSession, msg: RunAccepted) -> None:
        r = self.live.get(msg.run_id)
        if r is None:
            self._hub.kill(session.name, msg.run_id, "ad-hoc command is no longer known")
            return
        if r.state == "TRIGGER":
            r.state = "STARTED"
            self._save(r)

    def run_started(self, session: AgentSession, msg: RunStarted) -> None:
        r = self.live.get(msg.run_id)
        if r is None:
            return
        r.pid = msg.pid
        r.started_at = msg.started_at or self._clock.now()
        if r.state in ("TRIGGER", "STARTED"):
            r.state = "RUNNING"
        self._save(r)

    def run_output(self, session: AgentSession, msg: OutputChunk) -> None:
        r = self.live.get(msg.run_id)
        if r is None:
            return
        have = self._sizes.get((msg.run_id, msg.stream.key), 0)
        data = new_output(session, msg, self._sizes)
        if data is None:
            return
        if msg.stream.key == "stdout":
            r.stdout, cut = keep_tail(r.stdout, data)
            r.stdout_cut = r.stdout_cut or cut
        else:
            r.stderr, cut = keep_tail(r.stderr, data)
            r.stderr_cut = r.stderr_cut or cut
        self._bus.publish(OutputAppended(msg.run_id, msg.stream.key, have, data))

    def run_finished(self, session: AgentSession, msg: RunFinished) -> None:
        r = self.live.get(msg.run_id)
        if r is None:  # a duplicate, or final already: acknowledge once stored
            self._store.barrier().add_done_callback(lambda f: session.send(ResultAck(msg.run_id)))
            return
        res = msg.result
        r.pid = res.pid or r.pid
        r.started_at = res.started_at or r.started_at
        fut = self._end(r, res.state, res.reason, res.return_code, res.ended_at_ms)
        fut.add_done_callback(
            lambda f: session.send(ResultAck(msg.run_id)) if f.exception() is None else None
        )

    def run_undeliverable(self, session: AgentSession, order: RunOrder, reason: str) -> None:
        r = self.live.get(order.run_id)
        if r is not None:
            self._end(r, "FAILED", reason, None)

    def _end(
        self,
        r: AdhocResult,
        state: str,
        reason: str,
        rc: int | None,
        ended_ms: int = 0,
    ) -> asyncio.Future[None]:
        """The execution is final: stored (the future resolves once committed), forgotten."""
        r.state, r.reason, r.return_code = state, reason, rc
        r.ended_at = from_ms(ended_ms) if ended_ms > 0 else self._clock.now()
        if r.started_at is not None and r.ended_at < r.started_at:
            r.ended_at = r.started_at
        del self.live[r.run_id]
        for key in ("stdout", "stderr"):
            self._sizes.pop((r.run_id, key), None)
        log.info("ad-hoc %s on agent %s: %s%s", r.run_id, r.agent, state,
                 f" ({reason})" if reason else "")  # fmt: skip
        return self._store.fleet.save_adhoc_result(r)

"""AgentHub: connected agent sessions, queue routing, dispatch, offers and heartbeats."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict, deque
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Protocol

from easytask.core.clock import Clock
from easytask.core.protocol import (
    AgentHeartbeat,
    AgentHello,
    AgentMessage,
    KillRun,
    OutputChunk,
    RestartAgent,
    RunAccepted,
    RunDeclined,
    RunFinished,
    RunOrder,
    RunStarted,
    SchedulerHeartbeat,
    SchedulerMessage,
)
from easytask.core.runid import is_adhoc_run_id, to_ms

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10  # defaults (spec 16); --heartbeat-seconds and --offline-after change them
OFFLINE_AFTER_SECONDS = 30


class AgentNameTaken(Exception):
    """A second live agent claims a name that is connected: it is refused, the first stays."""


class RunEvents(Protocol):
    """What the hub tells the engine. Every method is synchronous and must not block."""

    def agent_connected(self, session: AgentSession) -> None: ...
    def agent_disconnected(self, session: AgentSession) -> None: ...
    def run_dispatched(self, run_id: str, session: AgentSession) -> None: ...
    def run_accepted(self, session: AgentSession, msg: RunAccepted) -> None: ...
    def run_started(self, session: AgentSession, msg: RunStarted) -> None: ...
    def run_output(self, session: AgentSession, msg: OutputChunk) -> None: ...
    def run_finished(self, session: AgentSession, msg: RunFinished) -> None: ...
    def run_undeliverable(self, session: AgentSession, order: RunOrder, reason: str) -> None: ...


class AgentSession:
    """One connected agent stream. ``send`` never blocks; the rpc writer drains ``outbox``."""

    def __init__(
        self, hello: AgentHello, connected_at: datetime, token_name: str | None = None
    ) -> None:
        self.hello = hello
        self.token_name = token_name  # the per-agent token it connected with (None: shared)
        self.name = hello.name
        self.connected_at = connected_at
        self.heard = True  # something arrived since the last beat (the hello, at first)
        self.missed_beats = 0
        self.heartbeat = AgentHeartbeat()
        self.offered: dict[str, RunOrder] = {}  # sent, not yet accepted
        self.active: set[str] = set()  # accepted and not final
        self._outbox: deque[SchedulerMessage] = deque()
        self._ready = asyncio.Event()
        self.closed = False
        self.close_reason = "stream closed"

    @property
    def load(self) -> int:
        return len(self.offered) + len(self.active)

    @property
    def has_room(self) -> bool:
        """Whether one more run may be offered (the agent's ``--max-runs``; 0 = no cap)."""
        cap = self.hello.max_runs
        return cap <= 0 or self.load < cap

    def same_process(self, hello: AgentHello) -> bool:
        """Whether a new hello comes from this session's agent process (a reconnect)."""
        return (hello.host, hello.pid) == (self.hello.host, self.hello.pid)

    def send(self, msg: SchedulerMessage) -> None:
        if not self.closed:
            self._outbox.append(msg)
            self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def outgoing(self) -> list[SchedulerMessage] | None:
        """Wait for messages to send; None once the session is closed and drained."""
        while not self._outbox:
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        batch = list(self._outbox)
        self._outbox.clear()
        return batch


class AgentHub:
    """Routes runs to agents by queue: fewest non-final runs first, ties by agent name."""

    def __init__(
        self,
        clock: Clock,
        heartbeat_seconds: int = HEARTBEAT_SECONDS,
        offline_after_seconds: int = OFFLINE_AFTER_SECONDS,
    ) -> None:
        self._clock = clock
        self.heartbeat_seconds = heartbeat_seconds
        self.offline_after_seconds = offline_after_seconds
        # Silence is counted in whole beats: offline after this many silent beats in a row.
        self._missed_beats_offline = max(1, -(-offline_after_seconds // heartbeat_seconds))
        self._events: RunEvents | None = None
        self.sessions: dict[str, AgentSession] = {}
        self._waiting: dict[str, deque[RunOrder]] = defaultdict(deque)
        self._pending_kills: dict[str, list[KillRun]] = defaultdict(list)
        # Orders for one named agent (ad-hoc commands): never routed to another.
        self._pinned: dict[str, deque[RunOrder]] = defaultdict(deque)

    def bind(self, events: RunEvents) -> None:
        self._events = events

    @property
    def events(self) -> RunEvents:
        assert self._events is not None, "AgentHub.bind() was not called"
        return self._events

    # ----- sessions -----

    def connect(self, hello: AgentHello, token_name: str | None = None) -> AgentSession:
        """Register a new stream. The same agent process connecting again replaces its older
        stream; another process claiming a connected name is refused (AgentNameTaken)."""
        old = self.sessions.get(hello.name)
        if old is not None and not old.same_process(hello):
            log.warning(
                "agent %s from host %s (pid %d) refused: the name is connected from host %s "
                "(pid %d)", hello.name, hello.host, hello.pid, old.hello.host, old.hello.pid,
            )  # fmt: skip
            raise AgentNameTaken(
                f"agent name {hello.name!r} is already connected from host {old.hello.host} "
                f"(pid {old.hello.pid}); give this agent another --name"
            )
        if old is not None:
            log.warning("agent %s connected again; closing its previous stream", hello.name)
            self.disconnect(old, "replaced by a new stream of the same agent")
        session = AgentSession(hello, self._clock.now(), token_name)
        self.sessions[hello.name] = session
        log.info(
            "agent %s connected from %s serving queues %s (version %s, %d known runs)",
            hello.name,
            hello.host,
            ",".join(hello.queues),
            hello.version,
            len(hello.known_runs),
        )
        self.events.agent_connected(session)
        for kill in self._pending_kills.pop(hello.name, []):
            session.send(kill)
        self._drain(session)
        return session

    def disconnect(self, session: AgentSession, reason: str = "") -> None:
        """Forget a stream; runs offered to it and not accepted go to another agent."""
        if session.closed and self.sessions.get(session.name) is not session:
            return
        if reason and not session.closed:
            session.close_reason = reason
        session.close()
        if self.sessions.get(session.name) is session:
            del self.sessions[session.name]
            log.info(
                "agent %s disconnected (%d runs in progress)", session.name, len(session.active)
            )
        offered = list(session.offered.values())
        session.offered.clear()
        self.events.agent_disconnected(session)
        for order in offered:
            if is_adhoc_run_id(order.run_id):
                self._pinned[session.name].appendleft(order)
            else:
                self.submit(order)

    def is_connected(self, agent: str) -> bool:
        return agent in self.sessions

    def online(self, queue: str) -> list[AgentSession]:
        return [s for s in self.sessions.values() if queue in s.hello.queues and not s.closed]

    # ----- dispatch -----

    def submit(self, order: RunOrder, exclude: Iterable[str] = ()) -> None:
        """Offer a run to the least-loaded agent of its queue, or park it until one connects."""
        skip = set(exclude)
        candidates = [
            s for s in self.online(order.queue) if s.name not in skip and s.has_room
        ]  # fmt: skip
        if not candidates:
            self._waiting[order.queue].append(order)
            return
        session = min(candidates, key=lambda s: (s.load, s.name))
        self._offer(session, order)

    def submit_to(self, agent: str, order: RunOrder) -> None:
        """Offer a run to one named agent only (an ad-hoc run), now or when it has room or
        is back; it is never routed elsewhere."""
        session = self.sessions.get(agent)
        if session is None or session.closed or not session.has_room:
            self._pinned[agent].append(order)
            return
        self._offer(session, order)

    def _offer(self, session: AgentSession, order: RunOrder) -> None:
        session.offered[order.run_id] = order
        session.send(order)
        self.events.run_dispatched(order.run_id, session)

    def restart(self, agent: str, requested_by: str) -> bool:
        """Send an operator's restart action; False when the agent is not connected."""
        session = self.sessions.get(agent)
        if session is None or session.closed:
            return False
        log.info("restart of agent %s requested by %s", agent, requested_by)
        session.send(RestartAgent(requested_by))
        return True

    def adopt(self, session: AgentSession, run_id: str) -> None:
        """The agent already holds this run (reported in its hello): count it as accepted."""
        self.withdraw(run_id)
        session.active.add(run_id)

    def withdraw(self, run_id: str) -> str | None:
        """Stop offering a run; returns the agent it was offered to, if any."""
        for session in self.sessions.values():
            if session.offered.pop(run_id, None) is not None:
                return session.name
        for queue in (*self._waiting.values(), *self._pinned.values()):
            for order in queue:
                if order.run_id == run_id:
                    queue.remove(order)
                    return None
        return None

    def undeliverable(self, session: AgentSession, msg: SchedulerMessage, reason: str) -> None:
        """A message could not be put on the wire: a run order ends its run, anything else
        is dropped. Either way only that message is lost, never the stream."""
        if isinstance(msg, RunOrder):
            session.offered.pop(msg.run_id, None)
            log.error("run %s cannot be sent to agent %s: %s", msg.run_id, session.name, reason)
            self.events.run_undeliverable(session, msg, reason)
        else:
            log.error("%s for agent %s dropped: %s", type(msg).__name__, session.name, reason)

    def waiting_count(self) -> int:
        return sum(len(q) for q in self._waiting.values()) + sum(
            len(q) for q in self._pinned.values()
        )

    def kill(self, agent: str, run_id: str, reason: str) -> None:
        """Ask an agent to terminate a run; delivered on reconnect when the agent is offline."""
        msg = KillRun(run_id, reason)
        session = self.sessions.get(agent)
        if session is None:
            self._pending_kills[agent].append(msg)
        else:
            session.send(msg)

    def _drain(self, session: AgentSession) -> None:
        """Offer what waits for this agent (its pinned orders, then its queues') while it has
        room; called when it connects and whenever one of its runs ends."""
        pinned = self._pinned.get(session.name)
        while pinned and session.has_room and not session.closed:
            self._offer(session, pinned.popleft())
        if pinned is not None and not pinned:
            del self._pinned[session.name]
        if not self._waiting:
            return
        for queue in session.hello.queues:
            parked = self._waiting.get(queue)
            while parked and session.has_room and not session.closed:
                self.submit(parked.popleft())
            if parked is not None and not parked:
                self._waiting.pop(queue, None)

    # ----- messages from agents -----

    def handle(self, session: AgentSession, msg: AgentMessage) -> None:
        session.heard = True
        events = self.events
        if isinstance(msg, OutputChunk):
            events.run_output(session, msg)
        elif isinstance(msg, RunAccepted):
            session.offered.pop(msg.run_id, None)
            session.active.add(msg.run_id)
            events.run_accepted(session, msg)
        elif isinstance(msg, RunStarted):
            events.run_started(session, msg)
        elif isinstance(msg, RunFinished):
            session.offered.pop(msg.run_id, None)
            session.active.discard(msg.run_id)
            events.run_finished(session, msg)
            self._drain(session)
        elif isinstance(msg, RunDeclined):
            order = session.offered.pop(msg.run_id, None)
            log.warning("agent %s declined run %s: %s", session.name, msg.run_id, msg.reason)
            if order is not None and is_adhoc_run_id(order.run_id):
                self._pinned[session.name].append(order)
            elif order is not None:
                self.submit(order, exclude=[session.name])
        elif isinstance(msg, AgentHeartbeat):
            session.heartbeat = msg

    def finished_elsewhere(self, run_id: str) -> None:
        """A run became final without its agent (operator, expiry): stop counting it."""
        for session in list(self.sessions.values()):
            if run_id in session.active:
                session.active.discard(run_id)
                self._drain(session)

    # ----- liveness -----

    async def watch_heartbeats(self) -> None:
        """Every ``heartbeat_seconds`` of the injected clock, one beat (``beat``)."""
        while True:
            due = self._clock.now() + timedelta(seconds=self.heartbeat_seconds)
            await self._clock.sleep_until(due)
            self.beat()

    def beat(self) -> None:
        """Send each agent a heartbeat; one silent for ``offline_after_seconds`` (in beats) is
        marked offline (its session closed).

        Silence is counted in beats, not in elapsed time: a clock that jumps (a suspended
        machine, a fake clock) never drops an agent that had no chance to speak.
        """
        for session in list(self.sessions.values()):
            session.missed_beats = 0 if session.heard else session.missed_beats + 1
            session.heard = False
            if session.missed_beats >= self._missed_beats_offline:
                log.warning("agent %s missed heartbeats; marking it offline", session.name)
                self.disconnect(session, f"no heartbeat for {self.offline_after_seconds} s")
            else:
                session.send(SchedulerHeartbeat(to_ms(self._clock.now())))

"""RunRouter: the hub's RunEvents, each run's report sent to the book that owns the run."""

from __future__ import annotations

from easytask.core.protocol import (
    OutputChunk,
    RunAccepted,
    RunFinished,
    RunOrder,
    RunStarted,
)
from easytask.core.runid import is_adhoc_run_id
from easytask.scheduler.adhoc import AdhocBook
from easytask.scheduler.agentevents import AgentEvents
from easytask.scheduler.hub import AgentSession


class RunRouter:
    """Task runs go to AgentEvents, ad-hoc executions to the AdhocBook; connects to both."""

    def __init__(self, tasks: AgentEvents, adhoc: AdhocBook) -> None:
        self._tasks = tasks
        self._adhoc = adhoc

    def agent_connected(self, session: AgentSession) -> None:
        self._tasks.agent_connected(session)
        self._adhoc.agent_connected(session)

    def agent_disconnected(self, session: AgentSession) -> None:
        self._tasks.agent_disconnected(session)

    def run_dispatched(self, run_id: str, session: AgentSession) -> None:
        if not is_adhoc_run_id(run_id):
            self._tasks.run_dispatched(run_id, session)

    def run_accepted(self, session: AgentSession, msg: RunAccepted) -> None:
        book = self._adhoc if is_adhoc_run_id(msg.run_id) else self._tasks
        book.run_accepted(session, msg)

    def run_started(self, session: AgentSession, msg: RunStarted) -> None:
        book = self._adhoc if is_adhoc_run_id(msg.run_id) else self._tasks
        book.run_started(session, msg)

    def run_output(self, session: AgentSession, msg: OutputChunk) -> None:
        book = self._adhoc if is_adhoc_run_id(msg.run_id) else self._tasks
        book.run_output(session, msg)

    def run_finished(self, session: AgentSession, msg: RunFinished) -> None:
        book = self._adhoc if is_adhoc_run_id(msg.run_id) else self._tasks
        book.run_finished(session, msg)

    def run_undeliverable(self, session: AgentSession, order: RunOrder, reason: str) -> None:
        book = self._adhoc if is_adhoc_run_id(order.run_id) else self._tasks
        book.run_undeliverable(session, order, reason)

"""SchedulerLifecycle: records this process's start (and a crash before it) and its clean stop."""

from __future__ import annotations

import logging
import os
import socket

from easytask.core.clock import Clock
from easytask.core.lifecycle import LifecycleAction, LifecycleNote, on_start
from easytask.store.ports import LifecycleStorePort

log = logging.getLogger(__name__)


class SchedulerLifecycle:
    """The clean-stop mark is the STOPPED entry: a start that finds none after the previous
    start records that run CRASHED first."""

    def __init__(
        self, store: LifecycleStorePort, clock: Clock, host: str = "", pid: int = 0
    ) -> None:
        self._store = store
        self._clock = clock
        self.host = host or socket.gethostname()
        self.pid = pid or os.getpid()

    async def started(self) -> list[LifecycleNote]:
        notes = on_start(await self._store.latest(), self.host, self.pid)
        for note in notes:
            await self._store.add(note, self._clock.now())
            level = logging.WARNING if note.action is LifecycleAction.CRASHED else logging.INFO
            log.log(level, "scheduler %s on %s (pid %d): %s", note.action.value, note.host,
                    note.pid, note.message)  # fmt: skip
        return notes

    async def stopped(self) -> None:
        note = LifecycleNote(LifecycleAction.STOPPED, self.host, self.pid, "clean stop")
        await self._store.add(note, self._clock.now())

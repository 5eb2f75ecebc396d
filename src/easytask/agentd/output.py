"""Output of a run: tailing its stdout/stderr files into OutputChunks, and re-sending ranges.

Offsets in OutputChunk count bytes of the run's stream from the start of its range, i.e. from
the file size recorded when the command was spawned.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Protocol

from easytask.core.protocol import AgentMessage, OutputChunk, Stream

log = logging.getLogger(__name__)

CHUNK = 64 * 1024


class OutputSink(Protocol):
    """Where output chunks go (the session's outbox)."""

    def wants_output(self) -> bool:
        """False while disconnected: output is then skipped, the scheduler asks to resend."""
        ...

    async def put(self, msg: AgentMessage) -> None: ...


@dataclass(slots=True)
class Tail:
    """One output file of a running command."""

    stream: Stream
    path: str
    start: int
    sent: int = 0  # bytes from ``start`` already handed to the sink (or skipped)
    wfd: int = -1  # the command's fd (kept to fstat the size); -1 for adopted processes
    rfd: int = -1

    def size(self) -> int:
        try:
            return os.fstat(self.wfd).st_size if self.wfd >= 0 else os.stat(self.path).st_size
        except OSError:
            return self.start + self.sent

    def grew(self) -> bool:
        return self.size() > self.start + self.sent

    def close(self) -> None:
        for fd in (self.wfd, self.rfd):
            if fd >= 0:
                os.close(fd)
        self.wfd = self.rfd = -1

    async def pump(self, run_id: str, sink: OutputSink, budget: int | None) -> None:
        """Send what was written since the last call (at most ``budget`` bytes, None: all)."""
        avail = self.size() - self.start - self.sent
        if avail <= 0:
            return
        if not sink.wants_output():
            self.sent += avail
            return
        if self.rfd < 0:
            try:
                self.rfd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                log.warning("run=%s cannot read %s: %s", run_id, self.path, exc)
                self.sent += avail
                return
        left = avail if budget is None else min(avail, budget)
        while left > 0:
            data = os.pread(self.rfd, min(CHUNK, left), self.start + self.sent)
            if not data:
                break
            offset = self.sent
            self.sent += len(data)
            left -= len(data)
            await sink.put(OutputChunk(run_id, self.stream, offset, data))


async def resend(
    run_id: str, stream: Stream, path: str, start: int, end: int | None, offset: int,
    sink: OutputSink,
) -> None:  # fmt: skip
    """Re-send ``[start + offset, end)`` of a run's stream file (``end`` None: to EOF)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        log.warning("run=%s cannot resend %s: %s", run_id, path, exc)
        return
    try:
        limit = os.fstat(fd).st_size if end is None else end
        pos = start + max(0, offset)
        while pos < limit and sink.wants_output():
            data = os.pread(fd, min(CHUNK, limit - pos), pos)
            if not data:
                break
            await sink.put(OutputChunk(run_id, stream, pos - start, data))
            pos += len(data)
    finally:
        os.close(fd)

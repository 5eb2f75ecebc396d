"""Agent log lines (spec 11): ``<ts> <LEVEL> agent run=<id> tid=<tid> task=<name> <Step>: ...``.

Records go to stderr and to ``<home>/logs/agent-<name>.log``; timestamps are ISO UTC with
milliseconds and ``Z``.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import time
from pathlib import Path
from typing import TextIO

from easytask.core.protocol import RunOrder

# Steps of a run as the agent logs them (spec 11).
TASK_RECEIVED = "Task Received"
COMMAND_PREPARED = "Command Prepared"
EXECUTION_START = "Execution Start"
EXECUTION_END = "Execution End"
RETURN_CODE = "Return Code"


class UtcFormatter(logging.Formatter):
    """``%(asctime)s`` as ``2025-05-09T12:30:00.055Z``."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{base}.{int(record.msecs):03d}Z"


class LoopFlushingHandler(logging.StreamHandler[TextIO]):
    """A stream handler that flushes once per event-loop iteration instead of once per record.

    A busy agent logs five lines per run; one write per burst instead of one per line is
    measurably cheaper. Outside a running loop (start-up, shutdown, other threads) it flushes
    at once.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._flush_pending = False

    def flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            super().flush()
            return
        if not self._flush_pending:
            self._flush_pending = True
            loop.call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self._flush_pending = False
        super().flush()

    def close(self) -> None:
        try:
            super().flush()
        finally:
            super().close()


def setup_logging(home: Path, name: str, level: str) -> Path:
    """Send every ``easytask`` record to stderr and the agent's log file; return the file path."""
    log_dir = home / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"agent-{name}.log"
    formatter = UtcFormatter("%(asctime)s %(levelname)s agent %(message)s")
    root = logging.getLogger("easytask")
    root.setLevel(level.upper())
    root.propagate = False
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    # Our own buffered views: non-interactive sys.stderr is line-buffered (a write per line).
    raw = open(sys.stderr.fileno(), "wb", closefd=False)  # noqa: SIM115 (handler owns it)
    err = io.TextIOWrapper(raw, encoding="utf-8", errors="replace")
    handlers: list[logging.Handler] = [
        LoopFlushingHandler(err),
        LoopFlushingHandler(open(path, "a", encoding="utf-8")),  # noqa: SIM115 (handler owns it)
    ]
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    return path


def log_step(
    logger: logging.Logger, spec: RunOrder, step: str, details: str, level: int = logging.INFO
) -> None:
    """One run step line: ``run=<id> tid=<tid> task=<name> <Step>: <details>``."""
    if logger.isEnabledFor(level):
        logger.log(
            level, "run=%s tid=%s task=%s %s: %s", spec.run_id, spec.tid, spec.name, step, details
        )

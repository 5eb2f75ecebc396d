"""Agent log lines (spec 11): ``<ts> <LEVEL> agent run=<id> tid=<tid> task=<name> <Step>: ...``.

Records go to stderr and to ``<home>/logs/agent-<name>.log``; timestamps are ISO UTC with
milliseconds and ``Z``.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from easytask.agentd.messages import TaskSpec

# Steps of a run as the agent logs them (spec 11).
TASK_RECEIVED = "Task Received"
COMMAND_PREPARED = "Command Prepared"
EXECUTION_START = "Execution Start"
EXECUTION_END = "Execution End"
RETURN_CODE = "Return Code"


class UtcFormatter(logging.Formatter):
    """``%(asctime)s`` as ``2025-05-09T12:30:00.055Z``."""

    converter = time.gmtime

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        base = time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(record.created))
        return f"{base}.{int(record.msecs):03d}Z"


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
    handlers: list[logging.Handler] = [
        logging.StreamHandler(sys.stderr),
        logging.FileHandler(path, encoding="utf-8"),
    ]
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    return path


def log_step(
    logger: logging.Logger, spec: TaskSpec, step: str, details: str, level: int = logging.INFO
) -> None:
    """One run step line: ``run=<id> tid=<tid> task=<name> <Step>: <details>``."""
    if logger.isEnabledFor(level):
        logger.log(level, "run=%s tid=%s task=%s %s: %s", spec.run_id, spec.tid, spec.name, step, details)

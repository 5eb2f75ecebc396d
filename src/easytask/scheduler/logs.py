"""Log set-up and the spec's run log line (``<ts> <LEVEL> <component> run=… <Step>: …``)."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from easytask.core.models import Run

RUN_LOG = logging.getLogger("easytask.runs")


class UtcFormatter(logging.Formatter):
    """Timestamps as ISO 8601 UTC with milliseconds and Z."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{base}.{int(record.msecs):03d}Z"


def setup_logging(component: str, log_file: Path | None, level: str = "INFO") -> None:
    """Log to stderr and, when given, to ``log_file``; every line names the component."""
    fmt = UtcFormatter(f"%(asctime)s %(levelname)s {component} %(message)s")
    root = logging.getLogger()
    root.handlers.clear()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(fmt)
        root.addHandler(handler)
    root.setLevel(level.upper())
    # grpc and aiosqlite chatter is not ours.
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)


def log_run(run: Run, step: str, details: str, level: int = logging.INFO) -> None:
    """One spec log line (section 11) for ``run``."""
    if RUN_LOG.isEnabledFor(level):
        RUN_LOG.log(
            level, "run=%s tid=%d task=%s %s: %s", run.run_id, run.tid, run.name, step, details
        )

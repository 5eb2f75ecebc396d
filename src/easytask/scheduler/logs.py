"""Log set-up and the spec's run log line (``<ts> <LEVEL> <component> run=… <Step>: …``)."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from easytask.core.models import Run, TaskDef

RUN_LOG = logging.getLogger("easytask.runs")
OURS = logging.getLogger("easytask")


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
    # DEBUG is for our loggers only: grpc's and asyncio's internals stay at INFO (spec 10).
    wanted = logging.getLevelNamesMapping()[level.upper()]
    root.setLevel(max(wanted, logging.INFO))
    OURS.setLevel(wanted)
    # grpc and aiosqlite chatter is not ours.
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)


def set_debug(on: bool) -> None:
    """ENABLE_DEBUG / DISABLE_DEBUG: our loggers at DEBUG, or back to INFO; others untouched."""
    OURS.setLevel(logging.DEBUG if on else logging.INFO)


def log_run(run: Run, step: str, details: str, level: int = logging.INFO) -> None:
    """One spec log line (section 11) for ``run``."""
    if RUN_LOG.isEnabledFor(level):
        RUN_LOG.log(
            level, "run=%s tid=%d task=%s %s: %s", run.run_id, run.tid, run.name, step, details
        )


def log_triggered(run: Run, note: str = "") -> None:
    """``Task Triggered`` (spec 11): run_date, local time, zone, scheduled UTC, attempt, forced."""
    utc = run.scheduled_utc
    fmt = "%H:%M" if utc.second == 0 and utc.microsecond == 0 else "%H:%M:%S"
    forced = "forced=true" if run.forced else "forced=false"
    if run.forced_by:
        forced += f" by={run.forced_by}"
    details = (
        f"run_date={run.run_date} local={run.local_time} {run.timezone} "
        f"utc={utc.strftime(fmt)} attempt={run.attempt} {forced}"
    )
    log_run(run, "Task Triggered", f"{details} ({note})" if note else details)


def validation(
    task: TaskDef,
    outcome: str,
    *,
    forced: bool = False,
    freeze: str | None = None,
    calendar: str | None = None,
    dependency: str | None = None,
) -> str:
    """``Task Validated`` details (spec 11): each check with its outcome, the queue, the result.

    A check not given was passed by a run that got this far: no freeze, no holiday in the
    task's calendar, no expression (or one not evaluated again, for a retry); a forced run
    ignored it.
    """
    if forced:
        ignored = "ignored (forced)"
        freeze, calendar, dependency = freeze or ignored, calendar or ignored, dependency or ignored
    freeze = freeze or "none"
    if calendar is None:
        calendar = f"{task.calendar} no holiday" if task.calendar else "none"
    if dependency is None:
        dependency = f'"{task.dependency}" not re-evaluated' if task.dependency else "none"
    active = "yes" if task.active else ("no (forced)" if forced else "no")
    return (
        f"active={active} freeze={freeze} calendar={calendar} dependency={dependency} "
        f"queue={task.run_on_host} -> {outcome}"
    )

"""Rebuilding the agent's runs from its journal after a restart.

* finished, not acknowledged: kept as a spooled result (re-sent after connecting).
* started, no result: if the pid is alive and is the same process (start time from
  /proc/<pid>/stat), it is adopted: watched through a pidfd, its ``max_run_time`` re-armed from
  the recorded start, its output streamed again from the recorded range starts. Otherwise it
  ended while the agent was away and its rc file says how: ``rc n`` -> exit code n, ``sig n`` ->
  killed by signal n; no rc file -> FAILED ``lost control``.
* accepted, never started: started now, unless the previous agent did spawn it but died before
  journaling that: a live process-group leader whose environment has its EASYTASK_RUN_ID is
  adopted (one scan of /proc), an rc file gives the result of one that already ended.
"""

from __future__ import annotations

import logging
import os

from easytask.agentd.journal import JournalEntry
from easytask.agentd.placeholders import CommandPreparer
from easytask.agentd.runner import ProcessRunner
from easytask.agentd.runs import Phase, RunEntry
from easytask.agentd.startinfo import StartInfo
from easytask.agentd.sysinfo import find_group_leaders, now_ms, proc_start_ticks
from easytask.core.clock import Clock
from easytask.core.errors import PrepareError
from easytask.core.protocol import RunOrder, RunResult

log = logging.getLogger(__name__)


def restore_runs(
    entries: list[JournalEntry], runner: ProcessRunner, preparer: CommandPreparer, clock: Clock
) -> list[RunEntry]:
    """RunEntries for every unacknowledged journaled run; adopts commands still running."""
    out: list[RunEntry] = []
    unstarted: list[RunEntry] = []
    for je in entries:
        if je.accepted is None:
            log.warning("run=%s journal has no accepted record; dropped", je.run_id)
            continue
        spec = RunOrder.from_dict(je.accepted["task"])
        entry = RunEntry(spec, Phase.ACCEPTED, accepted_at_ms=int(je.accepted.get("at", 0)))
        if je.started is not None:
            entry.start = StartInfo.from_dict(je.started["start"])
        if je.finished is not None:
            entry.result = RunResult.from_dict(je.finished["result"])
            entry.phase = Phase.FINISHED
            runner.rc.forget(spec.run_id)
        elif entry.start is not None:
            _restore_started(entry, entry.start, runner)
        else:
            unstarted.append(entry)
        out.append(entry)
    if unstarted:
        leaders = find_group_leaders({f"EASYTASK_RUN_ID={e.run_id}": e.run_id for e in unstarted})
        for entry in unstarted:
            _restore_accepted(entry, leaders.get(entry.run_id), runner, preparer, clock)
    return out


def _restore_started(entry: RunEntry, info: StartInfo, runner: ProcessRunner) -> None:
    entry.phase = Phase.RUNNING
    proc = runner.adopt(entry.run_id, info, entry.spec.max_run_time)
    if proc is not None:
        entry.proc = proc
        log.info("run=%s recovered: pid %d still running", entry.run_id, info.pid)
        return
    entry.recovered = _result_from_rc(entry.run_id, info, runner)
    log.info(
        "run=%s recovered: ended while the agent was away (%s)",
        entry.run_id,
        entry.recovered.reason,
    )


def _restore_accepted(
    entry: RunEntry,
    leader: int | None,
    runner: ProcessRunner,
    preparer: CommandPreparer,
    clock: Clock,
) -> None:
    status = runner.rc.read(entry.run_id)
    if leader is None and status is None:
        runner.rc.forget(entry.run_id)
        log.info("run=%s recovered: accepted but not started; starting it now", entry.run_id)
        return  # stays ACCEPTED: RunManager.serve() executes it
    # The previous agent spawned it but died before journaling "started".
    try:
        prep = preparer.prepare(entry.spec)
        stdout, stderr = prep.stdout_path, prep.stderr_path
    except PrepareError:
        stdout = stderr = ""
    pid = leader or 0
    info = StartInfo(
        pid=pid,
        start_ticks=(proc_start_ticks(pid) or 0) if pid else 0,
        started_at_ms=now_ms(),  # unknown: the output ranges start here, too
        started_mono=clock.monotonic(),
        stdout_path=stdout,
        stderr_path=stderr,
        stdout_start=_size(stdout),
        stderr_start=_size(stderr),
        same_file=stdout == stderr,
    )
    entry.start = info
    _restore_started(entry, info, runner)


def _result_from_rc(run_id: str, info: StartInfo, runner: ProcessRunner) -> RunResult:
    state, reason, code = runner.rc.result(run_id)
    out_end = max(info.stdout_start, _size(info.stdout_path))
    err_end = out_end if info.same_file else max(info.stderr_start, _size(info.stderr_path))
    return RunResult(
        state=state,
        reason=reason,
        return_code=code,
        pid=info.pid,
        started_at_ms=info.started_at_ms,
        ended_at_ms=now_ms(),
        stdout_path=info.stdout_path,
        stderr_path=info.stderr_path,
        stdout_start=info.stdout_start,
        stdout_end=out_end,
        stderr_start=info.stderr_start,
        stderr_end=err_end,
    )


def _size(path: str) -> int:
    if not path:
        return 0
    try:
        return os.stat(path).st_size
    except OSError:
        return 0

"""The life of each run on the agent, idempotent by run id.

RunTask (new) -> journal ``accepted`` (durable) -> RunAccepted -> prepare -> wait for a slot ->
spawn -> journal ``started`` -> RunStarted -> output -> journal ``finished`` (durable) ->
RunFinished -> (ResultAck) journal ``acked`` and forget. A RunTask for a known run id only
re-sends what the run already reported; a command is never started twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from enum import Enum
from typing import Any

from easytask.agentd import logs
from easytask.agentd.journal import Journal
from easytask.agentd.logs import log_step
from easytask.agentd.outbox import Outbox
from easytask.agentd.output import resend
from easytask.agentd.placeholders import CommandPreparer, Prepared
from easytask.agentd.runner import Proc, ProcessRunner
from easytask.agentd.slots import Slots
from easytask.agentd.startinfo import StartInfo
from easytask.agentd.sysinfo import now_ms
from easytask.core.errors import JournalClosedError, PrepareError, SpawnError
from easytask.core.protocol import (
    AgentMessage,
    KnownRun,
    RunAccepted,
    RunDeclined,
    RunFinished,
    RunOrder,
    RunResult,
    RunStarted,
    Stream,
)
from easytask.core.runid import from_ms, iso_utc

log = logging.getLogger(__name__)


class Phase(Enum):
    RECEIVED = "received"  # accepted record not yet durable
    ACCEPTED = "accepted"  # journaled, process not started (preparing or queued for a slot)
    RUNNING = "running"
    FINISHED = "finished"  # result journaled, waiting for ResultAck


@dataclass(slots=True, eq=False)
class RunEntry:
    spec: RunOrder
    phase: Phase
    accepted_at_ms: int = 0
    start: StartInfo | None = None
    proc: Proc | None = None
    result: RunResult | None = None
    kill_reason: str | None = None
    ticket: asyncio.Future[bool] | None = None
    recovered: RunResult | None = None  # ended while the agent was away; journaled by serve()

    @property
    def run_id(self) -> str:
        return self.spec.run_id


class RunManager:
    """Owns every run the agent holds and the tasks that drive them (one per run id)."""

    def __init__(
        self,
        *,
        journal: Journal,
        runner: ProcessRunner,
        preparer: CommandPreparer,
        outbox: Outbox,
        max_parallel: int,
    ) -> None:
        self._journal = journal
        self._runner = runner
        self._preparer = preparer
        self._outbox = outbox
        self._slots = Slots(max_parallel)
        self._runs: dict[str, RunEntry] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._resends: dict[tuple[str, Stream], asyncio.Task[None]] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._stopping = False

    # ---------- lifetime ----------

    async def serve(self, restore: list[RunEntry]) -> None:
        """Run until cancelled; ``restore`` are runs rebuilt from the journal (see recovery)."""
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            for entry in restore:
                self._runs[entry.run_id] = entry
            for entry in restore:
                if entry.phase is Phase.RUNNING and entry.proc is not None:
                    self._spawn(entry.run_id, self._watch(entry))
                elif entry.phase is Phase.RUNNING and entry.recovered is not None:
                    self._spawn(entry.run_id, self._finish(entry, entry.recovered))
                elif entry.phase is Phase.ACCEPTED:
                    self._spawn(entry.run_id, self._execute(entry))
            await asyncio.Future()  # until cancelled; the TaskGroup then cancels the runs

    def stop_accepting(self) -> None:
        """New RunTasks are declined from now on; running commands are left alone."""
        self._stopping = True

    @property
    def running(self) -> int:
        return self._runner.running

    def _spawn(self, run_id: str, coro: Coroutine[Any, Any, None]) -> None:
        assert self._tg is not None, "serve() is not running"
        task = self._tg.create_task(self._guard(run_id, coro), name=f"run {run_id}")
        self._tasks[run_id] = task
        task.add_done_callback(
            lambda t: self._tasks.pop(run_id, None) if self._tasks.get(run_id) is t else None
        )

    async def _guard(self, run_id: str, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one broken run must not take the agent down
            log.exception("run=%s failed inside the agent", run_id)
            await self._fail_stranded(run_id, exc)

    async def _fail_stranded(self, run_id: str, exc: Exception) -> None:
        """A run whose driver broke before it had a process ends FAILED, reported as a result.

        A run with a process is left to it (its result comes from the process or, after a
        restart, from recovery); a finished run has reported already.
        """
        entry = self._runs.get(run_id)
        if entry is None or entry.phase is not Phase.ACCEPTED or entry.proc is not None:
            return
        try:
            await self._finish(entry, _unstarted("FAILED", f"agent error: {exc}"))
        except Exception:
            log.exception("run=%s cannot be reported failed", run_id)

    # ---------- scheduler -> agent ----------

    async def on_run_task(self, spec: RunOrder) -> None:
        entry = self._runs.get(spec.run_id)
        if entry is not None:
            await self._resend_state(entry)
            return
        if self._stopping:
            await self._outbox.put(RunDeclined(spec.run_id, "agent is shutting down"))
            return
        entry = self._runs[spec.run_id] = RunEntry(spec, Phase.RECEIVED)
        self._spawn(spec.run_id, self._accept(entry))

    def on_ack(self, run_id: str) -> None:
        entry = self._runs.get(run_id)
        if entry is None:
            log.debug("run=%s ResultAck for a run the agent no longer holds", run_id)
            return
        if entry.phase is not Phase.FINISHED:
            log.warning("run=%s ResultAck before the run finished; ignored", run_id)
            return
        del self._runs[run_id]
        try:
            fut = self._journal.submit({"t": "acked", "run_id": run_id})
        except JournalClosedError:
            return
        fut.add_done_callback(_log_ack_failure(run_id))

    def on_kill(self, run_id: str, reason: str) -> None:
        entry = self._runs.get(run_id)
        reason = reason or "terminated"
        if entry is None:
            log.warning("run=%s KillRun for a run the agent does not hold; ignored", run_id)
        elif entry.phase is Phase.FINISHED:
            log.info("run=%s KillRun after the run finished; ignored", run_id)
        elif entry.proc is not None:
            self._runner.terminate(entry.proc, reason)
        elif entry.kill_reason is None:
            log.info("run=%s KillRun before the process started: %s", run_id, reason)
            entry.kill_reason = reason
            Slots.abandon(entry.ticket)

    def on_resend(self, run_id: str, stream: Stream, offset: int) -> None:
        entry = self._runs.get(run_id)
        if entry is None or entry.start is None:
            log.warning("run=%s ResendOutput for a run without output; ignored", run_id)
            return
        info, end = entry.start, None
        if entry.result is not None:
            end = entry.result.stdout_end if stream is Stream.STDOUT else entry.result.stderr_end
        path, start = (
            (info.stdout_path, info.stdout_start)
            if stream is Stream.STDOUT
            else (info.stderr_path, info.stderr_start)
        )
        key = (run_id, stream)
        previous = self._resends.pop(key, None)
        if previous is not None:
            previous.cancel()
        coro = resend(run_id, stream, path, start, end, offset, self._outbox)
        assert self._tg is not None
        task = self._tg.create_task(self._guard(run_id, coro))
        self._resends[key] = task
        task.add_done_callback(
            lambda t: self._resends.pop(key, None) if self._resends.get(key) is t else None
        )

    # ---------- reconnect ----------

    def snapshot(self) -> tuple[list[KnownRun], list[AgentMessage]]:
        """Hello's known runs, and what to re-send right after it (RunStarted, RunFinished)."""
        known: list[KnownRun] = []
        replay: list[AgentMessage] = []
        for entry in self._runs.values():
            if entry.phase is Phase.RECEIVED:
                continue
            if entry.result is not None and entry.phase is Phase.FINISHED:
                res = entry.result
                same = entry.start is not None and entry.start.same_file
                # One file for both streams is streamed once, as stdout: nothing on stderr.
                err = 0 if same else res.stderr_end - res.stderr_start
                sizes = (res.stdout_end - res.stdout_start, err)
                known.append(KnownRun(entry.run_id, res.state, *sizes))
                replay.append(RunFinished(entry.run_id, res))
            elif entry.start is not None:
                known.append(KnownRun(entry.run_id, "RUNNING", *_sizes(entry.start)))
                replay.append(_started(entry.run_id, entry.start))
            else:
                known.append(KnownRun(entry.run_id, "STARTED", 0, 0))
        return known, replay

    async def _resend_state(self, entry: RunEntry) -> None:
        if entry.phase is Phase.RECEIVED:
            return  # RunAccepted follows as soon as the accepted record is durable
        await self._outbox.put(RunAccepted(entry.run_id, entry.accepted_at_ms))
        if entry.start is not None:
            await self._outbox.put(_started(entry.run_id, entry.start))
        if entry.result is not None and entry.phase is Phase.FINISHED:
            await self._outbox.put(RunFinished(entry.run_id, entry.result))

    # ---------- the run itself ----------

    async def _accept(self, entry: RunEntry) -> None:
        spec = entry.spec
        at = now_ms()
        try:
            await self._journal.append(
                {"t": "accepted", "run_id": spec.run_id, "at": at, "task": spec.to_dict()}
            )
        except (OSError, JournalClosedError) as exc:
            log.error("run=%s cannot journal the run (%s): declining it", spec.run_id, exc)
            self._runs.pop(spec.run_id, None)
            await self._outbox.put(RunDeclined(spec.run_id, f"agent cannot journal the run: {exc}"))
            return
        entry.accepted_at_ms = at
        entry.phase = Phase.ACCEPTED
        await self._outbox.put(RunAccepted(spec.run_id, at))
        log_step(log, spec, logs.TASK_RECEIVED, f"queue={spec.queue} attempt={spec.attempt}")
        await self._execute(entry)

    async def _execute(self, entry: RunEntry) -> None:
        spec = entry.spec
        if entry.kill_reason is not None:
            await self._finish(entry, _unstarted("TERMINATED", entry.kill_reason))
            return
        unfit = _embedded_nul(spec)
        if unfit is not None:
            await self._finish(
                entry, _unstarted("FAILED", f"cannot start: embedded NUL in {unfit}")
            )
            return
        try:
            prep = self._preparer.prepare(spec)
        except PrepareError as exc:
            await self._finish(entry, _unstarted("FAILED", exc.reason))
            return
        except Exception as exc:  # whatever the run's own data breaks ends that run only
            log.exception("run=%s cannot be prepared", spec.run_id)
            await self._finish(entry, _unstarted("FAILED", f"cannot start: {exc}"))
            return
        details = (
            f"profile={prep.profile_path or '-'} stdout={prep.stdout_path} "
            f"stderr={prep.stderr_path}"
        )
        log_step(log, spec, logs.COMMAND_PREPARED, details)
        if not self._slots.try_acquire():
            entry.ticket = self._slots.enqueue()
            try:
                granted = await self._slots.wait(entry.ticket)
            finally:
                entry.ticket = None
            if not granted:
                await self._finish(
                    entry, _unstarted("TERMINATED", entry.kill_reason or "terminated")
                )
                return
        try:
            if entry.kill_reason is not None:
                result = _unstarted("TERMINATED", entry.kill_reason)
            else:
                result = await self._run_process(entry, prep)
        finally:
            self._slots.release()
        await self._finish(entry, result)

    async def _run_process(self, entry: RunEntry, prep: Prepared) -> RunResult:
        spec = entry.spec
        try:
            proc = self._runner.spawn(spec.run_id, prep, spec.max_run_time)
        except SpawnError as exc:
            return _unstarted("FAILED", exc.reason)
        except Exception as exc:
            log.exception("run=%s cannot be spawned", spec.run_id)
            return _unstarted("FAILED", f"cannot start: {exc}")
        entry.proc, entry.start, entry.phase = proc, proc.info, Phase.RUNNING
        try:
            await self._journal.append(
                {"t": "started", "run_id": spec.run_id, "start": proc.info.to_dict()}
            )
        except (OSError, JournalClosedError) as exc:
            log.error(
                "run=%s started but not journaled (%s): an agent restart would lose it",
                spec.run_id,
                exc,
            )
        await self._outbox.put(_started(spec.run_id, proc.info))
        details = f"started_at={iso_utc(from_ms(proc.info.started_at_ms))} pid={proc.pid}"
        log_step(log, spec, logs.EXECUTION_START, details)
        return await self._runner.wait(proc, self._outbox)

    async def _watch(self, entry: RunEntry) -> None:
        """A command adopted after an agent restart."""
        assert entry.proc is not None
        result = await self._runner.wait(entry.proc, self._outbox)
        await self._finish(entry, result)

    async def _finish(self, entry: RunEntry, result: RunResult) -> None:
        spec = entry.spec
        entry.proc = None
        record = {"t": "finished", "run_id": spec.run_id, "result": result.to_dict()}
        try:
            await asyncio.shield(self._journal.append(record))
        except (OSError, JournalClosedError) as exc:
            log.error(
                "run=%s result not journaled (%s): it is lost if the agent restarts",
                spec.run_id,
                exc,
            )
        else:
            self._runner.rc.forget_later(spec.run_id)
        if result.started_at_ms:
            duration = max(0, result.ended_at_ms - result.started_at_ms) / 1000
            details = f"ended_at={iso_utc(from_ms(result.ended_at_ms))} duration={duration:.3f}s"
            log_step(log, spec, logs.EXECUTION_END, details)
        level = logging.INFO if result.state == "SUCCESS" else logging.WARNING
        rc = "-" if result.return_code is None else result.return_code
        details = f"return_code={rc} state={result.state} reason={result.reason}"
        log_step(log, spec, logs.RETURN_CODE, details, level)
        # Only now is the result reported anywhere (snapshot, duplicate RunTask, this message).
        entry.result, entry.phase = result, Phase.FINISHED
        await self._outbox.put(RunFinished(spec.run_id, result))


_COMMAND_FIELDS = ("cmd", "stdout", "stderr", "run_as_user", "profile")


def _embedded_nul(spec: RunOrder) -> str | None:
    """The first field a process cannot be started with (the OS takes no NUL in them)."""
    return next((f for f in _COMMAND_FIELDS if "\x00" in getattr(spec, f)), None)


def _unstarted(state: str, reason: str) -> RunResult:
    return RunResult(state=state, reason=reason, return_code=None, ended_at_ms=now_ms())


def _started(run_id: str, info: StartInfo) -> RunStarted:
    return RunStarted(run_id, info.pid, info.started_at_ms, info.stdout_path, info.stderr_path)


def _sizes(info: StartInfo) -> tuple[int, int]:
    def size(path: str, start: int) -> int:
        try:
            return max(0, os.stat(path).st_size - start)
        except OSError:
            return 0

    out = size(info.stdout_path, info.stdout_start)
    # One file for both streams is streamed once, as stdout: nothing is owed on stderr.
    return out, (0 if info.same_file else size(info.stderr_path, info.stderr_start))


def _log_ack_failure(run_id: str) -> Callable[[asyncio.Future[None]], None]:
    def done(fut: asyncio.Future[None]) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            log.warning("run=%s acknowledgment not journaled: %s", run_id, fut.exception())

    return done

"""Process execution: spawn ``bash -c`` in its own process group, watch it, tail it, kill it.

Output never passes through the agent: the command writes straight into its stdout/stderr files
(opened in append mode), so it survives the agent and cannot be SIGPIPEd by it. The agent tails
the files (size poll every ``tick`` seconds, plus one last read at exit) and reports byte ranges.
Exit is watched with ``pidfd_open`` + ``loop.add_reader`` (no child watcher; works as well for a
process a previous agent spawned), then reaped with ``Popen.poll()``. How a restarted agent
learns the exit status of a command it did not reap: see ``rcfiles``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from easytask.agentd.output import OutputSink, Tail
from easytask.agentd.placeholders import Prepared, RunUser
from easytask.agentd.rcfiles import RcFiles, judge
from easytask.agentd.startinfo import StartInfo
from easytask.agentd.sysinfo import now_ms, proc_environ_has, proc_start_ticks
from easytask.core.clock import Clock
from easytask.core.errors import SpawnError
from easytask.core.protocol import RunResult, Stream

log = logging.getLogger(__name__)

_LIVE_BUDGET = 1024 * 1024  # bytes per stream per wake-up while the command runs


@dataclass(slots=True, eq=False)
class Proc:
    """A running (or just ended) command."""

    run_id: str
    info: StartInfo
    tails: list[Tail]
    popen: subprocess.Popen[bytes] | None  # None when adopted after an agent restart
    pidfd: int
    exited: bool = False
    returncode: int | None = None
    ended_at_ms: int = 0
    kill_reason: str | None = None
    wake: asyncio.Future[None] | None = None
    timers: list[asyncio.TimerHandle] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.info.pid


class ProcessRunner:
    """Spawns and supervises commands.

    Args:
        agent_dir: per-agent state directory (holds the BASH_ENV script and ``rc/``).
        clock: monotonic time for ``max_run_time``.
        kill_grace: seconds between SIGTERM and SIGKILL.
        tick: output poll interval in seconds.
    """

    def __init__(
        self,
        agent_dir: Path,
        clock: Clock,
        *,
        kill_grace: float,
        tick: float = 0.2,
    ) -> None:
        self._clock = clock
        self._grace = kill_grace
        self._tick = tick
        self.rc = RcFiles(agent_dir)
        self._bash = shutil.which("bash") or "/bin/bash"  # no PATH search per spawn
        self._devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self._procs: dict[str, Proc] = {}
        self._has_procs = asyncio.Event()

    @property
    def running(self) -> int:
        return len(self._procs)

    # ---------- spawning ----------

    def spawn(self, run_id: str, prep: Prepared, max_run_time: int) -> Proc:
        """Start ``bash -c <cmd>``; SpawnError when files or the process cannot be set up.

        Runs on the event loop thread on purpose: spawning from a thread pool was measured
        slower (GIL hand-offs cost more than the vfork wait they hide).
        """
        user = prep.user
        out_fd = _open_output(prep.stdout_path, user)
        err_fd = -1
        try:
            out_st = os.fstat(out_fd)
            same = prep.stderr_path == prep.stdout_path
            if not same:
                err_fd = _open_output(prep.stderr_path, user)
                err_st = os.fstat(err_fd)
                same = (err_st.st_dev, err_st.st_ino) == (out_st.st_dev, out_st.st_ino)
            err_start = out_st.st_size if same else os.fstat(err_fd).st_size
            popen = self._popen(run_id, prep, out_fd, out_fd if same else err_fd)
        except BaseException:
            os.close(out_fd)
            if err_fd >= 0:
                os.close(err_fd)
            raise
        pid = popen.pid
        info = StartInfo(
            pid=pid,
            start_ticks=proc_start_ticks(pid) or 0,
            started_at_ms=now_ms(),
            started_mono=self._clock.monotonic(),
            stdout_path=prep.stdout_path,
            stderr_path=prep.stderr_path,
            stdout_start=out_st.st_size,
            stderr_start=err_start,
            same_file=same,
        )
        tails = [Tail(Stream.STDOUT, prep.stdout_path, out_st.st_size, wfd=out_fd)]
        if same:
            if err_fd >= 0:
                os.close(err_fd)
        else:
            tails.append(Tail(Stream.STDERR, prep.stderr_path, err_start, wfd=err_fd))
        proc = Proc(run_id, info, tails, popen, os.pidfd_open(pid))
        self._watch(proc, max_run_time)
        return proc

    def _popen(
        self, run_id: str, prep: Prepared, out_fd: int, err_fd: int
    ) -> subprocess.Popen[bytes]:
        env = prep.env
        original = env.get("BASH_ENV")
        if original:
            env["EASYTASK_BASH_ENV"] = original
        env["BASH_ENV"] = self.rc.script
        rc_path = env["EASYTASK_RC_FILE"] = self.rc.path(run_id)
        user = prep.user
        try:
            if user.switch:
                fd = os.open(rc_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
                os.fchown(fd, user.uid, user.gid)
                os.close(fd)
                return subprocess.Popen(
                    [self._bash, "-c", prep.cmd],
                    stdin=self._devnull,
                    stdout=out_fd,
                    stderr=err_fd,
                    cwd=user.home,
                    env=env,
                    process_group=0,
                    user=user.uid,
                    group=user.gid,
                    extra_groups=list(user.groups),
                )
            return subprocess.Popen(
                [self._bash, "-c", prep.cmd],
                stdin=self._devnull,
                stdout=out_fd,
                stderr=err_fd,
                cwd=user.home,
                env=env,
                process_group=0,
            )
        except PermissionError as exc:
            if user.switch:
                raise SpawnError(f"cannot run as user {user.name}") from exc
            raise SpawnError(f"cannot start command: {exc.strerror or exc}") from exc
        except (OSError, subprocess.SubprocessError) as exc:
            raise SpawnError(f"cannot start command: {exc}") from exc

    def adopt(self, run_id: str, info: StartInfo, max_run_time: int) -> Proc | None:
        """Watch a command a previous agent process started; None if it is no longer running."""
        try:
            pidfd = os.pidfd_open(info.pid)
        except OSError:
            return None
        # The pidfd pins the process, so the identity check below cannot race with pid reuse.
        if info.start_ticks:
            ours = proc_start_ticks(info.pid) == info.start_ticks
        else:
            ours = proc_environ_has(info.pid, f"EASYTASK_RUN_ID={run_id}")
        if not ours:
            os.close(pidfd)
            return None
        tails = [Tail(Stream.STDOUT, info.stdout_path, info.stdout_start)]
        if not info.same_file:
            tails.append(Tail(Stream.STDERR, info.stderr_path, info.stderr_start))
        # Output is streamed again from the recorded range starts (the scheduler de-duplicates
        # by offset), so nothing written while no agent was watching is missing.
        proc = Proc(run_id, info, tails, None, pidfd)
        self._watch(proc, max_run_time)
        return proc

    def _watch(self, proc: Proc, max_run_time: int) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(proc.pidfd, self._on_exit, proc)
        if max_run_time > 0:
            left = max_run_time - (self._clock.monotonic() - proc.info.started_mono)
            proc.timers.append(loop.call_later(max(0.0, left), self.terminate, proc, "timed out"))
        self._procs[proc.run_id] = proc
        self._has_procs.set()

    def _on_exit(self, proc: Proc) -> None:
        asyncio.get_running_loop().remove_reader(proc.pidfd)
        if proc.popen is None:
            _reap_adopted(proc.pidfd)
        os.close(proc.pidfd)
        proc.pidfd = -1
        proc.ended_at_ms = now_ms()
        if proc.popen is not None:
            proc.returncode = proc.popen.poll()
            if proc.returncode is None:  # readable pidfd means it exited; reap for certain
                proc.returncode = proc.popen.wait()
        proc.exited = True
        for timer in proc.timers:
            timer.cancel()
        if proc.kill_reason is not None and _group_alive(proc.pid):
            # The leader is gone but not the rest of its group: SIGKILL it after the grace.
            asyncio.get_running_loop().call_later(
                self._grace, _signal_group, proc.pid, signal.SIGKILL
            )
        if proc.wake is not None and not proc.wake.done():
            proc.wake.set_result(None)

    # ---------- killing ----------

    def terminate(self, proc: Proc, reason: str) -> None:
        """SIGTERM the process group now and SIGKILL it after the grace; the run ends TERMINATED."""
        if proc.exited or proc.kill_reason is not None:
            return
        proc.kill_reason = reason
        log.info("run=%s terminating process group %d: %s", proc.run_id, proc.pid, reason)
        _signal_group(proc.pid, signal.SIGTERM)
        loop = asyncio.get_running_loop()
        proc.timers.append(loop.call_later(self._grace, _signal_group, proc.pid, signal.SIGKILL))

    # ---------- waiting and output ----------

    async def wait(self, proc: Proc, sink: OutputSink) -> RunResult:
        """Stream output until the process ends; return its result."""
        loop = asyncio.get_running_loop()
        try:
            while not proc.exited:
                proc.wake = loop.create_future()
                await proc.wake
                proc.wake = None
                if not proc.exited:
                    for tail in proc.tails:
                        await tail.pump(proc.run_id, sink, _LIVE_BUDGET)
            for tail in proc.tails:  # one last read: short runs lose nothing
                await tail.pump(proc.run_id, sink, None)
            return self._result(proc)
        finally:
            self.release(proc)

    def release(self, proc: Proc) -> None:
        """Stop watching (at exit, or when the agent stops and leaves the process running)."""
        self._procs.pop(proc.run_id, None)
        if proc.pidfd >= 0:
            asyncio.get_running_loop().remove_reader(proc.pidfd)
            os.close(proc.pidfd)
            proc.pidfd = -1
            for timer in proc.timers:
                timer.cancel()
        for tail in proc.tails:
            tail.close()

    def _result(self, proc: Proc) -> RunResult:
        info = proc.info
        ends = [tail.start + tail.sent for tail in proc.tails]
        out_end = ends[0]
        err_end = out_end if info.same_file else ends[1]
        if proc.popen is not None:
            state, reason, code = judge(proc.returncode)
        else:
            state, reason, code = self.rc.result(proc.run_id)
        if proc.kill_reason is not None:
            state, reason = "TERMINATED", proc.kill_reason
        return RunResult(
            state=state,
            reason=reason,
            return_code=code,
            pid=info.pid,
            started_at_ms=info.started_at_ms,
            ended_at_ms=proc.ended_at_ms,
            stdout_path=info.stdout_path,
            stderr_path=info.stderr_path,
            stdout_start=info.stdout_start,
            stdout_end=out_end,
            stderr_start=info.stderr_start,
            stderr_end=err_end,
        )

    async def run_ticker(self) -> None:
        """Wake runs whose output files grew; sleeps on an event while nothing runs."""
        while True:
            if not self._procs:
                self.rc.flush()
                self._has_procs.clear()
                await self._has_procs.wait()
            await asyncio.sleep(self._tick)
            for proc in list(self._procs.values()):
                wake = proc.wake
                if wake is None or wake.done():
                    continue
                if any(tail.grew() for tail in proc.tails):
                    wake.set_result(None)

    def close(self) -> None:
        self.rc.close()
        if self._devnull >= 0:
            os.close(self._devnull)
            self._devnull = -1


def _open_output(path: str, user: RunUser) -> int:
    """Open an output file for appending (creating parents); chown new files to the run user."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
    for attempt in (1, 2):
        try:
            if not user.switch:
                return os.open(path, flags, 0o644)
            try:
                fd = os.open(path, flags | os.O_EXCL, 0o644)
            except FileExistsError:
                # The agent opens as root on the run user's behalf: never follow a link, and
                # only append to a file the run user owns (else a task could write anywhere).
                fd = os.open(path, (flags & ~os.O_CREAT) | os.O_NOFOLLOW, 0o644)
                if os.fstat(fd).st_uid != user.uid:
                    os.close(fd)
                    raise SpawnError(f"cannot open {path}: owned by another user") from None
                return fd
            os.fchown(fd, user.uid, user.gid)
            return fd
        except FileNotFoundError:
            if attempt == 2:
                raise SpawnError(f"cannot open {path}: no such directory") from None
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
            except OSError as exc:
                raise SpawnError(f"cannot open {path}: {exc.strerror or exc}") from exc
        except OSError as exc:
            raise SpawnError(f"cannot open {path}: {exc.strerror or exc}") from exc
    raise AssertionError("unreachable")


def _reap_adopted(pidfd: int) -> None:
    """Reap an adopted command that is still our child, so that it leaves no zombie.

    That is the case after a restart action: the agent re-executed itself in the same process,
    so the commands the previous image spawned are still its children. Its result still comes
    from the rc file, as for a command a previous agent process started.
    """
    # ChildProcessError when it is not our child: its parent, or init, reaps it.
    with contextlib.suppress(OSError, AttributeError):
        os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        log.warning("cannot signal process group %d: %s", pgid, exc)

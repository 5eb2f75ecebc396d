"""Real-process harness for end-to-end tests: scheduler, agents and the CLI in a temp home."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from easytask.rpc.v1 import api_pb2 as pb
from easytask.rpc.v1 import api_pb2_grpc

BIN = Path(sys.executable).parent
FINAL = {"SUCCESS", "FAILED", "TERMINATED", "REJECTED", "SKIPPED"}


def wait_until(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Return check()'s first truthy value, failing with ``what`` after ``timeout`` seconds.

    Timeouts are generous on purpose: a wait ends as soon as its condition holds, and only a
    loaded machine (CI's 2 cores) comes near them.
    """
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


@dataclass
class Proc:
    """A child process whose output goes to a log file."""

    argv: list[str]
    log: Path
    env: dict[str, str]
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = self.log.open("ab")
        self.popen = subprocess.Popen(
            self.argv, stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        out.close()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            assert self.popen is not None
            self.popen.send_signal(sig)
            self.popen.wait(timeout=15)

    def stop(self) -> None:
        if self.alive():
            assert self.popen is not None
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Cluster:
    """One scheduler home with its processes; the test's view of a real installation."""

    home: Path
    env: dict[str, str] = field(default_factory=dict)
    scheduler: Proc | None = None
    agents: dict[str, Proc] = field(default_factory=dict)
    port: int = 0
    http_port: int = 0
    _channel: grpc.Channel | None = None

    def __post_init__(self) -> None:
        self.env = {**os.environ, "EASYTASK_HOME": str(self.home), "PYTHONUNBUFFERED": "1"}
        self.env.pop("EASYTASK_SERVER", None)
        self.env.pop("EASYTASK_TOKEN", None)
        # Logins of this cluster's CLI; `ctl(..., person=…)` keeps one such directory per person.
        self.env["XDG_CONFIG_HOME"] = str(self.home.parent / "config")

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    # ----- processes -----

    def start_scheduler(self, *extra: str) -> Proc:
        addr_file = self.home / "scheduler.addr"
        addr_file.unlink(missing_ok=True)
        argv = [
            str(BIN / "easytask-scheduler"),
            "--home", str(self.home),
            "--grpc-listen", f"127.0.0.1:{self.port}",
            "--http-listen", f"127.0.0.1:{self.http_port}",
            *extra,
        ]  # fmt: skip
        proc = Proc(argv, self.home / "test-logs" / "scheduler.out", self.env).start()
        self.scheduler = proc

        def ready() -> bool:
            assert proc.alive(), f"scheduler exited:\n{proc.output()}"
            return addr_file.exists() and addr_file.read_text().strip() != ""

        wait_until("the scheduler to be ready", ready, timeout=90)
        self.port = int(addr_file.read_text().strip().rsplit(":", 1)[1])
        url = (self.home / "dashboard.url").read_text().strip()
        self.http_port = int(url.rstrip("/").rsplit(":", 1)[1])
        self._channel = None
        return proc

    def start_agent(self, name: str, queues: str, *extra: str) -> Proc:
        proc = self.start_agent_process(name, queues, *extra)
        self.agents[name] = proc
        wait_until(f"agent {name} to connect", lambda: self.agent_online(name), timeout=90)
        return proc

    def start_agent_process(
        self, name: str, queues: str, *extra: str, home: Path | None = None
    ) -> Proc:
        """An agent process, not waited for (nor stopped with the cluster: the caller does)."""
        log = self.home / "test-logs" / f"agent-{name}{'-' + home.name if home else ''}.out"
        home = home or self.home / "agents" / name
        argv = [
            str(BIN / "easytask-agentd"),
            "--server", self.server,
            "--home", str(home),
            "--name", name,
            "--queues", queues,
            f"--token={self.credentials()['agent_token']}",
            "--kill-grace", "1",
            *extra,
        ]  # fmt: skip
        return Proc(argv, log, self.env).start()

    def agent_online(self, name: str) -> bool:
        proc = self.agents.get(name)
        assert proc is None or proc.alive(), f"agent {name} exited:\n{proc.output()}"
        agents = self.api().ListAgents(pb.ListAgentsRequest(), metadata=self.metadata())
        return any(a.name == name and a.status == "online" for a in agents.agents)

    def stop_all(self) -> None:
        for proc in self.agents.values():
            proc.stop()
        if self.scheduler is not None:
            self.scheduler.stop()

    # ----- API and CLI -----

    def credentials(self) -> dict[str, str]:
        data: dict[str, str] = json.loads((self.home / "credentials.json").read_text())
        return data

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.credentials()['api_token']}"),)

    def api(self) -> api_pb2_grpc.EasyTaskApiStub:
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.server)
        return api_pb2_grpc.EasyTaskApiStub(self._channel)

    def ctl(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 60,
        person: str | None = None,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """``easytaskctl --server <this cluster> ARGS``; ``person`` gives the CLI a config
        directory of its own (its own logins), as a different person's machine would."""
        argv = [str(BIN / "easytaskctl"), "--server", self.server, *args]
        env = self.env if person is None else {**self.env, "XDG_CONFIG_HOME": self.config(person)}
        res = subprocess.run(
            argv, capture_output=True, text=True, env=env, timeout=timeout, input=stdin
        )
        if check and res.returncode != 0:
            raise AssertionError(
                f"easytaskctl {' '.join(args)} exited {res.returncode}\n"
                f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}"
            )
        return res

    def config(self, person: str) -> str:
        return str(self.home.parent / f"config-{person}")

    def runs(self, tid: int) -> list[pb.Run]:
        reply = self.api().ListRuns(
            pb.ListRunsRequest(tid=tid, per_page=1000, since_hours=24 * 365),
            metadata=self.metadata(),
        )
        return sorted(reply.runs, key=lambda r: (r.scheduled_utc, r.attempt))

    def run(self, run_id: str) -> pb.Run:
        return self.api().GetRun(pb.GetRunRequest(run_id=run_id), metadata=self.metadata())

    def wait_state(self, run_id: str, states: set[str], timeout: float = 60) -> pb.Run:
        def check() -> pb.Run | None:
            run = self.run(run_id)
            return run if run.state in states else None

        result: pb.Run = wait_until(f"run {run_id} to reach {sorted(states)}", check, timeout)
        return result

    def wait_final(self, run_id: str, timeout: float = 60) -> pb.Run:
        return self.wait_state(run_id, FINAL, timeout)


def task_json(
    tid: int, name: str, queue: str, cmd: str, out_dir: Path, **extra: Any
) -> dict[str, Any]:
    """A valid single task for tests; schedule defaults to a daily time far from now."""
    task: dict[str, Any] = {
        "tid": tid,
        "name": name,
        "cmd": cmd,
        "run_on_host": queue,
        "stdout": str(out_dir / f"{name}.out"),
        "stderr": str(out_dir / f"{name}.err"),
        "timezone": "UTC",
        "day_of_week": "1111111",
        "trigger_times": "03:17",
    }
    task.update(extra)
    return task


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie counts as gone.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"

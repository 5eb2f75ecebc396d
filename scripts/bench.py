"""Benchmark: runs/s and start lag of bursts of `bash -c true` runs through EasyTask, vs the floor.

The floor is the same number of `bash -c true` processes spawned directly by one asyncio process,
16 at a time. EasyTask's figure is measured from the instant the runs are due to the commit of the
last final state, with N tasks due at the same instant through one local agent.

With --dashboard-clients C, each burst runs twice per repeat with the dashboard served: once with
no client, once with C WebSocket clients (one separate process, on the same cores: its CPU is
reported) each following the board, the running runs and a few of those runs; the figure is the
change of the ratio to the floor. With --task-list N, N tasks are stored and the task list, a
search, the status board and the live board are timed over real HTTP with a logged-in cookie.
With --log-stream MB, one run writes MB MiB of 100-byte lines to stdout: the rate from its start
to its final state (committed after its last output chunk), what the scheduler stored, and the
scheduler's peak memory. With --agents N, N simulated agents (one separate process, the real
protocol) stay connected and heartbeating for --hold seconds: the scheduler's CPU meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import grpc
from aiohttp import ClientSession, ClientWebSocketResponse, WSMsgType

from easytask.rpc.v1 import agent_pb2 as apb
from easytask.rpc.v1 import agent_pb2_grpc, api_pb2_grpc
from easytask.rpc.v1 import api_pb2 as pb
from easytask.store.ports import OUTPUT_HEAD, OUTPUT_TAIL

BIN = Path(sys.executable).parent
SESSION_ENV = "EASYTASK_BENCH_SESSION"  # the clients' login cookie, kept out of `ps`
TOKEN_ENV = "EASYTASK_BENCH_AGENT_TOKEN"  # the simulated agents' token, likewise
RUNNING_TOPIC = "runs:state=RUNNING"
RUN_LINK = re.compile(r'href="/runs/([^"/]+)"')
RUNS_PER_PUSH = 3  # run:<id> topics a client adds per push of the running runs
MAX_RUN_TOPICS = 24  # the hub follows 32 topics per tab


async def floor(n: int, parallel: int = 16) -> float:
    """Seconds to spawn and reap n `bash -c true`, `parallel` at a time."""
    sem = asyncio.Semaphore(parallel)

    async def one() -> None:
        async with sem:
            proc = await asyncio.create_subprocess_exec(
                "bash", "-c", "true", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            await proc.wait()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return time.perf_counter() - start


def parse_ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Bench:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = 0
        self.base = ""  # the dashboard's address, when served
        self.procs: list[subprocess.Popen[bytes]] = []

    def start_scheduler(
        self, offset: float, dashboard: bool = False
    ) -> tuple[subprocess.Popen[bytes], float]:
        self.home.mkdir(parents=True, exist_ok=True)
        addr = self.home / "scheduler.addr"
        addr.unlink(missing_ok=True)
        (self.home / "dashboard.url").unlink(missing_ok=True)
        t0 = time.perf_counter()
        log = (self.home / "scheduler.out").open("ab")
        proc = subprocess.Popen(
            [str(BIN / "easytask-scheduler"), "--home", str(self.home), "--grpc-listen",
             f"127.0.0.1:{self.port}", "--http-listen", "127.0.0.1:0" if dashboard else "",
             "--clock-offset", f"{offset:.3f}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        while not (addr.exists() and addr.read_text().strip()):
            if proc.poll() is not None:  # the home is temporary: show why
                tail = (self.home / "scheduler.out").read_text(errors="replace")[-2000:]
                raise SystemExit(f"scheduler exited:\n{tail}")
            time.sleep(0.01)
        started = time.perf_counter() - t0
        self.port = int(addr.read_text().strip().rsplit(":", 1)[1])
        if dashboard:  # written before the gRPC address
            self.base = (self.home / "dashboard.url").read_text().strip().rstrip("/")
        self.procs.append(proc)
        return proc, started

    def login(self) -> str:
        """The superuser's dashboard session cookie (``et_session``), from POST /login."""
        password = json.loads((self.home / "credentials.json").read_text())["password"]
        parts = urlsplit(self.base)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        form = f"username=easytask_superuser&password={password}&next=/"
        conn.request("POST", "/login", form,
                     {"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        answer = conn.getresponse()
        answer.read()
        conn.close()
        cookies: SimpleCookie = SimpleCookie()
        for header in answer.headers.get_all("Set-Cookie") or []:
            cookies.load(header)
        if answer.status != 303 or "et_session" not in cookies:
            raise SystemExit(f"dashboard login refused: HTTP {answer.status}")
        return cookies["et_session"].value

    def start_agent(self) -> subprocess.Popen[bytes]:
        token = json.loads((self.home / "credentials.json").read_text())["agent_token"]
        log = (self.home / "agent.out").open("ab")
        proc = subprocess.Popen(
            [str(BIN / "easytask-agentd"), "--server", f"127.0.0.1:{self.port}", "--home",
             str(self.home / "agent"), "--name", "bench", "--queues", "bench", f"--token={token}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def api(self) -> tuple[api_pb2_grpc.EasyTaskApiStub, tuple[tuple[str, str], ...]]:
        token = json.loads((self.home / "credentials.json").read_text())["api_token"]
        channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        return api_pb2_grpc.EasyTaskApiStub(channel), (("authorization", f"Bearer {token}"),)

    def cpu_seconds(self) -> list[float]:
        """CPU seconds (user + system) used so far by each started process."""
        tick = os.sysconf("SC_CLK_TCK")
        out = []
        for proc in self.procs:
            try:
                fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
                out.append((int(fields[11]) + int(fields[12])) / tick)
            except (FileNotFoundError, IndexError):
                out.append(float("nan"))
        return out

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()


def easytask_burst(
    n: int, workdir: Path, dashboard: bool = False, clients: int = 0, tag: str = ""
) -> dict[str, float]:
    """One burst of n runs; with ``dashboard``, the scheduler serves it, and ``clients``
    WebSocket clients follow it from their own process while the burst runs."""
    home = workdir / f"burst-{n}{tag}"
    bench = Bench(home)
    # Load the tasks while the scheduler's clock is far from their trigger time.
    bench.start_scheduler(offset=0.0)
    api, md = bench.api()
    tasks = [
        {"tid": 1001 + i, "name": f"bench-{i}", "cmd": "true", "run_on_host": "bench",
         "stdout": "/dev/null", "stderr": "/dev/null", "timezone": "UTC",
         "day_of_week": "1111111", "trigger_times": "12:00"}
        for i in range(n)
    ]  # fmt: skip
    reply = api.ImportTasks(pb.ImportTasksRequest(json=json.dumps({"tasks": tasks})), metadata=md)
    assert not reply.errors, reply.errors[:3]
    bench.stop()
    # Restart with the clock 4 s before 12:00 UTC of the next day (10 s with the dashboard:
    # time to log in and connect the clients), then connect the agent.
    lead = 10.0 if dashboard else 4.0
    due = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    due = due.fromtimestamp(due.timestamp() + 86400, UTC)
    offset = due.timestamp() - lead - time.time()
    _, startup = bench.start_scheduler(offset, dashboard)
    bench.start_agent()
    api, md = bench.api()
    live: LiveClients | None = None
    live_stats: dict[str, float] = {}
    try:
        if clients:
            live = LiveClients(bench.base, clients, bench.login())
            if time.time() + offset > due.timestamp() - 0.5:
                raise SystemExit(f"burst of {n}: the {clients} clients were not ready in time")
        deadline = time.monotonic() + 600
        while True:
            stats = api.ListRuns(pb.ListRunsRequest(per_page=1, since_hours=48), metadata=md).stats
            done = sum(v for k, v in stats.items() if k in ("SUCCESS", "FAILED", "TERMINATED"))
            if done >= n:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"burst of {n}: only {done} runs final after 600 s")
            time.sleep(0.25)
        runs: list[pb.Run] = []
        page = 1
        while True:  # every page: missed slots of the clock jump are listed too
            reply = api.ListRuns(
                pb.ListRunsRequest(per_page=5000, page=page, since_hours=48), metadata=md
            )
            runs.extend(reply.runs)
            page += 1
            if not reply.runs:
                break
        sched_cpu, agent_cpu = bench.cpu_seconds()
        if live is not None:
            live_stats = live.stop()
    finally:
        if live is not None:
            live.kill()
        bench.stop()
    due_ts = due.timestamp()
    # Only the burst: a slot passed over by the clock jump (today's 12:00 when the bench runs
    # before noon UTC) is recorded too, as missed.
    runs = [r for r in runs if r.triggered_at and parse_ts(r.scheduled_utc) == due_ts]
    failed = sum(1 for r in runs if r.state != "SUCCESS")
    last_commit = max(parse_ts(r.updated_at) for r in runs)

    # A start the agent stamped on its own (real) clock is `offset` behind the scheduler's; one
    # the scheduler moved onto its timeline (never before the acknowledgment) is on its clock.
    def on_scheduler_clock(at: float) -> float:
        return at if at >= due_ts - offset / 2 else at + offset

    lags = sorted(on_scheduler_clock(parse_ts(r.started_at)) - due_ts for r in runs if r.started_at)
    trig = sorted(parse_ts(r.triggered_at) - due_ts for r in runs)
    total = last_commit - due_ts
    return {
        "runs": n,
        "failed": failed,
        "seconds": total,
        "runs_per_s": n / total,
        "start_lag_p50": statistics.median(lags),
        "start_lag_p99": lags[int(len(lags) * 0.99) - 1],
        "start_lag_max": lags[-1],
        "trigger_lag_p99_ms": trig[int(len(trig) * 0.99) - 1] * 1000,
        "startup_s": startup,
        "scheduler_cpu_s": sched_cpu,
        "agent_cpu_s": agent_cpu,
        **live_stats,
    }


def load_tasks_directly(home: Path, n: int) -> None:
    """Write n validated tasks straight into the store (the API would take minutes for 100,000).

    Each task fires once a day at a minute spread over the day, so about n / 1440 fire together.
    """
    from easytask.core.validation import TaskContext, validate_task
    from easytask.store.sqlite import SqliteStore

    zones = ["UTC", "US/Eastern", "Europe/London", "Asia/Kolkata", "Australia/Sydney"]
    ctx = TaskContext(
        instance="default", default_owner="bench", tid_exists=lambda _: False,
        name_tid=lambda _: None, next_tid=lambda: 0, calendar_exists=lambda _: True,
        group_exists=lambda _: False,
    )  # fmt: skip

    async def run() -> None:
        store = await SqliteStore.open(home / "easytask.db")
        writer = asyncio.create_task(store.writer.run())
        batch = []
        for i in range(n):
            minute = i % 1440
            zone = zones[i % len(zones)] if i >= 1440 * 2 else "UTC"
            raw = {"tid": 1001 + i, "name": f"scale-{i}", "cmd": "true", "run_on_host": "none",
                   "stdout": "/dev/null", "stderr": "/dev/null", "timezone": zone,
                   "day_of_week": "1111100" if i % 3 else "1111111",
                   "trigger_times": f"{minute // 60:02d}:{minute % 60:02d}"}  # fmt: skip
            batch.append(validate_task(raw, ctx))
            if len(batch) == 5000:
                await store.put_tasks(batch, datetime.now(UTC))
                batch = []
        if batch:
            await store.put_tasks(batch, datetime.now(UTC))
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        await store.close()

    asyncio.run(run())


class LiveClients:
    """Dashboard tabs in their own process (``--live-clients``): connected, following."""

    def __init__(self, base: str, clients: int, session: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--live-clients", base, "--dashboard-clients",
             str(clients)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, SESSION_ENV: session},
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().strip()
        if line != "ready":
            self.kill()
            raise SystemExit(f"live clients failed: {line or 'no answer'}")

    def stop(self) -> dict[str, float]:
        """Disconnect every tab; their figures since they were ready."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        out = self.proc.stdout.read()
        self.proc.wait(timeout=30)
        figures: dict[str, float] = json.loads(out)
        return figures

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


async def read_tab(ws: ClientWebSocketResponse, board: asyncio.Event,
                   stats: dict[str, float]) -> None:  # fmt: skip
    """One tab's messages: the board, and the running runs whose own topics it then adds."""
    followed: set[str] = set()
    async for msg in ws:
        if msg.type != WSMsgType.TEXT:
            continue
        stats["live_messages"] += 1
        stats["live_bytes"] += len(msg.data)
        data = json.loads(msg.data)
        if data.get("topic") == "board":
            board.set()
        elif data.get("topic") == RUNNING_TOPIC:
            running = [unquote(r) for r in RUN_LINK.findall(data.get("html") or "")]
            room = min(RUNS_PER_PUSH, MAX_RUN_TOPICS - len(followed))
            new = [r for r in running if r not in followed][: max(0, room)]
            if new:
                followed.update(new)
                stats["live_run_topics"] += len(new)
                await ws.send_json({"subscribe": [{"topic": f"run:{r}", "seq": 0} for r in new]})


async def follow_live(base: str, clients: int, session: str) -> None:
    """The clients' process: ``clients`` tabs on /live, each following the board, the running
    runs and a few of those runs (as on the runs page); prints "ready" once every tab has its
    board, then its figures as JSON when its stdin closes."""
    stats = {"live_messages": 0.0, "live_bytes": 0.0, "live_run_topics": 0.0, "live_resyncs": 0.0}
    url = base.replace("http", "ws", 1) + "/live"
    subscribe = {"subscribe": [{"topic": "board", "seq": 0}, {"topic": RUNNING_TOPIC, "seq": 0}],
                 "logs": []}  # fmt: skip

    async def tab(http: ClientSession, board: asyncio.Event) -> None:
        while True:  # a tab closed by the hub (too slow: 4000) resubscribes, as a browser does
            try:
                async with http.ws_connect(url, headers={"Cookie": f"et_session={session}"}) as ws:
                    await ws.send_json(subscribe)
                    await read_tab(ws, board, stats)
            except OSError:
                pass
            stats["live_resyncs"] += 1
            await asyncio.sleep(0.2)

    boards = [asyncio.Event() for _ in range(clients)]
    async with ClientSession() as http:
        tabs = [asyncio.create_task(tab(http, board)) for board in boards]
        try:
            async with asyncio.timeout(60):
                await asyncio.gather(*(board.wait() for board in boards))
        except TimeoutError:
            print(f"not every one of {clients} tabs had its board within 60 s", flush=True)
            return
        stats["live_resyncs"] = 0.0
        cpu0 = time.process_time()
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.read)
        stats["live_cpu_s"] = time.process_time() - cpu0
        for task in tabs:
            task.cancel()
        await asyncio.gather(*tabs, return_exceptions=True)
    stats["live_clients"] = clients
    print(json.dumps(stats), flush=True)


def burst_line(res: dict[str, float], label: str = "") -> str:
    line = (
        f"burst {int(res['runs']):>6}{label}: EasyTask {res['runs_per_s']:7.1f} runs/s "
        f"({res['seconds']:.2f} s, {int(res['failed'])} not SUCCESS) | "
        f"floor {res['floor_runs_per_s']:7.1f} runs/s | ratio {res['ratio']:.3f} | "
        f"start lag p50 {res['start_lag_p50'] * 1000:.0f} ms "
        f"p99 {res['start_lag_p99'] * 1000:.0f} ms max {res['start_lag_max'] * 1000:.0f} ms"
        f" | trigger lag p99 {res['trigger_lag_p99_ms']:.1f} ms"
        f" | scheduler start {res['startup_s']:.2f} s"
        f" | CPU scheduler {res['scheduler_cpu_s']:.1f} s agent {res['agent_cpu_s']:.1f} s"
    )
    if "live_clients" in res:
        line += (
            f" clients {res['live_cpu_s']:.1f} s | {int(res['live_messages'])} messages "
            f"({res['live_bytes'] / 1e6:.1f} MB), {int(res['live_run_topics'])} run topics"
            f" added, {int(res['live_resyncs'])} resyncs"
        )
    return line


def dashboard_cost(n: int, workdir: Path, clients: int, repeat: int) -> dict[str, float]:
    """The burst's ratio to the floor with the dashboard served, without and with ``clients``
    live clients: ``repeat`` pairs, each against its own floor, alternating which goes first."""
    pairs: list[tuple[float, float]] = []
    cpu: dict[int, list[float]] = {0: [], clients: []}
    for i in range(repeat):
        floor_rate = n / asyncio.run(floor(n))
        ratios: dict[int, float] = {}
        for count in (0, clients) if i % 2 == 0 else (clients, 0):
            res = easytask_burst(n, workdir, dashboard=True, clients=count, tag=f"-{i}-{count}")
            res["floor_runs_per_s"] = floor_rate
            res["ratio"] = ratios[count] = res["runs_per_s"] / floor_rate
            cpu[count].append(res["scheduler_cpu_s"])
            print(burst_line(res, f" dashboard, {count:>3} clients"), flush=True)
        pairs.append((ratios[0], ratios[clients]))
    without = statistics.median(p[0] for p in pairs)
    with_clients = statistics.median(p[1] for p in pairs)
    paired = statistics.median(b / a - 1 for a, b in pairs)
    # CPU seconds are far less sensitive to a loaded machine than runs/s: the cost, per run.
    cpu_without, cpu_with = statistics.median(cpu[0]), statistics.median(cpu[clients])
    print(
        f"burst {n:>6} dashboard cost over {repeat} pair(s): ratio median {without:.3f} without "
        f"clients, {with_clients:.3f} with {clients} | change {with_clients / without - 1:+.1%}"
        f" (median of pairs {paired:+.1%}; goal: less than 5 % lower) | scheduler CPU median "
        f"{cpu_without:.2f} s without, {cpu_with:.2f} s with "
        f"(+{(cpu_with - cpu_without) / n * 1000:.2f} ms a run)",
        flush=True,
    )
    return {"runs": n, "dashboard_clients": clients, "repeat": repeat,
            "ratio_without_clients": without, "ratio_with_clients": with_clients,
            "change": with_clients / without - 1, "change_paired_median": paired,
            "scheduler_cpu_s_without": cpu_without, "scheduler_cpu_s_with": cpu_with}  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, -int(-q * len(ordered) // 1) - 1)]


async def time_pages(base: str, session: str, n: int, times: int) -> list[dict[str, Any]]:
    """Each page ``times`` times (after one warm-up) with the login cookie, one at a time; then
    the live board's first render, on a new socket each time."""
    deep = max(1, n // 25 // 2)  # the dashboard lists 25 tasks a page
    paths = ["/tasks?page=1", f"/tasks?page={deep}", "/tasks?search=scale-4242", "/",
             "/api/v1/tasks?page=1"]  # fmt: skip
    cookie = {"Cookie": f"et_session={session}"}
    out: list[dict[str, Any]] = []
    async with ClientSession(headers=cookie) as http:
        for path in paths:
            samples: list[float] = []
            status = 0
            for i in range(times + 1):
                t0 = time.perf_counter()
                async with http.get(base + path, allow_redirects=False) as answer:
                    await answer.read()
                    status = answer.status
                if i:
                    samples.append((time.perf_counter() - t0) * 1000)
            out.append({"url": path, "status": status, "p50_ms": statistics.median(samples),
                        "p95_ms": percentile(samples, 0.95), "max_ms": max(samples)})  # fmt: skip
        samples = []
        for _ in range(max(3, times // 4)):
            await asyncio.sleep(0.3)  # the previous socket has left: the topic renders afresh
            async with http.ws_connect(base.replace("http", "ws", 1) + "/live") as ws:
                t0 = time.perf_counter()
                await ws.send_json({"subscribe": [{"topic": "board", "seq": 0}], "logs": []})
                await ws.receive(timeout=30)
                samples.append((time.perf_counter() - t0) * 1000)
        out.append({"url": "live board (first render)", "status": 101,
                    "p50_ms": statistics.median(samples), "p95_ms": percentile(samples, 0.95),
                    "max_ms": max(samples)})  # fmt: skip
    return out


def task_list(n: int, workdir: Path, times: int) -> list[dict[str, Any]]:
    """The task list, a search and the status board with n tasks in one instance."""
    home = workdir / f"tasklist-{n}"
    home.mkdir(parents=True)
    load_tasks_directly(home, n)
    bench = Bench(home)
    bench.start_scheduler(0.0, dashboard=True)
    try:
        return asyncio.run(time_pages(bench.base, bench.login(), n, times))
    finally:
        bench.stop()


def rss_mb(pid: int) -> float:
    return proc_status_mb(pid, "VmRSS")


def proc_status_mb(pid: int, field: str) -> float:
    """A ``VmRSS``/``VmHWM``-style field of /proc/<pid>/status, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def scale(n: int, workdir: Path) -> dict[str, float]:
    """Start-up time, resident memory and idle fire lag with n tasks in one instance."""
    home = workdir / f"scale-{n}"
    home.mkdir(parents=True)
    bench = Bench(home)
    t0 = time.perf_counter()
    load_tasks_directly(home, n)
    load_s = time.perf_counter() - t0
    # Wednesday 2027-04-07, scheduler clock 15 s before 12:00 UTC (start-up done well before);
    # watch the 12:00 and 12:01 occurrences fire with the scheduler otherwise idle.
    due = datetime(2027, 4, 7, 12, 0, tzinfo=UTC)
    lead = 15.0
    offset = due.timestamp() - lead - time.time()
    proc, startup = bench.start_scheduler(offset)
    rss_start = rss_mb(proc.pid)
    api, md = bench.api()
    try:
        time.sleep(max(0.0, lead - startup) + 60.0 + 2.0)
        rss_after = rss_mb(proc.pid)
        runs = api.ListRuns(pb.ListRunsRequest(per_page=10000, since_hours=1e6), metadata=md).runs
    finally:
        bench.stop()
    lags = sorted((parse_ts(r.triggered_at) - parse_ts(r.scheduled_utc)) * 1000 for r in runs)
    return {
        "tasks": n,
        "store_load_s": load_s,
        "startup_s": startup,
        "rss_mb_ready": rss_start,
        "rss_mb_after_fires": rss_after,
        "fired": len(runs),
        "fire_lag_p50_ms": statistics.median(lags) if lags else float("nan"),
        "fire_lag_p99_ms": lags[max(0, int(len(lags) * 0.99) - 1)] if lags else float("nan"),
        "fire_lag_max_ms": lags[-1] if lags else float("nan"),
    }


class RssSampler:
    """A process's resident memory sampled every ``interval`` s in a thread: the peak seen."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid, self.interval = pid, interval
        self.peak_mb = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.is_set():
            with contextlib.suppress(FileNotFoundError):
                self.peak_mb = max(self.peak_mb, rss_mb(self.pid))
            self._done.wait(self.interval)

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        return self.peak_mb


def wait_online(api: api_pb2_grpc.EasyTaskApiStub, md: Any, names: set[str],
                timeout: float) -> int:  # fmt: skip
    """Poll ListAgents until every one of ``names`` is online; the count online at the end."""
    deadline = time.monotonic() + timeout
    while True:
        agents = api.ListAgents(pb.ListAgentsRequest(), metadata=md).agents
        online = sum(1 for a in agents if a.name in names and a.status == "online")
        if online == len(names) or time.monotonic() > deadline:
            return online
        time.sleep(0.2)


LINE = "x" * 99  # with `yes`'s newline: 100-byte lines


def stored_size(streamed: int) -> int:
    """What GetRunLogs should hold of ``streamed`` bytes: all of them, or the head and the tail
    with the cut marked between them (spec 16)."""
    cut = streamed - OUTPUT_HEAD - OUTPUT_TAIL
    if cut <= 0:
        return streamed
    return OUTPUT_HEAD + OUTPUT_TAIL + len(f"\n[... {cut} bytes cut ...]\n".encode())


def log_stream(mb: int, workdir: Path) -> dict[str, Any]:
    """One run writing ``mb`` MiB of 100-byte lines to stdout as fast as it can, through the
    scheduler and one local agent: how fast the agent streams it into the scheduler's store and
    how much memory the scheduler holds meanwhile."""
    home = workdir / f"logs-{mb}"
    bench = Bench(home)
    sched, _ = bench.start_scheduler(0.0)
    agent = bench.start_agent()
    api, md = bench.api()
    size = mb * 1024 * 1024
    out = home / "stream.out"
    task = {"tid": 1001, "name": "log-stream", "cmd": f"yes {LINE} | head -c {size}",
            "run_on_host": "bench", "stdout": str(out), "stderr": str(home / "stream.err"),
            "timezone": "UTC", "day_of_week": "1111111", "trigger_times": "12:00",
            "max_run_time": 3600}  # fmt: skip
    api.CreateTask(pb.CreateTaskRequest(task_json=json.dumps(task)), metadata=md)
    if wait_online(api, md, {"bench"}, 60) != 1:
        raise SystemExit("log stream: the agent did not connect within 60 s")
    rss_before, hwm_before = rss_mb(sched.pid), proc_status_mb(sched.pid, "VmHWM")
    cpu0 = bench.cpu_seconds()
    sampler = RssSampler(sched.pid)
    try:
        t0 = time.perf_counter()
        reply = api.ForceRun(pb.ForceRunRequest(ref=pb.TaskRef(tid=1001), origin="API"),
                             metadata=md)  # fmt: skip
        deadline = time.monotonic() + max(600.0, mb / 2)
        while (run := api.GetRun(pb.GetRunRequest(run_id=reply.run_id), metadata=md)).state not in (
            "SUCCESS", "FAILED", "TERMINATED"
        ):  # fmt: skip
            if time.monotonic() > deadline:
                raise SystemExit(f"log stream: run {reply.run_id} still {run.state}")
            time.sleep(0.05)
        seen_final = time.perf_counter() - t0
        stored, previous = -1, -2
        while stored != previous:  # final means stored; make sure nothing still trickles in
            previous = stored
            logs = api.GetRunLogs(
                pb.RunLogsRequest(run_id=reply.run_id, stream=pb.STDOUT_ONLY, per_page=1),
                metadata=md,
            ).stdout
            stored = logs.total_bytes
            time.sleep(0.5)
        last = api.GetRunLogs(
            pb.RunLogsRequest(run_id=reply.run_id, stream=pb.STDOUT_ONLY, per_page=1,
                              page=max(1, logs.total_lines)),
            metadata=md,
        ).stdout.lines  # fmt: skip
        peak = sampler.stop()
        hwm = proc_status_mb(sched.pid, "VmHWM")
        agent_hwm = proc_status_mb(agent.pid, "VmHWM")
        cpu1 = bench.cpu_seconds()
    finally:
        sampler.stop()
        bench.stop()
    written = out.stat().st_size
    with out.open("rb") as f:  # `head -c` cuts the last line short: compare with the file's
        f.seek(max(0, written - 200))
        last_written = f.read().decode().splitlines()[-1:]
    agent_log = (home / "agent.out").read_text(errors="replace")
    streamed = (run.stdout_range[1] - run.stdout_range[0]) if run.stdout_range else 0
    started, ended, final = (parse_ts(t) for t in (run.started_at, run.ended_at, run.updated_at))
    return {
        "log_mb": mb,
        "state": run.state,
        "file_bytes": written,
        "streamed_bytes": streamed,
        "stored_bytes": stored,
        "stored_expected_bytes": stored_size(streamed),
        "stored_truncated": logs.truncated,
        "stored_last_line_ok": list(last) == last_written,
        "agent_reconnects": agent_log.count(" disconnected from "),
        "command_s": ended - started,
        "stream_s": final - started,
        "stream_mb_per_s": streamed / 2**20 / (final - started),
        "command_mb_per_s": written / 2**20 / max(ended - started, 1e-3),
        "seen_final_s": seen_final,
        "rss_mb_before": rss_before,
        "rss_mb_hwm_before": hwm_before,
        "rss_mb_peak_sampled": peak,
        "rss_mb_hwm": hwm,
        "agent_rss_mb_hwm": agent_hwm,
        "scheduler_cpu_s": cpu1[0] - cpu0[0],
        "agent_cpu_s": cpu1[1] - cpu0[1],
    }


def log_stream_line(res: dict[str, Any]) -> str:
    """The figures; the rate counts only when the scheduler holds what it should (head, tail)."""
    complete = (
        res["state"] == "SUCCESS"
        and res["stored_bytes"] == res["stored_expected_bytes"]
        and res["stored_last_line_ok"]
        and res["streamed_bytes"] == res["file_bytes"]
    )
    verdict = "complete" if complete else "INCOMPLETE: output lost, the rate is not valid"
    return (
        f"log stream {res['log_mb']} MiB: {res['stream_mb_per_s']:.1f} MB/s "
        f"({res['streamed_bytes'] / 2**20:.0f} MiB of the agent's stdout range in "
        f"{res['stream_s']:.2f} s from the run's start to its final state; the command alone "
        f"{res['command_s']:.2f} s) | run {res['state']}, the scheduler stored "
        f"{res['stored_bytes'] / 2**20:.2f} of {res['stored_expected_bytes'] / 2**20:.2f} MiB "
        f"expected (cut: {res['stored_truncated']}, last line "
        f"{'ok' if res['stored_last_line_ok'] else 'WRONG'}): {verdict} | "
        f"{res['agent_reconnects']} agent reconnects | scheduler RSS "
        f"{res['rss_mb_before']:.0f} MB before, peak {res['rss_mb_peak_sampled']:.0f} MB sampled "
        f"every 20 ms, VmHWM {res['rss_mb_hwm']:.0f} MB ({res['rss_mb_hwm_before']:.0f} MB "
        f"before) | agent VmHWM {res['agent_rss_mb_hwm']:.0f} MB | CPU scheduler "
        f"{res['scheduler_cpu_s']:.1f} s agent {res['agent_cpu_s']:.1f} s"
    )


async def sim_agent(target: str, token: str, i: int, stats: dict[str, Any],
                    welcomed: asyncio.Event, total: int) -> None:  # fmt: skip
    """One simulated agent: Hello, Welcome, then a Heartbeat every heartbeat_seconds; it reads
    everything the scheduler sends. Its own channel: one TCP connection per agent, as for real."""
    name = f"sim-{i:05d}"
    options = [("grpc.use_local_subchannel_pool", 1)]
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        call = agent_pb2_grpc.AgentServiceStub(channel).Connect(
            metadata=(("authorization", f"Bearer {token}"),)
        )
        hello = apb.Hello(name=name, host=f"{name}.bench", queues=[name], version="bench",
                          pid=100000 + i, cpu_cores=2, memory_mb=4096,
                          started_at_ms=int(time.time() * 1000))  # fmt: skip
        await call.write(apb.AgentMessage(hello=hello))
        first = await call.read()
        if first is grpc.aio.EOF or first.WhichOneof("msg") != "welcome":
            raise RuntimeError(f"agent {name}: no welcome ({first})")
        every = float(first.welcome.heartbeat_seconds or 10)
        stats["welcomed"] += 1
        if stats["welcomed"] == total:
            welcomed.set()

        async def read() -> None:
            while (await call.read()) is not grpc.aio.EOF:
                stats["received"] += 1
            raise RuntimeError(f"agent {name}: the scheduler ended the stream")

        reader = asyncio.create_task(read())
        try:
            await asyncio.sleep(random.uniform(0, every))  # real agents start at random times
            while not reader.done():
                beat = apb.Heartbeat(sent_at_ms=int(time.time() * 1000), cpu_percent=1.0,
                                     mem_percent=10.0, running=0)  # fmt: skip
                await call.write(apb.AgentMessage(heartbeat=beat))
                stats["heartbeats"] += 1
                await asyncio.sleep(every)
            await reader
        finally:
            reader.cancel()


async def simulate_agents(target: str, n: int, token: str) -> None:
    """The agents' process: ``n`` agents on ``target``; prints "ready" once all are welcomed,
    then its figures as JSON when its stdin closes."""
    stats: dict[str, Any] = {"welcomed": 0, "heartbeats": 0, "received": 0, "ended": 0}
    welcomed = asyncio.Event()
    t0 = time.perf_counter()
    agents = [asyncio.create_task(sim_agent(target, token, i, stats, welcomed, n))
              for i in range(n)]  # fmt: skip
    ready = asyncio.create_task(welcomed.wait())
    # An agent's task ends only when it fails: the first to do so stops the wait.
    await asyncio.wait([ready, *agents], timeout=120, return_when=asyncio.FIRST_COMPLETED)
    if not welcomed.is_set():
        failed = next((t for t in agents if t.done()), None)
        why = repr(failed.exception()) if failed else "not within 120 s"
        print(f"{int(stats['welcomed'])} of {n} agents welcomed: {why}", flush=True)
        ready.cancel()
        for task in agents:
            task.cancel()
        await asyncio.gather(ready, *agents, return_exceptions=True)
        return
    stats["welcome_s"] = time.perf_counter() - t0
    stats["heartbeats"] = stats["received"] = 0
    cpu0 = time.process_time()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.read)
    stats["agents_cpu_s"] = time.process_time() - cpu0
    ended = [t for t in agents if t.done()]
    stats["ended"] = len(ended)
    if ended:
        stats["first_error"] = repr(ended[0].exception())
    for task in agents:
        task.cancel()
    await asyncio.gather(*agents, return_exceptions=True)
    print(json.dumps(stats), flush=True)


def fleet(n: int, workdir: Path, hold: float) -> dict[str, Any]:
    """n simulated agents (one separate process) connected and heartbeating for ``hold`` s: the
    scheduler's CPU over that window, and the agents ListAgents shows online."""
    home = workdir / f"agents-{n}"
    bench = Bench(home)
    sched, _ = bench.start_scheduler(0.0)
    api, md = bench.api()
    token = json.loads((home / "credentials.json").read_text())["agent_token"]
    cpu_start = bench.cpu_seconds()[0]
    t0 = time.perf_counter()
    sim = subprocess.Popen(
        [sys.executable, __file__, "--sim-agents", f"127.0.0.1:{bench.port}", "--agents", str(n)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, TOKEN_ENV: token},
    )  # fmt: skip
    try:
        assert sim.stdin is not None and sim.stdout is not None
        line = sim.stdout.readline().decode().strip()
        if line != "ready":
            raise SystemExit(f"simulated agents failed: {line or 'no answer'}")
        names = {f"sim-{i:05d}" for i in range(n)}
        online_start = wait_online(api, md, names, 60)
        connect_s = time.perf_counter() - t0
        connect_cpu = bench.cpu_seconds()[0] - cpu_start
        cpu0, w0 = bench.cpu_seconds()[0], time.perf_counter()
        time.sleep(hold)
        cpu1, w1 = bench.cpu_seconds()[0], time.perf_counter()
        rss = rss_mb(sched.pid)
        agents = api.ListAgents(pb.ListAgentsRequest(), metadata=md).agents
        online_end = sum(1 for a in agents if a.name in names and a.status == "online")
        sim.stdin.close()
        figures: dict[str, Any] = json.loads(sim.stdout.read())
        sim.wait(timeout=60)
    finally:
        if sim.poll() is None:
            sim.kill()
            sim.wait()
        bench.stop()
    return {
        "agents": n,
        "online_at_start": online_start,
        "online_at_end": online_end,
        "connect_s": connect_s,
        "connect_cpu_s": connect_cpu,
        "hold_s": w1 - w0,
        "scheduler_cpu_s": cpu1 - cpu0,
        "scheduler_cpu_pct": (cpu1 - cpu0) / (w1 - w0) * 100,
        "scheduler_rss_mb": rss,
        **figures,
    }


def fleet_line(res: dict[str, Any]) -> str:
    line = (
        f"agents {res['agents']}: scheduler CPU {res['scheduler_cpu_pct']:.1f} % of one core "
        f"({res['scheduler_cpu_s']:.2f} s over {res['hold_s']:.0f} s held) | online "
        f"{res['online_at_start']} / {res['online_at_end']} of {res['agents']} (start / end of "
        f"the window) | connect {res['connect_s']:.1f} s (the last welcome "
        f"{res['welcome_s']:.1f} s after the first hello), scheduler CPU "
        f"{res['connect_cpu_s']:.1f} s | {res['heartbeats']} heartbeats sent, "
        f"{res['received']} messages received, {res['ended']} streams ended | "
        f"scheduler RSS {res['scheduler_rss_mb']:.0f} MB | the agents' process CPU "
        f"{res['agents_cpu_s']:.1f} s"
    )
    if res["ended"]:
        line += f" | first error: {res['first_error']}"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples: scripts/bench --runs 1000 --dashboard-clients 100 --repeat 3\n"
        "          scripts/bench --runs '' --task-list 100000\n"
        "          scripts/bench --runs '' --log-stream 1024 --agents 1000",
    )
    parser.add_argument(
        "--runs", default="1000,10000", help="comma-separated burst sizes ('' for none)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--scale", type=int, default=0, help="also measure N tasks (e.g. 100000)")
    parser.add_argument(
        "--dashboard-clients", type=int, default=0, metavar="C",
        help="run each burst with the dashboard served, without and with C live clients",
    )  # fmt: skip
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="pairs of dashboard bursts per size (the median is reported)",
    )
    parser.add_argument(
        "--task-list",
        type=int,
        default=0,
        metavar="N",
        help="also time the task list and the board with N tasks (e.g. 100000)",
    )
    parser.add_argument(
        "--requests", type=int, default=20, help="timed requests per page with --task-list"
    )
    parser.add_argument(
        "--log-stream", type=int, default=0, metavar="MB",
        help="also stream one run's MB MiB of stdout through the agent (e.g. 1024)",
    )  # fmt: skip
    parser.add_argument(
        "--agents", type=int, default=0, metavar="N",
        help="also hold N simulated agents connected (e.g. 1000): the scheduler's CPU",
    )  # fmt: skip
    parser.add_argument(
        "--hold", type=float, default=60.0, help="seconds the --agents are held connected"
    )
    parser.add_argument("--live-clients", metavar="URL", help=argparse.SUPPRESS)  # the clients
    parser.add_argument("--sim-agents", metavar="ADDR", help=argparse.SUPPRESS)  # the agents
    args = parser.parse_args()
    if args.live_clients:
        asyncio.run(follow_live(args.live_clients, args.dashboard_clients, os.environ[SESSION_ENV]))
        return
    if args.sim_agents:
        asyncio.run(simulate_agents(args.sim_agents, args.agents, os.environ[TOKEN_ENV]))
        return
    sizes = [int(x) for x in args.runs.split(",") if x]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="easytask-bench-") as tmp:
        if args.scale:
            sc = scale(args.scale, Path(tmp))
            results.append(sc)
            print(
                f"scale {args.scale} tasks: scheduler start {sc['startup_s']:.2f} s | RSS "
                f"{sc['rss_mb_ready']:.0f} MB ready, {sc['rss_mb_after_fires']:.0f} MB after fires"
                f" | {int(sc['fired'])} fired, lag p50 {sc['fire_lag_p50_ms']:.1f} ms "
                f"p99 {sc['fire_lag_p99_ms']:.1f} ms max {sc['fire_lag_max_ms']:.1f} ms",
                flush=True,
            )
        if args.task_list:
            for row in task_list(args.task_list, Path(tmp), args.requests):
                results.append({"tasks": args.task_list, **row})
                print(
                    f"task list {args.task_list} tasks: {row['url']:<28} HTTP {row['status']} | "
                    f"p50 {row['p50_ms']:6.1f} ms p95 {row['p95_ms']:6.1f} ms "
                    f"max {row['max_ms']:6.1f} ms",
                    flush=True,
                )
        if args.log_stream:
            res = log_stream(args.log_stream, Path(tmp))
            results.append(res)
            print(log_stream_line(res), flush=True)
        if args.agents:
            res = fleet(args.agents, Path(tmp), args.hold)
            results.append(res)
            print(fleet_line(res), flush=True)
        for n in sizes:
            if args.dashboard_clients:
                results.append(dashboard_cost(n, Path(tmp), args.dashboard_clients, args.repeat))
                continue
            floor_s = asyncio.run(floor(n))
            floor_rate = n / floor_s
            res = easytask_burst(n, Path(tmp))
            res["floor_runs_per_s"] = floor_rate
            res["ratio"] = res["runs_per_s"] / floor_rate
            results.append(res)
            print(burst_line(res), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    if args.dashboard_clients:
        print("note: the clients run in their own process but on the same cores as the scheduler")


if __name__ == "__main__":
    main()

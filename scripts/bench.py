"""Benchmark: runs/s and start lag of bursts of `bash -c true` runs through EasyTask, vs the floor.

The floor is the same number of `bash -c true` processes spawned directly by one asyncio process,
16 at a time. EasyTask's figure is measured from the instant the runs are due to the commit of the
last final state, with N tasks due at the same instant through one local agent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import grpc

from easytask.rpc.v1 import api_pb2 as pb
from easytask.rpc.v1 import api_pb2_grpc

BIN = Path(sys.executable).parent


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
        self.procs: list[subprocess.Popen[bytes]] = []

    def start_scheduler(self, offset: float) -> tuple[subprocess.Popen[bytes], float]:
        self.home.mkdir(parents=True, exist_ok=True)
        addr = self.home / "scheduler.addr"
        addr.unlink(missing_ok=True)
        t0 = time.perf_counter()
        log = (self.home / "scheduler.out").open("ab")
        proc = subprocess.Popen(
            [str(BIN / "easytask-scheduler"), "--home", str(self.home), "--grpc-listen",
             f"127.0.0.1:{self.port}", "--http-listen", "", "--clock-offset", f"{offset:.3f}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        while not (addr.exists() and addr.read_text().strip()):
            if proc.poll() is not None:
                raise SystemExit(f"scheduler exited; see {self.home}/scheduler.out")
            time.sleep(0.01)
        started = time.perf_counter() - t0
        self.port = int(addr.read_text().strip().rsplit(":", 1)[1])
        self.procs.append(proc)
        return proc, started

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


def easytask_burst(n: int, workdir: Path) -> dict[str, float]:
    home = workdir / f"burst-{n}"
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
    # Restart with the clock 4 s before 12:00 UTC of the next day, then connect the agent.
    due = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    due = due.fromtimestamp(due.timestamp() + 86400, UTC)
    offset = due.timestamp() - 4.0 - time.time()
    _, startup = bench.start_scheduler(offset)
    bench.start_agent()
    api, md = bench.api()
    try:
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
    finally:
        bench.stop()
    due_ts = due.timestamp()
    # Only the burst: a slot passed over by the clock jump (today's 12:00 when the bench runs
    # before noon UTC) is recorded too, as missed.
    runs = [r for r in runs if r.triggered_at and parse_ts(r.scheduled_utc) == due_ts]
    failed = sum(1 for r in runs if r.state != "SUCCESS")
    last_commit = max(parse_ts(r.updated_at) for r in runs)
    lags = sorted(parse_ts(r.started_at) + offset - due_ts for r in runs if r.started_at)
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


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", default="1000,10000", help="comma-separated burst sizes")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--scale", type=int, default=0, help="also measure N tasks (e.g. 100000)")
    args = parser.parse_args()
    sizes = [int(x) for x in args.runs.split(",") if x]
    results: list[dict[str, float]] = []
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
        for n in sizes:
            floor_s = asyncio.run(floor(n))
            floor_rate = n / floor_s
            res = easytask_burst(n, Path(tmp))
            res["floor_runs_per_s"] = floor_rate
            res["ratio"] = res["runs_per_s"] / floor_rate
            results.append(res)
            print(
                f"burst {n:>6}: EasyTask {res['runs_per_s']:7.1f} runs/s "
                f"({res['seconds']:.2f} s, {int(res['failed'])} not SUCCESS) | "
                f"floor {floor_rate:7.1f} runs/s | ratio {res['ratio']:.2f} | "
                f"start lag p50 {res['start_lag_p50'] * 1000:.0f} ms "
                f"p99 {res['start_lag_p99'] * 1000:.0f} ms max {res['start_lag_max'] * 1000:.0f} ms"
                f" | trigger lag p99 {res['trigger_lag_p99_ms']:.1f} ms"
                f" | scheduler start {res['startup_s']:.2f} s"
                f" | CPU scheduler {res['scheduler_cpu_s']:.1f} s agent {res['agent_cpu_s']:.1f} s",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()

"""Host facts: cores, memory, disk, CPU and memory load, process start times, the clock."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import time
from datetime import UTC, datetime
from pathlib import Path


class SystemClock:
    """The real clock (``core.clock.Clock``): aware UTC wall time and CLOCK_MONOTONIC."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep_until(self, when: datetime) -> None:
        delay = (when - self.now()).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)


def now_ms() -> int:
    """Wall-clock Unix milliseconds (hot path: avoids building a datetime)."""
    return time.time_ns() // 1_000_000


def hostname() -> str:
    return socket.gethostname()


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) or os.cpu_count() or 1


def disk_mb(path: Path) -> tuple[int, int]:
    """Total and free MB of the file system holding ``path`` ((0, 0) when it cannot be read).

    Free is what an unprivileged user may use (``statvfs`` f_bavail).
    """
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return (0, 0)
    return (usage.total // (1024 * 1024), usage.free // (1024 * 1024))


def _meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts:
                    out[key] = int(parts[0])  # kB
    except OSError:
        pass
    return out


def memory_mb() -> int:
    return _meminfo().get("MemTotal", 0) // 1024


def mem_percent() -> float:
    info = _meminfo()
    total = info.get("MemTotal", 0)
    if not total:
        return 0.0
    available = info.get("MemAvailable", info.get("MemFree", 0))
    return round(100.0 * (total - available) / total, 1)


class CpuSampler:
    """CPU busy percentage between two calls, from the first line of /proc/stat."""

    def __init__(self) -> None:
        self._last = self._read()

    @staticmethod
    def _read() -> tuple[int, int]:
        try:
            with open("/proc/stat") as fh:
                fields = [int(x) for x in fh.readline().split()[1:]]
        except (OSError, ValueError):
            return (0, 0)
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return (sum(fields), idle)

    def percent(self) -> float:
        total, idle = self._read()
        d_total, d_idle = total - self._last[0], idle - self._last[1]
        self._last = (total, idle)
        if d_total <= 0:
            return 0.0
        return round(100.0 * (d_total - d_idle) / d_total, 1)


def proc_start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (/proc/<pid>/stat field 22); None if gone."""
    try:  # os-level calls: this runs once per spawn
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.read(fd, 4096)
        finally:
            os.close(fd)
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rfind(b")") + 2 :].split()
    try:
        return int(rest[19])
    except (IndexError, ValueError):
        return None


def proc_environ_has(pid: int, entry: str) -> bool:
    """True when the initial environment of ``pid`` contains ``entry`` (``KEY=VALUE``)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return entry.encode() in fh.read().split(b"\0")
    except OSError:
        return False


def find_group_leaders(env_entries: dict[str, str]) -> dict[str, int]:
    """Live process-group leaders whose environment holds one of ``env_entries`` (entry -> key).

    Scans /proc once; used at start-up only, for runs whose spawn was never journaled.
    """
    found: dict[str, int] = {}
    if not env_entries:
        return found
    wanted = {entry.encode(): key for entry, key in env_entries.items()}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            if os.getpgid(pid) != pid:
                continue
            with open(f"/proc/{pid}/environ", "rb") as fh:
                entries = fh.read().split(b"\0")
        except OSError:
            continue
        for entry in entries:
            key = wanted.get(entry)
            if key is not None:
                found[key] = pid
                break
    return found

"""The agent's durable spool: an append-only JSON-lines journal with group commit.

File: ``<home>/agent/<name>/journal.jsonl``, one record a line::

    {"t": "accepted", "run_id": ..., "at": ms, "task": {...}}
    {"t": "started",  "run_id": ..., "start": {...}}
    {"t": "finished", "run_id": ..., "result": {...}}
    {"t": "acked",    "run_id": ...}

Every ``append`` goes through one writer task that writes all pending records at once and fsyncs
once per batch in a worker thread; ``await journal.append(record)`` returns when *that* record is
durable. ``load()`` replays the file (a torn last line is ignored) and compacts it; compaction
(temp file + rename + fsync of the directory) also runs when many acknowledged runs accumulate.
A failed write (ENOSPC, EFBIG, ...) is truncated away and raised to every caller of the batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from easytask.core.errors import JournalClosedError

log = logging.getLogger(__name__)

Record = dict[str, Any]


@dataclass(slots=True)
class JournalEntry:
    """What the journal holds about one run that is not yet acknowledged."""

    run_id: str
    accepted: Record | None = None
    started: Record | None = None
    finished: Record | None = None
    lines: list[bytes] = field(default_factory=list)


class Journal:
    """Append-only, group-committed journal of run records.

    Args:
        path: the journal file; its directory is created.
        compact_after: rewrite the file once this many acknowledged runs accumulated.
    """

    def __init__(self, path: Path, *, compact_after: int = 1000) -> None:
        self._path = path
        self._compact_after = compact_after
        self._entries: dict[str, JournalEntry] = {}
        self._acked_since_compact = 0
        self._pending: list[tuple[bytes, Record, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._closed = asyncio.Event()
        self._fd = -1
        self._size = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")

    @property
    def path(self) -> Path:
        return self._path

    # ---------- start-up ----------

    def load(self) -> list[JournalEntry]:
        """Replay the journal and compact it; return unacknowledged runs in journal order."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        try:
            data = self._path.read_bytes()
        except FileNotFoundError:
            data = b""
        lines = data.split(b"\n")
        if lines and lines[-1]:
            log.warning(
                "journal %s: ignoring a torn last line (%d bytes)", self._path, len(lines[-1])
            )
        for raw in lines[:-1]:
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
                self._apply(raw + b"\n", record)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("journal %s: skipping a bad record: %s", self._path, exc)
        self._rewrite()
        return list(self._entries.values())

    # ---------- appending ----------

    def submit(self, record: Record) -> asyncio.Future[None]:
        """Queue ``record``; the future completes once it is durable (or the write failed)."""
        if self._closing:
            raise JournalClosedError(f"journal {self._path} is closed")
        line = json.dumps(record, separators=(",", ":")).encode() + b"\n"
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((line, record, fut))
        self._wake.set()
        return fut

    async def append(self, record: Record) -> None:
        """Write ``record`` and return once it is durable; OSError when the write failed."""
        await self.submit(record)

    async def run(self) -> None:
        """The single writer: batch, write, fsync, resolve. Runs until ``close()``."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if not self._pending:
                    if self._closing:
                        return
                    continue
                batch, self._pending = self._pending, []
                data = b"".join(line for line, _, _ in batch)
                write = loop.run_in_executor(self._executor, self._write, data)
                try:
                    await asyncio.shield(write)
                except asyncio.CancelledError:
                    # The thread finishes the write anyway; settle the batch before leaving.
                    with contextlib.suppress(OSError):
                        await write
                    self._settle(batch, write.exception() if write.done() else None)
                    raise
                except OSError as exc:
                    self._settle(batch, exc)
                    continue
                self._settle(batch, None)
                if self._acked_since_compact >= self._compact_after:
                    await loop.run_in_executor(self._executor, self._rewrite)
                if self._pending:
                    self._wake.set()
        finally:
            self._fail_pending(JournalClosedError(f"journal {self._path} is closed"))
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            self._executor.shutdown(wait=False)
            self._closed.set()

    async def close(self) -> None:
        """Flush what is pending and stop the writer (idempotent)."""
        self._closing = True
        self._wake.set()
        await self._closed.wait()

    # ---------- internals ----------

    def _settle(
        self, batch: list[tuple[bytes, Record, asyncio.Future[None]]], exc: BaseException | None
    ) -> None:
        for line, record, fut in batch:
            if exc is None:
                self._apply(line, record)
            if fut.done():
                continue
            if exc is None:
                fut.set_result(None)
            else:
                fut.set_exception(exc)

    def _fail_pending(self, exc: Exception) -> None:
        pending, self._pending = self._pending, []
        for _, _, fut in pending:
            if not fut.done():
                fut.set_exception(exc)

    def _apply(self, line: bytes, record: Record) -> None:
        kind = record["t"]
        run_id = record["run_id"]
        if kind == "acked":
            if self._entries.pop(run_id, None) is not None:
                self._acked_since_compact += 1
            return
        entry = self._entries.get(run_id)
        if entry is None:
            entry = self._entries[run_id] = JournalEntry(run_id)
        if kind == "accepted":
            entry.accepted = record
        elif kind == "started":
            entry.started = record
        elif kind == "finished":
            entry.finished = record
        else:
            raise KeyError(f"unknown record type {kind!r}")
        entry.lines.append(line)

    def _write(self, data: bytes) -> None:
        """Runs in the journal thread: append ``data`` and fdatasync, or undo and raise."""
        if self._fd < 0:
            self._open()
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fdatasync(self._fd)
        except OSError:
            # Never leave half a batch behind: the next record would continue a torn line.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise
        self._size += len(data)

    def _open(self) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        self._fd = os.open(self._path, flags, 0o600)
        self._size = os.fstat(self._fd).st_size

    def _rewrite(self) -> None:
        """Compact: write the live records to a temp file, rename it over the journal."""
        tmp = self._path.with_suffix(".jsonl.tmp")
        live = _iter_lines(self._entries.values())
        with open(tmp, "wb") as fh:
            fh.writelines(live)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self._path)
        dir_fd = os.open(self._path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._open()
        self._acked_since_compact = 0


def _iter_lines(entries: Iterable[JournalEntry]) -> Iterable[bytes]:
    for entry in entries:
        yield from entry.lines

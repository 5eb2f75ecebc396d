"""The stored copy of a run's output (spec 16): exactly the first and last 5 MiB, the cut marked."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
import tracemalloc
from contextlib import closing
from pathlib import Path

from easytask.store.ports import OUTPUT_HEAD, OUTPUT_TAIL, Store
from easytask.store.sqlite import SqliteStore

MiB = 1024 * 1024


def stream_bytes(size: int, seed: int = 7) -> bytes:
    """Bytes that differ at every offset, so a misplaced byte shows."""
    return random.Random(seed).randbytes(size)


def ragged_chunks(data: bytes, seed: int = 3) -> list[tuple[int, bytes]]:
    """The stream in chunks of 1 byte to 64 KiB, as an agent's reads deliver it."""
    rnd, out, at = random.Random(seed), [], 0
    while at < len(data):
        size = rnd.choice((1, 17, 4096, 40_000, 65_536))
        out.append((at, data[at : at + size]))
        at += size
    return out


async def test_more_than_10_mib_keeps_exactly_head_and_tail_and_marks_the_cut(
    store: Store,
) -> None:
    total = 12 * MiB + 12_345
    data = stream_bytes(total)
    for offset, chunk in ragged_chunks(data):
        store.append_output("big", "stdout", offset, chunk)
    await store.flush()
    assert (5 * MiB, 5 * MiB) == (OUTPUT_HEAD, OUTPUT_TAIL)
    segments = await store.read_output_segments("big", "stdout")
    assert [(start, len(piece)) for start, piece in segments] == [
        (0, OUTPUT_HEAD),
        (total - OUTPUT_TAIL, OUTPUT_TAIL),
    ]
    assert segments[0][1] == data[:OUTPUT_HEAD]
    assert segments[1][1] == data[-OUTPUT_TAIL:]
    view, cut = await store.read_output_view("big", "stdout")
    dropped = total - OUTPUT_HEAD - OUTPUT_TAIL
    marker = f"\n[... {dropped} bytes cut ...]\n".encode()
    assert cut and view == data[:OUTPUT_HEAD] + marker + data[-OUTPUT_TAIL:]
    assert await store.output_sizes(["big"]) == {("big", "stdout"): total}
    tail_from = total - OUTPUT_TAIL - 10
    assert await store.read_output_from("big", "stdout", tail_from) == (data[-OUTPUT_TAIL:], total)


async def test_a_stream_of_exactly_10_mib_is_kept_whole(store: Store) -> None:
    data = stream_bytes(OUTPUT_HEAD + OUTPUT_TAIL, seed=1)
    for offset, chunk in ragged_chunks(data, seed=5):
        store.append_output("r", "stderr", offset, chunk)
    await store.flush()
    assert await store.read_output_view("r", "stderr") == (data, False)


async def test_one_chunk_larger_than_the_cap_is_cut_to_head_and_tail(store: Store) -> None:
    data = stream_bytes(11 * MiB, seed=2)
    store.append_output("one", "stdout", 0, data)
    await store.flush()
    segments = await store.read_output_segments("one", "stdout")
    assert segments == [(0, data[:OUTPUT_HEAD]), (6 * MiB, data[-OUTPUT_TAIL:])]


async def test_a_chunk_sent_again_after_the_cut_changes_nothing(store: Store) -> None:
    data = stream_bytes(11 * MiB, seed=4)
    chunks = ragged_chunks(data, seed=9)
    for offset, chunk in chunks:
        store.append_output("again", "stdout", offset, chunk)
    await store.flush()
    before = await store.read_output_segments("again", "stdout")
    for offset, chunk in chunks[len(chunks) // 2 :]:  # a reconnect re-sends the last half
        store.append_output("again", "stdout", offset, chunk)
    await store.flush()
    assert await store.read_output_segments("again", "stdout") == before


async def test_a_slow_reader_never_stalls_the_writer(store: Store) -> None:
    """The log API re-reading the stored copy, slowly, while 12 MiB stream in: every append
    returns at once and every commit keeps pace; each read is a consistent copy."""
    total = 12 * MiB
    data = stream_bytes(total, seed=6)
    chunks = [(at, data[at : at + 65_536]) for at in range(0, total, 65_536)]
    reads = 0
    done = asyncio.Event()

    async def slow_reader() -> None:
        nonlocal reads
        while not done.is_set():
            segments = await store.read_output_segments("live", "stdout")
            for start, piece in segments:
                assert piece == data[start : start + len(piece)]
            reads += 1
            await asyncio.sleep(0.01)  # a reader that takes its time between pages

    slowest_append = slowest_commit = 0.0
    async with asyncio.timeout(60):
        task = asyncio.create_task(slow_reader())
        for i, (offset, chunk) in enumerate(chunks):
            began = time.perf_counter()
            store.append_output("live", "stdout", offset, chunk)
            slowest_append = max(slowest_append, time.perf_counter() - began)
            if i % 16 == 15:
                began = time.perf_counter()
                await store.flush()
                slowest_commit = max(slowest_commit, time.perf_counter() - began)
        done.set()
        await task
    assert slowest_append < 0.05, f"an append waited {slowest_append:.3f} s"
    assert slowest_commit < 2.0, f"a commit of 1 MiB waited {slowest_commit:.3f} s"
    assert reads >= 1
    view, cut = await store.read_output_view("live", "stdout")
    assert cut and view.endswith(data[-OUTPUT_TAIL:]) and view.startswith(data[:OUTPUT_HEAD])


async def test_streaming_holds_no_whole_stream_in_memory(sqlite_store: SqliteStore) -> None:
    """Three runs streaming 12 MiB each, interleaved: the store holds only what is queued."""
    chunk = stream_bytes(65_536, seed=8)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(12 * 16):
            for run_id in ("a", "b", "c"):
                sqlite_store.append_output(run_id, "stdout", i * 65_536, bytes(chunk))
            if i % 8 == 7:
                await sqlite_store.flush()
        await sqlite_store.flush()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB of Python memory for 36 MiB streamed"
    sizes = await sqlite_store.output_sizes(["a", "b", "c"])
    assert set(sizes.values()) == {12 * MiB}


async def test_contiguous_chunks_queued_together_share_rows(tmp_path: Path) -> None:
    """A backlog of 64 KiB chunks is stored as rows of up to 1 MiB (one statement per row, not
    per chunk); a chunk sent again inside a stored row changes nothing."""
    store = await SqliteStore.open(tmp_path / "x.db")
    writer = asyncio.create_task(store.run_writer())
    await asyncio.sleep(0)
    try:
        data = bytes(range(256)) * 1024 * 12  # 3 MiB
        chunk = 64 * 1024
        for at in range(0, len(data), chunk):
            store.append_output("r1", "stdout", at, data[at : at + chunk])
        await store.flush()
        store.append_output("r1", "stdout", 5 * chunk, data[5 * chunk : 6 * chunk])  # again
        store.append_output("r1", "stdout", 0, data[:10])
        await store.flush()
        assert await store.read_output("r1", "stdout") == data
        with closing(sqlite3.connect(tmp_path / "x.db")) as db:
            (rows,) = db.execute("SELECT COUNT(*) FROM run_output WHERE run_id = 'r1'").fetchone()
        assert rows == 3  # 3 MiB in rows of 1 MiB
    finally:
        store.stop_writer()
        await writer
        await store.close()


async def test_rows_out_of_the_tail_before_they_commit_are_never_written(tmp_path: Path) -> None:
    """A 30 MiB backlog queued at once: the rows that fall out of the last 5 MiB while still
    queued are not written (and then deleted); what is stored is the head and the tail."""
    store = await SqliteStore.open(tmp_path / "x.db")
    writer = asyncio.create_task(store.run_writer())
    await asyncio.sleep(0)
    try:
        data = stream_bytes(30 * MiB, seed=3)
        for at in range(0, len(data), 65_536):
            store.append_output("r1", "stdout", at, data[at : at + 65_536])
        assert store.writer.queued_bytes <= OUTPUT_HEAD + OUTPUT_TAIL + MiB
        await store.flush()
        _, cut = await store.read_output_view("r1", "stdout")
        assert cut
        segments = await store.read_output_segments("r1", "stdout")
        assert segments == [(0, data[:OUTPUT_HEAD]), (len(data) - OUTPUT_TAIL, data[-OUTPUT_TAIL:])]
    finally:
        store.stop_writer()
        await writer
        await store.close()

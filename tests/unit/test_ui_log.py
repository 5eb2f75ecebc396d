"""The log window's text in runs of lines: any pieces, marked or not, come back whole and in
order, never an error (a search for a line end once made a 500)."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from easytask.ui.log_views import StoredCopies, chunks, pieces

TEXT = st.text(alphabet="ab\n\x1b", max_size=200)


@given(st.lists(st.tuples(TEXT, st.booleans()), max_size=30), st.integers(1, 8))
def test_chunks_keep_every_piece_in_order(parts: list[tuple[str, bool]], size: int) -> None:
    runs = chunks(parts, size)
    assert "".join(t for run in runs for t, _ in run) == "".join(t for t, _ in parts)
    marked = [t for t, m in parts if m and t]
    assert [t for run in runs for t, m in run if m] == marked  # a match is never cut


def test_a_search_for_a_line_end_over_many_lines_is_cut_into_runs() -> None:
    data = b"a\n" * 100 + b"b"
    runs = chunks(pieces(data, b"a\n"), 64)
    assert len(runs) >= 2 and "".join(t for run in runs for t, _ in run) == data.decode()


class Outputs:
    """What StoredCopies asks the application: each stream's end and its stored pieces."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], bytes] = {}
        self.loads = 0
        self.loading = 0
        self.most_at_once = 0

    async def output_end(self, run_id: str, stream: str) -> int:
        return len(self.data.get((run_id, stream), b""))

    async def output_segments(self, run_id: str, stream: str) -> list[tuple[int, bytes]]:
        self.loads += 1
        self.loading += 1
        self.most_at_once = max(self.most_at_once, self.loading)
        await asyncio.sleep(0.01)
        self.loading -= 1
        data = self.data.get((run_id, stream), b"")
        return [(0, data)] if data else []


async def test_stored_copies_are_read_once_a_few_at_a_time_and_a_grown_copy_again() -> None:
    app, copies = Outputs(), StoredCopies()
    app.data[("r1", "stdout")] = b"one\n"
    first = await copies.get(app, "r1", "stdout")  # type: ignore[arg-type]
    again = await copies.get(app, "r1", "stdout")  # type: ignore[arg-type]
    assert first is again and app.loads == 1 and first.end == 4
    app.data[("r1", "stdout")] = b"one\ntwo\n"  # the run wrote more
    assert (await copies.get(app, "r1", "stdout")).end == 8 and app.loads == 2  # type: ignore[arg-type]
    assert (await copies.get(app, "r1", "stderr")).end == 0  # type: ignore[arg-type]
    for i in range(40):
        app.data[(f"r{i}", "stdout")] = b"x" * i
    await asyncio.gather(*(copies.get(app, f"r{i}", "stdout") for i in range(40)))  # type: ignore[arg-type]
    assert app.most_at_once <= StoredCopies.LOADS and len(copies._kept) == StoredCopies.KEEP

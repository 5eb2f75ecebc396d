"""The log window's text in runs of lines: any pieces, marked or not, come back whole and in
order, never an error (a search for a line end once made a 500)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from easytask.ui.log_views import chunks, pieces

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

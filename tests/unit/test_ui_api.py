"""The JSON API's pieces that need no server: its request models, pydantic errors turned into
field errors, and output chunks that stay exact across the cut of a stored copy."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError as ModelError

from easytask.ui import api
from easytask.ui import api_models as m


class CutOutput:
    """read_output_from as the stores do it: rows of (offset, data), a cut between them."""

    def __init__(self, rows: list[tuple[int, bytes]]) -> None:
        self.rows = rows

    async def read_output_from(self, run_id: str, stream: str, offset: int) -> tuple[bytes, int]:
        rows = [(s, d) for s, d in self.rows if s + len(d) > offset]
        end = rows[-1][0] + len(rows[-1][1]) if rows else offset
        return b"".join(d[max(0, offset - s) :] for s, d in rows), end


async def read_all(store: CutOutput, limit: int, offset: int = 0) -> tuple[bytes, int]:
    """Every byte from ``offset`` on, ``limit`` at a time, as the output endpoint pages."""
    got = b""
    for _ in range(10_000):
        data, end = await store.read_output_from("r", "stdout", offset)
        if len(data) <= limit:
            return got + data, end
        size = api._char_boundary(data, limit)
        got += data[:size]
        offset = await api._offset_after(store, "r", "stdout", offset, data, size, end)  # type: ignore[arg-type]
    raise AssertionError("no progress")


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 7, 10, 64])
@pytest.mark.parametrize("start", [0, 4, 9, 10, 12, 20, 25])
async def test_paging_across_a_cut_returns_every_stored_byte_once(limit: int, start: int) -> None:
    head, tail = b"0123456789", b"abcdefghij"
    store = CutOutput([(0, head), (20, tail)])  # bytes 10..19 were cut
    got, end = await read_all(store, limit, start)
    expected = (head[start:] if start < 10 else b"") + tail[max(0, start - 20) :]
    assert (got, end) == (expected, 30)


async def test_paging_without_a_cut_never_splits_a_character() -> None:
    text = ("é€𝄞x" * 50).encode()
    store = CutOutput([(0, text)])
    for limit in (4, 5, 6, 7):
        got, end = await read_all(store, limit)
        assert got == text and end == len(text)


def test_event_body_is_strict_and_names_each_field() -> None:
    with pytest.raises(ModelError) as caught:
        m.EventIn.model_validate({"event": "FORCE_RUN_TASK", "tid": "1001", "cmd": "x",
                                  "name": "a\x00"})  # fmt: skip
    errors = {e.field: e.message for e in api.model_errors(caught.value)}
    assert set(errors) == {"tid", "cmd", "name"}
    assert errors["cmd"] == "unknown field" and "NUL" in errors["name"]
    assert m.EventIn.model_validate({"event": "ENABLE_DEBUG"}).tid == 0


@pytest.mark.parametrize(
    ("query", "field"),
    [({"per_page": "501"}, "per_page"), ({"since": "nan"}, "since"), ({"state": "x"}, "state"),
     ({"run_date": "2026-13"}, "run_date"), ({"tid": "-1"}, "tid"), ({"x": "1"}, "x")],
)  # fmt: skip
def test_run_query_refuses_bad_values(query: dict[str, Any], field: str) -> None:
    with pytest.raises(ModelError) as caught:
        m.RunQuery.model_validate(query)
    assert [e.field for e in api.model_errors(caught.value)] == [field]


def test_run_query_normalises() -> None:
    q = m.RunQuery.model_validate({"state": "failed", "run_date": "2026-06-01", "page": "2"})
    assert (q.state, q.run_date, q.page, q.per_page, q.since) == ("FAILED", "20260601", 2, 25, 24)

"""The JSON API's pieces that need no server: its request models, pydantic errors turned into
field errors, and output chunks that stay exact across the cut of a stored copy."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError as ModelError

from easytask.ui import api
from easytask.ui import api_models as m


def read_all(
    parts: tuple[tuple[int, bytes], ...], limit: int, offset: int = 0
) -> tuple[bytes, int]:
    """Every stored byte from ``offset`` on, ``limit`` at a time, as a client of the output
    endpoint pages through it."""
    got = b""
    for _ in range(10_000):
        data, after = api.output_chunk(parts, offset, limit)
        if not data:
            return got, after
        assert len(data) <= limit
        got, offset = got + data, after
    raise AssertionError("no progress")


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 7, 10, 64])
@pytest.mark.parametrize("start", [0, 4, 9, 10, 12, 20, 25])
def test_paging_across_a_cut_returns_every_stored_byte_once(limit: int, start: int) -> None:
    head, tail = b"0123456789", b"abcdefghij"
    got, end = read_all(((0, head), (20, tail)), limit, start)  # bytes 10..19 were cut
    expected = (head[start:] if start < 10 else b"") + tail[max(0, start - 20) :]
    assert (got, end) == (expected, 30)


def test_paging_without_a_cut_never_splits_a_character() -> None:
    text = ("é€𝄞x" * 50).encode()
    for limit in (4, 5, 6, 7):
        got, end = read_all(((0, text),), limit)
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
     ({"run_date": "2026-13"}, "run_date"), ({"tid": "-1"}, "tid"), ({"x": "1"}, "x"),
     ({"run_date": "20261345"}, "run_date"), ({"run_date": "2026-02-30"}, "run_date"),
     ({"from": "20250229"}, "from")],
)  # fmt: skip
def test_run_query_refuses_bad_values(query: dict[str, Any], field: str) -> None:
    with pytest.raises(ModelError) as caught:
        m.RunQuery.model_validate(query)
    assert [e.field for e in api.model_errors(caught.value)] == [field]


def test_run_query_normalises() -> None:
    q = m.RunQuery.model_validate({"state": "failed", "run_date": "2026-06-01", "page": "2"})
    assert (q.state, q.run_date, q.page, q.per_page, q.since) == ("FAILED", "20260601", 2, 25, 24)

"""Run dates are real calendar dates in either written form (spec 8, 10; issue 11)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from easytask.core.errors import ValidationError
from easytask.core.rundate import parse_run_date


@pytest.mark.parametrize(
    ("text", "expected"),
    [("20260512", "20260512"), ("2026-05-12", "20260512"), ("20240229", "20240229"),
     ("2024-02-29", "20240229"), ("00010101", "00010101")],
)  # fmt: skip
def test_both_forms_of_a_real_date_give_yyyymmdd(text: str, expected: str) -> None:
    assert parse_run_date(text) == expected


@pytest.mark.parametrize(
    "text",
    ["20261345", "2026-13-45", "20260230", "2025-02-29", "20260000", "00000101", "2026-0512",
     "202605-12", "2026512", "2026-5-12", "", " 20260512", "2026/05/12", "２０２６０５１２"],
)  # fmt: skip
def test_anything_else_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_run_date(text)
    assert [e.field for e in info.value.errors] == ["run_date"]
    assert info.value.errors[0].message.startswith("run_date must be a calendar date")


def test_the_refusal_names_the_field_it_is_given() -> None:
    with pytest.raises(ValidationError, match=r"^date: date must be"):
        parse_run_date("2026-02-30", "date")


@given(st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)))
def test_every_calendar_day_round_trips_in_both_forms(day: date) -> None:
    compact = f"{day.year:04d}{day.month:02d}{day.day:02d}"
    assert parse_run_date(compact) == compact
    assert parse_run_date(f"{day.year:04d}-{day.month:02d}-{day.day:02d}") == compact


@given(st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 1)))
def test_the_day_after_a_month_end_is_refused(day: date) -> None:
    last = (day.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    with pytest.raises(ValidationError):
        parse_run_date(f"{last.year:04d}{last.month:02d}{last.day + 1:02d}")

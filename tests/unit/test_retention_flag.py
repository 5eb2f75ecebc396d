"""easytask-scheduler --retention-days: the default, 0 = forever, refusals naming the flag."""

from __future__ import annotations

import pytest

from easytask.scheduler.main import parse_args
from easytask.scheduler.retention import DEFAULT_RETENTION_DAYS, MAX_RETENTION_DAYS


def test_the_default_is_30_days_and_0_keeps_forever() -> None:
    assert DEFAULT_RETENTION_DAYS == 30
    assert parse_args([]).retention_days == 30
    assert parse_args(["--retention-days", "0"]).retention_days == 0
    assert parse_args(["--retention-days", "7"]).retention_days == 7
    assert (
        parse_args([f"--retention-days={MAX_RETENTION_DAYS}"]).retention_days == MAX_RETENTION_DAYS
    )


@pytest.mark.parametrize("value", ["-1", "1.5", "week", "", str(MAX_RETENTION_DAYS + 1)])
def test_a_bad_value_is_refused_naming_the_flag(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args([f"--retention-days={value}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --retention-days: must be a whole number of days from 0 (keep forever)" in err
    assert repr(value) in err

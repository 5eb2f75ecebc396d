"""easytask-agentd settings: --max-runs / EASYTASK_MAX_RUNS parsed and validated."""

from __future__ import annotations

from pathlib import Path

import pytest

from easytask.agentd.config import load_config
from easytask.agentd.sysinfo import disk_mb


def config_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["--home", str(tmp_path), "--token", "etg_x", *extra]


@pytest.mark.parametrize(
    ("extra", "env", "expected"),
    [
        ((), {}, 0),
        (("--max-runs", "5"), {}, 5),
        (("--max-runs=0",), {}, 0),
        ((), {"EASYTASK_MAX_RUNS": "7"}, 7),
        ((), {"EASYTASK_MAX_RUNS": ""}, 0),
        (("--max-runs", "2"), {"EASYTASK_MAX_RUNS": "7"}, 2),  # the flag wins
    ],
)
def test_max_runs_from_flag_or_environment(
    tmp_path: Path, extra: tuple[str, ...], env: dict[str, str], expected: int
) -> None:
    assert load_config(config_args(tmp_path, *extra), env).max_runs == expected


@pytest.mark.parametrize(
    ("extra", "env", "message"),
    [
        (("--max-runs", "-1"), {}, "--max-runs must be >= 0 (0 for no cap), not -1"),
        (("--max-runs", "many"), {}, "argument --max-runs: invalid int value: 'many'"),
        ((), {"EASYTASK_MAX_RUNS": "-3"}, "EASYTASK_MAX_RUNS must be >= 0, not -3"),
        ((), {"EASYTASK_MAX_RUNS": "x"}, "EASYTASK_MAX_RUNS must be a whole number >= 0, not 'x'"),
    ],
)
def test_a_bad_max_runs_is_a_usage_error_naming_its_source(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: tuple[str, ...],
    env: dict[str, str],
    message: str,
) -> None:
    with pytest.raises(SystemExit) as exc:
        load_config(config_args(tmp_path, *extra), env)
    assert exc.value.code == 2
    assert f"error: {message}" in capsys.readouterr().err


def test_disk_mb_of_a_real_and_a_missing_path(tmp_path: Path) -> None:
    total, free = disk_mb(tmp_path)
    assert total > 0 and 0 <= free <= total
    assert disk_mb(tmp_path / "missing") == (0, 0)

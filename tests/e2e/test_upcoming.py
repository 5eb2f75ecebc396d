"""`easytaskctl scheduler upcoming` around a DST change and a holiday (real processes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.harness import Cluster, task_json

pytestmark = pytest.mark.e2e


def create(cluster: Cluster, tmp_path: Path, task: dict[str, object]) -> None:
    path = tmp_path / f"{task['tid']}.json"
    path.write_text(json.dumps(task))
    cluster.ctl("tasks", "create", "-f", str(path))


def test_upcoming_marks_dst_shifts_and_holidays(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler()
    create(cluster, tmp_path, task_json(4001, "nightly", "q1", "true", tmp_path,
                                        timezone="US/Eastern", trigger_times="02:30"))  # fmt: skip
    create(cluster, tmp_path, task_json(4002, "payroll", "q1", "true", tmp_path,
                                        timezone="US/Eastern", trigger_times="09:00",
                                        calendar="US_HOLIDAYS"))  # fmt: skip

    res = cluster.ctl("scheduler", "upcoming", "--task", "4001", "--from", "2027-03-13",
                      "--to", "2027-03-15", "-o", "json")  # fmt: skip
    rows = [(r["next_run_utc"], r["local_run"], r["note"]) for r in json.loads(res.stdout)]
    assert rows == [
        ("2027-03-13T07:30:00.000Z", "2027-03-13 02:30", ""),
        # 2027-03-14 02:30 does not exist in New York: it fires at 03:00 EDT.
        ("2027-03-14T07:00:00.000Z", "2027-03-14 02:30", "DST: 02:30 → 03:00"),
        ("2027-03-15T06:30:00.000Z", "2027-03-15 02:30", ""),
    ]
    # Fall back: 01:30 happens twice on 2027-11-07; the run fires once, at the first one.
    create(cluster, tmp_path, task_json(4003, "twice", "q1", "true", tmp_path,
                                        timezone="US/Eastern", trigger_times="01:30"))  # fmt: skip
    res = cluster.ctl("scheduler", "upcoming", "--task", "4003", "--from", "2027-11-07",
                      "--to", "2027-11-07", "-o", "json")  # fmt: skip
    assert [r["next_run_utc"] for r in json.loads(res.stdout)] == ["2027-11-07T05:30:00.000Z"]

    res = cluster.ctl("scheduler", "upcoming", "--task", "4002", "--from", "2027-07-02",
                      "--to", "2027-07-06")  # fmt: skip
    table = res.stdout
    assert "holiday in calendar US_HOLIDAYS: Independence Day (observed)" in table
    lines = [line for line in table.splitlines() if "payroll" in line]
    assert [line.split()[5] for line in lines] == ["09:00"] * 5
    holidays = [(line.split()[4], line.split("holiday in calendar ")[1].strip())
                for line in lines if "holiday" in line]  # fmt: skip
    assert holidays == [
        ("2027-07-04", "US_HOLIDAYS: Independence Day"),
        ("2027-07-05", "US_HOLIDAYS: Independence Day (observed)"),
    ]

"""Holiday calendars with real processes: every `calendars` command's output, a holiday that
skips a real occurrence, and entries that survive a scheduler restart."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.e2e.harness import Cluster, task_json, wait_until

pytestmark = pytest.mark.e2e

DAY = datetime(2027, 4, 7, tzinfo=UTC)  # a Wednesday
CAL = "Ops freeze"


def offset_to(hh: int, mm: int, ss: int = 0) -> str:
    target = DAY.replace(hour=hh, minute=mm, second=ss)
    return f"{target.timestamp() - time.time():.3f}"


def out(cluster: Cluster, *args: str) -> list[str]:
    return cluster.ctl(*args).stdout.splitlines()


def fails(cluster: Cluster, *args: str) -> str:
    res = cluster.ctl(*args, check=False)
    assert res.returncode == 1, res
    return res.stderr


def test_calendar_commands_and_a_holiday_skipping_a_real_slot(
    cluster: Cluster, tmp_path: Path
) -> None:
    # 20 s before 10:00 UTC: time to create the calendar, its entry and the task.
    cluster.start_scheduler("--clock-offset", offset_to(9, 59, 40))
    assert out(cluster, "calendars", "create", CAL, "-d", "change freezes") == [
        f"Calendar created: {CAL}"
    ]
    assert out(cluster, "calendars", "add-holiday", CAL, "--date", "2027-04-06",
               "--to", "2027-04-08", "--reason", "release freeze") == [
        f"Holiday added to {CAL}: 2027-04-06..2027-04-08 (release freeze) [id 1]"
    ]  # fmt: skip
    task = task_json(1001, "nightly", "q1", "true", tmp_path, trigger_times="10:00", calendar=CAL)
    (tmp_path / "t.json").write_text(json.dumps(task))
    cluster.ctl("tasks", "create", "-f", str(tmp_path / "t.json"))

    runs = wait_until("the 10:00 slot", lambda: cluster.runs(1001), timeout=40)
    assert [(r.run_date, r.state, r.reason) for r in runs] == [
        ("20270407", "SKIPPED", f"holiday in calendar {CAL}: release freeze")
    ]

    assert out(cluster, "calendars", "add-holiday", CAL, "--date", "2027-12-24",
               "--reason", "Christmas Eve") == [
        f"Holiday added to {CAL}: 2027-12-24 (Christmas Eve) [id 2]"
    ]  # fmt: skip
    table = "\n".join(out(cluster, "calendars", "list"))
    for word in ("Name", "Kind", "Entries", "Description", CAL, "user", "change freezes"):
        assert word in table
    assert table.endswith("Page 1 of 1 (1 total items)")
    listed = json.loads(cluster.ctl("calendars", "list", "-o", "json").stdout)
    assert [(c["name"], c["kind"], c["entries"]) for c in listed] == [(CAL, "user", 2)]

    got = json.loads(cluster.ctl("calendars", "get", CAL, "-o", "json").stdout)
    assert [(h["start_date"], h["end_date"], h["reason"], h["source"], h["id"])
            for h in got["holidays"]] == [
        ("2027-04-06", "2027-04-08", "release freeze", "user", 1),
        ("2027-12-24", "2027-12-24", "Christmas Eve", "user", 2),
    ]  # fmt: skip
    assert (
        '  - id: 2\n    start_date: "2027-12-24"\n'
        in cluster.ctl("calendars", "get", CAL, "-o", "yaml").stdout
    )
    table = "\n".join(out(cluster, "calendars", "get", CAL))
    for word in ("From", "To", "Reason", "Source", "ID", "2027-04-08", "Christmas Eve"):
        assert word in table

    assert out(cluster, "calendars", "add-holiday", "US_HOLIDAYS", "--date", "2027-11-26",
               "--reason", "day after Thanksgiving") == [
        "Holiday added to US_HOLIDAYS: 2027-11-26 (day after Thanksgiving) [id 3]"
    ]  # fmt: skip
    us = json.loads(cluster.ctl("calendars", "get", "US_HOLIDAYS", "--year", "2027",
                                "-o", "json").stdout)  # fmt: skip
    rows = [(h["start_date"], h["source"], h["id"]) for h in us["holidays"]]
    assert ("2027-11-25", "builtin", None) in rows and ("2027-11-26", "user", 3) in rows
    every = json.loads(
        cluster.ctl("calendars", "list", "--builtin", "--per-page", "1000", "-o", "json").stdout
    )
    names = [c["name"] for c in every]
    assert names[0] == CAL and {"GB_HOLIDAYS", "US_HOLIDAYS"} <= set(names)

    assert fails(cluster, "calendars", "delete", CAL) == (
        "Error: calendar is referenced by 1 tasks/groups (nightly)\n"
    )
    assert fails(cluster, "calendars", "create", "XX_HOLIDAYS") == (
        "Error: validation failed\n"
        "  name: names of the form <CODE>_HOLIDAYS are reserved for built-in calendars\n"
    )
    assert fails(cluster, "calendars", "get", "Nope") == "Error: calendar Nope not found\n"
    bad = task_json(1002, "other", "q1", "true", tmp_path, calendar="Nope")
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    assert "  calendar: calendar does not exist\n" in fails(
        cluster, "tasks", "create", "-f", str(tmp_path / "bad.json")
    )

    assert out(cluster, "calendars", "remove-holiday", CAL, "--entry", "2") == [
        f"Holiday 2 removed from {CAL}"
    ]
    assert out(cluster, "calendars", "delete", CAL, "--entry", "1") == [
        f"Holiday 1 removed from {CAL}"
    ]
    assert out(cluster, "events", "refresh-calendar") == ["Holiday calendars refreshed."]

    # Entries live in the store: a restarted scheduler has them, and ids are never reused.
    assert cluster.scheduler is not None
    cluster.scheduler.stop()
    cluster.start_scheduler("--clock-offset", offset_to(10, 5))
    us = json.loads(cluster.ctl("calendars", "get", "US_HOLIDAYS", "--year", "2027",
                                "-o", "json").stdout)  # fmt: skip
    assert [(h["id"], h["reason"]) for h in us["holidays"] if h["source"] == "user"] == [
        (3, "day after Thanksgiving")
    ]
    assert out(cluster, "calendars", "add-holiday", CAL, "--date", "2027-05-01",
               "--reason", "May Day") == [
        f"Holiday added to {CAL}: 2027-05-01 (May Day) [id 4]"
    ]  # fmt: skip
    assert out(cluster, "tasks", "delete", "1001") == ["Task deleted: nightly (tid 1001)"]
    assert out(cluster, "calendars", "delete", CAL) == [f"Calendar deleted: {CAL}"]
    assert json.loads(cluster.ctl("calendars", "list", "-o", "json").stdout) == [
        {"name": "US_HOLIDAYS", "kind": "builtin", "entries": 1,
         "description": "US public holidays (observed days included)",
         "created_by": None, "created_at": None},
    ]  # fmt: skip

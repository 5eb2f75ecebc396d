"""`tasks import` and `-f FILE` through the CLI against a real scheduler (spec 12; issue 11)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Cluster, task_json

pytestmark = pytest.mark.e2e


def write(path: Path, data: Any) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def names(cluster: Cluster) -> list[str]:
    exported = json.loads(cluster.ctl("tasks", "export").stdout)
    return [t["name"] for t in exported["tasks"]]


def test_import_applies_each_valid_record_and_lists_each_invalid_one(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.start_scheduler()
    cluster.ctl("tasks", "create", "-f", write(tmp_path / "a.json",
                task_json(2001, "absent", "q1", "true", tmp_path)))  # fmt: skip
    data = {"tasks": [task_json(2002, "good", "q1", "true", tmp_path),
                      task_json(2003, "bad", "q1", "true", tmp_path, trigger_times="25:00"),
                      task_json(2004, "also_good", "q1", "true", tmp_path)]}  # fmt: skip
    res = cluster.ctl("tasks", "import", write(tmp_path / "i.json", data), check=False)
    assert res.returncode == 1, "any error gives a non-zero exit"
    assert res.stdout.splitlines() == [
        "Import complete: 2 created, 0 updated, 0 unchanged, 0 deleted",
        "Errors:",
        '- Task "bad": trigger_times: Bad entry in Trigger Times field',
    ]
    # Applied record by record; "absent" is kept because a record failed.
    assert names(cluster) == ["absent", "good", "also_good"]

    # Once nothing fails, the file is the whole truth.
    data["tasks"] = [data["tasks"][0]]
    res = cluster.ctl("tasks", "import", write(tmp_path / "i.json", data))
    assert res.stdout == "Import complete: 0 created, 0 updated, 1 unchanged, 2 deleted\n"
    assert names(cluster) == ["good"]


def test_reimporting_an_export_updates_nothing(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler()
    for tid, name in ((2101, "one"), (2102, "two")):
        cluster.ctl("tasks", "create", "-f", write(tmp_path / f"{tid}.json",
                    task_json(tid, name, "q1", "true", tmp_path)))  # fmt: skip
    cluster.ctl("tasks", "export", "-f", str(tmp_path / "export.json"))
    res = cluster.ctl("tasks", "import", str(tmp_path / "export.json"))
    assert res.stdout.startswith("Import complete: 0 created, 0 updated, ")


def test_reimporting_an_export_counts_records_unchanged(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler()
    cluster.ctl("tasks", "create", "-f", write(tmp_path / "t.json",
                task_json(2201, "one", "q1", "true", tmp_path)))  # fmt: skip
    cluster.ctl("tasks", "export", "-f", str(tmp_path / "export.json"))
    res = cluster.ctl("tasks", "import", str(tmp_path / "export.json"))
    assert res.stdout == "Import complete: 0 created, 0 updated, 1 unchanged, 0 deleted\n"


def test_atomic_import_applies_nothing_when_a_record_fails(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.start_scheduler()
    bad = task_json(2302, "bad", "q1", "true", tmp_path, trigger_times="25:00")
    data = {"tasks": [task_json(2301, "good", "q1", "true", tmp_path), bad]}
    res = cluster.ctl("tasks", "import", "--atomic", write(tmp_path / "i.json", data),
                      check=False)  # fmt: skip
    assert res.returncode == 1
    assert res.stdout.splitlines()[0] == (
        "Import complete: 0 created, 0 updated, 0 unchanged, 0 deleted"
    )
    assert names(cluster) == []


def test_an_unknown_top_level_key_is_refused_naming_it(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler()
    data = {"tasks": [task_json(2401, "good", "q1", "true", tmp_path)], "taskz": []}
    res = cluster.ctl("tasks", "import", write(tmp_path / "i.json", data), check=False)
    assert res.returncode == 1
    assert "  taskz: unknown field" in res.stderr
    assert names(cluster) == []


def test_a_missing_or_malformed_file_is_a_usage_error(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    array = tmp_path / "array.json"
    array.write_text("[1, 2]")
    missing = str(tmp_path / "missing.json")
    for path in (str(bad), str(array), missing):
        for args in (
            ("tasks", "create", "-f", path),
            ("tasks", "update", "1001", "-f", path),
            ("groups", "create", "-f", path),
            ("groups", "update", "1", "-f", path),
            ("admin", "users", "create", "-f", path),
            ("admin", "users", "update", "someone", "-f", path),
            ("tasks", "import", path),
        ):
            res = cluster.ctl(*args, check=False)
            assert res.returncode == 2, (args, res.stdout, res.stderr)
            assert res.stderr.startswith(f"Error: {'cannot read ' if path == missing else ''}")
            assert path in res.stderr and res.stdout == ""

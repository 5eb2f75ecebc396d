"""Every stored run's timeline is monotonic, through real processes (spec 8; issue 11):
triggered <= dispatched <= acked <= started <= ended."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.e2e.harness import Cluster, task_json

pytestmark = pytest.mark.e2e

STEPS = ("triggered_at", "dispatched_at", "acked_at", "started_at", "ended_at")


def test_every_run_records_its_steps_in_order(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler()
    cluster.start_agent("agent-a", "q1")
    for tid, cmd in ((6001, "true"), (6002, "echo out; exit 3"), (6003, "sleep 0.2")):
        path = tmp_path / f"{tid}.json"
        path.write_text(json.dumps(task_json(tid, f"t{tid}", "q1", cmd, tmp_path)))
        cluster.ctl("tasks", "create", "-f", str(path))
    run_ids = []
    for _ in range(4):
        for tid in (6001, 6002, 6003):
            out = cluster.ctl("events", "force-run", str(tid)).stdout
            match = re.search(r"Run ID: (\S+)", out)
            assert match
            run_ids.append(match.group(1))
    for run_id in run_ids:
        cluster.wait_final(run_id)
    runs = json.loads(
        cluster.ctl("scheduler", "task-runs", "--per-page", "100", "-o", "json").stdout
    )
    assert len(runs) == len(run_ids)
    for run in runs:
        stamps = [run[step] for step in STEPS]
        assert all(stamps), (run["run_id"], stamps)
        assert stamps == sorted(stamps), (run["run_id"], dict(zip(STEPS, stamps, strict=True)))
        assert run["duration"] >= 0

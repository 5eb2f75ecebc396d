"""Agents as an operator sees and controls them (spec 12 `agents`, issue 12): the panel with
resources and ONLINE/OFFLINE history, one live agent per name, the concurrency cap."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from easytask.rpc.v1 import api_pb2 as pb
from tests.e2e.harness import Cluster, task_json, wait_until
from tests.e2e.test_flow import force_run

pytestmark = pytest.mark.e2e


def agent(cluster: Cluster, name: str) -> dict[str, Any]:
    got: dict[str, Any] = json.loads(cluster.ctl("agents", "get", name, "-o", "json").stdout)
    return got


def test_agents_get_shows_resources_and_each_status_change(cluster: Cluster) -> None:
    cluster.start_scheduler()
    first = cluster.start_agent("a1", "q1", "--max-runs", "2")
    shown = agent(cluster, "a1")
    assert (shown["status"], shown["pid"], shown["max_runs"]) == ("online", first.pid, 2)
    assert shown["cpu_cores"] >= 1 and shown["memory_mb"] > 0
    assert 0 < shown["disk_free_mb"] <= shown["disk_total_mb"]
    panel = cluster.ctl("agents", "get", "a1").stdout
    for label in ("PID", "CPU Cores", "Memory MB", "Disk", "Max Runs", "Connected Since",
                  "Running Run IDs", "Status Changes"):  # fmt: skip
        assert label in panel, panel
    assert "MB free of" in panel and "ONLINE " in panel

    cluster.agents.pop("a1").stop()
    wait_until("a1 offline", lambda: agent(cluster, "a1")["status"] == "offline")
    cluster.start_agent("a1", "q1")
    changes = agent(cluster, "a1")["changes"]
    assert [c["status"] for c in changes] == ["ONLINE", "OFFLINE", "ONLINE"]
    times = [datetime.fromisoformat(c["at"].replace("Z", "+00:00")) for c in changes]
    assert times == sorted(times, reverse=True)  # newest first, each with its time
    assert changes[1]["reason"] == "stream closed"

    res = cluster.ctl("agents", "get", "ghost", check=False)
    assert (res.returncode, res.stderr.strip()) == (1, "Error: agent 'ghost' not found")


def test_a_second_agent_claiming_a_live_name_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler()
    first = cluster.start_agent("a1", "q1")
    impostor = cluster.start_agent_process("a1", "q1", home=tmp_path / "other-home")
    message = "agent name 'a1' is already connected from host"
    wait_until("the refusal in the second agent's log", lambda: message in impostor.output())
    assert "give this agent another --name" in impostor.output()
    assert agent(cluster, "a1")["pid"] == first.pid  # the first keeps the name
    (tmp_path / "t.json").write_text(json.dumps(task_json(1001, "t", "q1", "echo hi", tmp_path)))
    cluster.ctl("tasks", "create", "-f", str(tmp_path / "t.json"))
    run = cluster.wait_final(force_run(cluster, 1001))
    assert (run.state, run.agent, run.pid > 0) == ("SUCCESS", "a1", True)
    impostor.stop()


def test_the_scheduler_never_offers_more_than_max_runs(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler()
    cluster.start_agent("a1", "q1", "--max-runs", "2")
    tids = list(range(1001, 1009))
    for tid in tids:
        path = tmp_path / f"{tid}.json"
        path.write_text(json.dumps(task_json(tid, f"t{tid}", "q1", "sleep 1", tmp_path)))
        cluster.ctl("tasks", "create", "-f", str(path))
    api, md = cluster.api(), cluster.metadata()
    run_ids = [
        api.ForceRun(pb.ForceRunRequest(ref=pb.TaskRef(tid=tid)), metadata=md).run_id
        for tid in tids
    ]  # all due at once: the burst
    runs = [cluster.wait_final(r) for r in run_ids]
    assert all(r.state == "SUCCESS" for r in runs)
    # Starts and ends on one timeline: never more than two at once, and two at some point.
    edges = sorted(
        [(_ms(r.started_at), 1) for r in runs] + [(_ms(r.ended_at), -1) for r in runs]
    )  # an end sorts before a start at the same instant
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert peak == 2
    offered = cluster.api().ListAgents(pb.ListAgentsRequest(), metadata=cluster.metadata())
    assert [a.max_runs for a in offered.agents] == [2]


def _ms(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()

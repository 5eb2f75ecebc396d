"""Ad-hoc commands end to end (spec 10 ADHOC, spec 12 `events adhoc`): real scheduler, real
agents, the CLI as an operator types it."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Cluster, wait_until

pytestmark = pytest.mark.e2e

TAIL = 64 * 1024


def adhoc(cluster: Cluster, *args: str, check: bool = True) -> Any:
    return cluster.ctl("events", "adhoc", *args, check=check)


def latest_adhoc(cluster: Cluster) -> dict[str, Any]:
    listed = json.loads(cluster.ctl("events", "list", "--event-name", "ADHOC", "-o", "json").stdout)
    newest = max(listed, key=lambda e: e["id"])
    got: dict[str, Any] = json.loads(
        cluster.ctl("events", "get", str(newest["id"]), "-o", "json").stdout
    )
    return got


def test_one_command_on_two_agents_brings_both_outputs_back(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.start_scheduler()
    # Two agents on one machine: each writes its own file (`${E:…}` is the agent's environment),
    # as two hosts would with the default /tmp/adhoc.out.
    for name, queue in (("a1", "q1"), ("a2", "q2")):
        cluster.env["AGENT_TAG"] = name
        cluster.start_agent(name, queue)
    out = str(tmp_path / "adhoc-${E:AGENT_TAG}.out")
    err = str(tmp_path / "adhoc-${E:AGENT_TAG}.err")
    cmd = 'echo "out $EASYTASK_RUN_ID"; echo warn >&2'
    res = adhoc(cluster, "-n", "hello", "-c", cmd, "--agents", "a1,a2", "--wait",
                "--stdout", out, "--stderr", err)  # fmt: skip
    lines = res.stdout.splitlines()
    assert lines[:2] == ["Adhoc command 'hello' submitted.", "Agent(s): a1,a2"]
    assert len(re.findall(r"· SUCCESS · return code 0", res.stdout)) == 2
    for name in ("a1", "a2"):
        assert f"{name} (" in res.stdout and f"{name} stderr" in res.stdout
    event = latest_adhoc(cluster)
    assert (event["status"], event["target"], event["published_by"]) == (
        "SUCCESS", "agents a1,a2", "easytask_superuser"
    )  # fmt: skip
    assert event["args"]["cmd"] == cmd and event["args"]["max_run_time"] == 3600
    assert event["args"]["stdout"] == out
    results = event["results"]
    assert [r["agent"] for r in results] == ["a1", "a2"]
    for i, r in enumerate(results):
        run_id = f"default:adhoc-{event['id']}-{i}"
        assert (r["run_id"], r["state"], r["return_code"]) == (run_id, "SUCCESS", 0)
        assert r["stdout"] == f"out {run_id}\n" and r["stderr"] == "warn\n"
        assert r["started_at"] and r["ended_at"] and r["ended_at"] >= r["started_at"]
    assert (tmp_path / "adhoc-a2.out").read_text() == f"out default:adhoc-{event['id']}-1\n"


def test_a_failing_command_on_a_queue_reports_its_code_and_exits_1(cluster: Cluster) -> None:
    cluster.start_scheduler()
    cluster.start_agent("a1", "q1")
    cluster.start_agent("a2", "q2,shared")
    res = adhoc(cluster, "-n", "boom", "-c", "echo partial; exit 3", "-q", "shared", "--wait",
                check=False)  # fmt: skip
    assert res.returncode == 1, res.stderr
    assert res.stdout.splitlines()[:2] == ["Adhoc command 'boom' submitted.", "Queue(s): shared"]
    assert "a2 (" in res.stdout and "FAILED (exit code 3) · return code 3" in res.stdout
    assert "a1 (" not in res.stdout
    event = latest_adhoc(cluster)
    defaults = ("/tmp/adhoc.out", "/tmp/adhoc.err")  # spec 10
    assert (event["args"]["stdout"], event["args"]["stderr"]) == defaults
    (result,) = event["results"]
    assert (result["agent"], result["state"], result["return_code"]) == ("a2", "FAILED", 3)
    assert result["stdout"] == "partial\n"


def test_a_selection_matching_no_connected_agent_is_refused_naming_it(cluster: Cluster) -> None:
    cluster.start_scheduler()
    cluster.start_agent("a1", "q1")
    cases = [
        (("--agents", "a1,ghost"), "agent(s) not connected: ghost"),
        (("-q", "nowhere"), "no connected agent serves queue(s) nowhere"),
    ]
    for selection, message in cases:
        res = adhoc(cluster, "-n", "x", "-c", "true", *selection, check=False)
        assert (res.returncode, res.stdout) == (1, ""), res
        assert res.stderr.strip() == f"Error: {message}"
    res = adhoc(cluster, "-n", "bad name", "-c", "", "--all", check=False)
    assert res.returncode == 1
    assert "name must be 1-128 letters" in res.stderr and "cmd is required" in res.stderr
    res = adhoc(cluster, "-n", "x", "-c", "true", check=False)  # no selection: usage
    assert res.returncode == 2 and "one of the arguments -q/--queues --agents --all" in res.stderr
    refusals = json.loads(
        cluster.ctl("events", "list", "--event-name", "ADHOC", "--status", "FAILURE", "-o",
                    "json").stdout
    )  # fmt: skip
    assert len(refusals) == 3  # every refusal the scheduler saw is recorded


def test_only_the_last_64_kib_of_each_stream_is_kept(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler()
    cluster.start_agent("a1", "q1")
    cmd = "head -c 300000 /dev/zero | tr '\\0' a; echo END"
    adhoc(cluster, "-n", "big", "-c", cmd, "--all", "--wait", "--stdout", str(tmp_path / "o"))
    (result,) = latest_adhoc(cluster)["results"]
    assert len(result["stdout"]) == TAIL and result["stdout"].endswith("aEND\n")
    assert result["stdout_cut"] is True and result["stderr_cut"] is False


def test_an_execution_survives_a_scheduler_killed_while_it_runs(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.start_scheduler()
    cluster.start_agent("a1", "q1")
    cmd = "echo early; sleep 3; echo late"
    res = adhoc(cluster, "-n", "slow", "-c", cmd, "--agents", "a1", "--stdout", str(tmp_path / "o"))
    assert res.stdout.splitlines() == ["Adhoc command 'slow' submitted.", "Agent(s): a1"]
    wait_until(
        "the command to run", lambda: latest_adhoc(cluster)["results"][0]["state"] == "RUNNING"
    )
    assert cluster.scheduler is not None
    cluster.scheduler.kill(signal.SIGKILL)
    cluster.start_scheduler()

    def final() -> dict[str, Any] | None:
        (r,) = latest_adhoc(cluster)["results"]
        return r if r["state"] in ("SUCCESS", "FAILED", "TERMINATED") else None

    result = wait_until("the result after the restart", final)
    assert (result["state"], result["return_code"]) == ("SUCCESS", 0)
    assert result["stdout"] == "early\nlate\n"  # re-sent by the agent from its file

"""The restart action end to end: a real scheduler asks a real agent to restart mid-run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from easytask.rpc.v1 import api_pb2 as pb
from tests.e2e.harness import Cluster, task_json, wait_until
from tests.e2e.test_flow import force_run

pytestmark = pytest.mark.e2e


def stored_stdout(cluster: Cluster, run_id: str) -> list[str]:
    logs = cluster.api().GetRunLogs(
        pb.RunLogsRequest(run_id=run_id, stream=pb.STDOUT_ONLY), metadata=cluster.metadata()
    )
    return list(logs.stdout.lines)


def test_restart_action_keeps_the_running_command_and_serves_new_runs(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.start_scheduler()
    agent = cluster.start_agent("a1", "q-restart")
    for tid, name, cmd in ((1001, "long", "sleep 3; echo done"), (1002, "after", "echo again")):
        (tmp_path / f"{name}.json").write_text(
            json.dumps(task_json(tid, name, "q-restart", cmd, tmp_path))
        )
        cluster.ctl("tasks", "create", "-f", str(tmp_path / f"{name}.json"))
    run_id = force_run(cluster, 1001)
    cluster.wait_state(run_id, {"RUNNING"})

    res = cluster.ctl("agents", "restart", "a1")
    assert res.stdout == "Restart action sent to agent 'a1'.\n"
    wait_until("the agent to re-execute", lambda: "re-executing itself" in agent.output())
    wait_until("the agent to reconnect", lambda: cluster.agent_online("a1"))

    run = cluster.wait_final(run_id)
    assert (run.state, run.return_code) == ("SUCCESS", 0)
    assert stored_stdout(cluster, run_id) == ["done"]
    assert [r.run_id for r in cluster.runs(1001)] == [run_id]  # one run, one attempt
    assert agent.alive()  # the same process, a new image
    second = cluster.wait_final(force_run(cluster, 1002))
    assert second.state == "SUCCESS"
    assert "restart requested by easytask_superuser" in agent.output()


def test_restart_of_an_agent_not_connected_is_refused(cluster: Cluster) -> None:
    cluster.start_scheduler()
    cluster.start_agent("a1", "q1")
    cluster.agents.pop("a1").stop()
    wait_until("the agent to be offline", lambda: not cluster.agent_online("a1"))
    for name, message in (
        ("a1", "agent 'a1' is not connected"),
        ("ghost", "agent 'ghost' not found"),
    ):
        res = cluster.ctl("agents", "restart", name, check=False)
        assert (res.returncode, res.stderr.strip()) == (1, f"Error: {message}")

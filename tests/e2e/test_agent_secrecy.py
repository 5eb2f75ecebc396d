"""A command cannot read its agent's token: not from the agent's /proc environ, nor its cmdline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from easytask.rpc.v1 import api_pb2 as pb
from tests.e2e.harness import BIN, Cluster, Proc, task_json, wait_until
from tests.e2e.test_flow import force_run

pytestmark = pytest.mark.e2e

# $PPID of `bash -c` is the process that spawned it: the agent itself.
SNOOP = "echo ppid=$PPID; cat /proc/$PPID/environ /proc/$PPID/cmdline | tr '\\0' '\\n'"


def start_agent_with_env_token(cluster: Cluster, name: str, queues: str) -> Proc:
    """Like ``Cluster.start_agent`` but the token comes from ``EASYTASK_TOKEN``, not --token."""
    argv = [
        str(BIN / "easytask-agentd"),
        "--server", cluster.server,
        "--home", str(cluster.home / "agents" / name),
        "--name", name,
        "--queues", queues,
        "--kill-grace", "1",
    ]  # fmt: skip
    env = {**cluster.env, "EASYTASK_TOKEN": cluster.credentials()["agent_token"]}
    proc = Proc(argv, cluster.home / "test-logs" / f"agent-{name}.out", env).start()
    cluster.agents[name] = proc
    wait_until(f"agent {name} to connect", lambda: cluster.agent_online(name), timeout=90)
    return proc


def snooped_output(cluster: Cluster, tmp_path: Path, queue: str) -> str:
    task = task_json(1001, "snoop", queue, SNOOP, tmp_path)
    (tmp_path / "snoop.json").write_text(json.dumps(task))
    cluster.ctl("tasks", "create", "-f", str(tmp_path / "snoop.json"))
    run = cluster.wait_final(force_run(cluster, 1001))
    assert (run.state, run.return_code) == ("SUCCESS", 0), run
    logs = cluster.api().GetRunLogs(
        pb.RunLogsRequest(run_id=run.run_id, stream=pb.STDOUT_ONLY, per_page=100_000),
        metadata=cluster.metadata(),
    )
    return "\n".join(logs.stdout.lines)


@pytest.mark.parametrize("source", ["flag", "env"])
def test_a_command_cannot_read_the_agent_token_from_proc(
    cluster: Cluster, tmp_path: Path, source: str
) -> None:
    cluster.start_scheduler()
    token = cluster.credentials()["agent_token"]
    if source == "flag":
        agent = cluster.start_agent("snooped", "q-snoop")  # --token=<token> on its command line
    else:
        agent = start_agent_with_env_token(cluster, "snooped", "q-snoop")
    out = snooped_output(cluster, tmp_path, "q-snoop")
    lines = out.splitlines()
    assert lines[0] == f"ppid={agent.pid}"  # what was read is the agent's own /proc entry
    assert f"EASYTASK_HOME={cluster.home}" in lines  # its environ was readable
    assert "--queues" in lines and "q-snoop" in lines  # and so was its cmdline
    assert token not in out
    assert token not in Path(f"/proc/{agent.pid}/environ").read_bytes().decode(errors="replace")
    assert token not in Path(f"/proc/{agent.pid}/cmdline").read_bytes().decode(errors="replace")

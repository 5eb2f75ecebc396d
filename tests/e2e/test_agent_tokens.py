"""Per-agent tokens end to end (spec 12 `agents token`, issue 12): issued once, bound to a name,
stored hashed, revoked with the stream closed at once; the shared token stays local."""

from __future__ import annotations

import json
import re
import socket
import sqlite3

import grpc
import pytest

from easytask.rpc.v1 import agent_pb2 as apb
from easytask.rpc.v1 import agent_pb2_grpc
from tests.e2e.harness import BIN, Cluster, Proc, wait_until

pytestmark = pytest.mark.e2e


def start_with_token(cluster: Cluster, name: str, token: str, *extra: str) -> Proc:
    argv = [
        str(BIN / "easytask-agentd"), "--server", cluster.server,
        "--home", str(cluster.home / "agents" / name), "--name", name, "--queues", "q1",
        "--token", token, *extra,
    ]  # fmt: skip
    log = cluster.home / "test-logs" / f"agent-{name}-token.out"
    return Proc(argv, log, cluster.env).start()


def online(cluster: Cluster, name: str) -> bool:
    agents = json.loads(cluster.ctl("agents", "list", "-o", "json").stdout)
    return any(a["name"] == name and a["status"] == "online" for a in agents)


def test_a_token_is_shown_once_bound_to_its_name_and_revoked_at_once(cluster: Cluster) -> None:
    cluster.start_scheduler()
    res = cluster.ctl("agents", "token", "create", "edge-1")
    match = re.fullmatch(r"Agent token for edge-1: (etk_\S+)\n", res.stdout)
    assert match, res.stdout
    secret = match.group(1)
    again = cluster.ctl("agents", "token", "create", "edge-1", check=False)
    assert again.returncode == 1 and "already has a token; revoke it first" in again.stderr
    listed = json.loads(cluster.ctl("agents", "token", "list", "-o", "json").stdout)
    assert [(t["name"], t["created_by"], t["last_used"]) for t in listed] == [
        ("edge-1", "easytask_superuser", None)
    ]
    # Stored as a hash: the secret is nowhere in the database, nor in the log.
    with sqlite3.connect(cluster.home / "easytask.db") as db:
        dump = "\n".join(db.iterdump())
    assert secret not in dump
    assert cluster.scheduler is not None

    impostor = start_with_token(cluster, "edge-2", secret)
    impostor.popen.wait(timeout=30)  # type: ignore[union-attr]
    assert impostor.popen.returncode == 3  # type: ignore[union-attr]
    assert "this token belongs to agent 'edge-1', not 'edge-2'" in impostor.output()

    agent = start_with_token(cluster, "edge-1", secret)
    wait_until("edge-1 online", lambda: online(cluster, "edge-1"))
    listed = json.loads(cluster.ctl("agents", "token", "list", "-o", "json").stdout)
    assert listed[0]["last_used"]

    res = cluster.ctl("agents", "token", "revoke", "edge-1")
    assert res.stdout == "Agent token revoked: edge-1\n"
    # Closed at once (not after the 30 s offline timeout), and refused when it tries again.
    wait_until("edge-1 offline", lambda: not online(cluster, "edge-1"), timeout=10)
    wait_until("the refusal", lambda: "refused the agent token" in agent.output(), timeout=20)
    assert not online(cluster, "edge-1")
    changes = json.loads(cluster.ctl("agents", "get", "edge-1", "-o", "json").stdout)["changes"]
    assert (changes[0]["status"], changes[0]["reason"]) == ("OFFLINE", "agent token revoked")
    missing = cluster.ctl("agents", "token", "revoke", "edge-1", check=False)
    assert (missing.returncode, missing.stderr.strip()) == (
        1, "Error: agent token for 'edge-1' not found"
    )  # fmt: skip
    agent.stop()
    assert secret not in cluster.scheduler.output()


def _outside_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # no packet is sent
            address: str = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_the_shared_agent_token_is_refused_from_another_host(cluster: Cluster) -> None:
    address = _outside_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address")
    cluster.start_scheduler("--grpc-listen", "0.0.0.0:0", "--insecure")
    port = int((cluster.home / "scheduler.addr").read_text().strip().rsplit(":", 1)[1])
    shared = cluster.credentials()["agent_token"]
    hello = apb.AgentMessage(hello=apb.Hello(name="far", host="far", queues=["q1"], pid=7))
    for target, allowed in ((f"{address}:{port}", False), (f"127.0.0.1:{port}", True)):
        with grpc.insecure_channel(target) as channel:
            call = agent_pb2_grpc.AgentServiceStub(channel).Connect(
                iter([hello]), metadata=(("authorization", f"Bearer {shared}"),)
            )
            try:
                first = next(call)
                assert allowed and first.WhichOneof("msg") == "welcome"
            except grpc.RpcError as exc:
                assert not allowed, exc
                assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
                assert "accepted from this host only" in (exc.details() or "")
            call.cancel()

"""One agent-protocol model, one set of conversions: every message survives the wire both ways."""

from __future__ import annotations

import pytest

from easytask.core import protocol as p
from easytask.core.errors import MalformedMessageError
from easytask.rpc.convert import (
    agent_message_from_proto,
    agent_message_to_proto,
    hello_from_proto,
    hello_to_proto,
    scheduler_message_to_proto,
    scheduler_messages_from_proto,
)
from easytask.rpc.v1 import agent_pb2 as apb

RESULT = p.RunResult("FAILED", "exit 3", 3, 77, 1_700_000_000_000, 1_700_000_001_500,
                     "/o", "/e", 0, 10, 5, 9)  # fmt: skip
AGENT_MESSAGES: list[p.AgentMessage] = [
    p.RunAccepted("r1", 1_700_000_000_000),
    p.RunDeclined("r1", "agent is shutting down"),
    p.RunStarted("r1", 77, 1_700_000_000_000, "/o", "/e"),
    p.OutputChunk("r1", p.Stream.STDERR, 5, b"\x00\xffbytes"),
    p.RunFinished("r1", RESULT),
    p.RunFinished("r2", p.RunResult("SUCCESS", "", None)),
    p.AgentHeartbeat(1_700_000_000_000, 12.5, 40.0, 3),
]
SCHEDULER_MESSAGES: list[p.SchedulerMessage] = [
    p.Welcome("default", "1.0", 10),
    p.RunOrder(
        "r1",
        1001,
        "t",
        "echo hi",
        "/o",
        "/e",
        "ops",
        "prod",
        60,
        2,
        "20260511",
        "08:00:00",
        "Europe/Paris",
        "q1",
    ),
    p.ResultAck("r1"),
    p.KillRun("r1", "terminated by alice"),
    p.ResendOutput("r1", p.Stream.STDOUT, 4096),
    p.SchedulerHeartbeat(1_700_000_000_000),
]


@pytest.mark.parametrize("msg", AGENT_MESSAGES, ids=lambda m: type(m).__name__)
def test_agent_messages_round_trip(msg: p.AgentMessage) -> None:
    wire = apb.AgentMessage.FromString(agent_message_to_proto(msg).SerializeToString())
    assert agent_message_from_proto(wire) == msg


@pytest.mark.parametrize("msg", SCHEDULER_MESSAGES, ids=lambda m: type(m).__name__)
def test_scheduler_messages_round_trip(msg: p.SchedulerMessage) -> None:
    wire = apb.SchedulerMessage.FromString(scheduler_message_to_proto(msg).SerializeToString())
    problems: list[str] = []
    assert scheduler_messages_from_proto(wire, problems) == [msg] and problems == []


def test_a_batch_unpacks_in_order_and_names_what_it_drops() -> None:
    batch = apb.SchedulerMessage(
        batch=apb.SchedulerBatch(
            messages=[
                scheduler_message_to_proto(p.ResultAck("a")),
                apb.SchedulerMessage(resend_output=apb.ResendOutput(run_id="b", offset=1)),
                scheduler_message_to_proto(p.KillRun("c", "x")),
            ]
        )
    )
    problems: list[str] = []
    assert scheduler_messages_from_proto(batch, problems) == [p.ResultAck("a"), p.KillRun("c", "x")]
    assert problems == ["run=b ResendOutput without a stream; ignored"]


def test_hello_round_trips_with_known_runs() -> None:
    hello = p.AgentHello("a1", "host1", ("q1", "q2"), "1.0", 42, 2, 2048,
                         (p.KnownRun("r1", "RUNNING", 10, 0),))  # fmt: skip
    assert hello_from_proto(hello_to_proto(hello)) == hello


@pytest.mark.parametrize("state", ["RUNNING", "", "success"])
def test_a_result_that_is_not_final_is_malformed(state: str) -> None:
    msg = apb.AgentMessage(finished=apb.RunFinished(run_id="r1", state=state))
    with pytest.raises(MalformedMessageError, match="is not final"):
        agent_message_from_proto(msg)


def test_result_times_and_ranges_as_the_scheduler_reads_them() -> None:
    assert RESULT.stdout_range == (0, 10) and RESULT.stderr_range == (5, 9)
    assert RESULT.started_at is not None
    assert (RESULT.ended_at - RESULT.started_at).total_seconds() == 1.5
    bare = p.RunResult("SUCCESS", "", 0)
    assert bare.started_at is None and bare.stdout_range is None

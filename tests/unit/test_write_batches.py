"""Stream writes stay within what a gRPC channel receives (rpc/convert.byte_capped): a backlog
of 64 KiB output chunks once went out as one 32 MiB batch, which the scheduler refused and the
stream ended (found by scripts/bench --log-stream 1024)."""

from __future__ import annotations

import asyncio
from typing import Any

from easytask.core.protocol import OutputChunk, ResultAck, Stream
from easytask.rpc.agent_client import AgentStream
from easytask.rpc.convert import MAX_WRITE_BYTES, byte_capped, scheduler_message_to_proto
from easytask.rpc.v1 import agent_pb2 as apb

CHUNK = 64 * 1024


class _Call:
    def __init__(self) -> None:
        self.writes: list[apb.AgentMessage] = []

    async def write(self, msg: apb.AgentMessage) -> None:
        self.writes.append(msg)


def test_a_backlog_of_output_goes_out_in_writes_under_the_cap() -> None:
    stream = AgentStream.__new__(AgentStream)
    call = _Call()
    stream.call = call  # type: ignore[assignment]
    backlog = [OutputChunk("r1", Stream.STDOUT, i * CHUNK, b"x" * CHUNK) for i in range(512)]
    asyncio.run(stream.send(list(backlog)))
    assert len(call.writes) > 1
    assert all(w.ByteSize() <= MAX_WRITE_BYTES for w in call.writes)
    sent = [m.output for w in call.writes for m in w.batch.messages]
    assert [c.offset for c in sent] == [c.offset for c in backlog]  # all, in order, once


def test_small_messages_share_one_write_and_a_huge_one_goes_alone() -> None:
    small = [scheduler_message_to_proto(ResultAck(f"r{i}")) for i in range(100)]
    assert len(byte_capped(small)) == 1
    huge: Any = apb.AgentMessage(
        output=apb.OutputChunk(run_id="r", data=b"y" * (MAX_WRITE_BYTES + 1))
    )
    groups = byte_capped([small[0], huge, small[1]])
    assert [len(g) for g in groups] == [1, 1, 1]
    assert byte_capped([]) == []

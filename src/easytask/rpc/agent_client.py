"""AgentStream: the agent's end of AgentService.Connect, speaking core.protocol messages.

The agent daemon never touches generated protobuf types: it opens a stream here, writes
domain messages (several at once go as one AgentBatch) and reads domain messages back.
"""

from __future__ import annotations

import grpc

from easytask.core.protocol import AgentHello, AgentMessage, SchedulerMessage
from easytask.rpc.convert import (
    agent_message_to_proto,
    byte_capped,
    hello_to_proto,
    scheduler_messages_from_proto,
)
from easytask.rpc.v1 import agent_pb2 as apb
from easytask.rpc.v1 import agent_pb2_grpc


class AgentStream:
    def __init__(self, channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...]) -> None:
        stub = agent_pb2_grpc.AgentServiceStub(channel)  # type: ignore[no-untyped-call]
        self.call: grpc.aio.StreamStreamCall = stub.Connect(metadata=metadata)

    async def send_hello(self, hello: AgentHello) -> None:
        await self.call.write(apb.AgentMessage(hello=hello_to_proto(hello)))

    async def send(self, msgs: list[AgentMessage]) -> None:
        """One message as it is, several as batches (one stream write each) of at most
        MAX_WRITE_BYTES."""
        for group in byte_capped([agent_message_to_proto(m) for m in msgs]):
            if len(group) == 1:
                await self.call.write(group[0])
            else:
                await self.call.write(apb.AgentMessage(batch=apb.AgentBatch(messages=group)))

    async def receive(self, problems: list[str]) -> list[SchedulerMessage] | None:
        """The messages in the next stream read (a batch holds several); None at its end.

        What cannot be understood is left out and described in ``problems``."""
        msg = await self.call.read()
        if msg is grpc.aio.EOF:
            return None
        return scheduler_messages_from_proto(msg, problems)

    def cancel(self) -> None:
        self.call.cancel()

"""AgentServicer: adapts each AgentService.Connect stream to an AgentHub session."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import fields
from typing import Protocol

import grpc
from grpc._cython import cygrpc

from easytask import __version__
from easytask.core.errors import MalformedMessageError
from easytask.core.protocol import RunOrder, SchedulerMessage, Welcome
from easytask.core.records import AgentIdentity
from easytask.core.text import text_problem
from easytask.rpc.auth import token_of
from easytask.rpc.convert import (
    agent_message_from_proto,
    byte_capped,
    hello_from_proto,
    scheduler_message_to_proto,
)
from easytask.rpc.v1 import agent_pb2 as apb
from easytask.rpc.v1 import agent_pb2_grpc
from easytask.scheduler.hub import AgentHub, AgentNameTaken, AgentSession

log = logging.getLogger(__name__)

HELLO_TIMEOUT_SECONDS = 10.0
MAX_BATCH = 512
# What a stream read raises once the server is stopping (grpc's own class, not exported): the
# end of the session, like a closed stream.
SERVER_STOPPED: type[Exception] = getattr(cygrpc, "_ServerStoppedError", ConnectionError)


class AgentAuth(Protocol):
    def identify(self, secret: str, peer: str) -> AgentIdentity | None: ...


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    """One reader and one writer per stream, in one TaskGroup: losing either ends the session."""

    def __init__(
        self,
        hub: AgentHub,
        instance: str,
        auth: AgentAuth,
        room: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``room``: awaited before each read from an agent; it returns once the store can take
        more (an agent streaming output faster than the disk commits is slowed by gRPC's flow
        control, its command is not: it writes to its files)."""
        self._hub = hub
        self._instance = instance
        self._auth = auth
        self._room = room

    async def Connect(
        self,
        request_iterator: AsyncIterator[apb.AgentMessage],
        context: grpc.aio.ServicerContext,
    ) -> None:
        peer = context.peer()
        certified = certificate_name(context.auth_context())
        if certified is not None:
            identity: AgentIdentity | None = AgentIdentity(certified)  # mutual TLS
        else:
            identity = self._auth.identify(token_of(context.invocation_metadata()), peer)
        if identity is None:
            log.warning("refused an agent stream from %s: token not valid from there", peer)
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "missing or invalid token (the shared agent token is accepted from this host "
                "only; issue a per-agent token with `easytaskctl agents token create NAME`)",
            )
            return
        messages = aiter(request_iterator)
        try:
            async with asyncio.timeout(HELLO_TIMEOUT_SECONDS):
                first = await anext(messages)
            if first.WhichOneof("msg") != "hello":
                raise MalformedMessageError("the first message must be hello")
            hello = hello_from_proto(first.hello)
        except (TimeoutError, StopAsyncIteration):
            return
        except MalformedMessageError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            return
        if identity.name is not None and identity.name != hello.name:
            what = "certificate" if certified is not None else "token"
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"this {what} belongs to agent {identity.name!r}, not {hello.name!r}",
            )
            return
        try:
            session = self._hub.connect(hello, token_name=identity.name)
        except AgentNameTaken as exc:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, str(exc))
            return
        try:
            welcome = Welcome(self._instance, __version__, self._hub.heartbeat_seconds)
            await context.write(scheduler_message_to_proto(welcome))
        except BaseException:
            self._hub.disconnect(session)
            raise
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._read(messages, session))
                tg.create_task(self._write(context, session))
        except* _SessionClosed:
            pass  # the hub closed the session (heartbeats missed, replaced): the RPC ends too
        except* (
            grpc.aio.AioRpcError,
            ConnectionError,
            asyncio.InvalidStateError,
            SERVER_STOPPED,
        ) as group:
            log.info("agent %s stream ended: %s", session.name, group.exceptions[0])
        finally:
            self._hub.disconnect(session)

    async def _read(self, messages: AsyncIterator[apb.AgentMessage], session: AgentSession) -> None:
        try:
            async for raw in messages:
                if self._room is not None:
                    await self._room()
                if raw.WhichOneof("msg") == "batch":
                    for item in raw.batch.messages:
                        self._handle(session, item)
                else:
                    self._handle(session, raw)
        finally:
            session.close()

    def _handle(self, session: AgentSession, raw: apb.AgentMessage) -> None:
        try:
            msg = agent_message_from_proto(raw)
        except MalformedMessageError as exc:
            log.warning("agent %s sent a malformed message, dropped: %s", session.name, exc)
            return
        if msg is not None:
            self._hub.handle(session, msg)

    async def _write(self, context: grpc.aio.ServicerContext, session: AgentSession) -> None:
        """Drain the session to the stream; once the session is closed, end the reader too.

        A session and its RPC end together: a stream left half open after the hub gave up on
        the agent would have its results stored and their acknowledgements dropped.
        """
        # What queued up while the last write was in flight goes out as one batch message:
        # one stream write per burst instead of one per run.
        while (queued := await session.outgoing()) is not None:
            for start in range(0, len(queued), MAX_BATCH):
                encoded = self._encoded(session, queued[start : start + MAX_BATCH])
                for chunk in byte_capped(encoded):  # within what the agent's channel takes
                    if len(chunk) == 1:
                        await context.write(chunk[0])
                    else:
                        batch = apb.SchedulerBatch(messages=chunk)
                        await context.write(apb.SchedulerMessage(batch=batch))
        raise _SessionClosed

    def _encoded(
        self, session: AgentSession, messages: list[SchedulerMessage]
    ) -> list[apb.SchedulerMessage]:
        """The messages as protobuf; one that cannot be encoded is dropped on its own.

        A run order that cannot be encoded ends its run FAILED (the hub is told); the stream,
        the queue and the other messages go on.
        """
        out: list[apb.SchedulerMessage] = []
        for msg in messages:
            try:
                encoded = scheduler_message_to_proto(msg)
            except Exception as exc:
                self._hub.undeliverable(session, msg, _encode_failure(msg, exc))
                continue
            out.append(encoded)
        return out


def certificate_name(auth: dict[str, list[bytes]]) -> str | None:
    """The agent name a verified client certificate carries (its common name), or None on a
    stream without one (a token stream)."""
    names = auth.get("x509_common_name") or []
    return names[0].decode("utf-8", "replace") if names else None


class _SessionClosed(Exception):
    """The session ended on the scheduler's side; the stream's reader stops with it."""


def _encode_failure(msg: SchedulerMessage, exc: Exception) -> str:
    """Why a message could not be encoded, naming the field when a text is at fault."""
    if isinstance(msg, RunOrder):
        for f in fields(msg):
            value = getattr(msg, f.name)
            problem = text_problem(value, lines=True) if isinstance(value, str) else None
            if problem is not None:
                return f"cannot encode run order: {f.name} {problem}"
    detail = str(exc).encode("ascii", "backslashreplace").decode("ascii")
    return f"cannot encode run order: {detail[:200]}"

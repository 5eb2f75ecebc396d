"""The agent's gRPC session: dial out, authenticate, speak AgentService.Connect, reconnect.

One stream at a time. On each stream the agent sends, in this order: Hello (with every run it
holds), RunStarted for every run that is running, RunFinished for every result not yet
acknowledged, then live messages. One reader task dispatches scheduler messages on
``WhichOneof``; one writer task drains the bounded outbox; a heartbeat task queues a Heartbeat
every ``heartbeat_seconds`` (Welcome may change it). All three live in one TaskGroup, so losing
either side ends the stream. Runs are not affected by a lost stream.

Reconnect: exponential backoff from 0.1 s doubling to 1 s, with jitter; it resets after a stream
that got a Welcome. UNAUTHENTICATED: if the agent has never been welcomed since it started, the
token is wrong from the start and ``run()`` raises ``AuthError`` (the daemon exits 3); after a
successful session it is logged as an error and retried every 30 s, runs keep going.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import grpc

from easytask.agentd.outbox import Outbox
from easytask.agentd.runs import RunManager
from easytask.agentd.sysinfo import CpuSampler, disk_mb, mem_percent, now_ms
from easytask.core.errors import AuthError, StreamEndedError
from easytask.core.protocol import (
    AgentHeartbeat,
    AgentHello,
    AgentMessage,
    KillRun,
    ResendOutput,
    RestartAgent,
    ResultAck,
    RunOrder,
    SchedulerHeartbeat,
    SchedulerMessage,
    Welcome,
)
from easytask.rpc.agent_client import AgentStream

log = logging.getLogger(__name__)

BACKOFF_MIN = 0.1
BACKOFF_MAX = 1.0  # a restarted scheduler sees its agents back within a second
AUTH_RETRY = 30.0
NAME_RETRY = 5.0
STATUS_WAIT = 2.0
MAX_BATCH = 512  # messages per stream write when the outbox has a backlog
# The channel's own reconnect backoff (default 1 s growing to 120 s) would otherwise override
# ours after a scheduler restart.
CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", int(BACKOFF_MIN * 1000)),
    ("grpc.min_reconnect_backoff_ms", int(BACKOFF_MIN * 1000)),
    ("grpc.max_reconnect_backoff_ms", int(BACKOFF_MAX * 1000)),
)


class AgentSession:
    """Keeps one AgentService.Connect stream open to the scheduler, reconnecting as needed.

    Args:
        target: ``HOST:PORT`` of the scheduler.
        token: the agent token, sent as ``authorization: Bearer <token>`` (never logged).
        tls_ca: PEM root certificates for a TLS channel; None for an insecure channel.
        tls_client: (private key, certificate chain) of the agent for mutual TLS.
        disk_path: a path on the file system whose size and free space each Hello reports.
        on_restart: called with who asked when the scheduler sends RestartAgent; it must stop
            the agent from accepting runs at once (the owner then closes the session).
    """

    def __init__(
        self,
        *,
        target: str,
        token: str,
        tls_ca: bytes | None,
        identity: AgentHello,
        tls_client: tuple[bytes, bytes] | None = None,
        manager: RunManager,
        outbox: Outbox,
        heartbeat_seconds: float = 10.0,
        disk_path: Path | None = None,
        on_restart: Callable[[str], None] | None = None,
    ) -> None:
        self._target = target
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._tls_ca = tls_ca
        self._tls_client = tls_client
        self._identity = identity
        self._manager = manager
        self._outbox = outbox
        self._disk_path = disk_path
        self._on_restart = on_restart
        self._default_heartbeat = heartbeat_seconds
        self._heartbeat = heartbeat_seconds
        self._cpu = CpuSampler()
        self._welcomed_ever = False
        self._welcomed = False
        self._last_rx = 0.0
        self._scheduler_beats = False
        self._dispatch_later: list[SchedulerMessage] = []
        self._closing = False

    def close(self) -> None:
        """Mark the session as closing; the owner then cancels ``run()``."""
        self._closing = True

    def _raise_if_closing(self) -> None:
        # A TaskGroup whose child failed raises that error even when its parent is being
        # cancelled at the same moment, swallowing the cancellation (and Task.cancelling() is
        # not reliable after a TaskGroup abort in 3.11): so a closing flag decides.
        if self._closing:
            raise asyncio.CancelledError

    async def run(self) -> None:
        """Connect and reconnect until cancelled; AuthError if the token is refused at once."""
        if self._tls_ca is not None:
            key, chain = self._tls_client or (None, None)
            creds = grpc.ssl_channel_credentials(
                root_certificates=self._tls_ca, private_key=key, certificate_chain=chain
            )
            channel = grpc.aio.secure_channel(self._target, creds, options=CHANNEL_OPTIONS)
        else:
            channel = grpc.aio.insecure_channel(self._target, options=CHANNEL_OPTIONS)
        backoff = BACKOFF_MIN
        try:
            while True:
                self._welcomed = False
                try:
                    await self._stream(channel)
                    reason = "stream closed by the scheduler"
                except grpc.aio.AioRpcError as exc:
                    self._raise_if_closing()
                    refused = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
                    if exc.code() in refused:
                        await self._refused(exc)
                        continue
                    if exc.code() == grpc.StatusCode.ALREADY_EXISTS:
                        # Another live agent has this name: it keeps it; ask again later
                        # (it may be this agent's own stream the scheduler has not yet seen
                        # closed, or an agent about to stop).
                        log.error("scheduler %s refused this agent: %s; retrying in %.0f s",
                                  self._target, exc.details(), NAME_RETRY)  # fmt: skip
                        await asyncio.sleep(NAME_RETRY)
                        continue
                    reason = f"{exc.code().name}: {exc.details()}"
                except StreamEndedError as exc:
                    self._raise_if_closing()
                    reason = str(exc)
                if self._welcomed:
                    backoff = BACKOFF_MIN
                delay = backoff * random.uniform(0.5, 1.0)
                log.warning(
                    "disconnected from %s (%s); reconnecting in %.2f s", self._target, reason, delay
                )
                await asyncio.sleep(delay)
                backoff = min(BACKOFF_MAX, backoff * 2)
        finally:
            self._outbox.close()
            await channel.close(grace=None)

    async def _refused(self, exc: grpc.aio.AioRpcError) -> None:
        if not self._welcomed_ever:
            log.error(
                "scheduler %s refused the agent token (%s: %s); check --token, "
                "$EASYTASK_TOKEN or credentials.json",
                self._target,
                exc.code().name,
                exc.details(),
            )
            raise AuthError(f"scheduler {self._target} refused the agent token") from None
        log.error(
            "scheduler %s refused the agent token (%s: %s); retrying in %.0f s",
            self._target,
            exc.code().name,
            exc.details(),
            AUTH_RETRY,
        )
        await asyncio.sleep(AUTH_RETRY)

    async def _stream(self, channel: grpc.aio.Channel) -> None:
        stream = AgentStream(channel, self._metadata)
        call = stream.call
        # Snapshot and opening the outbox happen in one step: every later message is queued
        # behind the replay, every earlier one is covered by it.
        known, replay = self._manager.snapshot()
        self._outbox.open()
        try:
            hello = replace(self._identity, known_runs=tuple(known))
            if self._disk_path is not None:  # free space is read again at every connect
                total, free = disk_mb(self._disk_path)
                hello = replace(hello, disk_total_mb=total, disk_free_mb=free)
            await stream.send_hello(hello)
            first = await self._receive(stream)
            if first is None:
                raise await _status_error(call, "stream closed before Welcome")
            self._on_first(first)
            loop = asyncio.get_running_loop()
            self._last_rx = loop.time()
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._reader(stream))
                    tg.create_task(self._writer(stream, replay))
                    tg.create_task(self._beat())
            except BaseExceptionGroup as group:
                self._raise_if_closing()
                raise _first(group) from None
        except (grpc.aio.AioRpcError, StreamEndedError):
            raise
        except Exception as exc:  # a write/read on a finished call: report its status instead
            self._raise_if_closing()
            raise await _status_error(call, f"{type(exc).__name__}: {exc}") from exc
        finally:
            self._outbox.close()
            stream.cancel()

    def _on_first(self, first: list[SchedulerMessage]) -> None:
        self._welcomed = self._welcomed_ever = True
        if not first or not isinstance(first[0], Welcome):
            kind = type(first[0]).__name__ if first else "nothing understood"
            log.warning("scheduler did not start with Welcome (got %s)", kind)
            self._dispatch_later = first
            return
        welcome = first[0]
        self._dispatch_later = first[1:]
        self._heartbeat = float(welcome.heartbeat_seconds or self._default_heartbeat)
        self._scheduler_beats = False
        log.info(
            "connected to scheduler %s (instance %s, version %s) as agent %s serving %s",
            self._target,
            welcome.instance or "-",
            welcome.scheduler_version or "-",
            self._identity.name,
            ",".join(self._identity.queues),
        )

    @staticmethod
    async def _receive(stream: AgentStream) -> list[SchedulerMessage] | None:
        problems: list[str] = []
        msgs = await stream.receive(problems)
        for problem in problems:
            log.warning("%s", problem)
        return msgs

    async def _reader(self, stream: AgentStream) -> None:
        loop = asyncio.get_running_loop()
        pending, self._dispatch_later = self._dispatch_later, []
        for item in pending:
            await self._dispatch(item)
        while True:
            msgs = await self._receive(stream)
            if msgs is None:
                raise await _status_error(stream.call, "stream closed by the scheduler")
            self._last_rx = loop.time()
            for item in msgs:
                await self._dispatch(item)

    async def _dispatch(self, msg: SchedulerMessage) -> None:
        if isinstance(msg, RunOrder):
            await self._manager.on_run_task(msg)
        elif isinstance(msg, ResultAck):
            self._manager.on_ack(msg.run_id)
        elif isinstance(msg, KillRun):
            self._manager.on_kill(msg.run_id, msg.reason)
        elif isinstance(msg, ResendOutput):
            self._manager.on_resend(msg.run_id, msg.stream, msg.offset)
        elif isinstance(msg, SchedulerHeartbeat):
            self._scheduler_beats = True
        elif isinstance(msg, RestartAgent):
            if self._on_restart is None:
                log.warning("restart requested by %s ignored", msg.requested_by or "-")
            elif not self._closing:
                log.info(
                    "agent %s: restart requested by %s",
                    self._identity.name,
                    msg.requested_by or "-",
                )
                self._on_restart(msg.requested_by)
        else:
            log.debug("extra Welcome ignored")

    async def _writer(self, stream: AgentStream, replay: list[AgentMessage]) -> None:
        for msg in replay:
            await stream.send([msg])
        while True:
            # Everything queued while the last write was in flight goes out as one batch.
            await stream.send(await self._outbox.get_many(MAX_BATCH))

    async def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._heartbeat)
            silent = loop.time() - self._last_rx
            if self._scheduler_beats and silent > 3 * self._heartbeat:
                raise StreamEndedError(f"no message from the scheduler for {silent:.0f} s")
            beat = AgentHeartbeat(
                now_ms(), self._cpu.percent(), mem_percent(), self._manager.running
            )
            await self._outbox.put(beat)


async def _status_error(call: grpc.aio.StreamStreamCall, fallback: str) -> Exception:
    """The call's final status as an AioRpcError when it has one, else StreamEndedError."""
    try:  # a failed read/write can come a moment before the status it is due to
        code = await asyncio.wait_for(call.code(), STATUS_WAIT)
    except TimeoutError:
        code = None
    if code is not None and code != grpc.StatusCode.OK:
        details = await call.details()
        error: Exception = grpc.aio.AioRpcError(
            code, grpc.aio.Metadata(), grpc.aio.Metadata(), details
        )
        return error
    return StreamEndedError(fallback)


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc

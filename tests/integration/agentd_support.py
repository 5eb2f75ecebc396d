"""Test helpers for easytask-agentd: a scripted AgentService and the agent as a real process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from easytask.rpc.v1 import agent_pb2 as pb
from easytask.rpc.v1 import agent_pb2_grpc as pb_grpc

Pred = Callable[[pb.AgentMessage], bool]


class FakeScheduler(pb_grpc.AgentServiceServicer):
    """Records what the agent sends (across streams) and sends what a test asks for."""

    def __init__(self, token: str, *, heartbeat_seconds: int = 10) -> None:
        self.token = token
        self.heartbeat_seconds = heartbeat_seconds
        self.history: list[pb.AgentMessage] = []
        self.hellos: list[pb.Hello] = []
        self.refusals: list[str] = []
        self.streams = 0
        self.batches = 0  # batch messages received (a busy agent coalesces its writes)
        self._changed = asyncio.Event()
        self._out: asyncio.Queue[pb.SchedulerMessage | None] | None = None
        self.server: grpc.aio.Server | None = None  # set by the test that started it

    # ---------- servicer ----------

    async def Connect(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> None:
        metadata = dict(context.invocation_metadata() or ())
        if metadata.get("authorization") != f"Bearer {self.token}":
            self.refusals.append(str(metadata.get("authorization", "")))
            self._notify()
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid agent token")
        first = await context.read()
        assert first is not grpc.aio.EOF and first.WhichOneof("msg") == "hello", first
        out: asyncio.Queue[pb.SchedulerMessage | None] = asyncio.Queue()
        self._out = out
        self.streams += 1
        self.hellos.append(first.hello)
        self._record(first)
        welcome = pb.Welcome(
            instance="test", scheduler_version="0", heartbeat_seconds=self.heartbeat_seconds
        )
        await context.write(pb.SchedulerMessage(welcome=welcome))

        async def pump_in() -> None:
            while True:
                msg = await context.read()
                if msg is grpc.aio.EOF:
                    return
                if msg.WhichOneof("msg") == "batch":
                    self.batches += 1
                    for item in msg.batch.messages:
                        self._record(item)
                else:
                    self._record(msg)

        async def pump_out() -> None:
            while (msg := await out.get()) is not None:  # None: drop() after what is queued
                await context.write(msg)

        reader, writer = asyncio.create_task(pump_in()), asyncio.create_task(pump_out())
        try:
            await asyncio.wait([reader, writer], return_when=asyncio.FIRST_COMPLETED)
            if writer.done() and not reader.done():
                # drop(): end the RPC with a status; that also completes the pending read.
                await context.abort(grpc.StatusCode.UNAVAILABLE, "stream dropped by the test")
        finally:
            if self._out is out:
                self._out = None
            writer.cancel()
            reader.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)

    # ---------- test side ----------

    def _record(self, msg: pb.AgentMessage) -> None:
        self.history.append(msg)
        self._notify()

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def wait_until(self, cond: Callable[[], bool], timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while True:
                event = self._changed
                if cond():
                    return
                await event.wait()

    async def wait_for(self, pred: Pred, timeout: float = 30.0, start: int = 0) -> pb.AgentMessage:
        """The first message (from index ``start`` of the history on) matching ``pred``."""
        found: list[pb.AgentMessage] = []

        def cond() -> bool:
            found[:] = [m for m in self.history[start:] if pred(m)][:1]
            return bool(found)

        await self.wait_until(cond, timeout)
        return found[0]

    def matching(self, pred: Pred) -> list[pb.AgentMessage]:
        return [m for m in self.history if pred(m)]

    async def connected(self, streams: int = 1, timeout: float = 30.0) -> None:
        await self.wait_until(lambda: self.streams >= streams and self._out is not None, timeout)

    async def send(self, msg: pb.SchedulerMessage) -> None:
        await self.wait_until(lambda: self._out is not None)
        assert self._out is not None
        self._out.put_nowait(msg)

    async def run(self, run_id: str, cmd: str, tmp: Path, **fields: Any) -> None:
        fields.setdefault("stdout", str(tmp / f"{run_id}.out"))
        fields.setdefault("stderr", str(tmp / f"{run_id}.err"))
        fields.setdefault("tid", 1001)
        fields.setdefault("name", "t1")
        fields.setdefault("attempt", 1)
        task = pb.RunTask(run_id=run_id, cmd=cmd, **fields)
        await self.send(pb.SchedulerMessage(run=task))

    async def ack(self, run_id: str) -> None:
        await self.send(pb.SchedulerMessage(result_ack=pb.ResultAck(run_id=run_id)))

    async def kill(self, run_id: str, reason: str) -> None:
        await self.send(pb.SchedulerMessage(kill=pb.KillRun(run_id=run_id, reason=reason)))

    def drop(self) -> None:
        """End the current stream once what is queued is written (the agent sees EOF)."""
        if self._out is not None:
            self._out.put_nowait(None)

    async def finished(self, run_id: str, timeout: float = 30.0) -> pb.RunFinished:
        msg = await self.wait_for(lambda m: is_msg(m, "finished", run_id), timeout)
        return msg.finished

    def output(self, run_id: str, stream: int) -> bytes:
        """Reassemble a run's stream from its OutputChunks (de-duplicated by offset)."""
        chunks = {
            m.output.offset: m.output.data
            for m in self.history
            if is_msg(m, "output", run_id) and m.output.stream == stream
        }
        data = b""
        for offset in sorted(chunks):
            assert offset <= len(data), f"gap before offset {offset}"
            data = data[:offset] + chunks[offset]
        return data


def is_msg(msg: pb.AgentMessage, kind: str, run_id: str | None = None) -> bool:
    if msg.WhichOneof("msg") != kind:
        return False
    return run_id is None or getattr(msg, kind).run_id == run_id


async def start_server(servicer: FakeScheduler, port: int = 0) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    pb_grpc.add_AgentServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, port


class AgentProcess:
    """``python -m easytask.agentd.main`` with a temp home; stderr goes to ``<home>/stderr.txt``."""

    def __init__(
        self, home: Path, port: int, token: str, *, name: str = "a1", args: Sequence[str] = ()
    ):
        self.home = home
        self.name = name
        self.argv = [
            sys.executable,
            "-m",
            "easytask.agentd.main",
            "--server",
            f"127.0.0.1:{port}",
            "--name",
            name,
            "--queues",
            "q1",
            "--home",
            str(home),
            "--token",
            token,
            "--kill-grace",
            "1",
            "--profiles-dir",
            str(home / "profiles"),
            *args,
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(
        self, env: dict[str, str] | None = None, preexec_fn: Callable[[], None] | None = None
    ) -> AgentProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / "stderr.txt", "ab") as err:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env={**os.environ, **(env or {})},
                preexec_fn=preexec_fn,
            )
        return self

    async def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return await asyncio.to_thread(self.proc.wait, timeout)

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the agent and return its exit code; SIGKILL and fail if it does not exit."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return await self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            await self.wait(timeout)
            raise AssertionError(
                f"agent did not exit within {timeout} s after signal {sig}"
            ) from None

    def log_text(self) -> str:
        path = self.home / "logs" / f"agent-{self.name}.log"
        return path.read_text() if path.exists() else ""

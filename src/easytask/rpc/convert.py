"""Conversions between protobuf messages and EasyTask's own types (the only place both meet)."""

from __future__ import annotations

from typing import Any

from easytask.core import protocol as p
from easytask.core.errors import MalformedMessageError
from easytask.core.models import Run, StateChange
from easytask.core.protocol import Stream
from easytask.core.records import CalendarView, ListedHoliday
from easytask.core.runid import iso_utc
from easytask.rpc.v1 import agent_pb2 as apb
from easytask.rpc.v1 import api_pb2 as pb

_STREAMS = {apb.STDOUT: Stream.STDOUT, apb.STDERR: Stream.STDERR}
_STREAM_IDS = {v: k for k, v in _STREAMS.items()}
_FINAL_FROM_AGENT = frozenset({"SUCCESS", "FAILED", "TERMINATED"})

# ----- agent protocol: agent -> scheduler -----


def hello_to_proto(hello: p.AgentHello) -> apb.Hello:
    return apb.Hello(
        name=hello.name,
        host=hello.host,
        queues=list(hello.queues),
        version=hello.version,
        pid=hello.pid,
        cpu_cores=hello.cpu_cores,
        memory_mb=hello.memory_mb,
        known_runs=[
            apb.KnownRun(
                run_id=k.run_id, state=k.state, stdout_size=k.stdout_size, stderr_size=k.stderr_size
            )
            for k in hello.known_runs
        ],
        max_runs=hello.max_runs,
        disk_total_mb=hello.disk_total_mb,
        disk_free_mb=hello.disk_free_mb,
        started_at_ms=hello.started_at_ms,
    )


def hello_from_proto(msg: apb.Hello) -> p.AgentHello:
    if not msg.name:
        raise MalformedMessageError("hello without an agent name")
    queues = tuple(q for q in msg.queues if q) or (msg.host or msg.name,)
    return p.AgentHello(
        name=msg.name,
        host=msg.host or msg.name,
        queues=queues,
        version=msg.version,
        pid=msg.pid,
        cpu_cores=msg.cpu_cores,
        memory_mb=msg.memory_mb,
        known_runs=tuple(
            p.KnownRun(k.run_id, k.state, k.stdout_size, k.stderr_size) for k in msg.known_runs
        ),
        max_runs=max(0, msg.max_runs),
        disk_total_mb=msg.disk_total_mb,
        disk_free_mb=msg.disk_free_mb,
        started_at_ms=msg.started_at_ms,
    )


def agent_message_to_proto(msg: p.AgentMessage) -> apb.AgentMessage:
    if isinstance(msg, p.OutputChunk):
        return apb.AgentMessage(
            output=apb.OutputChunk(
                run_id=msg.run_id, stream=_STREAM_IDS[msg.stream], offset=msg.offset, data=msg.data
            )
        )
    if isinstance(msg, p.RunAccepted):
        return apb.AgentMessage(
            accepted=apb.RunAccepted(run_id=msg.run_id, accepted_at_ms=msg.accepted_at_ms)
        )
    if isinstance(msg, p.RunStarted):
        return apb.AgentMessage(
            started=apb.RunStarted(
                run_id=msg.run_id,
                pid=msg.pid,
                started_at_ms=msg.started_at_ms,
                stdout_path=msg.stdout_path,
                stderr_path=msg.stderr_path,
            )
        )
    if isinstance(msg, p.RunFinished):
        r = msg.result
        return apb.AgentMessage(
            finished=apb.RunFinished(
                run_id=msg.run_id,
                state=r.state,
                reason=r.reason,
                has_return_code=r.return_code is not None,
                return_code=r.return_code or 0,
                pid=r.pid,
                started_at_ms=r.started_at_ms,
                ended_at_ms=r.ended_at_ms,
                stdout_path=r.stdout_path,
                stderr_path=r.stderr_path,
                stdout_start=r.stdout_start,
                stdout_end=r.stdout_end,
                stderr_start=r.stderr_start,
                stderr_end=r.stderr_end,
            )
        )
    if isinstance(msg, p.RunDeclined):
        return apb.AgentMessage(declined=apb.RunDeclined(run_id=msg.run_id, reason=msg.reason))
    return apb.AgentMessage(
        heartbeat=apb.Heartbeat(
            sent_at_ms=msg.sent_at_ms,
            cpu_percent=msg.cpu_percent,
            mem_percent=msg.mem_percent,
            running=msg.running,
        )
    )


def agent_message_from_proto(msg: apb.AgentMessage) -> p.AgentMessage | None:
    """Domain message for one agent message; None for an empty one."""
    kind = msg.WhichOneof("msg")
    if kind == "output":
        o = msg.output
        stream = _STREAMS.get(o.stream)
        if stream is None or o.offset < 0:
            raise MalformedMessageError(f"output chunk for run {o.run_id} has no valid stream")
        return p.OutputChunk(o.run_id, stream, o.offset, o.data)
    if kind == "accepted":
        return p.RunAccepted(msg.accepted.run_id, msg.accepted.accepted_at_ms)
    if kind == "started":
        s = msg.started
        return p.RunStarted(s.run_id, s.pid, s.started_at_ms, s.stdout_path, s.stderr_path)
    if kind == "finished":
        return _finished_from_proto(msg.finished)
    if kind == "declined":
        return p.RunDeclined(msg.declined.run_id, msg.declined.reason)
    if kind == "heartbeat":
        h = msg.heartbeat
        return p.AgentHeartbeat(h.sent_at_ms, h.cpu_percent, h.mem_percent, h.running)
    if kind == "hello":
        raise MalformedMessageError("hello sent twice on one stream")
    if kind == "batch":
        raise MalformedMessageError("a batch inside a batch")
    return None


def _finished_from_proto(f: apb.RunFinished) -> p.RunFinished:
    if f.state not in _FINAL_FROM_AGENT or not f.run_id:
        raise MalformedMessageError(f"run {f.run_id}: result state {f.state!r} is not final")
    result = p.RunResult(
        state=f.state,
        reason=f.reason,
        return_code=f.return_code if f.has_return_code else None,
        pid=f.pid,
        started_at_ms=max(f.started_at_ms, 0),
        ended_at_ms=max(f.ended_at_ms, 0),
        stdout_path=f.stdout_path,
        stderr_path=f.stderr_path,
        stdout_start=f.stdout_start,
        stdout_end=f.stdout_end,
        stderr_start=f.stderr_start,
        stderr_end=f.stderr_end,
    )
    return p.RunFinished(f.run_id, result)


# ----- agent protocol: scheduler -> agent -----


def scheduler_message_to_proto(msg: p.SchedulerMessage) -> apb.SchedulerMessage:
    if isinstance(msg, p.RunOrder):
        return apb.SchedulerMessage(
            run=apb.RunTask(
                run_id=msg.run_id,
                tid=msg.tid,
                name=msg.name,
                cmd=msg.cmd,
                stdout=msg.stdout,
                stderr=msg.stderr,
                run_as_user=msg.run_as_user,
                profile=msg.profile,
                max_run_time=msg.max_run_time,
                attempt=msg.attempt,
                run_date=msg.run_date,
                local_time=msg.local_time,
                timezone=msg.timezone,
                queue=msg.queue,
            )
        )
    if isinstance(msg, p.ResultAck):
        return apb.SchedulerMessage(result_ack=apb.ResultAck(run_id=msg.run_id))
    if isinstance(msg, p.KillRun):
        return apb.SchedulerMessage(kill=apb.KillRun(run_id=msg.run_id, reason=msg.reason))
    if isinstance(msg, p.ResendOutput):
        return apb.SchedulerMessage(
            resend_output=apb.ResendOutput(
                run_id=msg.run_id, stream=_STREAM_IDS[msg.stream], offset=msg.offset
            )
        )
    if isinstance(msg, p.Welcome):
        return apb.SchedulerMessage(
            welcome=apb.Welcome(
                instance=msg.instance,
                scheduler_version=msg.scheduler_version,
                heartbeat_seconds=msg.heartbeat_seconds,
            )
        )
    if isinstance(msg, p.RestartAgent):
        return apb.SchedulerMessage(restart=apb.RestartAgent(requested_by=msg.requested_by))
    return apb.SchedulerMessage(heartbeat=apb.Heartbeat(sent_at_ms=msg.sent_at_ms))


def scheduler_messages_from_proto(
    msg: apb.SchedulerMessage, problems: list[str]
) -> list[p.SchedulerMessage]:
    """The domain messages in one scheduler message (a batch holds several); what cannot be
    understood is left out and described in ``problems``."""
    items = list(msg.batch.messages) if msg.WhichOneof("msg") == "batch" else [msg]
    out: list[p.SchedulerMessage] = []
    for item in items:
        kind = item.WhichOneof("msg")
        if kind == "run":
            r = item.run
            out.append(p.RunOrder(
                run_id=r.run_id, tid=r.tid, name=r.name, cmd=r.cmd, stdout=r.stdout,
                stderr=r.stderr, run_as_user=r.run_as_user, profile=r.profile,
                max_run_time=r.max_run_time, attempt=r.attempt, run_date=r.run_date,
                local_time=r.local_time, timezone=r.timezone, queue=r.queue,
            ))  # fmt: skip
        elif kind == "result_ack":
            out.append(p.ResultAck(item.result_ack.run_id))
        elif kind == "kill":
            out.append(p.KillRun(item.kill.run_id, item.kill.reason))
        elif kind == "resend_output":
            req = item.resend_output
            stream = _STREAMS.get(req.stream)
            if stream is None:
                problems.append(f"run={req.run_id} ResendOutput without a stream; ignored")
            else:
                out.append(p.ResendOutput(req.run_id, stream, req.offset))
        elif kind == "heartbeat":
            out.append(p.SchedulerHeartbeat(item.heartbeat.sent_at_ms))
        elif kind == "welcome":
            w = item.welcome
            out.append(p.Welcome(w.instance, w.scheduler_version, w.heartbeat_seconds))
        elif kind == "restart":
            out.append(p.RestartAgent(item.restart.requested_by))
        else:
            problems.append(f"unknown scheduler message {kind!r} ignored")
    return out


# ----- public API -----


def run_to_proto(run: Run, transitions: list[StateChange] | None = None) -> pb.Run:
    out = pb.Run(
        run_id=run.run_id,
        tid=run.tid,
        name=run.name,
        group=run.group or "",
        group_run_id=run.group_run_id or "",
        instance=run.instance,
        run_date=run.run_date,
        scheduled_utc=iso_utc(run.scheduled_utc),
        local_time=run.local_time,
        timezone=run.timezone,
        attempt=run.attempt,
        state=run.state.value,
        state_code=run.state.code,
        reason=run.reason,
        queue=run.queue,
        agent=run.agent or "",
        host=run.host or "",
        has_pid=run.pid is not None,
        pid=run.pid or 0,
        has_return_code=run.return_code is not None,
        return_code=run.return_code or 0,
        triggered_at=iso_utc(run.triggered_at),
        dispatched_at=iso_utc(run.dispatched_at),
        acked_at=iso_utc(run.acked_at),
        started_at=iso_utc(run.started_at),
        ended_at=iso_utc(run.ended_at),
        has_duration=run.duration is not None,
        duration=run.duration or 0.0,
        stdout_path=run.stdout_path or "",
        stderr_path=run.stderr_path or "",
        stdout_range=list(run.stdout_range or ()),
        stderr_range=list(run.stderr_range or ()),
        forced=run.forced,
        forced_by=run.forced_by or "",
        alert_status=run.alert_status,
        created_at=iso_utc(run.created_at),
        updated_at=iso_utc(run.updated_at),
    )
    for change in transitions or ():
        out.transitions.append(
            pb.StateChange(
                from_state=change.from_state.value if change.from_state else "",
                to_state=change.to_state.value,
                at=iso_utc(change.at),
                reason=change.reason,
            )
        )
    return out


def calendar_to_proto(view: CalendarView) -> pb.Calendar:
    return pb.Calendar(
        name=view.name,
        kind=view.kind,
        description=view.description,
        entries=view.entries,
        created_by=view.created_by,
        created_at=iso_utc(view.created_at),
    )


def holiday_to_proto(holiday: ListedHoliday) -> pb.HolidayEntry:
    span = holiday.span
    return pb.HolidayEntry(
        id=span.id,
        calendar=span.calendar,
        start_date=span.start_date.isoformat(),
        end_date=span.end_date.isoformat(),
        reason=span.reason,
        source=holiday.source,
        created_by=span.created_by,
        created_at=iso_utc(span.created_at),
    )


# A stream write carries at most this many bytes of messages: well under the 4 MiB a default
# gRPC channel receives and the scheduler's 16 MiB (a backlog of 64 KiB output chunks batched
# by count alone once made a 32 MiB write that ended the stream).
MAX_WRITE_BYTES = 2 * 1024 * 1024


def byte_capped(messages: list[Any], limit: int = MAX_WRITE_BYTES) -> list[list[Any]]:
    """``messages`` (protobuf) cut into consecutive groups of at most ``limit`` bytes each; a
    message bigger than ``limit`` goes alone."""
    groups: list[list[Any]] = []
    size = 0
    for msg in messages:
        n = msg.ByteSize() + 8  # the batch's own framing per entry, roughly
        if not groups or size + n > limit:
            groups.append([])
            size = 0
        groups[-1].append(msg)
        size += n
    return groups

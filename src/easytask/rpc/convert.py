"""Conversions between protobuf messages and EasyTask's own types (the only place both meet)."""

from __future__ import annotations

from datetime import datetime

from easytask.core.models import Run, StateChange
from easytask.core.runid import from_ms, iso_utc, to_ms
from easytask.core.states import RunState
from easytask.rpc.v1 import agent_pb2 as apb
from easytask.rpc.v1 import api_pb2 as pb
from easytask.scheduler import protocol as p
from easytask.scheduler.holidays import CalendarView, ListedHoliday


class MalformedMessageError(ValueError):
    """An agent message that cannot be understood; the message is dropped and logged."""


_STREAMS = {apb.STDOUT: "stdout", apb.STDERR: "stderr"}
_STREAM_IDS = {v: k for k, v in _STREAMS.items()}
_FINAL_FROM_AGENT = {RunState.SUCCESS, RunState.FAILED, RunState.TERMINATED}


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
    )


def _ms(value: int) -> datetime | None:
    return from_ms(value) if value > 0 else None


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
        return p.RunAccepted(msg.accepted.run_id, _ms(msg.accepted.accepted_at_ms))
    if kind == "started":
        s = msg.started
        return p.RunStarted(s.run_id, s.pid, from_ms(s.started_at_ms), s.stdout_path, s.stderr_path)
    if kind == "finished":
        return _finished_from_proto(msg.finished)
    if kind == "declined":
        return p.RunDeclined(msg.declined.run_id, msg.declined.reason)
    if kind == "heartbeat":
        h = msg.heartbeat
        return p.AgentHeartbeat(h.cpu_percent, h.mem_percent, h.running)
    if kind == "hello":
        raise MalformedMessageError("hello sent twice on one stream")
    if kind == "batch":
        raise MalformedMessageError("a batch inside a batch")
    return None


def _finished_from_proto(f: apb.RunFinished) -> p.RunFinished:
    try:
        state = RunState(f.state)
    except ValueError:
        state = None
    if state not in _FINAL_FROM_AGENT or not f.run_id:
        raise MalformedMessageError(f"run {f.run_id}: result state {f.state!r} is not final")
    assert state is not None
    return p.RunFinished(
        run_id=f.run_id,
        state=state,
        reason=f.reason,
        return_code=f.return_code if f.has_return_code else None,
        pid=f.pid or None,
        started_at=_ms(f.started_at_ms),
        ended_at=_ms(f.ended_at_ms) or from_ms(0),
        stdout_path=f.stdout_path,
        stderr_path=f.stderr_path,
        stdout_range=(f.stdout_start, f.stdout_end) if f.stdout_path else None,
        stderr_range=(f.stderr_start, f.stderr_end) if f.stderr_path else None,
    )


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
    sent = to_ms(msg.sent_at) if msg.sent_at else 0
    return apb.SchedulerMessage(heartbeat=apb.Heartbeat(sent_at_ms=sent))


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

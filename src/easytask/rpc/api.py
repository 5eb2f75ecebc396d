"""ApiServicer: the public EasyTaskApi, a thin layer over SchedulerApp."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from typing import Any

import grpc

from easytask.core.errors import FieldError, ValidationError
from easytask.core.records import (
    USER,
    EventFilter,
    EventRecord,
    EventRequest,
    FollowEnd,
    ListedHoliday,
    RunFilter,
)
from easytask.core.rundate import parse_run_date
from easytask.core.runid import iso_utc
from easytask.core.states import RunState
from easytask.rpc.accounts_api import AccountApi
from easytask.rpc.convert import calendar_to_proto, holiday_to_proto, run_to_proto
from easytask.rpc.errors import (
    abort_with,
    authenticate,
    caller,
    check_request_text,
    errors_mapped,
    json_object,
    page_of,
)
from easytask.rpc.fleet_api import FleetApi, adhoc_result_to_proto
from easytask.rpc.groups_api import GroupApi
from easytask.rpc.scheduler_api import SchedulerApi
from easytask.rpc.v1 import api_pb2 as pb
from easytask.rpc.v1 import api_pb2_grpc
from easytask.scheduler.app import SchedulerApp

log = logging.getLogger(__name__)


class ApiServicer(SchedulerApi, GroupApi, AccountApi, FleetApi, api_pb2_grpc.EasyTaskApiServicer):
    def __init__(self, app: SchedulerApp) -> None:
        self._app = app

    # ----- tasks -----

    def _task_reply(self, task: Any) -> pb.TaskReply:
        return pb.TaskReply(task_json=json.dumps(task.to_json()))

    @errors_mapped
    async def CreateTask(self, request: pb.CreateTaskRequest, context: Any) -> pb.TaskReply:
        raw = json_object(request.task_json, "task")
        task = await self._app.create_task(raw, caller())
        return self._task_reply(task)

    @errors_mapped
    async def UpdateTask(self, request: pb.UpdateTaskRequest, context: Any) -> pb.TaskReply:
        patch = json_object(request.patch_json, "task")
        task = await self._app.update_task(request.ref.tid, request.ref.name, patch, caller())
        return self._task_reply(task)

    @errors_mapped
    async def GetTask(self, request: pb.TaskRef, context: Any) -> pb.TaskReply:
        return self._task_reply(self._app.get_task(request.tid, request.name))

    @errors_mapped
    async def ListTasks(self, request: pb.ListTasksRequest, context: Any) -> pb.ListTasksReply:
        active = {0: None, 1: True, 2: False}[request.active]
        page, per_page = page_of(request.page, request.per_page)
        tasks, total, statuses = self._app.list_tasks(
            active, request.search, page, per_page, group=request.group
        )
        return pb.ListTasksReply(
            tasks_json=[json.dumps(t.to_json()) for t in tasks],
            task_status=[s.value for s in statuses],
            total=total,
            page=page,
            per_page=per_page,
        )

    @errors_mapped
    async def DeleteTask(self, request: pb.DeleteTaskRequest, context: Any) -> pb.DeleteTaskReply:
        task, cleared = await self._app.delete_task(
            request.ref.tid, request.ref.name, request.cascade, caller()
        )
        return pb.DeleteTaskReply(tid=task.tid, name=task.name, dependencies_cleared=cleared)

    @errors_mapped
    async def ExportTasks(
        self, request: pb.ExportTasksRequest, context: Any
    ) -> pb.ExportTasksReply:
        return pb.ExportTasksReply(json=json.dumps(self._app.export_tasks(), indent=2))

    @errors_mapped
    async def ImportTasks(
        self, request: pb.ImportTasksRequest, context: Any
    ) -> pb.ImportTasksReply:
        result = await self._app.import_tasks(
            request.json, caller(), request.dry_run, request.atomic
        )
        return pb.ImportTasksReply(
            created=result.created,
            updated=result.updated,
            unchanged=result.unchanged,
            deleted=result.deleted,
            errors=[pb.ImportError(name=n, message=m, kind=k) for k, n, m in result.errors],
        )

    # ----- events -----

    @errors_mapped
    async def ForceRun(self, request: pb.ForceRunRequest, context: Any) -> pb.EventReply:
        run_date = parse_run_date(request.run_date) if request.run_date else ""
        outcome = await self._app.force_run(
            request.ref.tid, request.ref.name, run_date, caller(), request.origin or "API"
        )
        return pb.EventReply(
            event_id=outcome.event_id,
            status=outcome.status,
            message=outcome.message,
            run_id=outcome.run.run_id if outcome.run else "",
            run_date=outcome.run.run_date if outcome.run else "",
        )

    @errors_mapped
    async def PublishEvent(self, request: pb.PublishEventRequest, context: Any) -> pb.EventReply:
        req = EventRequest(
            event=request.event,
            tid=request.task.tid,
            name=request.task.name,
            run_date=request.run_date,
            trigger_time=request.trigger_time,
            status=request.status,
            run_id=request.run_id,
            origin=request.origin or "API",
            gid=request.group.gid,
            group_name=request.group.name,
        )
        outcome = await self._app.publish_event(req, caller())
        return pb.EventReply(
            event_id=outcome.event_id,
            status=outcome.status,
            message=outcome.message,
            run_id=outcome.run.run_id if outcome.run else "",
            run_date=outcome.run_date,
        )

    @errors_mapped
    async def ListEvents(self, request: pb.ListEventsRequest, context: Any) -> pb.ListEventsReply:
        page, per_page = page_of(request.page, request.per_page)
        flt = EventFilter(
            event=request.event_name,
            status=request.status,
            origin=request.origin,
            since=self._app.now() - timedelta(hours=request.since_hours or 24),
        )
        records, total = await self._app.find_events(flt, request.task_name, page, per_page)
        return pb.ListEventsReply(
            events=[_event_to_proto(r) for r in records], total=total, page=page, per_page=per_page
        )

    @errors_mapped
    async def GetEvent(self, request: pb.GetEventRequest, context: Any) -> pb.EventRecord:
        record = _event_to_proto(await self._app.get_event(request.id))
        if record.event == "ADHOC":
            results = await self._app.adhoc_results(request.id)
            record.results.extend(adhoc_result_to_proto(r) for r in results)
        return record

    @errors_mapped
    async def RefreshCalendars(
        self, request: pb.RefreshCalendarsRequest, context: Any
    ) -> pb.EventReply:
        outcome = await self._app.refresh_calendars(caller(), request.origin or "API")
        return pb.EventReply(
            event_id=outcome.event_id, status=outcome.status, message=outcome.message
        )

    # ----- calendars -----

    @errors_mapped
    async def ListCalendars(
        self, request: pb.ListCalendarsRequest, context: Any
    ) -> pb.ListCalendarsReply:
        page, per_page = page_of(request.page, request.per_page)
        views, total = self._app.list_calendars(request.include_builtin, page, per_page)
        return pb.ListCalendarsReply(
            calendars=[calendar_to_proto(v) for v in views],
            total=total,
            page=page,
            per_page=per_page,
        )

    @errors_mapped
    async def GetCalendar(
        self, request: pb.GetCalendarRequest, context: Any
    ) -> pb.GetCalendarReply:
        detail = self._app.get_calendar(request.name, request.year)
        return pb.GetCalendarReply(
            calendar=calendar_to_proto(detail.calendar),
            year=detail.year,
            entries=[holiday_to_proto(h) for h in detail.holidays],
        )

    @errors_mapped
    async def CreateCalendar(self, request: pb.CreateCalendarRequest, context: Any) -> pb.Calendar:
        view = await self._app.create_calendar(request.name, request.description, caller())
        return calendar_to_proto(view)

    @errors_mapped
    async def AddHoliday(self, request: pb.AddHolidayRequest, context: Any) -> pb.HolidayEntry:
        span = await self._app.add_holiday(
            request.name, request.start_date, request.end_date, request.reason, caller()
        )
        return holiday_to_proto(ListedHoliday(span, USER))

    @errors_mapped
    async def RemoveHoliday(
        self, request: pb.RemoveHolidayRequest, context: Any
    ) -> pb.HolidayEntry:
        span = await self._app.remove_holiday(request.name, request.entry_id, caller())
        return holiday_to_proto(ListedHoliday(span, USER))

    @errors_mapped
    async def DeleteCalendar(self, request: pb.DeleteCalendarRequest, context: Any) -> pb.Calendar:
        return calendar_to_proto(await self._app.delete_calendar(request.name, caller()))

    # ----- runs -----

    @errors_mapped
    async def ListRuns(self, request: pb.ListRunsRequest, context: Any) -> pb.ListRunsReply:
        if request.status and request.status.upper() not in RunState.__members__:
            raise ValidationError([FieldError("status", f"unknown state {request.status}")])
        hours = request.since_hours or 24.0
        flt = RunFilter(
            state=request.status,
            search=request.search,
            tid=request.tid,
            run_date=request.run_date,
            since=self._app.now() - timedelta(hours=hours),
        )
        page, per_page = page_of(request.page, request.per_page)
        group = self._app.resolve_group(request.group).name if request.group else ""
        runs, total, stats = await self._app.list_runs(flt, page, per_page, group=group)
        return pb.ListRunsReply(
            runs=[run_to_proto(r) for r in runs],
            total=total,
            page=page,
            per_page=per_page,
            stats=stats,
        )

    @errors_mapped
    async def GetRun(self, request: pb.GetRunRequest, context: Any) -> pb.Run:
        run, changes = await self._app.get_run(request.run_id)
        return run_to_proto(run, changes)

    @errors_mapped
    async def GetRunLogs(self, request: pb.RunLogsRequest, context: Any) -> pb.RunLogsReply:
        run, output = await self._app.run_output(request.run_id)
        page, per_page = page_of(request.page, request.per_page or 500)
        reply = pb.RunLogsReply(state=run.state.value)
        for stream, target in (("stdout", reply.stdout), ("stderr", reply.stderr)):
            if _wants(request.stream, stream):
                data, cut = output[stream]
                lines = data.decode("utf-8", errors="replace").splitlines()
                start = (page - 1) * per_page
                target.lines.extend(lines[start : start + per_page])
                target.total_lines = len(lines)
                target.total_bytes = len(data)
                target.truncated = cut
        return reply

    async def FollowRunLogs(
        self, request: pb.FollowRunLogsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.LogChunk]:
        streams = tuple(s for s in ("stdout", "stderr") if _wants(request.stream, s))
        try:
            await authenticate(self._app, context)
            check_request_text(request)
            start = {"stdout": request.stdout_offset, "stderr": request.stderr_offset}
            for stream, offset in start.items():
                if offset < 0:
                    field = f"{stream}_offset"
                    raise ValidationError([FieldError(field, f"{field} must be >= 0")])
            async for item in self._app.follow_output(request.run_id, streams, start):
                if isinstance(item, FollowEnd):
                    yield pb.LogChunk(final_state=item.state.value, complete=item.complete)
                else:
                    yield pb.LogChunk(stream=item.stream, data=item.data, end=item.end)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await abort_with(context, exc, "FollowRunLogs")

    # ----- schedule, health, agents -----

    @errors_mapped
    async def Upcoming(self, request: pb.UpcomingRequest, context: Any) -> pb.UpcomingReply:
        now = self._app.now()
        start, end = now, now + timedelta(hours=request.hours or 24)
        if request.from_date or request.to_date:
            start, end = _date_window(request.from_date, request.to_date, now)
        if request.gid:
            return _upcoming_groups(self._app, request.gid, start, end, request.count or 50)
        rows = self._app.upcoming(request.tid, start, end, request.count or 50)
        return pb.UpcomingReply(
            entries=[
                pb.UpcomingEntry(
                    tid=u.task.tid,
                    name=u.task.name,
                    next_run_utc=iso_utc(u.slot.scheduled_utc),
                    local_run=f"{u.slot.local_date:%Y-%m-%d} {u.slot.local_time}",
                    timezone=u.slot.timezone,
                    group=u.task.task_group or "",
                    queue=u.task.run_on_host,
                    note=u.note,
                )
                for u in rows
            ]
        )

    @errors_mapped
    async def Health(self, request: pb.HealthRequest, context: Any) -> pb.HealthReply:
        h = await self._app.health()
        return pb.HealthReply(
            instance=h.instance,
            status="HEALTHY",
            heartbeat_age=h.heartbeat_age,
            started_at=iso_utc(h.started_at),
            version=h.version,
            agents_online=h.agents_online,
            active_runs=h.active_runs,
            triggers_24h=h.triggers_24h,
            debug=logging.getLogger("easytask").isEnabledFor(logging.DEBUG),
            timezone=h.timezone,
            dashboard_url=self._app.dashboard_url,
        )


def _event_to_proto(r: EventRecord) -> pb.EventRecord:
    return pb.EventRecord(
        id=r.id,
        event=r.event,
        target=r.target,
        args_json=json.dumps(r.args),
        status=r.status,
        message=r.message,
        origin=r.origin,
        published_by=r.published_by,
        created_at=iso_utc(r.created_at),
        acked_at=iso_utc(r.acked_at),
        acked_by=r.acked_by,
    )


def _upcoming_groups(
    app: SchedulerApp, gid: int, start: datetime, end: datetime, count: int
) -> pb.UpcomingReply:
    """The group's next occurrences (GroupNotFoundError when there is no such group)."""
    group = app.get_group(gid)
    return pb.UpcomingReply(
        entries=[
            pb.UpcomingEntry(
                gid=group.gid,
                name=group.name,
                next_run_utc=iso_utc(u.slot.scheduled_utc),
                local_run=f"{u.slot.local_date:%Y-%m-%d} {u.slot.local_time}",
                timezone=u.slot.timezone,
                group=group.name,
                note=u.note,
            )
            for u in app.upcoming_groups(gid, start, end, count)
        ]
    )


def _wants(selection: int, stream: str) -> bool:
    if selection == pb.STDOUT_ONLY:
        return stream == "stdout"
    if selection == pb.STDERR_ONLY:
        return stream == "stderr"
    return True


def _date_window(from_date: str, to_date: str, now: datetime) -> tuple[datetime, datetime]:
    def parse(text: str, field: str) -> datetime:
        try:
            return datetime.combine(datetime.strptime(text, "%Y-%m-%d").date(), time(), UTC)
        except ValueError as exc:
            raise ValidationError([FieldError(field, f"{field} must be YYYY-MM-DD")]) from exc

    start = parse(from_date, "from") if from_date else now
    end = parse(to_date, "to") + timedelta(days=1) if to_date else start + timedelta(days=1)
    # A slot exactly at `start` counts: next_slot looks strictly after its argument.
    return start - timedelta(microseconds=1), end

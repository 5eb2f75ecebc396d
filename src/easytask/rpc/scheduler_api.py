"""`scheduler task-statuses`, `state-codes` and `logs` handlers (mixed into ApiServicer)."""

from __future__ import annotations

from typing import Any

from easytask.core.runid import iso_utc
from easytask.core.states import RunState
from easytask.rpc.errors import errors_mapped, page_of
from easytask.rpc.v1 import api_pb2 as pb
from easytask.scheduler.app import SchedulerApp


class SchedulerApi:
    """ListTaskStatuses, ListStateCodes, ListSchedulerLogs."""

    _app: SchedulerApp

    @errors_mapped
    async def ListTaskStatuses(
        self, request: pb.ListTaskStatusesRequest, context: Any
    ) -> pb.ListTaskStatusesReply:
        page, per_page = page_of(request.page, request.per_page)
        rows, total = await self._app.task_statuses(request.search, request.group, page, per_page)
        return pb.ListTaskStatusesReply(
            statuses=[
                pb.TaskStatus(
                    tid=task.tid,
                    name=task.name,
                    status=status.value,
                    last_result=last.value if last is not None else "",
                )
                for task, status, last in rows
            ],
            total=total,
            page=page,
            per_page=per_page,
        )

    @errors_mapped
    async def ListStateCodes(
        self, request: pb.ListStateCodesRequest, context: Any
    ) -> pb.ListStateCodesReply:
        states = sorted(RunState, key=lambda s: s.code)
        return pb.ListStateCodesReply(
            codes=[
                pb.StateCode(code=s.code, state=s.value, letter=s.letter or "", display=s.display)
                for s in states
            ]
        )

    @errors_mapped
    async def ListSchedulerLogs(
        self, request: pb.ListSchedulerLogsRequest, context: Any
    ) -> pb.ListSchedulerLogsReply:
        page, per_page = page_of(request.page, request.per_page)
        entries, total = await self._app.scheduler_logs(
            request.action, request.search, page, per_page
        )
        return pb.ListSchedulerLogsReply(
            entries=[
                pb.SchedulerLogEntry(
                    id=e.id,
                    action=e.action.value,
                    host=e.host,
                    pid=e.pid,
                    message=e.message,
                    created_at=iso_utc(e.created_at),
                )
                for e in entries
            ],
            total=total,
            page=page,
            per_page=per_page,
        )

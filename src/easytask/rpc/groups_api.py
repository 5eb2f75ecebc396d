"""Task group and `tasks why` handlers of the public API (mixed into ApiServicer)."""

from __future__ import annotations

import json
from typing import Any

from easytask.core.groups import GroupDef
from easytask.rpc.errors import caller, errors_mapped, json_object, page_of
from easytask.rpc.v1 import api_pb2 as pb
from easytask.scheduler.app import SchedulerApp


class GroupApi:
    """CreateGroup, UpdateGroup, GetGroup, ListGroups, DeleteGroup, ExplainTask."""

    _app: SchedulerApp

    def _group_reply(self, group: GroupDef) -> pb.GroupReply:
        members, state = self._app.group_summary(group)
        return pb.GroupReply(
            group_json=json.dumps(group.to_json()), member_count=members, state=state
        )

    @errors_mapped
    async def CreateGroup(self, request: pb.CreateGroupRequest, context: Any) -> pb.GroupReply:
        group = await self._app.create_group(json_object(request.group_json, "group"), caller())
        return self._group_reply(group)

    @errors_mapped
    async def UpdateGroup(self, request: pb.UpdateGroupRequest, context: Any) -> pb.GroupReply:
        patch = json_object(request.patch_json, "group")
        group = await self._app.update_group(request.ref.gid, request.ref.name, patch, caller())
        return self._group_reply(group)

    @errors_mapped
    async def GetGroup(self, request: pb.GroupRef, context: Any) -> pb.GroupReply:
        return self._group_reply(self._app.get_group(request.gid, request.name))

    @errors_mapped
    async def ListGroups(self, request: pb.ListGroupsRequest, context: Any) -> pb.ListGroupsReply:
        page, per_page = page_of(request.page, request.per_page)
        groups, total = self._app.list_groups(request.search, page, per_page)
        return pb.ListGroupsReply(
            groups=[self._group_reply(g) for g in groups], total=total, page=page, per_page=per_page
        )

    @errors_mapped
    async def DeleteGroup(
        self, request: pb.DeleteGroupRequest, context: Any
    ) -> pb.DeleteGroupReply:
        group, deleted, cleared = await self._app.delete_group(
            request.ref.gid, request.ref.name, request.cascade, caller()
        )
        return pb.DeleteGroupReply(
            gid=group.gid, name=group.name, tasks_deleted=deleted, dependencies_cleared=cleared
        )

    @errors_mapped
    async def ExplainTask(
        self, request: pb.ExplainTaskRequest, context: Any
    ) -> pb.ExplainTaskReply:
        why = await self._app.explain(request.ref.tid, request.ref.name, request.run_date)
        return pb.ExplainTaskReply(
            tid=why.tid,
            name=why.name,
            run_date=why.run_date,
            verdict=why.verdict,
            clauses=[pb.Clause(clause=c.clause, ok=c.ok, detail=c.detail) for c in why.clauses],
        )

"""Agent and ad-hoc handlers (mixed into ApiServicer): ListAgents, GetAgent, RestartAgent,
RunAdhoc, and the per-agent results an ADHOC event carries."""

from __future__ import annotations

from typing import Any

from easytask.core.adhoc import AdhocRequest
from easytask.core.records import AdhocResult, AgentChange, AgentToken, AgentView
from easytask.core.runid import iso_utc
from easytask.rpc.errors import caller, errors_mapped
from easytask.rpc.v1 import api_pb2 as pb
from easytask.scheduler.app import SchedulerApp


def agent_to_proto(v: AgentView) -> pb.Agent:
    return pb.Agent(
        name=v.record.name,
        status="online" if v.online else "offline",
        host=v.record.host,
        queues=v.record.queues,
        version=v.record.version,
        cpu_percent=v.cpu_percent,
        mem_percent=v.mem_percent,
        uptime_seconds=v.uptime_seconds,
        running=len(v.running_run_ids),
        pid=v.record.pid or 0,
        connected_since=iso_utc(v.record.connected_since) if v.online else "",
        last_seen=iso_utc(v.record.last_seen),
        running_run_ids=v.running_run_ids,
        cpu_cores=v.record.cpu_cores or 0,
        memory_mb=v.record.memory_mb or 0,
        disk_total_mb=v.disk_total_mb,
        disk_free_mb=v.disk_free_mb,
        max_runs=v.max_runs,
        changes=[_change(c) for c in v.changes],
    )


def _change(c: AgentChange) -> pb.AgentChange:
    return pb.AgentChange(status=c.status, at=iso_utc(c.at), reason=c.reason)


def adhoc_result_to_proto(r: AdhocResult) -> pb.AdhocResult:
    return pb.AdhocResult(
        agent=r.agent,
        host=r.host,
        run_id=r.run_id,
        state=r.state,
        has_return_code=r.return_code is not None,
        return_code=r.return_code or 0,
        reason=r.reason,
        pid=r.pid or 0,
        started_at=iso_utc(r.started_at),
        ended_at=iso_utc(r.ended_at),
        stdout=r.stdout,
        stderr=r.stderr,
        stdout_cut=r.stdout_cut,
        stderr_cut=r.stderr_cut,
    )


class FleetApi:
    _app: SchedulerApp

    @errors_mapped
    async def ListAgents(self, request: pb.ListAgentsRequest, context: Any) -> pb.ListAgentsReply:
        return pb.ListAgentsReply(agents=[agent_to_proto(v) for v in await self._app.agents()])

    @errors_mapped
    async def GetAgent(self, request: pb.GetAgentRequest, context: Any) -> pb.Agent:
        return agent_to_proto(await self._app.agent(request.name))

    @errors_mapped
    async def RestartAgent(
        self, request: pb.RestartAgentRequest, context: Any
    ) -> pb.RestartAgentReply:
        message = await self._app.restart_agent(request.name, caller())
        return pb.RestartAgentReply(message=message)

    @errors_mapped
    async def RunAdhoc(self, request: pb.AdhocRequest, context: Any) -> pb.EventReply:
        req = AdhocRequest(
            name=request.name,
            cmd=request.cmd,
            queues=tuple(request.queues),
            agents=tuple(request.agents),
            all=request.all,
            stdout=request.stdout,
            stderr=request.stderr,
            max_run_time=request.max_run_time,
            run_as_user=request.run_as_user,
            origin=request.origin or "API",
        )
        outcome = await self._app.run_adhoc(req, caller())
        return pb.EventReply(
            event_id=outcome.event_id, status=outcome.status, message=outcome.message
        )

    @errors_mapped
    async def CreateAgentToken(
        self, request: pb.CreateAgentTokenRequest, context: Any
    ) -> pb.CreateAgentTokenReply:
        token, secret = await self._app.create_agent_token(request.name, caller())
        return pb.CreateAgentTokenReply(token=_token(token), secret=secret)

    @errors_mapped
    async def ListAgentTokens(
        self, request: pb.ListAgentTokensRequest, context: Any
    ) -> pb.ListAgentTokensReply:
        tokens = await self._app.agent_tokens(caller())
        return pb.ListAgentTokensReply(tokens=[_token(t) for t in tokens])

    @errors_mapped
    async def RevokeAgentToken(
        self, request: pb.RevokeAgentTokenRequest, context: Any
    ) -> pb.AgentToken:
        return _token(await self._app.revoke_agent_token(request.name, caller()))


def _token(t: AgentToken) -> pb.AgentToken:
    """A token as the API shows it: never its hash, never its secret."""
    return pb.AgentToken(
        name=t.name,
        created_at=iso_utc(t.created_at),
        created_by=t.created_by,
        last_used=iso_utc(t.last_used),
    )

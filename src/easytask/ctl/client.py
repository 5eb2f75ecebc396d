"""Connection to the public API: target, token, TLS, deadlines and gRPC error mapping.

This is the CLI's edge to gRPC: every call goes through ``ApiClient``, and every ``grpc.RpcError``
becomes a ``CtlError`` carrying the text to print and the exit code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from easytask.core.errors import CtlError, NotAuthenticatedError
from easytask.ctl.logins import LoginFile, StoredLogin
from easytask.rpc.v1 import api_pb2 as pb
from easytask.rpc.v1 import api_pb2_grpc

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

DEFAULT_SERVER = "127.0.0.1:7070"
DEFAULT_HOME = ".easytask"
DEFAULT_TIMEOUT = 30.0
# Whole-instance operations get at least this long.
BULK_TIMEOUT = 300.0
FIELD_ERRORS_KEY = "easytask-field-errors"

R = TypeVar("R", bound=Message)


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Where and how to connect."""

    server: str = DEFAULT_SERVER
    token: str | None = None
    tls_ca: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    # Where the token came from, for the "not authenticated" hint.
    token_source: str = ""
    metadata: tuple[tuple[str, str], ...] = field(default=())
    # The stored login the token came from (refreshed when it expires), and where logins live.
    login: StoredLogin | None = None
    logins: LoginFile | None = None


def credentials_path(home: str | None, environ: Mapping[str, str]) -> Path:
    """``<home>/credentials.json``; home = ``--home``, else $EASYTASK_HOME, else ./.easytask."""
    base = home or environ.get("EASYTASK_HOME") or DEFAULT_HOME
    return Path(base) / "credentials.json"


def resolve_token(
    token: str | None, home: str | None, environ: Mapping[str, str]
) -> tuple[str | None, str]:
    """The API token and where it came from: ``--token``, $EASYTASK_TOKEN, the credentials file."""
    if token:
        return token, "--token"
    if environ.get("EASYTASK_TOKEN"):
        return environ["EASYTASK_TOKEN"], "EASYTASK_TOKEN"
    path = credentials_path(home, environ)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, ""
    except (OSError, ValueError) as exc:
        raise CtlError(f"cannot read credentials file {path}: {exc}", EXIT_UNREACHABLE) from None
    value = data.get("api_token") if isinstance(data, dict) else None
    if isinstance(value, str) and value:
        return value, str(path)
    return None, ""


def bearer(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


def build_config(
    *,
    server: str | None,
    token: str | None,
    home: str | None,
    tls_ca: str | None,
    timeout: float | None,
    environ: Mapping[str, str] | None = None,
) -> ClientConfig:
    """Apply flags, then environment, then defaults. The token is ``--token``, else
    $EASYTASK_TOKEN, else the stored login for this server, else the credentials file."""
    env = os.environ if environ is None else environ
    target = server or env.get("EASYTASK_SERVER") or DEFAULT_SERVER
    logins = LoginFile.default(env)
    login = None if token or env.get("EASYTASK_TOKEN") else logins.get(target)
    if login is not None:
        resolved: str | None = login.access_token
        source = f"the login of {login.username} ({logins.path})"
    else:
        resolved, source = resolve_token(token, home, env)
    return ClientConfig(
        server=target,
        token=resolved,
        tls_ca=tls_ca or env.get("EASYTASK_TLS_CA") or None,
        timeout=timeout if timeout and timeout > 0 else DEFAULT_TIMEOUT,
        token_source=source,
        metadata=bearer(resolved),
        login=login,
        logins=logins,
    )


def _field_errors(exc: Any) -> list[str] | None:
    try:
        trailing = exc.trailing_metadata() or ()
    except Exception:  # a non-Call RpcError has no metadata
        return None
    for key, value in trailing:
        if key != FIELD_ERRORS_KEY:
            continue
        try:
            items = json.loads(value)
        except (TypeError, ValueError):
            return None
        if not isinstance(items, list):
            return None
        return [
            f"  {item.get('field', '')}: {item.get('message', '')}"
            for item in items
            if isinstance(item, dict)
        ]
    return None


def map_rpc_error(exc: Any, config: ClientConfig) -> CtlError:
    """Translate a ``grpc.RpcError`` into the message and exit code the CLI reports."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else None) or ""
    if code == grpc.StatusCode.UNAVAILABLE:
        return CtlError(f"server unreachable at {config.server}: {details}", EXIT_UNREACHABLE)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return CtlError(
            f"no answer from {config.server} within {config.timeout:g} s", EXIT_UNREACHABLE
        )
    if code == grpc.StatusCode.UNAUTHENTICATED:
        hint: list[str] = []
        if config.token is None:
            hint = ["  no API token: use --token, EASYTASK_TOKEN or <home>/credentials.json"]
        return NotAuthenticatedError(details or "invalid token", hint)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        lines = _field_errors(exc)
        if lines is None and "\n" in details:
            lines = [f"  {line}" for line in details.splitlines() if line.strip()]
        if lines:
            return CtlError("validation failed", EXIT_FAILED, lines)
    return CtlError(details or code.name.lower().replace("_", " "), EXIT_FAILED)


Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ApiClient:
    """Typed calls to ``easytask.v1.EasyTaskApi``; each raises ``CtlError`` on failure.

    With a stored login, an expired access token is refreshed before the call, and a call
    refused as unauthenticated is refreshed and retried once (the server authenticates before
    it does anything, so the retry never repeats an effect).
    """

    def __init__(self, channel: Any, config: ClientConfig, clock: Clock = _utc_now) -> None:
        self._channel = channel
        self._config = config
        self._clock = clock
        self._stub: Any = api_pb2_grpc.EasyTaskApiStub(channel)  # type: ignore[no-untyped-call]

    @property
    def config(self) -> ClientConfig:
        return self._config

    def close(self) -> None:
        self._channel.close()

    def _call(
        self,
        method: str,
        request: Message,
        reply_type: type[R],
        timeout: float | None = None,
        *,
        authenticated: bool = True,
    ) -> R:
        fn = getattr(self._stub, method)
        login = self._fresh_login() if authenticated else None
        try:
            try:
                reply = fn(
                    request,
                    timeout=timeout or self._config.timeout,
                    metadata=self._config.metadata if authenticated else (),
                )
            except grpc.RpcError as exc:
                if login is None or exc.code() != grpc.StatusCode.UNAUTHENTICATED:
                    raise
                self._refresh(login)
                reply = fn(
                    request, timeout=timeout or self._config.timeout, metadata=self._config.metadata
                )
        except grpc.RpcError as exc:
            raise map_rpc_error(exc, self._config) from None
        if not isinstance(reply, reply_type):
            raise CtlError(f"{method}: unexpected reply {type(reply).__name__}")
        return reply

    def _fresh_login(self) -> StoredLogin | None:
        """The stored login, refreshed first when its access token has expired."""
        login = self._config.login
        if login is not None and login.expired(self._clock()):
            login = self._refresh(login)
        return login

    def _use(self, login: StoredLogin) -> StoredLogin:
        self._config = replace(
            self._config, login=login, token=login.access_token, metadata=bearer(login.access_token)
        )
        return login

    def _refresh(self, stale: StoredLogin) -> StoredLogin:
        """Exchange the stored refresh token for a new pair, once across parallel commands."""
        logins = self._config.logins
        if logins is None:
            raise NotAuthenticatedError(f"no login stored for {self._config.server}")
        with logins.locked():
            current = logins.get(stale.server)
            if current is None:
                raise NotAuthenticatedError(
                    f"logged out of {stale.server}; log in again: easytaskctl auth login"
                )
            if current.access_token != stale.access_token:
                return self._use(current)  # another command refreshed it meanwhile
            try:
                reply = self._stub.RefreshLogin(
                    pb.RefreshLoginRequest(refresh_token=current.refresh_token),
                    timeout=self._config.timeout,
                )
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAUTHENTICATED:
                    raise map_rpc_error(exc, self._config) from None
                raise NotAuthenticatedError(
                    f"the session of {current.username} on {stale.server} has ended "
                    f"({exc.details()})"
                ) from None
            fresh = stored_login(stale.server, reply)
            logins.put(fresh)
        return self._use(fresh)

    # ----- accounts -----

    def login(self, username: str, password: str) -> pb.LoginReply:
        request = pb.LoginRequest(username=username, password=password)
        return self._call("Login", request, pb.LoginReply, authenticated=False)

    def logout(self) -> pb.LogoutReply:
        return self._call("Logout", pb.LogoutRequest(), pb.LogoutReply)

    def whoami(self) -> pb.User:
        return self._call("WhoAmI", pb.WhoAmIRequest(), pb.User)

    def list_users(self, request: pb.ListUsersRequest) -> pb.ListUsersReply:
        return self._call("ListUsers", request, pb.ListUsersReply)

    def get_user(self, username: str) -> pb.User:
        return self._call("GetUser", pb.GetUserRequest(username=username), pb.User)

    def create_user(self, user_json: str) -> pb.User:
        return self._call("CreateUser", pb.CreateUserRequest(user_json=user_json), pb.User)

    def update_user(self, username: str, patch_json: str) -> pb.User:
        request = pb.UpdateUserRequest(username=username, patch_json=patch_json)
        return self._call("UpdateUser", request, pb.User)

    def delete_user(self, username: str) -> pb.User:
        return self._call("DeleteUser", pb.DeleteUserRequest(username=username), pb.User)

    def list_roles(self) -> pb.ListRolesReply:
        return self._call("ListRoles", pb.ListRolesRequest(), pb.ListRolesReply)

    # ----- tasks -----

    def create_task(self, task_json: str) -> pb.TaskReply:
        return self._call("CreateTask", pb.CreateTaskRequest(task_json=task_json), pb.TaskReply)

    def update_task(self, ref: pb.TaskRef, patch_json: str) -> pb.TaskReply:
        request = pb.UpdateTaskRequest(ref=ref, patch_json=patch_json)
        return self._call("UpdateTask", request, pb.TaskReply)

    def get_task(self, ref: pb.TaskRef) -> pb.TaskReply:
        return self._call("GetTask", ref, pb.TaskReply)

    def list_tasks(self, request: pb.ListTasksRequest) -> pb.ListTasksReply:
        return self._call("ListTasks", request, pb.ListTasksReply)

    def delete_task(self, ref: pb.TaskRef, cascade: bool) -> pb.DeleteTaskReply:
        request = pb.DeleteTaskRequest(ref=ref, cascade=cascade)
        return self._call("DeleteTask", request, pb.DeleteTaskReply)

    def create_group(self, group_json: str) -> pb.GroupReply:
        return self._call(
            "CreateGroup", pb.CreateGroupRequest(group_json=group_json), pb.GroupReply
        )

    def update_group(self, ref: pb.GroupRef, patch_json: str) -> pb.GroupReply:
        request = pb.UpdateGroupRequest(ref=ref, patch_json=patch_json)
        return self._call("UpdateGroup", request, pb.GroupReply)

    def get_group(self, ref: pb.GroupRef) -> pb.GroupReply:
        return self._call("GetGroup", ref, pb.GroupReply)

    def list_groups(self, request: pb.ListGroupsRequest) -> pb.ListGroupsReply:
        return self._call("ListGroups", request, pb.ListGroupsReply)

    def delete_group(self, ref: pb.GroupRef, cascade: bool) -> pb.DeleteGroupReply:
        request = pb.DeleteGroupRequest(ref=ref, cascade=cascade)
        return self._call("DeleteGroup", request, pb.DeleteGroupReply)

    def explain_task(self, ref: pb.TaskRef, run_date: str) -> pb.ExplainTaskReply:
        request = pb.ExplainTaskRequest(ref=ref, run_date=run_date)
        return self._call("ExplainTask", request, pb.ExplainTaskReply)

    def export_tasks(self) -> pb.ExportTasksReply:
        timeout = max(self._config.timeout, BULK_TIMEOUT)
        return self._call("ExportTasks", pb.ExportTasksRequest(), pb.ExportTasksReply, timeout)

    def import_tasks(self, text: str, dry_run: bool, atomic: bool = False) -> pb.ImportTasksReply:
        request = pb.ImportTasksRequest(json=text, dry_run=dry_run, atomic=atomic)
        timeout = max(self._config.timeout, BULK_TIMEOUT)
        return self._call("ImportTasks", request, pb.ImportTasksReply, timeout)

    def force_run(self, request: pb.ForceRunRequest) -> pb.EventReply:
        return self._call("ForceRun", request, pb.EventReply)

    def publish_event(self, request: pb.PublishEventRequest) -> pb.EventReply:
        return self._call("PublishEvent", request, pb.EventReply)

    def list_events(self, request: pb.ListEventsRequest) -> pb.ListEventsReply:
        return self._call("ListEvents", request, pb.ListEventsReply)

    def get_event(self, event_id: int, timeout: float | None = None) -> pb.EventRecord:
        request = pb.GetEventRequest(id=event_id)
        return self._call("GetEvent", request, pb.EventRecord, timeout)

    def list_runs(self, request: pb.ListRunsRequest) -> pb.ListRunsReply:
        return self._call("ListRuns", request, pb.ListRunsReply)

    def get_run(self, run_id: str) -> pb.Run:
        return self._call("GetRun", pb.GetRunRequest(run_id=run_id), pb.Run)

    def get_run_logs(self, request: pb.RunLogsRequest) -> pb.RunLogsReply:
        return self._call("GetRunLogs", request, pb.RunLogsReply)

    def follow_run_logs(self, request: pb.FollowRunLogsRequest) -> Iterator[pb.LogChunk]:
        """Chunks until the closing message; no deadline (a run may take hours)."""
        self._fresh_login()
        try:
            for chunk in self._stub.FollowRunLogs(request, metadata=self._config.metadata):
                if isinstance(chunk, pb.LogChunk):
                    yield chunk
        except grpc.RpcError as exc:
            raise map_rpc_error(exc, self._config) from None

    def upcoming(self, request: pb.UpcomingRequest) -> pb.UpcomingReply:
        return self._call("Upcoming", request, pb.UpcomingReply)

    def health(self) -> pb.HealthReply:
        return self._call("Health", pb.HealthRequest(), pb.HealthReply)

    def list_task_statuses(self, request: pb.ListTaskStatusesRequest) -> pb.ListTaskStatusesReply:
        return self._call("ListTaskStatuses", request, pb.ListTaskStatusesReply)

    def list_state_codes(self) -> pb.ListStateCodesReply:
        return self._call("ListStateCodes", pb.ListStateCodesRequest(), pb.ListStateCodesReply)

    def list_scheduler_logs(
        self, request: pb.ListSchedulerLogsRequest
    ) -> pb.ListSchedulerLogsReply:
        return self._call("ListSchedulerLogs", request, pb.ListSchedulerLogsReply)

    def list_agents(self) -> pb.ListAgentsReply:
        return self._call("ListAgents", pb.ListAgentsRequest(), pb.ListAgentsReply)

    def get_agent(self, name: str) -> pb.Agent:
        return self._call("GetAgent", pb.GetAgentRequest(name=name), pb.Agent)

    def restart_agent(self, name: str) -> pb.RestartAgentReply:
        return self._call("RestartAgent", pb.RestartAgentRequest(name=name), pb.RestartAgentReply)

    def create_agent_token(self, name: str) -> pb.CreateAgentTokenReply:
        request = pb.CreateAgentTokenRequest(name=name)
        return self._call("CreateAgentToken", request, pb.CreateAgentTokenReply)

    def list_agent_tokens(self) -> pb.ListAgentTokensReply:
        return self._call("ListAgentTokens", pb.ListAgentTokensRequest(), pb.ListAgentTokensReply)

    def revoke_agent_token(self, name: str) -> pb.AgentToken:
        return self._call("RevokeAgentToken", pb.RevokeAgentTokenRequest(name=name), pb.AgentToken)

    def run_adhoc(self, request: pb.AdhocRequest) -> pb.EventReply:
        return self._call("RunAdhoc", request, pb.EventReply)

    def refresh_calendars(self, origin: str) -> pb.EventReply:
        request = pb.RefreshCalendarsRequest(origin=origin)
        return self._call("RefreshCalendars", request, pb.EventReply)

    def list_calendars(self, request: pb.ListCalendarsRequest) -> pb.ListCalendarsReply:
        return self._call("ListCalendars", request, pb.ListCalendarsReply)

    def get_calendar(self, name: str, year: int) -> pb.GetCalendarReply:
        request = pb.GetCalendarRequest(name=name, year=year)
        return self._call("GetCalendar", request, pb.GetCalendarReply)

    def create_calendar(self, name: str, description: str) -> pb.Calendar:
        request = pb.CreateCalendarRequest(name=name, description=description)
        return self._call("CreateCalendar", request, pb.Calendar)

    def add_holiday(self, request: pb.AddHolidayRequest) -> pb.HolidayEntry:
        return self._call("AddHoliday", request, pb.HolidayEntry)

    def remove_holiday(self, name: str, entry_id: int) -> pb.HolidayEntry:
        request = pb.RemoveHolidayRequest(name=name, entry_id=entry_id)
        return self._call("RemoveHoliday", request, pb.HolidayEntry)

    def delete_calendar(self, name: str) -> pb.Calendar:
        return self._call("DeleteCalendar", pb.DeleteCalendarRequest(name=name), pb.Calendar)


# Replies up to what the scheduler sends (16 MiB: a page of a run's 10 MiB stored output fits);
# gRPC's default of 4 MiB refused them.
CHANNEL_OPTIONS = (("grpc.max_receive_message_length", 16 * 1024 * 1024),)


def connect(config: ClientConfig, clock: Clock = _utc_now) -> ApiClient:
    """Open a channel to ``config.server`` (TLS when ``tls_ca`` is set). The one place clients
    are made; tests point it at their own server through ``--server``."""
    if config.tls_ca:
        try:
            root = Path(config.tls_ca).read_bytes()
        except OSError as exc:
            raise CtlError(f"cannot read CA file {config.tls_ca}: {exc.strerror}") from None
        creds = grpc.ssl_channel_credentials(root_certificates=root)
        channel = grpc.secure_channel(config.server, creds, options=CHANNEL_OPTIONS)
    else:
        channel = grpc.insecure_channel(config.server, options=CHANNEL_OPTIONS)
    return ApiClient(channel, config, clock)


def stored_login(server: str, reply: pb.LoginReply) -> StoredLogin:
    return StoredLogin(
        server=server,
        username=reply.user.username,
        access_token=reply.access_token,
        refresh_token=reply.refresh_token,
        access_expires_at=reply.access_expires_at,
        instance=reply.instance,
    )


Connector = Callable[[ClientConfig], ApiClient]

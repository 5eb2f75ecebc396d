"""Account handlers of the public API (mixed into ApiServicer): login, sessions, users."""

from __future__ import annotations

from typing import Any

from easytask.core.records import Session, UserRecord
from easytask.core.runid import iso_utc
from easytask.rpc.errors import bearer_token, caller, errors_mapped, json_object, page_of
from easytask.rpc.v1 import api_pb2 as pb
from easytask.scheduler.app import SchedulerApp


def _user(u: UserRecord) -> pb.User:
    return pb.User(
        username=u.username,
        email=u.email,
        first_name=u.first_name,
        last_name=u.last_name,
        role=u.role,
        active=u.active,
        created_at=iso_utc(u.created_at),
        updated_at=iso_utc(u.updated_at),
    )


class AccountApi:
    """Login, RefreshLogin, Logout, WhoAmI, ListUsers, GetUser, CreateUser, UpdateUser,
    DeleteUser, ListRoles."""

    _app: SchedulerApp

    def _login_reply(self, session: Session) -> pb.LoginReply:
        return pb.LoginReply(
            access_token=session.access_token,
            refresh_token=session.refresh_token,
            access_expires_at=iso_utc(session.access_expires_at),
            user=_user(session.user),
            instance=self._app.instance,
        )

    @errors_mapped
    async def Login(self, request: pb.LoginRequest, context: Any) -> pb.LoginReply:
        return self._login_reply(await self._app.login(request.username, request.password))

    @errors_mapped
    async def RefreshLogin(self, request: pb.RefreshLoginRequest, context: Any) -> pb.LoginReply:
        return self._login_reply(await self._app.refresh_login(request.refresh_token))

    @errors_mapped
    async def Logout(self, request: pb.LogoutRequest, context: Any) -> pb.LogoutReply:
        await self._app.logout(bearer_token(context))
        return pb.LogoutReply()

    @errors_mapped
    async def WhoAmI(self, request: pb.WhoAmIRequest, context: Any) -> pb.User:
        return _user(await self._app.whoami(caller()))

    @errors_mapped
    async def ListUsers(self, request: pb.ListUsersRequest, context: Any) -> pb.ListUsersReply:
        page, per_page = page_of(request.page, request.per_page)
        users, total = await self._app.list_users(caller(), request.search, page, per_page)
        return pb.ListUsersReply(
            users=[_user(u) for u in users], total=total, page=page, per_page=per_page
        )

    @errors_mapped
    async def GetUser(self, request: pb.GetUserRequest, context: Any) -> pb.User:
        return _user(await self._app.get_user(caller(), request.username))

    @errors_mapped
    async def CreateUser(self, request: pb.CreateUserRequest, context: Any) -> pb.User:
        raw = json_object(request.user_json, "user")
        return _user(await self._app.create_user(caller(), raw))

    @errors_mapped
    async def UpdateUser(self, request: pb.UpdateUserRequest, context: Any) -> pb.User:
        patch = json_object(request.patch_json, "user")
        return _user(await self._app.update_user(caller(), request.username, patch))

    @errors_mapped
    async def DeleteUser(self, request: pb.DeleteUserRequest, context: Any) -> pb.User:
        return _user(await self._app.delete_user(caller(), request.username))

    @errors_mapped
    async def ListRoles(self, request: pb.ListRolesRequest, context: Any) -> pb.ListRolesReply:
        return pb.ListRolesReply(
            roles=[pb.RoleInfo(name=n, description=d) for n, d in self._app.roles()]
        )

"""The application's account operations (login, sessions, users), mixed into SchedulerApp."""

from __future__ import annotations

from typing import Any

from easytask.core.authz import Caller, Role
from easytask.core.records import Session, UserRecord
from easytask.scheduler.accounts import AccountService

ROLE_DESCRIPTIONS = {
    Role.VIEWER: "read tasks, groups, runs, logs, events, agents, calendars",
    Role.USER: "viewer, plus create tasks and groups, and manage the tasks it owns",
    Role.OPERATOR: "user, on any task or group; modify-status, refresh, debug, adhoc, "
    "agents, calendars",
    Role.ADMIN: "operator, plus user management (except superadmin accounts)",
    Role.SUPERADMIN: "everything, including granting superadmin",
}


class AccountOperations:
    _accounts: AccountService

    async def login(self, username: str, password: str) -> Session:
        return await self._accounts.login(username, password)

    async def refresh_login(self, refresh_token: str) -> Session:
        return await self._accounts.refresh(refresh_token)

    async def logout(self, access_token: str) -> None:
        await self._accounts.logout(access_token)

    async def authenticate(self, token: str) -> Caller:
        """Who presents ``token`` (AuthError when nobody)."""
        return await self._accounts.authenticate(token)

    async def whoami(self, caller: Caller) -> UserRecord:
        return await self._accounts.whoami(caller)

    async def list_users(
        self, caller: Caller, search: str, page: int, per_page: int
    ) -> tuple[list[UserRecord], int]:
        return await self._accounts.list_users(caller, search, page, per_page)

    async def get_user(self, caller: Caller, username: str) -> UserRecord:
        return await self._accounts.get_user(caller, username)

    async def create_user(self, caller: Caller, raw: dict[str, Any]) -> UserRecord:
        return await self._accounts.create_user(caller, raw)

    async def update_user(self, caller: Caller, username: str, patch: dict[str, Any]) -> UserRecord:
        return await self._accounts.update_user(caller, username, patch)

    async def delete_user(self, caller: Caller, username: str) -> UserRecord:
        return await self._accounts.delete_user(caller, username)

    def roles(self) -> list[tuple[str, str]]:
        return [(role.value, ROLE_DESCRIPTIONS[role]) for role in Role]

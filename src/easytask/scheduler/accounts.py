"""AccountService: users, passwords, login tokens and who a caller is (spec 14).

Passwords are hashed with Argon2id (argon2-cffi) off the event loop; tokens are random and
only their SHA-256 hashes are stored. A role change, password reset, deactivation or delete
revokes the user's tokens at once. Every change is checked against ``core.authz``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
from collections import defaultdict, deque
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from easytask.core.authz import Action, Caller, Role, refusal
from easytask.core.clock import Clock
from easytask.core.errors import (
    AuthError,
    ConflictError,
    FieldError,
    PermissionDeniedError,
    UserNotFoundError,
    ValidationError,
)
from easytask.core.records import Session, TokenRecord, UserRecord
from easytask.core.text import shown
from easytask.core.validation import unknown_field
from easytask.store.ports import AccountStorePort

log = logging.getLogger(__name__)

SUPERUSER = "easytask_superuser"
ACCESS_TTL = timedelta(hours=1)
REFRESH_TTL = timedelta(days=7)
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
LOCK_AFTER = 10  # failed logins within LOCK_WINDOW lock the username for LOCK_FOR
LOCK_WINDOW = timedelta(minutes=1)
LOCK_FOR = timedelta(minutes=5)
FAILED_LOGIN_DELAY = 1.0  # seconds every failed login waits before it is answered
BAD_LOGIN = "invalid username or password"
USER_FIELDS = ("username", "password", "email", "first_name", "last_name", "role", "active")
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "backslashreplace")).hexdigest()


class AccountService:
    def __init__(
        self,
        *,
        store: AccountStorePort,
        clock: Clock,
        hasher: PasswordHasher | None = None,
        failed_login_delay: float = FAILED_LOGIN_DELAY,
        file_token: str = "",
    ) -> None:
        """``file_token``: the credentials file's API token, acting as the superuser."""
        self._store = store
        self._file_token = file_token
        self._clock = clock
        self._hasher = hasher or PasswordHasher()  # Argon2id, RFC 9106 low-memory profile
        self._delay = failed_login_delay
        self._failures: dict[str, deque[datetime]] = defaultdict(deque)
        self._locked_until: dict[str, datetime] = {}
        self._dummy_hash: str | None = None

    # ----- passwords -----

    async def _hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def _verify(self, password_hash: str, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(password_hash, password)
            except (VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(check)

    async def ensure_superuser(self, password: str) -> bool:
        """First start with no account: create ``easytask_superuser`` (superadmin)."""
        if await self._store.load_users():
            return False
        now = self._clock.now()
        user = UserRecord(SUPERUSER, Role.SUPERADMIN.value, await self._hash(password), now, now)
        await self._store.put_user(user)
        return True

    # ----- sessions -----

    async def login(self, username: str, password: str) -> Session:
        """Exchange a password for tokens. Every failure is answered the same way, slowly."""
        now = self._clock.now()
        if self._locked(username, now):
            await asyncio.sleep(self._delay)
            raise AuthError(f"too many failed logins for {shown(username)}; try again later")
        user = await self._store.get_user(username)
        if user is None:
            # The same work as a wrong password, so the answer's timing says nothing either.
            await self._verify(await self._dummy(), password)
        elif await self._verify(user.password_hash, password) and user.active:
            # Verified before `active` is looked at: a deactivated account answers as slowly.
            self._failures.pop(username, None)
            log.info("user %s logged in", username)
            return await self._issue(user, now)
        self._failed(username, now)
        log.warning("failed login for %s", shown(username))
        await asyncio.sleep(self._delay)
        raise AuthError(BAD_LOGIN)

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await self._hash(secrets.token_urlsafe(16))
        return self._dummy_hash

    def _locked(self, username: str, now: datetime) -> bool:
        until = self._locked_until.get(username)
        if until is not None and until > now:
            return True
        self._locked_until.pop(username, None)
        return False

    def _failed(self, username: str, now: datetime) -> None:
        recent = self._failures[username]
        recent.append(now)
        while recent and recent[0] <= now - LOCK_WINDOW:
            recent.popleft()
        if len(recent) >= LOCK_AFTER:
            self._locked_until[username] = now + LOCK_FOR
            recent.clear()
            log.warning("username %s locked for %s after failed logins", shown(username), LOCK_FOR)

    async def _issue(self, user: UserRecord, now: datetime) -> Session:
        access, refresh = "eta_" + secrets.token_urlsafe(32), "etr_" + secrets.token_urlsafe(32)
        expires = now + ACCESS_TTL
        await self._store.add_token(TokenRecord(_digest(access), user.username, "access", now,
                                                expires))  # fmt: skip
        await self._store.add_token(TokenRecord(_digest(refresh), user.username, "refresh", now,
                                                now + REFRESH_TTL))  # fmt: skip
        return Session(user, access, refresh, expires)

    async def refresh(self, refresh_token: str) -> Session:
        """A new token pair for a valid refresh token, which is used up."""
        now = self._clock.now()
        record = await self._store.find_token(_digest(refresh_token))
        if record is None or record.kind != "refresh" or record.expires_at <= now:
            raise AuthError("refresh token is invalid or expired; log in again")
        await self._store.delete_token(record.token_hash)
        user = await self._store.get_user(record.username)
        if user is None or not user.active:
            raise AuthError("refresh token is invalid or expired; log in again")
        return await self._issue(user, now)

    async def logout(self, access_token: str) -> None:
        """Revoke the caller's tokens (every session of the account)."""
        record = await self._store.find_token(_digest(access_token))
        if record is not None:
            await self._store.delete_tokens(record.username)
            log.info("user %s logged out", record.username)

    async def authenticate(self, token: str) -> Caller:
        """Who presents ``token``: a live access token's user, or the superuser for the
        credentials file's API token (a CLI on the scheduler's machine)."""
        file_token = self._file_token.encode()
        if (
            file_token
            and token
            and hmac.compare_digest(token.encode("utf-8", "replace"), file_token)
        ):
            return Caller(SUPERUSER, Role.SUPERADMIN)
        record = await self._store.find_token(_digest(token)) if token else None
        if record is None or record.kind != "access":
            raise AuthError("missing or invalid token")
        if record.expires_at <= self._clock.now():
            raise AuthError("access token expired; refresh it or log in again")
        user = await self._store.get_user(record.username)
        if user is None or not user.active:
            raise AuthError("missing or invalid token")
        return Caller(user.username, Role(user.role))

    async def whoami(self, caller: Caller) -> UserRecord:
        return await self._existing(caller.username)

    # ----- user management -----

    def _allow(self, caller: Caller, target: UserRecord | None, new_role: Role | None) -> None:
        target_role = Role(target.role) if target else None
        reason = refusal(caller, Action.MANAGE_USERS, target_role=target_role, new_role=new_role)
        if reason is not None:
            raise PermissionDeniedError(reason)

    async def _existing(self, username: str) -> UserRecord:
        user = await self._store.get_user(username)
        if user is None:
            raise UserNotFoundError(username)
        return user

    async def list_users(
        self, caller: Caller, search: str, page: int, per_page: int
    ) -> tuple[list[UserRecord], int]:
        self._allow(caller, None, None)
        users = [u for u in await self._store.load_users() if search.lower() in u.username.lower()]
        start = (page - 1) * per_page
        return users[start : start + per_page], len(users)

    async def get_user(self, caller: Caller, username: str) -> UserRecord:
        if username != caller.username:
            self._allow(caller, None, None)
        return await self._existing(username)

    async def create_user(self, caller: Caller, raw: dict[str, Any]) -> UserRecord:
        fields = _read_user(raw, creating=True)
        role = Role(fields.get("role", Role.VIEWER.value))
        self._allow(caller, None, role)
        if await self._store.get_user(fields["username"]) is not None:
            raise ValidationError(
                [FieldError("username", f"username {shown(fields['username'])} already exists")]
            )
        now = self._clock.now()
        user = UserRecord(
            username=fields["username"], role=role.value,
            password_hash=await self._hash(fields["password"]), created_at=now, updated_at=now,
            email=fields.get("email", ""), first_name=fields.get("first_name", ""),
            last_name=fields.get("last_name", ""), active=fields.get("active", True),
        )  # fmt: skip
        await self._store.put_user(user)
        log.info("user %s created by %s with role %s", user.username, caller.username, role.value)
        return user

    async def update_user(self, caller: Caller, username: str, patch: dict[str, Any]) -> UserRecord:
        """Change profile fields, ``active``, ``role`` or ``password``; tokens are revoked when
        the role, the password or ``active`` changes."""
        user = await self._existing(username)
        fields = _read_user(patch, creating=False)
        if fields.get("username", username) != username:
            raise ValidationError([FieldError("username", "username cannot be changed")])
        role = Role(fields["role"]) if "role" in fields else None
        self._allow(caller, user, role)
        changed = replace(
            user,
            email=fields.get("email", user.email),
            first_name=fields.get("first_name", user.first_name),
            last_name=fields.get("last_name", user.last_name),
            active=fields.get("active", user.active),
            role=role.value if role else user.role,
            updated_at=self._clock.now(),
        )
        if "password" in fields:
            changed = replace(changed, password_hash=await self._hash(fields["password"]))
        await self._keep_a_superadmin(user, changed)
        await self._store.put_user(changed)
        if "password" in fields or (changed.role, changed.active) != (user.role, user.active):
            await self._store.delete_tokens(username)
        log.info("user %s updated by %s", username, caller.username)
        return changed

    async def set_role(self, caller: Caller, username: str, role: str) -> UserRecord:
        return await self.update_user(caller, username, {"role": role})

    async def reset_password(self, caller: Caller, username: str, password: str) -> UserRecord:
        return await self.update_user(caller, username, {"password": password})

    async def delete_user(self, caller: Caller, username: str) -> UserRecord:
        user = await self._existing(username)
        self._allow(caller, user, None)
        if username == caller.username:
            raise ConflictError("you cannot delete your own account")
        await self._keep_a_superadmin(user, None)
        await self._store.delete_user(username)
        log.info("user %s deleted by %s", username, caller.username)
        return user

    async def _keep_a_superadmin(self, before: UserRecord, after: UserRecord | None) -> None:
        """Refuse a change that leaves no active superadmin (nobody could grant it again)."""
        boss = Role.SUPERADMIN.value
        still = after is not None and after.active and after.role == boss
        if before.role != boss or not before.active or still:
            return
        others = [
            u for u in await self._store.load_users()
            if u.username != before.username and u.active and u.role == boss
        ]  # fmt: skip
        if not others:
            raise ConflictError(
                f"{before.username} is the last active superadmin; it cannot be removed, "
                "demoted or deactivated"
            )


def _read_user(raw: object, *, creating: bool) -> dict[str, Any]:
    """The fields of a user document, checked; every problem named by its field."""
    if not isinstance(raw, dict):
        raise ValidationError([FieldError("user", "user must be a JSON object")])
    errors: list[FieldError] = []
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in USER_FIELDS:
            errors.append(unknown_field("user", str(key)))  # as task and group documents
            continue
        problem = _field_problem(key, value)
        if problem:
            errors.append(FieldError(key, problem))
        else:
            out[key] = value
    if creating:
        for key in ("username", "password"):
            if key not in raw:
                errors.append(FieldError(key, f"{key} is required"))
    if errors:
        raise ValidationError(errors)
    return out


def _field_problem(key: str, value: object) -> str | None:
    if key == "active":
        return None if isinstance(value, bool) else "active must be true or false"
    if not isinstance(value, str):
        return f"{key} must be a string"
    if key == "username" and not _USERNAME.fullmatch(value):
        return ("username must be 1-64 letters, digits, _ . @ - (no spaces), "
                "starting with a letter or digit")  # fmt: skip
    if key == "password" and not MIN_PASSWORD <= len(value) <= MAX_PASSWORD:
        return f"password must be at least {MIN_PASSWORD} characters"
    if key == "role" and value not in {r.value for r in Role}:
        return f"role must be one of {', '.join(r.value for r in Role)}"
    if key == "email" and value and not _EMAIL.fullmatch(value):
        return f"email {shown(value)} is not an email address"
    if key in ("first_name", "last_name") and len(value) > 128:
        return f"{key} must be at most 128 characters"
    return None

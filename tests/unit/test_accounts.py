"""AccountService on the memory store and a fake clock: passwords, tokens, lockout, roles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher

from easytask.core.authz import Caller, Role
from easytask.core.errors import (
    AuthError,
    ConflictError,
    PermissionDeniedError,
    UserNotFoundError,
    ValidationError,
)
from easytask.scheduler.accounts import (
    ACCESS_TTL,
    BAD_LOGIN,
    LOCK_AFTER,
    LOCK_FOR,
    SUPERUSER,
    AccountService,
)
from easytask.store.memory import MemoryAccountStore
from tests.support.fakeclock import FakeClock

START = datetime(2026, 5, 11, 8, 0, tzinfo=UTC)
BOSS = Caller(SUPERUSER, Role.SUPERADMIN)
PASSWORD = "correct horse battery"


@pytest.fixture
async def accounts() -> AccountService:
    # Cheap Argon2id parameters: the same algorithm, milliseconds per hash.
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    service = AccountService(store=MemoryAccountStore(), clock=FakeClock(START), hasher=hasher,
                             failed_login_delay=0)  # fmt: skip
    assert await service.ensure_superuser("superuser-secret-24chars")
    return service


async def make(accounts: AccountService, name: str, role: str, **kw: Any) -> None:
    await accounts.create_user(BOSS, {"username": name, "password": PASSWORD, "role": role, **kw})


async def test_first_start_creates_the_superuser_once(accounts: AccountService) -> None:
    assert not await accounts.ensure_superuser("another-password-here")
    session = await accounts.login(SUPERUSER, "superuser-secret-24chars")
    assert await accounts.authenticate(session.access_token) == BOSS


async def test_a_login_gives_tokens_that_name_the_caller(accounts: AccountService) -> None:
    await make(accounts, "vic", "viewer", email="vic@example.org")
    session = await accounts.login("vic", PASSWORD)
    assert session.access_token != session.refresh_token
    assert await accounts.authenticate(session.access_token) == Caller("vic", Role.VIEWER)
    with pytest.raises(AuthError):  # a refresh token is not an access token
        await accounts.authenticate(session.refresh_token)
    assert (await accounts.whoami(Caller("vic", Role.VIEWER))).email == "vic@example.org"


async def test_unknown_user_and_wrong_password_are_answered_alike(
    accounts: AccountService,
) -> None:
    await make(accounts, "vic", "viewer")
    with pytest.raises(AuthError) as unknown:
        await accounts.login("nobody", PASSWORD)
    with pytest.raises(AuthError) as wrong:
        await accounts.login("vic", "wrong password!!")
    assert str(unknown.value) == str(wrong.value) == BAD_LOGIN


async def test_ten_failures_in_a_minute_lock_the_username(accounts: AccountService) -> None:
    await make(accounts, "vic", "viewer")
    clock = accounts._clock
    assert isinstance(clock, FakeClock)
    for _ in range(LOCK_AFTER):
        with pytest.raises(AuthError):
            await accounts.login("vic", "wrong password!!")
    with pytest.raises(AuthError, match="too many failed logins"):
        await accounts.login("vic", PASSWORD)  # even the right password, while locked
    await clock.advance(LOCK_FOR.total_seconds())
    assert (await accounts.login("vic", PASSWORD)).user.username == "vic"


async def test_an_access_token_expires_and_the_refresh_token_renews_it_once(
    accounts: AccountService,
) -> None:
    await make(accounts, "vic", "viewer")
    session = await accounts.login("vic", PASSWORD)
    clock = accounts._clock
    assert isinstance(clock, FakeClock)
    await clock.advance(ACCESS_TTL.total_seconds())
    with pytest.raises(AuthError, match="expired"):
        await accounts.authenticate(session.access_token)
    renewed = await accounts.refresh(session.refresh_token)
    assert await accounts.authenticate(renewed.access_token) == Caller("vic", Role.VIEWER)
    with pytest.raises(AuthError):  # used up
        await accounts.refresh(session.refresh_token)


@pytest.mark.parametrize(
    "change",
    [{"role": "operator"}, {"password": "a brand new password"}, {"active": False}],
    ids=["role", "password", "deactivated"],
)
async def test_a_change_that_matters_revokes_the_users_tokens(
    accounts: AccountService, change: dict[str, Any]
) -> None:
    await make(accounts, "vic", "viewer")
    session = await accounts.login("vic", PASSWORD)
    await accounts.update_user(BOSS, "vic", change)
    with pytest.raises(AuthError):
        await accounts.authenticate(session.access_token)
    with pytest.raises(AuthError):
        await accounts.refresh(session.refresh_token)


async def test_a_profile_change_keeps_the_session(accounts: AccountService) -> None:
    await make(accounts, "vic", "viewer")
    session = await accounts.login("vic", PASSWORD)
    await accounts.update_user(BOSS, "vic", {"first_name": "Victoria"})
    assert await accounts.authenticate(session.access_token) == Caller("vic", Role.VIEWER)


async def test_a_deactivated_or_deleted_user_cannot_log_in(accounts: AccountService) -> None:
    await make(accounts, "vic", "viewer")
    await make(accounts, "ola", "operator")
    await accounts.update_user(BOSS, "vic", {"active": False})
    await accounts.delete_user(BOSS, "ola")
    for name in ("vic", "ola"):
        with pytest.raises(AuthError, match=BAD_LOGIN):
            await accounts.login(name, PASSWORD)
    with pytest.raises(UserNotFoundError, match="user 'ola' not found"):
        await accounts.get_user(BOSS, "ola")


@pytest.mark.parametrize(
    ("doc", "field", "message"),
    [
        ({"username": "vic", "password": PASSWORD, "role": "god"}, "role",
         "role must be one of viewer, user, operator, admin, superadmin"),
        ({"username": "vic", "password": "short"}, "password",
         "password must be at least 12 characters"),
        ({"username": "vic", "password": ""}, "password",
         "password must be at least 12 characters"),
        ({"username": "vic smith", "password": PASSWORD}, "username",
         "username must be 1-64 letters, digits, _ . @ - (no spaces), starting with a letter "
         "or digit"),
        ({"password": PASSWORD}, "username", "username is required"),
        ({"username": "vic", "password": PASSWORD, "shoe_size": 44}, "shoe_size",
         "unknown field"),
    ],
    ids=["role", "weak", "empty", "spaces", "missing", "unknown"],
)  # fmt: skip
async def test_bad_user_documents_are_refused_naming_the_field(
    accounts: AccountService, doc: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        await accounts.create_user(BOSS, doc)
    assert [(e.field, e.message) for e in exc.value.errors] == [(field, message)]
    assert [u.username for u in (await accounts.list_users(BOSS, "", 1, 25))[0]] == [SUPERUSER]


async def test_a_duplicate_username_is_refused(accounts: AccountService) -> None:
    await make(accounts, "vic", "viewer")
    with pytest.raises(ValidationError, match="username vic already exists"):
        await make(accounts, "vic", "operator")


async def test_admins_manage_users_but_not_superadmins(accounts: AccountService) -> None:
    await make(accounts, "ada", "admin")
    await make(accounts, "vic", "viewer")
    ada = Caller("ada", Role.ADMIN)
    assert (await accounts.set_role(ada, "vic", "operator")).role == "operator"
    with pytest.raises(PermissionDeniedError, match="may not grant superadmin"):
        await accounts.set_role(ada, "vic", "superadmin")
    with pytest.raises(PermissionDeniedError, match="may not change superadmin accounts"):
        await accounts.reset_password(ada, SUPERUSER, "a brand new password")
    with pytest.raises(PermissionDeniedError, match="role viewer may not manage users"):
        await accounts.list_users(Caller("vic", Role.VIEWER), "", 1, 25)


async def test_the_last_superadmin_stays(accounts: AccountService) -> None:
    with pytest.raises(ConflictError, match="last active superadmin"):
        await accounts.set_role(BOSS, SUPERUSER, "admin")
    await make(accounts, "sam", "superadmin")
    assert (await accounts.set_role(BOSS, SUPERUSER, "admin")).role == "admin"


async def test_no_password_or_token_is_kept_in_clear(accounts: AccountService) -> None:
    await make(accounts, "vic", "viewer")
    session = await accounts.login("vic", PASSWORD)
    store = accounts._store
    assert isinstance(store, MemoryAccountStore)
    kept = repr(store._users) + repr(store._tokens)
    assert PASSWORD not in kept and "$argon2id$" in kept
    assert session.access_token not in kept and session.refresh_token not in kept


async def test_the_credentials_file_token_acts_as_the_superuser() -> None:
    service = AccountService(store=MemoryAccountStore(), clock=FakeClock(START),
                             file_token="eta_file")  # fmt: skip
    assert await service.authenticate("eta_file") == BOSS
    for other in ("eta_other", "", "eta_file\udfff"):
        with pytest.raises(AuthError):
            await service.authenticate(other)


async def test_an_access_token_lives_one_hour_of_the_injected_clock(
    accounts: AccountService,
) -> None:
    await make(accounts, "vic", "viewer")
    session = await accounts.login("vic", PASSWORD)
    assert session.access_expires_at == START + timedelta(hours=1) == START + ACCESS_TTL

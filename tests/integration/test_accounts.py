"""Accounts through the real gRPC API: login, every row of spec 14 for every role (refusals
change nothing), token revocation, and no secret in the database file."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from easytask.rpc.v1 import api_pb2 as pb
from tests.integration.conftest import Harness

PASSWORD = "correct horse battery"
ROLES = ("viewer", "user", "operator", "admin")
Md = tuple[tuple[str, str], ...]


def bearer(token: str) -> Md:
    return (("authorization", f"Bearer {token}"),)


async def login(h: Harness, username: str, password: str = PASSWORD) -> pb.LoginReply:
    return await h.api.Login(pb.LoginRequest(username=username, password=password))


async def make_users(h: Harness) -> dict[str, Md]:
    """One account per role below superadmin, logged in: role -> metadata."""
    out: dict[str, Md] = {}
    for role in ROLES:
        doc = {"username": role[:3] + "1", "password": PASSWORD, "role": role}
        await h.api.CreateUser(pb.CreateUserRequest(user_json=json.dumps(doc)), metadata=h.md)
        out[role] = bearer((await login(h, doc["username"])).access_token)
    return out


@dataclass(frozen=True)
class Row:
    """One spec-14 row: a call, the roles that may make it, and what a refusal must not change."""

    name: str
    allowed: set[str]
    call: Callable[[Harness, Md, str], Awaitable[Any]]
    state: Callable[[Harness], Awaitable[Any]]


def task_json(name: str, **extra: Any) -> str:
    doc = {"name": name, "cmd": "true", "run_on_host": "q1", "stdout": "/tmp/o",
           "stderr": "/tmp/e", "timezone": "UTC", "day_of_week": "1111111",
           "trigger_times": "12:00", **extra}  # fmt: skip
    return json.dumps(doc)


async def tasks_state(h: Harness) -> list[str]:
    reply = await h.api.ListTasks(pb.ListTasksRequest(per_page=500), metadata=h.md)
    return sorted(reply.tasks_json)


async def events_state(h: Harness) -> int:
    reply = await h.api.ListEvents(pb.ListEventsRequest(since_hours=1e6), metadata=h.md)
    return reply.total


async def calendars_state(h: Harness) -> list[str]:
    reply = await h.api.ListCalendars(pb.ListCalendarsRequest(), metadata=h.md)
    return [c.name for c in reply.calendars]


async def users_state(h: Harness) -> list[tuple[str, str]]:
    reply = await h.api.ListUsers(pb.ListUsersRequest(per_page=100), metadata=h.md)
    return [(u.username, u.role) for u in reply.users]


async def nothing(h: Harness) -> None:
    return None


ANY = set(ROLES)
OPS = {"operator", "admin"}
ROWS = [
    Row("read", ANY, lambda h, md, r: h.api.ListTasks(pb.ListTasksRequest(), metadata=md),
        nothing),
    Row("create task", {"user", "operator", "admin"},
        lambda h, md, r: h.api.CreateTask(pb.CreateTaskRequest(task_json=task_json(f"new-{r}")),
                                          metadata=md), tasks_state),
    Row("update another's task", OPS,
        lambda h, md, r: h.api.UpdateTask(pb.UpdateTaskRequest(
            ref=pb.TaskRef(tid=1001), patch_json=json.dumps({"description": r})), metadata=md),
        tasks_state),
    Row("force-run another's task", OPS,
        lambda h, md, r: h.api.ForceRun(pb.ForceRunRequest(ref=pb.TaskRef(tid=1001)),
                                        metadata=md), events_state),
    Row("refresh", OPS,
        lambda h, md, r: h.api.PublishEvent(pb.PublishEventRequest(event="REFRESH_GRAPH"),
                                            metadata=md), events_state),
    Row("calendars", OPS,
        lambda h, md, r: h.api.CreateCalendar(pb.CreateCalendarRequest(name=f"Cal-{r}"),
                                              metadata=md), calendars_state),
    Row("users", {"admin"},
        lambda h, md, r: h.api.CreateUser(pb.CreateUserRequest(user_json=json.dumps(
            {"username": f"made-by-{r}", "password": PASSWORD})), metadata=md), users_state),
    Row("grant superadmin", set(),
        lambda h, md, r: h.api.UpdateUser(pb.UpdateUserRequest(
            username="vie1", patch_json=json.dumps({"role": "superadmin"})), metadata=md),
        users_state),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
async def test_each_row_of_spec_14_for_each_role(harness: Harness, row: Row) -> None:
    await harness.create(tid=1001, name="boss-task")  # owned by the superuser
    users = await make_users(harness)
    for role in ROLES:
        before = await row.state(harness)
        if role in row.allowed:
            await row.call(harness, users[role], role)
            continue
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await row.call(harness, users[role], role)
        assert exc.value.code() is grpc.StatusCode.PERMISSION_DENIED, (role, exc.value.details())
        assert (exc.value.details() or "").startswith(f"role {role} may")
        assert await row.state(harness) == before, f"{role}: a refusal changed something"


async def test_a_user_manages_the_tasks_it_owns_only(harness: Harness) -> None:
    await harness.create(tid=1001, name="boss-task")
    md = (await make_users(harness))["user"]
    mine = await harness.api.CreateTask(pb.CreateTaskRequest(task_json=task_json("mine")),
                                        metadata=md)  # fmt: skip
    task = json.loads(mine.task_json)
    assert task["task_owner"] == "use1"
    patch = json.dumps({"description": "changed"})
    await harness.api.UpdateTask(pb.UpdateTaskRequest(ref=pb.TaskRef(tid=task["tid"]),
                                                      patch_json=patch), metadata=md)  # fmt: skip
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await harness.api.DeleteTask(pb.DeleteTaskRequest(ref=pb.TaskRef(tid=1001)), metadata=md)
    assert exc.value.details() == "role user may change tasks only where task_owner is use1"


async def test_a_role_change_ends_the_session_until_the_next_login(harness: Harness) -> None:
    users = await make_users(harness)
    await harness.api.WhoAmI(pb.WhoAmIRequest(), metadata=users["viewer"])
    promote = pb.UpdateUserRequest(username="vie1", patch_json=json.dumps({"role": "operator"}))
    await harness.api.UpdateUser(promote, metadata=harness.md)
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await harness.api.WhoAmI(pb.WhoAmIRequest(), metadata=users["viewer"])
    assert exc.value.code() is grpc.StatusCode.UNAUTHENTICATED
    again = await login(harness, "vie1")
    me = await harness.api.WhoAmI(pb.WhoAmIRequest(), metadata=bearer(again.access_token))
    assert (me.username, me.role) == ("vie1", "operator")


async def test_login_failures_look_alike_and_calls_need_a_token(harness: Harness) -> None:
    await make_users(harness)
    details = []
    for username, password in (("nobody", PASSWORD), ("vie1", "wrong password!!")):
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await login(harness, username, password)
        assert exc.value.code() is grpc.StatusCode.UNAUTHENTICATED
        details.append(exc.value.details())
    assert details == ["invalid username or password"] * 2
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await harness.api.ListTasks(pb.ListTasksRequest())
    assert exc.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_refresh_renews_and_logout_revokes(harness: Harness) -> None:
    await make_users(harness)
    first = await login(harness, "ope1")
    renewed = await harness.api.RefreshLogin(
        pb.RefreshLoginRequest(refresh_token=first.refresh_token)
    )
    assert renewed.user.username == "ope1" and renewed.access_token != first.access_token
    await harness.api.Logout(pb.LogoutRequest(), metadata=bearer(renewed.access_token))
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await harness.api.WhoAmI(pb.WhoAmIRequest(), metadata=bearer(renewed.access_token))
    assert exc.value.code() is grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"username": "x1", "password": PASSWORD, "role": "god"}, "role"),
        ({"username": "x1", "password": "short"}, "password"),
        ({"username": "x1", "password": ""}, "password"),
        ({"username": "x 1", "password": PASSWORD}, "username"),
        ({"username": "vie1", "password": PASSWORD}, "username"),  # a duplicate
    ],
    ids=["role", "weak", "empty", "spaces", "duplicate"],
)
async def test_bad_users_are_refused_naming_the_field(
    harness: Harness, doc: dict[str, Any], field: str
) -> None:
    await make_users(harness)
    before = await users_state(harness)
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await harness.api.CreateUser(pb.CreateUserRequest(user_json=json.dumps(doc)),
                                     metadata=harness.md)  # fmt: skip
    assert exc.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (exc.value.details() or "").startswith(f"{field}: ")
    assert await users_state(harness) == before


async def test_neither_the_database_nor_the_log_holds_a_password_or_token(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await make_users(harness)
    session = await login(harness, "adm1")
    with pytest.raises(grpc.aio.AioRpcError):
        await login(harness, "adm1", "wrong password!!")
    assert harness.service.store is not None
    await harness.service.store.flush()
    data = b"".join(p.read_bytes() for p in harness.home.glob("easytask.db*"))
    creds = json.loads((harness.home / "credentials.json").read_text())
    for secret in (PASSWORD, creds["password"], session.access_token, session.refresh_token,
                   "wrong password!!"):  # fmt: skip
        assert secret.encode() not in data
        assert secret not in caplog.text
    assert b"$argon2id$" in data

"""The dashboard's JSON API (/api/v1/) over real HTTP against a real scheduler with a FakeClock:
bearer tokens, CRUD of tasks and groups, the validator's field errors, events and the runs they
make, output in bounded chunks, the role policy (403 JSON), and hostile bodies never a 500."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from easytask.core.authz import Caller, Role
from easytask.rpc.v1 import agent_pb2 as apb
from easytask.scheduler.app import SchedulerApp
from easytask.scheduler.service import SchedulerService
from tests.integration.conftest import START, ScriptedAgent, eventually, running_service
from tests.support.fakeclock import FakeClock

API = "/api/v1"
TASK = {"name": "t1", "cmd": "echo hi", "run_on_host": "q1", "stdout": "/tmp/o",
        "stderr": "/tmp/e", "timezone": "UTC", "day_of_week": "1111111",
        "trigger_times": "12:00"}  # fmt: skip
GROUP = {"name": "g1", "timezone": "UTC", "day_of_week": "1111111", "trigger_times": "13:00"}
SUPERUSER = "easytask_superuser"


class Api:
    """An HTTP client of the API that sends a bearer token (no cookies)."""

    def __init__(self, service: SchedulerService, clock: FakeClock, home: Path) -> None:
        self.service, self.clock, self.home = service, clock, home
        self.base = f"http://127.0.0.1:{service.http_port}"
        creds = json.loads((home / "credentials.json").read_text())
        self.password, self.agent_token = creds["password"], creds["agent_token"]
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        self.token = ""

    @property
    def app(self) -> SchedulerApp:
        assert self.service.app is not None
        return self.service.app

    async def call(
        self, method: str, path: str, body: Any = None, *, token: str | None = None,
        data: bytes | str | None = None, expect: int | None = None,
    ) -> tuple[int, Any]:  # fmt: skip
        token = self.token if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if body is not None:
            data = json.dumps(body)
        payload = None
        if data is not None:
            headers["Content-Type"] = "application/json"
            payload = io.BytesIO(data.encode() if isinstance(data, str) else data)
        async with self.http.request(method, self.base + API + path, data=payload,
                                     headers=headers) as answer:  # fmt: skip
            text = await answer.text()
            assert answer.status != 500 and "Traceback" not in text, (path, text[:500])
            if expect is not None:
                assert answer.status == expect, (method, path, answer.status, text[:500])
            is_json = answer.content_type == "application/json"
            return answer.status, json.loads(text) if is_json else text

    async def login_as(self, username: str, password: str) -> str:
        """An access token from the application's login (the API's own login is tested apart,
        see test_login_needs_no_token)."""
        session = await self.app.login(username, password)
        return session.access_token


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    clock = FakeClock(START)
    home = tmp_path / "home"
    async with running_service(home, clock, http_listen="127.0.0.1:0") as service:
        client = Api(service, clock, home)
        client.token = await client.login_as(SUPERUSER, client.password)
        try:
            yield client
        finally:
            await client.http.close()


# ----- authentication -----


async def test_login_needs_no_token_and_only_the_login_paths_are_public(api: Api) -> None:
    login = {"username": SUPERUSER, "password": api.password}
    status, body = await api.call("POST", "/login", login, token="")
    assert status == 200 and body["access_token"]
    for path in ("/loginx", "/login/../tasks"):
        answer = await api.http.get(api.base + API + path)
        assert answer.status == 401
    answer = await api.http.get(api.base + "/loginfoo", allow_redirects=False)
    assert answer.status == 303  # to the login page: not public


async def test_login_answers_tokens_that_work_as_bearer(api: Api) -> None:
    # Called with a token here (see test_login_needs_no_token); the answer is the new session's.
    _, body = await api.call("POST", "/login", {"username": SUPERUSER, "password": api.password},
                             expect=200)  # fmt: skip
    assert set(body) == {"access_token", "refresh_token", "expires_at", "username", "role",
                         "instance"}  # fmt: skip
    assert (body["username"], body["role"], body["instance"]) == (SUPERUSER, "superadmin",
                                                                  "default")  # fmt: skip
    assert body["expires_at"] == "2026-06-01T12:59:00.000Z"  # 1 h after the fake clock's now
    _, me = await api.call("GET", "/whoami", token=body["access_token"], expect=200)
    assert (me["username"], me["role"], me["active"]) == (SUPERUSER, "superadmin", True)
    status, wrong = await api.call("POST", "/login", {"username": SUPERUSER, "password": "nope"})
    assert status == 401 and "error" in wrong and "access_token" not in wrong


async def test_no_or_a_bad_token_is_refused_with_401(api: Api) -> None:
    for token in ("", "not-a-token"):
        status, _ = await api.call("GET", "/tasks", token=token)
        assert status == 401
    assert api.app.list_tasks(None, "", 1, 10)[1] == 0
    status, _ = await api.call("POST", "/tasks", TASK, token="")
    assert status == 401 and api.app.list_tasks(None, "", 1, 10)[1] == 0


async def test_no_token_answers_401_as_json(api: Api) -> None:
    status, body = await api.call("GET", "/tasks", token="")
    assert status == 401 and isinstance(body, dict) and body["error"] == "log in first"


async def test_cookie_login_needs_the_csrf_header_for_writes(api: Api) -> None:
    jar = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        form = {"username": SUPERUSER, "password": api.password}
        await jar.post(api.base + "/login", data=form, allow_redirects=False)
        csrf = next(c.value for c in jar.cookie_jar if c.key == "et_csrf")
        answer = await jar.get(api.base + API + "/tasks")
        assert answer.status == 200 and (await answer.json())["total"] == 0
        answer = await jar.post(api.base + API + "/tasks", json=TASK)
        assert answer.status == 403  # no CSRF header: a forged request
        cross = {"Origin": "https://evil.example", "X-CSRF-Token": csrf}
        answer = await jar.post(api.base + API + "/tasks", json=TASK, headers=cross)
        assert answer.status == 403
        answer = await jar.post(api.base + API + "/tasks", json=TASK,
                                headers={"X-CSRF-Token": csrf})  # fmt: skip
        assert answer.status == 201 and (await answer.json())["task"]["tid"] == 1001
    finally:
        await jar.close()


# ----- tasks and groups -----


async def test_task_create_read_update_delete(api: Api) -> None:
    _, created = await api.call("POST", "/tasks", TASK, expect=201)
    assert created["status"] == "ACTIVE"  # due later today
    task = created["task"]
    assert (task["tid"], task["name"], task["task_owner"]) == (1001, "t1", SUPERUSER)
    _, got = await api.call("GET", "/tasks/1001", expect=200)
    assert got["task"] == task
    _, patched = await api.call("PATCH", "/tasks/1001", {"description": "nightly"}, expect=200)
    assert patched["task"]["description"] == "nightly"
    assert api.app.get_task(1001).description == "nightly"
    _, listed = await api.call("GET", "/tasks?search=t1&active=true&per_page=10", expect=200)
    assert (listed["total"], listed["page"], listed["per_page"]) == (1, 1, 10)
    assert listed["tasks"][0]["task"]["description"] == "nightly"
    _, none = await api.call("GET", "/tasks?active=false", expect=200)
    assert none["total"] == 0
    _, deleted = await api.call("DELETE", "/tasks/1001", expect=200)
    assert deleted == {"tid": 1001, "name": "t1", "dependencies_cleared": False}
    status, gone = await api.call("GET", "/tasks/1001")
    assert status == 404 and "1001" in gone["error"]
    status, _ = await api.call("GET", "/tasks/abc")
    assert status == 404


async def test_field_errors_name_the_field(api: Api) -> None:
    status, body = await api.call("POST", "/tasks", {**TASK, "trigger_times": "25:99"})
    assert status == 422
    assert {"field": "trigger_times", "message": "Bad entry in Trigger Times field"} in body[
        "errors"
    ]
    assert "trigger_times" in body["error"]
    status, body = await api.call("POST", "/tasks", {**TASK, "retry_attempts": "3", "bogus": 1})
    assert status == 422
    fields = {e["field"] for e in body["errors"]}
    assert {"retry_attempts", "bogus"} <= fields
    await api.call("POST", "/tasks", TASK, expect=201)
    status, body = await api.call("PATCH", "/tasks/1001", {"tid": 1002})
    assert status == 422 and body["errors"][0]["field"] == "tid"
    assert api.app.list_tasks(None, "", 1, 10)[1] == 1


async def test_group_crud_and_cascade(api: Api) -> None:
    _, group = await api.call("POST", "/groups", GROUP, expect=201)
    assert (group["group"]["gid"], group["member_count"]) == (1, 0)
    member = {k: v for k, v in TASK.items() if k not in ("timezone", "day_of_week",
                                                         "trigger_times")}  # fmt: skip
    await api.call("POST", "/tasks", {**member, "task_group": "g1"}, expect=201)
    _, got = await api.call("GET", "/groups/1", expect=200)
    assert got["member_count"] == 1
    _, patched = await api.call("PATCH", "/groups/1", {"description": "batch"}, expect=200)
    assert patched["group"]["description"] == "batch"
    _, listed = await api.call("GET", "/groups?search=g", expect=200)
    assert listed["total"] == 1 and listed["groups"][0]["group"]["name"] == "g1"
    status, refused = await api.call("POST", "/groups", {**GROUP, "name": "g2",
                                                         "run_frequency": "x"})  # fmt: skip
    assert status == 422 and refused["errors"][0]["field"] == "run_frequency"
    status, body = await api.call("DELETE", "/groups/1")
    assert status in (409, 422) and "1 tasks" in body["error"]
    _, deleted = await api.call("DELETE", "/groups/1?cascade=true", expect=200)
    assert (deleted["gid"], deleted["tasks_deleted"]) == (1, 1)
    assert api.app.list_tasks(None, "", 1, 10)[1] == 0
    status, _ = await api.call("GET", "/groups/1")
    assert status == 404


# ----- events, runs, output -----


async def test_force_run_makes_a_run_with_its_transitions_and_output(api: Api) -> None:
    await api.call("POST", "/tasks", TASK, expect=201)
    assert api.service.grpc_port
    agent = ScriptedAgent(api.service.grpc_port, api.agent_token, "a1", ["q1"])
    await agent.connect()
    try:
        _, outcome = await api.call("POST", "/events", {"event": "FORCE_RUN_TASK", "tid": 1001},
                                    expect=200)  # fmt: skip
        assert outcome["status"] == "SUCCESS" and outcome["run_date"] == "20260601"
        assert outcome["message"].startswith("Force run triggered for task 1001 (t1)")
        run_id = outcome["run_id"]
        order = await agent.recv("run")
        assert order.run_id == run_id
        _, runs = await api.call("GET", "/runs?tid=1001", expect=200)
        assert [r["run_id"] for r in runs["runs"]] == [run_id] and runs["total"] == 1
        assert runs["runs"][0]["forced"] is True and runs["runs"][0]["transitions"] is None
        _, today = await api.call("GET", "/runs?run_date=2026-06-01&state=trigger", expect=200)
        assert today["total"] == 1

        # Output longer than one chunk, with a character of 3 bytes across the chunk's end.
        text = "a" * 9 + "€" + "b" * 10 + "\n"
        await agent.send(accepted=apb.RunAccepted(run_id=run_id))
        await agent.send(started=apb.RunStarted(run_id=run_id, pid=7, stdout_path="/tmp/o",
                                                stderr_path="/tmp/e"))  # fmt: skip
        await agent.send(output=apb.OutputChunk(run_id=run_id, stream=apb.STDOUT, offset=0,
                                                data=text.encode()))  # fmt: skip

        async def running() -> dict[str, Any] | None:
            _, run = await api.call("GET", f"/runs/{run_id}")
            return run if run["state"] == "RUNNING" else None

        run = await eventually("the run RUNNING", running)
        assert [t["to_state"] for t in run["transitions"]] == ["TRIGGER", "STARTED", "RUNNING"]
        assert run["pid"] == 7 and run["agent"] == "a1"
        for filters, total in (
            ("from=2026-06-01&to=20260601&agent=a1", 1),
            ("agent=a2", 0),
            ("to=20260531", 0),
            ("group=nope", 0),
            ("state=RUNNING", 1),
        ):
            _, found = await api.call("GET", f"/runs?{filters}", expect=200)
            assert found["total"] == total, filters

        async def stored() -> dict[str, Any] | None:
            _, chunk = await api.call("GET", f"/runs/{run_id}/output/stdout?limit=10")
            return chunk if chunk["text"] else None

        first = await eventually("stored output", stored)
        assert (first["text"], first["next_offset"], first["more"]) == ("a" * 9, 9, True)
        got, offset = first["text"], first["next_offset"]
        while True:
            _, chunk = await api.call("GET", f"/runs/{run_id}/output/stdout?offset={offset}"
                                      "&limit=10", expect=200)  # fmt: skip
            got += chunk["text"]
            offset = chunk["next_offset"]
            if not chunk["more"]:
                break
        assert got == text and offset == len(text.encode())
        _, empty = await api.call("GET", f"/runs/{run_id}/output/stderr", expect=200)
        assert (empty["text"], empty["next_offset"], empty["more"]) == ("", 0, False)
        status, _ = await api.call("GET", f"/runs/{run_id}/output/passwd")
        assert status == 404
    finally:
        await agent.close()
    _, events = await api.call("GET", "/events?event=force_run_task", expect=200)
    assert events["total"] == 1
    record = events["events"][0]
    assert (record["event"], record["target"], record["origin"]) == ("FORCE_RUN_TASK", "1001",
                                                                     "API")  # fmt: skip
    _, one = await api.call("GET", f"/events/{record['id']}", expect=200)
    assert one == record
    status, _ = await api.call("GET", "/runs/default:1:2:3")
    assert status == 404


async def test_a_refused_event_is_recorded_as_failure(api: Api) -> None:
    await api.call("POST", "/tasks", TASK, expect=201)
    _, outcome = await api.call("POST", "/events", {"event": "TERMINATE_TASK", "tid": 1001},
                                expect=200)  # fmt: skip
    assert outcome["status"] == "FAILURE" and "no running run" in outcome["message"]
    _, outcome = await api.call("POST", "/events", {"event": "DISABLE_TASK", "name": "t1"},
                                expect=200)  # fmt: skip
    assert outcome["status"] == "SUCCESS" and not api.app.get_task(1001).active
    await api.clock.advance(25 * 3600)
    api.token = await api.login_as(SUPERUSER, api.password)  # a day later: a new login
    await api.call("POST", "/events", {"event": "ENABLE_DEBUG"}, expect=200)
    cases = {
        "": 1,  # the last 24 hours
        "?from=2026-06-01&to=2026-06-01": 2,
        "?from=20260602": 1,
        "?to=2026-06-01&status=failure": 1,
        f"?published_by={SUPERUSER}&since=100": 3,
        "?published_by=nobody&since=100": 0,
    }
    for params, total in cases.items():
        _, events = await api.call("GET", "/events" + params, expect=200)
        assert events["total"] == total, params
    status, refused = await api.call("GET", "/events?from=2026-13-40")
    assert status == 422 and refused["errors"][0]["field"] == "from"


async def test_read_endpoints_answer(api: Api) -> None:
    await api.call("POST", "/tasks", TASK, expect=201)
    _, board = await api.call("GET", "/board", expect=200)
    assert board["run_date"] == "20260601" and sum(board["tasks"].values()) == 1
    _, agents = await api.call("GET", "/agents", expect=200)
    assert agents == {"agents": []}
    _, upcoming = await api.call("GET", "/upcoming?hours=48&count=3", expect=200)
    slots = upcoming["upcoming"]
    assert [u["next_run_utc"] for u in slots] == [
        "2026-06-01T12:00:00.000Z", "2026-06-02T12:00:00.000Z",
    ]  # fmt: skip
    await api.call("POST", "/groups", {**GROUP, "trigger_times": "13:00"}, expect=201)
    _, upcoming = await api.call("GET", "/upcoming?hours=48&count=3", expect=200)
    assert [(u["kind"], u["next_run_utc"][:16]) for u in upcoming["upcoming"]] == [
        ("task", "2026-06-01T12:00"), ("group", "2026-06-01T13:00"), ("task", "2026-06-02T12:00"),
    ]  # fmt: skip
    _, only = await api.call("GET", "/upcoming?hours=48&gid=1", expect=200)
    assert [(u["kind"], u["gid"], u["name"]) for u in only["upcoming"]] == [
        ("group", 1, GROUP["name"])] * 2  # fmt: skip
    _, calendars = await api.call("GET", "/calendars?per_page=500", expect=200)
    assert any(c["name"] == "US_HOLIDAYS" for c in calendars["calendars"])
    _, user_only = await api.call("GET", "/calendars?include_builtin=false", expect=200)
    assert user_only["total"] == 0


# ----- roles -----


async def test_a_viewer_reads_but_may_not_write(api: Api) -> None:
    await api.call("POST", "/tasks", TASK, expect=201)
    await api.call("POST", "/groups", GROUP, expect=201)
    admin = Caller(SUPERUSER, Role.SUPERADMIN)
    await api.app.create_user(admin, {"username": "vera", "password": "a-long-passphrase",
                                      "role": "viewer"})  # fmt: skip
    token = await api.login_as("vera", "a-long-passphrase")
    for path in ("/whoami", "/board", "/tasks", "/tasks/1001", "/groups", "/groups/1", "/runs",
                 "/events", "/agents", "/upcoming", "/calendars"):  # fmt: skip
        await api.call("GET", path, token=token, expect=200)
    writes = [
        ("POST", "/tasks", {**TASK, "name": "t2"}),
        ("PATCH", "/tasks/1001", {"description": "x"}),
        ("DELETE", "/tasks/1001", None),
        ("POST", "/groups", {**GROUP, "name": "g2"}),
        ("PATCH", "/groups/1", {"description": "x"}),
        ("DELETE", "/groups/1", None),
        ("POST", "/events", {"event": "FORCE_RUN_TASK", "tid": 1001}),
        ("POST", "/events", {"event": "ENABLE_DEBUG"}),
    ]
    for method, path, body in writes:
        status, answer = await api.call(method, path, body, token=token)
        assert status == 403, (method, path, status, answer)
        assert "viewer" in answer["error"], answer
    assert api.app.get_task(1001).description == "" and api.app.list_tasks(None, "", 1, 9)[1] == 1
    _, events = await api.call("GET", "/events", expect=200)
    assert events["total"] == 0  # a refusal is not an event


# ----- hostile input -----


HOSTILE_BODIES: list[tuple[str, bytes | str, int, str]] = [
    ("not json", "{name: t1", 400, "body"),
    ("a list", "[1, 2, 3]", 400, "body"),
    ("a string", '"task"', 400, "body"),
    ("deep nesting", "[" * 100_000 + "]" * 100_000, 400, "body"),
    ("deep object", '{"a":' * 50_000 + "1" + "}" * 50_000, 400, "body"),
    ("not UTF-8", b'{"name": "\xff\xfe"}', 400, "body"),
    ("over 1 MiB", json.dumps({**TASK, "description": "x" * 1_200_000}), 400, "body"),
    ("huge string", json.dumps({**TASK, "description": "x" * 100_000}), 422, "description"),
    ("control chars", json.dumps({**TASK, "name": "t\x00\x1b"}), 422, "name"),
    ("lone surrogate", '{"name": "t\\ud800"}', 422, "name"),
    ("wrong type", json.dumps({**TASK, "active": "yes"}), 422, "active"),
    ("unknown field", json.dumps({**TASK, "evil": True}), 422, "evil"),
    ("empty", "", 400, "body"),
]


@pytest.mark.parametrize(("what", "data", "status", "field"), HOSTILE_BODIES,
                         ids=[h[0] for h in HOSTILE_BODIES])  # fmt: skip
async def test_hostile_task_bodies_never_500(
    api: Api, what: str, data: bytes | str, status: int, field: str
) -> None:
    got, body = await api.call("POST", "/tasks", data=data)
    assert got == status, (what, body)
    assert field in {e["field"] for e in body["errors"]}, body
    assert api.app.list_tasks(None, "", 1, 10)[1] == 0


HOSTILE_MODELS: list[tuple[str, str, Any, str]] = [
    ("/events", "event as a number", {"event": 1}, "event"),
    ("/events", "tid as text", {"event": "FORCE_RUN_TASK", "tid": "1001"}, "tid"),
    ("/events", "tid as a bool", {"event": "FORCE_RUN_TASK", "tid": True}, "tid"),
    ("/events", "tid too large", {"event": "FORCE_RUN_TASK", "tid": 2**70}, "tid"),
    ("/events", "unknown field", {"event": "ENABLE_DEBUG", "cmd": "rm"}, "cmd"),
    ("/events", "control char", {"event": "ENABLE_DEBUG\n"}, "event"),
    ("/events", "long run date", {"event": "FREEZE_TASK", "run_date": "2" * 5000}, "run_date"),
    ("/events", "no event", {}, "event"),
    ("/login", "password a list", {"username": SUPERUSER, "password": ["x"]}, "password"),
    ("/login", "huge username", {"username": "u" * 100_000, "password": "x"}, "username"),
]


@pytest.mark.parametrize(("path", "what", "body", "field"), HOSTILE_MODELS,
                         ids=[h[1] for h in HOSTILE_MODELS])  # fmt: skip
async def test_hostile_model_bodies_answer_422_naming_the_field(
    api: Api, path: str, what: str, body: Any, field: str
) -> None:
    status, answer = await api.call("POST", path, body)
    assert status == 422, (what, answer)
    assert field in {e["field"] for e in answer["errors"]}, answer
    assert "Traceback" not in json.dumps(answer) and "input" not in answer["errors"][0]
    _, events = await api.call("GET", "/events", expect=200)
    assert events["total"] == 0


@pytest.mark.parametrize(
    "path",
    ["/tasks?per_page=501", "/tasks?page=0", "/tasks?page=abc", "/tasks?active=maybe",
     "/tasks?status=<b>", "/tasks?bogus=1", "/runs?since=nan", "/runs?since=inf",
     "/runs?tid=%C2%B2", "/runs?run_date=2026", "/runs?from=x&to=%00", "/runs?state=NOPE",
     "/events?since=-1", "/upcoming?hours=nan", "/upcoming?count=100000",
     "/calendars?include_builtin=2", "/runs/x/output/stdout?offset=-1", "/tasks/1?cascade=x",
     "/tasks/1001", "/events/x", "/runs/x/output/stdout?offset=99999999999999999999"],
)  # fmt: skip
async def test_hostile_queries_answer_422_or_404(api: Api, path: str) -> None:
    status, body = await api.call("GET", path)
    assert status in (404, 422), (path, status, body)
    assert isinstance(body, dict) and body["error"]


async def test_a_body_beyond_the_servers_limit_is_refused(api: Api) -> None:
    status, _ = await api.call("POST", "/tasks", data="x" * (3 * 1024 * 1024))
    assert status == 413

"""The dashboard over real HTTP with the scheduler's clock moved by the test: cookie flags,
CSRF and cross-site refusals, no open redirect, an expired login refreshed on the way (also
across an action's redirect), a logout that really ends the session and the tab's live
socket, hostile input answered without a 500."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from easytask.scheduler.accounts import ACCESS_TTL
from easytask.ui import live
from tests.integration.conftest import Dash


async def test_login_cookies_and_refusals(dash: Dash) -> None:
    answer = await dash.http.get(dash.base + "/tasks", allow_redirects=False)
    assert (answer.status, answer.headers["Location"]) == (303, "/login?next=/tasks")
    answer = await dash.login()
    assert (answer.status, answer.headers["Location"]) == (303, "/tasks")
    cookies = answer.headers.getall("Set-Cookie")
    assert len(cookies) == 3
    for cookie in cookies:
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    page = await dash.http.get(dash.base + "/tasks")
    assert page.status == 200
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    # A POST without the CSRF value, or from another site, changes nothing.
    form = {"name": "t1", "cmd": "true"}
    answer = await dash.http.post(dash.base + "/tasks/new", data=form, allow_redirects=False)
    assert answer.status == 403
    cross = {"Origin": "https://evil.example"}
    answer = await dash.http.post(dash.base + "/tasks/new", data={**form, "csrf": dash.csrf()},
                                  headers=cross, allow_redirects=False)  # fmt: skip
    assert answer.status == 403
    answer = await dash.http.post(dash.base + "/login", data={"username": "x", "password": "y"},
                                  headers=cross, allow_redirects=False)  # fmt: skip
    assert answer.status == 403  # no login CSRF either
    assert dash.service.app is not None and dash.service.app.list_tasks(None, "", 1, 10)[1] == 0


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example", "/\t/evil.example"])
async def test_no_open_redirect_after_login(dash: Dash, target: str) -> None:
    form = {"username": "easytask_superuser", "password": dash.password, "next": target}
    answer = await dash.http.post(dash.base + "/login", data=form, allow_redirects=False)
    assert (answer.status, answer.headers["Location"]) == (303, "/")


async def test_an_expired_login_is_refreshed_even_across_an_actions_redirect(dash: Dash) -> None:
    await dash.login()
    await dash.clock.advance(ACCESS_TTL.total_seconds() + 60)
    doc = {"name": "t1", "cmd": "true", "run_on_host": "q1", "stdout": "/tmp/o",
           "stderr": "/tmp/e", "timezone": "UTC", "day_of_week": "1111111",
           "trigger_times": "12:00", "csrf": dash.csrf()}  # fmt: skip
    answer = await dash.http.post(dash.base + "/tasks/new", data=doc, allow_redirects=False)
    assert answer.status == 303 and answer.headers["Location"] == "/tasks/1001"
    assert any(c.startswith("et_session=") for c in answer.headers.getall("Set-Cookie"))
    # The new tokens were kept: the next page needs no second refresh (the old one is spent).
    page = await dash.http.get(dash.base + "/tasks/1001", allow_redirects=False)
    assert page.status == 200


async def test_logout_ends_the_session_even_after_expiry(dash: Dash) -> None:
    await dash.login()
    refresh = next(c.value for c in dash.http.cookie_jar if c.key == "et_refresh")
    await dash.clock.advance(ACCESS_TTL.total_seconds() + 60)
    answer = await dash.http.post(dash.base + "/logout", data={"csrf": dash.csrf()},
                                  allow_redirects=False)  # fmt: skip
    assert (answer.status, answer.headers["Location"]) == (303, "/login")
    page = await dash.http.get(dash.base + "/tasks", allow_redirects=False)
    assert page.status == 303  # to the login page
    # Not even the refresh token of before the logout works any more.
    replay = aiohttp.ClientSession(cookies={"et_refresh": refresh})
    try:
        page = await replay.get(dash.base + "/tasks", allow_redirects=False)
        assert page.status == 303
    finally:
        await replay.close()


@pytest.mark.parametrize(
    "path",
    ["/tasks/%C2%B2", "/tasks/99999999999999", "/runs?since=nan&tid=%C2%B2&page=%C2%B2",
     "/runs/nope", "/runs/nope/log", "/tasks?status=<b>&page=-1", "/runs/x/log/passwd",
     "/upcoming?hours=nan&count=x&tid=%C2%B2", "/upcoming?tid=4242", "/agents"],
)  # fmt: skip
async def test_hostile_paths_get_an_answer_never_a_500(dash: Dash, path: str) -> None:
    await dash.login()
    answer = await dash.http.get(dash.base + path, allow_redirects=False)
    assert answer.status in (200, 404), (path, answer.status, await answer.text())
    assert "Traceback" not in await answer.text()


async def test_the_live_socket_closes_when_its_session_ends(
    dash: Dash, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "SESSION_CHECK_SECONDS", 0.05)
    await dash.login()
    ws = await dash.http.ws_connect(dash.base + "/live", origin=dash.base)
    await ws.send_json({"subscribe": [{"topic": "board", "seq": 0}]})
    first = await asyncio.wait_for(ws.receive_json(), 20)
    assert (first["topic"], first["seq"]) == ("board", 1) and "<" in first["html"]
    with pytest.raises(TimeoutError):  # several checks of a valid session, and no close
        await asyncio.wait_for(ws.receive(), 0.3)
    answer = await dash.http.post(dash.base + "/logout", data={"csrf": dash.csrf()},
                                  allow_redirects=False)  # fmt: skip
    assert answer.status == 303
    closing = await asyncio.wait_for(ws.receive(), 20)
    assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == live.SESSION_ENDED_CODE
    await ws.close()
    # Without a session the socket is refused outright; the tab then asks /session.
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await dash.http.ws_connect(dash.base + "/live", origin=dash.base)
    assert refused.value.status == 401


async def test_the_live_socket_refuses_another_origin(dash: Dash) -> None:
    await dash.login()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await dash.http.ws_connect(dash.base + "/live", origin="https://evil.example")
    assert refused.value.status == 403


async def test_a_live_socket_opened_with_a_bearer_token_stays_open(
    dash: Dash, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "SESSION_CHECK_SECONDS", 0.05)
    assert dash.service.app is not None
    session = await dash.service.app.login("easytask_superuser", dash.password)
    headers = {"Authorization": f"Bearer {session.access_token}"}
    async with aiohttp.ClientSession() as http:  # no cookies at all
        ws = await http.ws_connect(dash.base + "/live", headers=headers)
        await ws.send_json({"subscribe": [{"topic": "board", "seq": 0}]})
        assert (await asyncio.wait_for(ws.receive_json(), 20))["topic"] == "board"
        with pytest.raises(TimeoutError):  # several re-checks of the token, and no close
            await asyncio.wait_for(ws.receive(), 0.3)
        await dash.service.app.logout(session.access_token)
        closing = await asyncio.wait_for(ws.receive(), 20)
        assert closing.data == live.SESSION_ENDED_CODE


async def test_a_malformed_live_message_is_ignored_and_tabs_are_capped_per_user(
    dash: Dash, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "MAX_USER_SOCKETS", 4)
    await dash.login()
    ws = await dash.http.ws_connect(dash.base + "/live", origin=dash.base)
    for bad in ({"subscribe": 5}, {"logs": 7}, {"subscribe": [5, "x"]}, [1], "text"):
        await ws.send_json(bad)
    await ws.send_json({"subscribe": [{"topic": "board", "seq": 0}]})
    assert (await asyncio.wait_for(ws.receive_json(), 20))["topic"] == "board"  # still serving
    others = [await dash.http.ws_connect(dash.base + "/live", origin=dash.base)
              for _ in range(live.MAX_USER_SOCKETS - 1)]  # fmt: skip
    extra = await dash.http.ws_connect(dash.base + "/live", origin=dash.base)
    closing = await asyncio.wait_for(extra.receive(), 20)
    assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == live.TOO_MANY_CODE
    await others[0].close()
    for _ in range(50):  # the server counts the closed tab out as soon as it sees the close
        again = await dash.http.ws_connect(dash.base + "/live", origin=dash.base)
        await again.send_json({"subscribe": [{"topic": "agents", "seq": 0}]})
        answer = await asyncio.wait_for(again.receive(), 20)
        if answer.type == aiohttp.WSMsgType.TEXT:
            break
        await again.close()
    assert answer.json()["topic"] == "agents"
    for socket in (ws, again, *others):
        await socket.close()


async def test_the_live_runs_table_of_page_two_is_page_two(dash: Dash) -> None:
    await dash.login()
    app = dash.service.app
    assert app is not None
    session = await app.login("easytask_superuser", dash.password)
    admin = await app.authenticate(session.access_token)
    await app.create_task({"tid": 1001, "name": "t", "cmd": "true", "run_on_host": "q1",
                           "stdout": "/tmp/t.out", "stderr": "/tmp/t.err", "timezone": "UTC",
                           "day_of_week": "1111111", "trigger_times": "03:17"}, admin)  # fmt: skip
    for _ in range(30):
        await app.force_run(1001, "", "", admin, "API")
        await dash.clock.advance(1)  # a forced run's id is its instant
    page = await (await dash.http.get(dash.base + "/runs?page=2")).text()
    assert 'data-live="runs:page=2"' in page and page.count('<tr data-run-id="') == 5
    ws = await dash.http.ws_connect(dash.base + "/live", origin=dash.base)
    await ws.send_json({"subscribe": [{"topic": "runs:page=2", "seq": 0}]})
    live_rows = (await asyncio.wait_for(ws.receive_json(), 20))["html"]
    assert live_rows.count('<tr data-run-id="') == 5
    first = page.split('<tr data-run-id="', 2)[1].split('"', 1)[0]
    assert first in live_rows
    await ws.close()

"""Group pages and the runs filters over real HTTP against a real scheduler with the test's
clock: the form's field errors, force-run from the page, the occurrence's member runs (and
the runs list filtered by group, agent and date range), the graph's data, the delete rules,
a viewer refused, and hostile ids answered without a 500."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import aiohttp
import aiohttp_jinja2
import pytest
from aiohttp import web

from easytask.rpc.v1 import agent_pb2 as apb
from easytask.ui.render import setup
from tests.integration.conftest import Dash, ScriptedAgent

GROUP = {"name": "etl", "timezone": "UTC", "day_of_week": "1111111", "trigger_times": "03:17"}


def member(tid: int, name: str, dependency: str = "") -> dict[str, str]:
    return {"tid": str(tid), "name": name, "cmd": "echo hi", "run_on_host": "q1",
            "stdout": "/tmp/m.out", "stderr": "/tmp/m.err", "task_group": "etl",
            "dependency": dependency}  # fmt: skip


async def post(d: Dash, path: str, form: dict[str, str]) -> aiohttp.ClientResponse:
    return await d.http.post(d.base + path, data={**form, "csrf": d.csrf()},
                             allow_redirects=False)  # fmt: skip


async def text(d: Dash, path: str, status: int = 200) -> str:
    answer = await d.http.get(d.base + path, allow_redirects=False)
    assert answer.status == status, (path, answer.status)
    return await answer.text()


async def make_group(d: Dash) -> None:
    await d.login()
    answer = await post(d, "/groups/new", {**GROUP, "trigger_times": "25:99"})
    assert answer.status == 422
    page = await answer.text()
    assert 'data-error="trigger_times"' in page and 'value="etl"' in page
    answer = await post(d, "/groups/new", GROUP)
    assert (answer.status, answer.headers["Location"]) == (303, "/groups/1")
    for form in (member(5001, "extract"), member(5002, "load", "S:extract")):
        answer = await post(d, "/tasks/new", form)
        assert answer.status == 303, await answer.text()


async def test_group_pages_force_run_and_runs_filters(dash: Dash) -> None:
    await make_group(dash)
    listing = await text(dash, "/groups")
    assert re.search(r'data-test="members">2<', listing)

    answer = await post(dash, "/groups/1/force-run", {})
    assert (answer.status, answer.headers["Location"]) == (303, "/groups/1")
    page = await text(dash, "/groups/1")
    assert "Force run triggered for group 1 (etl)" in page
    # No agent serves q1: extract waits in TRIGGER, load waits on it in PENDING.
    assert re.search(r'data-node="t:extract" data-state="TRIGGER"', page)
    assert re.search(r'data-node="t:load" data-state="PENDING"', page)
    occurrence = re.search(r'data-test="occurrence">Occurrence <span class="mono">([^<]+)<', page)
    assert occurrence is not None
    chosen = await text(dash, f"/groups/1?occurrence={occurrence.group(1)}")
    assert 'data-node="t:extract" data-state="TRIGGER"' in chosen
    # An occurrence id that is not one of this group's falls back to the latest.
    other = await text(dash, "/groups/1?occurrence=default:g2:1&x=<script>")
    assert 'data-node="t:extract" data-state="TRIGGER"' in other and "<script>" not in other

    graph = await text(dash, "/groups/1/graph")
    data = json.loads(graph.split('id="graph-data">', 1)[1].split("</script>", 1)[0])
    assert data["edges"] == [{"from": "t:extract", "to": "t:load", "letter": "S"}]
    assert {n["id"]: n["state"] for n in data["nodes"]} == {"t:extract": "TRIGGER",
                                                             "t:load": "PENDING"}  # fmt: skip

    runs = await text(dash, "/runs?group=etl")
    assert runs.count('data-run-id="default:500') == 2
    assert "data-run-id" not in await text(dash, "/runs?group=nope")
    assert "data-run-id" not in await text(dash, "/runs?agent=a1")
    today = dash.clock.now().strftime("%Y%m%d")
    assert (await text(dash, f"/runs?from={today}&to={today}")).count("data-run-id=") == 2
    assert "data-run-id" not in await text(dash, "/runs?from=20990101")
    assert "data-run-id" not in await text(dash, "/runs?to=20000101")


async def test_group_edit_disable_and_delete_rules(dash: Dash) -> None:
    await make_group(dash)
    form = await text(dash, "/groups/1/edit")
    assert 'value="03:17"' in form
    answer = await post(dash, "/groups/1/edit", {**GROUP, "description": "nightly load",
                                                 "dependency": "S:nope"})  # fmt: skip
    assert answer.status == 422 and 'data-error="dependency"' in await answer.text()
    answer = await post(dash, "/groups/1/edit", {**GROUP, "description": "nightly load"})
    assert answer.status == 303
    assert "nightly load" in await text(dash, "/groups/1")
    answer = await post(dash, "/groups/1/disable", {})
    assert answer.status == 303
    page = await text(dash, "/groups/1")
    assert "Group 1 disabled on scheduler." in page and ">Enable</button>" in page

    refused = await post(dash, "/groups/1/delete", {})
    assert refused.status == 409 and "group has 2 tasks" in await refused.text()
    answer = await post(dash, "/groups/1/delete", {"cascade": "yes"})
    assert (answer.status, answer.headers["Location"]) == (303, "/groups")
    assert "deleted with 2 member tasks" in await text(dash, "/groups")
    await text(dash, "/groups/1", status=404)


async def test_a_viewer_sees_no_group_actions_and_is_refused(dash: Dash) -> None:
    await make_group(dash)
    app = dash.service.app
    assert app is not None
    session = await app.login("easytask_superuser", dash.password)
    admin = await app.authenticate(session.access_token)
    await app.create_user(admin, {"username": "vera", "password": "vera-reads-only-1",
                                  "role": "viewer"})  # fmt: skip
    viewer = Dash(dash.service, dash.clock, dash.service.config.home)
    try:
        answer = await viewer.http.post(viewer.base + "/login", allow_redirects=False, data={
            "username": "vera", "password": "vera-reads-only-1", "next": "/groups/1"})  # fmt: skip
        assert answer.status == 303
        page = await text(viewer, "/groups/1")
        assert ">Force run</button>" not in page and ">Delete<" not in page and "/edit" not in page
        assert "New group" not in await text(viewer, "/groups")
        for path in ("/groups/1/force-run", "/groups/1/disable", "/groups/1/delete"):
            answer = await post(viewer, path, {})
            assert answer.status == 403, path
        answer = await post(viewer, "/groups/1/force-run", {})
        assert "role viewer may not run groups" in await answer.text()
        assert (await post(viewer, "/groups/new", GROUP)).status == 403
        assert (await viewer.http.get(viewer.base + "/groups/new")).status == 403
        assert app.get_group(1).active  # nothing changed
    finally:
        await viewer.http.close()


@pytest.mark.parametrize(
    "path",
    ["/groups/abc", "/groups/99999999999", "/groups/%C2%B2", "/groups/7/graph",
     "/groups/1?occurrence=" + "x" * 5000, "/groups?search=%00%ff" + "z" * 500,
     "/groups?page=-1", "/runs?group=" + "g" * 5000, "/runs?from=%00&to=abc&agent=%ff"],
)  # fmt: skip
async def test_hostile_group_paths_never_500(dash: Dash, path: str) -> None:
    await make_group(dash)
    answer = await dash.http.get(dash.base + path, allow_redirects=False)
    assert answer.status in (200, 404), (path, answer.status)
    bad = await post(dash, "/groups/1/explode", {})
    assert bad.status == 404


async def test_the_graph_shows_the_groups_a_group_waits_for(dash: Dash) -> None:
    await make_group(dash)
    downstream = {**GROUP, "name": "report", "dependency": "S:etl"}
    answer = await post(dash, "/groups/new", downstream)
    assert (answer.status, answer.headers["Location"]) == (303, "/groups/2")
    for form in ({**member(5101, "render"), "task_group": "report"},
                 {**member(5102, "mail", "S:render"), "task_group": "report"}):  # fmt: skip
        assert (await post(dash, "/tasks/new", form)).status == 303
    page = await text(dash, "/groups/2")
    assert 'Depends on:\n    <a href="/groups/1">etl</a> (needs S, now no occurrence)' in page
    graph = await text(dash, "/groups/2/graph")
    data = json.loads(graph.split('id="graph-data">', 1)[1].split("</script>", 1)[0])
    nodes = {n["id"]: (n["kind"], n["href"]) for n in data["nodes"]}
    assert nodes == {"t:render": ("task", "/tasks/5101"), "t:mail": ("task", "/tasks/5102"),
                     "g:etl": ("group", "/groups/1/graph")}  # fmt: skip
    # The upstream group points at the members that wait for nothing else.
    assert {(e["from"], e["to"], e["letter"]) for e in data["edges"]} == {
        ("t:render", "t:mail", "S"), ("g:etl", "t:render", "S")}  # fmt: skip
    await post(dash, "/groups/1/force-run", {})
    page = await text(dash, "/groups/2/graph")
    assert 'data-node="g:etl" data-state="RUNNING"' in page  # its colour follows etl's state


async def test_upcoming_merges_group_occurrences_in_time_order(dash: Dash) -> None:
    await dash.login()
    times = {"a": "01:00,13:00", "b": "02:00,14:00", "c": "03:00"}
    for name, at in times.items():
        answer = await post(dash, "/groups/new", {**GROUP, "name": name, "trigger_times": at})
        assert answer.status == 303
    app = dash.service.app
    assert app is not None
    now = dash.clock.now()
    found = app.upcoming_groups(0, now, now + timedelta(hours=48), 5)
    assert [g.slot.scheduled_utc for g in found] == sorted(g.slot.scheduled_utc for g in found)
    assert len(found) == 5
    later = app.upcoming_groups(0, now, now + timedelta(hours=48), 100)
    assert len(later) == 10 and later[:5] == found  # 2 days of 5 occurrences, the first 5 first
    page = await text(dash, "/upcoming?hours=48&count=3")
    assert page.count('data-test="upcoming"') == 1 and page.count("member tasks</td>") == 3


async def test_a_run_page_lists_the_attempts_of_its_occurrence(dash: Dash) -> None:
    await dash.login()
    task = {**member(5001, "flaky"), "task_group": "", "timezone": "UTC",
            "day_of_week": "1111111", "trigger_times": "03:17", "retry_attempts": "1",
            "retry_delay": "0"}  # fmt: skip
    assert (await post(dash, "/tasks/new", task)).status == 303
    assert dash.service.grpc_port
    creds = json.loads((dash.service.config.home / "credentials.json").read_text())
    agent = ScriptedAgent(dash.service.grpc_port, creds["agent_token"], "a1", ["q1"])
    await agent.connect()
    try:
        await post(dash, "/tasks/5001/force-run", {})
        first = await agent.recv("run")
        fin = apb.RunFinished(run_id=first.run_id, state="FAILED", has_return_code=True,
                              return_code=3, reason="exit code 3")  # fmt: skip
        await agent.send(batch=apb.AgentBatch(messages=[
            apb.AgentMessage(accepted=apb.RunAccepted(run_id=first.run_id)),
            apb.AgentMessage(finished=fin)]))  # fmt: skip
        second = await agent.recv("run")  # the retry, attempt 2
        assert second.run_id.endswith(":2") and first.run_id.endswith(":1")
        page = await text(dash, f"/runs/{second.run_id}")
        attempts = page.split('data-test="attempts"', 1)[1].split("</table>", 1)[0]
        assert attempts.index(f'data-run-id="{first.run_id}"') < attempts.index(
            f'data-run-id="{second.run_id}"')  # fmt: skip
        assert 'data-state="FAILED"' in attempts
    finally:
        await agent.close()


def test_a_timed_out_run_says_so() -> None:
    app = web.Application()
    setup(app)
    env = aiohttp_jinja2.get_env(app)
    macro = env.from_string('{% from "macros.html" import state %}{{ state(n, r) }}')
    assert ">TERMINATED · Timed Out</span>" in macro.render(n="TERMINATED", r="timed out")
    assert ">TERMINATED</span>" in macro.render(n="TERMINATED", r="terminated by alice")

"""Ad-hoc commands and agent control on the dashboard over real HTTP, against a real scheduler
with scripted agents on real streams: the ADHOC form on /events (field errors at their fields,
nothing recorded; a selection matching no connected agent named), the event page's per-agent
results (output escaped, the cut marked, followed live until every execution is final), the
Restart button (sent, refused for an agent that is not connected), the agent page, and a viewer
who sees none of it and whose forged POSTs the application refuses."""

from __future__ import annotations

import asyncio
import html
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from easytask.rpc.v1 import agent_pb2 as apb
from tests.integration.conftest import START, ScriptedAgent, eventually, running_service
from tests.integration.test_dashboard_admin import Browser, Dash, field_error, notice
from tests.support.fakeclock import FakeClock

NOON_MS = int(START.timestamp() * 1000)
HOSTILE = "<script>alert(1)</script><b>bold</b>"


class Fleet(Dash):
    def __init__(self, *args: Any, home: Path) -> None:
        super().__init__(*args, home)
        self.agent_token = json.loads((home / "credentials.json").read_text())["agent_token"]
        self.agents: list[ScriptedAgent] = []

    async def agent(self, name: str, queues: list[str], **kw: Any) -> ScriptedAgent:
        assert self.service.grpc_port
        agent = ScriptedAgent(self.service.grpc_port, self.agent_token, name, queues)
        await agent.connect(**kw)
        self.agents.append(agent)
        return agent


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    clock = FakeClock(START)
    home = tmp_path / "home"
    async with running_service(home, clock, http_listen="127.0.0.1:0") as service:
        f = Fleet(service, clock, home=home)
        try:
            yield f
        finally:
            for b in f.browsers:
                await b.http.close()
            for a in f.agents:
                await a.close()


ADHOC = {"event": "ADHOC", "name": "hello", "cmd": "echo hi", "select": "agents",
         "agents": "a1, a2", "max_run_time": "3600"}  # fmt: skip


async def run_through(agent: ScriptedAgent, out: bytes, rc: int = 0) -> str:
    order = await agent.recv("run")
    run_id: str = order.run_id
    await agent.send(accepted=apb.RunAccepted(run_id=run_id))
    await agent.send(started=apb.RunStarted(run_id=run_id, pid=4242))
    await agent.send(output=apb.OutputChunk(run_id=run_id, stream=apb.STDOUT, offset=0, data=out))
    await agent.send(output=apb.OutputChunk(run_id=run_id, stream=apb.STDERR, offset=0,
                                            data=b"warn\n"))  # fmt: skip
    return run_id


async def finish(agent: ScriptedAgent, run_id: str, rc: int) -> None:
    state = "SUCCESS" if rc == 0 else "FAILED"
    fin = apb.RunFinished(run_id=run_id, state=state, has_return_code=True, return_code=rc,
                          reason="" if rc == 0 else f"exit code {rc}", pid=4242,
                          started_at_ms=NOON_MS, ended_at_ms=NOON_MS + 1500)  # fmt: skip
    await agent.send(finished=fin)
    await agent.recv("result_ack")


def blocks(page: str) -> dict[str, str]:
    """Each agent's result block, by agent."""
    found = re.findall(r'<section class="adhoc-result" data-agent="([^"]+)"(.*?)</section>',
                       page, re.S)  # fmt: skip
    return dict(found)


async def test_an_operator_runs_a_command_on_two_agents_and_reads_both_outputs(
    fleet: Fleet,
) -> None:
    a1, a2 = await fleet.agent("a1", ["q1"]), await fleet.agent("a2", ["q2"])
    root = await fleet.browser()
    status, page = await root.get("/events")
    assert status == 200 and 'data-event="ADHOC"' in page
    for label in ("Name", "Command", "Agent names", "Queues", "Stdout file", "Stderr file",
                  "Max run time (seconds)", "Run as user"):  # fmt: skip
        assert re.search(rf'<label for="ev-ADHOC-\w+">{re.escape(label)}</label>', page), label
    assert 'value="3600"' in page  # the default max run time
    assert 'type="number" value="3600" min="1"' in page and 'list="adhoc-agents"' in page
    assert "&#34;" not in page  # no attribute rendered as escaped text
    assert "Connected: a1, a2 · queues q1, q2" in html.unescape(page)

    answer = await root.post("/events", **ADHOC)
    assert answer.status == 303
    location = answer.headers["Location"]
    event_id = int(location.rsplit("/", 1)[1])
    page = await root.follow(answer)
    assert notice(page) == "ok: Adhoc command 'hello' submitted.\nAgent(s): a1,a2"
    assert f'data-live="adhoc:{event_id}"' in page  # not final: followed live
    assert list(blocks(page)) == ["a1", "a2"]

    run1 = await run_through(a1, HOSTILE.encode() + b"\n")
    run2 = await run_through(a2, b"out of a2\n")
    assert run1 == f"default:adhoc-{event_id}-0" and run2 == f"default:adhoc-{event_id}-1"
    await finish(a1, run1, 0)

    async def live_html(ws: aiohttp.ClientWebSocketResponse, want: str) -> str:
        async with asyncio.timeout(10):
            while True:
                msg = json.loads((await ws.receive()).data)
                if msg.get("topic") == f"adhoc:{event_id}" and want in msg["html"]:
                    return str(msg["html"])

    async with root.http.ws_connect(fleet.base.replace("http", "ws") + "/live") as ws:
        await ws.send_json({"subscribe": [{"topic": f"adhoc:{event_id}", "seq": 0}]})
        first = await live_html(ws, "still running")
        assert "1 of 2 still running" in first
        await finish(a2, run2, 3)
        last = await live_html(ws, "Every execution has ended")  # pushed, no reload
        assert 'data-state="FAILED"' in last

    status, page = await root.get(location)
    assert status == 200 and "data-live=" not in page  # all final: nothing more to follow
    got = blocks(page)
    assert 'data-state="SUCCESS"' in got["a1"] and 'data-state="FAILED"' in got["a2"]
    assert "a1.host" in got["a1"] and "exit code 3" in got["a2"]
    assert re.search(r'data-test="return-code">3<', got["a2"])
    assert re.search(r'data-test="return-code">0<', got["a1"])
    # Task output is hostile input: shown as text, never markup.
    assert "<script>alert(1)" not in page and "<b>bold" not in page
    assert html.escape(HOSTILE, quote=False) in got["a1"]
    assert "out of a2" in got["a2"] and got["a2"].count("warn") == 1
    assert "earlier output cut" not in page
    # The event is in the history, published by the operator from the UI.
    event = await fleet.app.get_event(event_id)
    assert (event.status, event.origin, event.target) == ("SUCCESS", "UI", "agents a1,a2")


async def test_earlier_output_cut_is_marked(fleet: Fleet) -> None:
    a1 = await fleet.agent("a1", ["q1"])
    root = await fleet.browser()
    answer = await root.post("/events", **{**ADHOC, "agents": "a1"})
    location = answer.headers["Location"]
    big = b"x" * (64 * 1024) + b"THE END\n"
    run_id = await run_through(a1, big)
    await finish(a1, run_id, 0)
    status, page = await root.get(location)
    assert status == 200
    block = blocks(page)["a1"]
    assert "earlier output cut" in block and "THE END" in block
    assert block.count('data-test="cut"') == 1  # stdout only


async def test_field_errors_are_shown_at_their_fields_and_nothing_is_recorded(
    fleet: Fleet,
) -> None:
    await fleet.agent("a1", ["q1"])
    root = await fleet.browser()
    before = await fleet.events()
    bad = {**ADHOC, "name": "bad name!", "cmd": "", "agents": " , ", "max_run_time": "abc"}
    answer = await root.post("/events", **bad)
    assert answer.status == 422
    page = await answer.text()
    assert "name must be" in field_error(page, "name")
    assert "cmd is required" in field_error(page, "cmd")
    assert "give at least one" in field_error(page, "agents")
    assert "1 to 172800" in field_error(page, "max_run_time")
    assert 'value="bad name!"' in page  # what was typed is kept
    assert re.search(r'<details class="event-form adhoc-form" data-event="ADHOC" open>', page)
    answer = await root.post("/events", **{**ADHOC, "select": "nobody"})
    assert answer.status == 422
    assert "choose agents named" in field_error(await answer.text(), "select")
    assert await fleet.events() == before  # nothing published

    # Valid, but no connected agent matches: the scheduler's refusal, at the selection.
    answer = await root.post("/events", **{**ADHOC, "agents": "a1,ghost"})
    assert answer.status == 422
    assert "agent(s) not connected: ghost" in field_error(await answer.text(), "agents")
    answer = await root.post("/events", **{**ADHOC, "select": "queues", "queues": "nowhere"})
    assert "no connected agent serves queue(s) nowhere" in field_error(await answer.text(),
                                                                       "queues")  # fmt: skip
    answer = await root.post("/events", **{**ADHOC, "select": "all", "agents": ""})
    assert answer.status == 303  # all connected agents: a1
    page = await root.follow(answer)
    assert list(blocks(page)) == ["a1"]


async def test_restart_button_sends_the_action_and_an_offline_agent_is_refused(
    fleet: Fleet,
) -> None:
    a1 = await fleet.agent("a1", ["q1"], max_runs=4)
    root = await fleet.browser()
    status, page = await root.get("/agents")
    assert status == 200 and 'data-live="agents:control"' in page
    assert 'aria-label="Restart agent a1"' in page
    assert re.search(r'data-test="max-runs">4<', page)
    answer = await root.post("/agents/a1/restart")
    assert (answer.status, answer.headers["Location"]) == (303, "/agents")
    assert notice(await root.follow(answer)) == "ok: Restart action sent to agent 'a1'."
    restart = await a1.recv("restart")
    assert restart.requested_by == "easytask_superuser"

    status, page = await root.get("/agents/a1")
    assert status == 200 and "Max runs" in page and 'aria-label="Restart agent a1"' in page
    assert 'data-test="agent-changes"' in page and "online" in page

    await a1.close()
    fleet.agents.remove(a1)

    async def offline() -> bool:
        return not any(a.online for a in await fleet.app.agents())

    await eventually("a1 offline", offline)
    status, page = await root.get("/agents")
    assert 'aria-label="Restart agent a1"' not in page  # offered only to connected agents
    answer = await root.post("/agents/a1/restart?back=agent")
    assert answer.headers["Location"] == "/agents/a1"
    assert notice(await root.follow(answer)) == "error: Not restarted: agent 'a1' is not connected"
    answer = await root.post("/agents/never-seen/restart")
    assert answer.status == 404


async def test_a_viewer_sees_no_form_nor_button_and_forged_posts_are_refused(
    fleet: Fleet,
) -> None:
    a1 = await fleet.agent("a1", ["q1"])
    root = await fleet.browser()
    answer = await root.post("/users", username="vera", role="viewer",
                             password="vera-reads-only-1")  # fmt: skip
    assert answer.status == 303
    vera = await fleet.browser("vera", "vera-reads-only-1")
    before = await fleet.events()
    status, page = await vera.get("/events")
    assert status == 200 and 'data-event="ADHOC"' not in page and "Publish an event" not in page
    status, page = await vera.get("/agents")
    assert status == 200 and "Restart" not in page and 'data-live="agents"' in page
    status, page = await vera.get("/agents/a1")
    assert status == 200 and "Restart" not in page
    for form in (ADHOC, {**ADHOC, "name": ""}):  # valid or not: refused by role
        answer = await vera.post("/events", **form)
        assert answer.status == 403
        assert "role viewer may not run ad-hoc commands" in html.unescape(await answer.text())
    answer = await vera.post("/agents/a1/restart")
    assert answer.status == 403
    assert "role viewer may not control agents" in html.unescape(await answer.text())
    assert await fleet.events() == before  # a refusal is not an event
    with pytest.raises(TimeoutError):
        await a1.recv("run", timeout=0.3)
    assert not [m for m in a1.buffer if m.WhichOneof("msg") == "restart"]


async def test_hostile_agent_paths_never_500(fleet: Fleet) -> None:
    root = await fleet.browser()
    for path in ("/agents/%00", "/agents/" + "x" * 300, "/agents/%C2%B2", "/events/1"):
        status, page = await root.get(path)
        assert status == 404, (path, status)
        assert "Traceback" not in page
    assert (await root.post("/agents/" + "x" * 300 + "/restart")).status == 404


async def test_live_topic_names_are_checked(fleet: Fleet) -> None:
    root: Browser = await fleet.browser()
    async with root.http.ws_connect(fleet.base.replace("http", "ws") + "/live") as ws:
        await ws.send_json({"subscribe": [{"topic": "adhoc:x", "seq": 0},
                                          {"topic": "adhoc:999", "seq": 0}]})  # fmt: skip
        async with asyncio.timeout(10):
            msg = json.loads((await ws.receive()).data)
        assert msg["topic"] == "adhoc:999" and "No execution" in msg["html"]

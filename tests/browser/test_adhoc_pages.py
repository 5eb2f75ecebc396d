"""Ad-hoc commands and the Restart button in a real browser against a real scheduler and two
real agents: an operator submits a command from the /events form to both agents and watches both
results arrive on the event's page by themselves, markup in the output shown as text; a viewer
has no form and a forged POST is refused; Restart sends the action and the agent comes back."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import log_in, new_page, password_of, shot
from tests.e2e.harness import Cluster, wait_until

pytestmark = pytest.mark.e2e

SUPERUSER = "easytask_superuser"
HOSTILE = "<script>alert(1)</script><b>bold</b>"


def two_agents(cluster: Cluster) -> None:
    cluster.start_scheduler()
    for name, queue in (("a1", "q1"), ("a2", "q2")):
        cluster.env["AGENT_TAG"] = name  # each agent writes its own files: ${E:AGENT_TAG}
        cluster.start_agent(name, queue)


def user(cluster: Cluster, name: str, role: str) -> str:
    password = f"{name}-is-a-{role}-1"
    doc = {"username": name, "password": password, "role": role}
    cluster.ctl("admin", "users", "create", "-f", "-", stdin=json.dumps(doc))
    return password


def test_an_operator_runs_a_command_on_two_agents_and_sees_both_outputs(
    cluster: Cluster, browser: Browser, tmp_path: Path
) -> None:
    two_agents(cluster)
    page = new_page(browser)
    log_in(page, cluster, "olga", user(cluster, "olga", "operator"))
    page.get_by_role("link", name="Events", exact=True).click()
    page.locator('details[data-event="ADHOC"] > summary').click()
    form = page.get_by_role("form", name="Publish ADHOC")
    expect(form.get_by_label("Max run time (seconds)")).to_have_value("3600")
    expect(page.locator('[data-test="adhoc-online"]')).to_contain_text("a1, a2")
    form.get_by_label("Name", exact=True).fill("hello")
    # Slow enough that the page opens before the commands end: what follows must arrive live.
    form.get_by_label("Command", exact=True).fill(
        f"printf '%s\\n' '{HOSTILE}'; sleep 2; echo \"done on $AGENT_TAG\"; echo warn >&2"
    )
    form.get_by_label("Agents named").check()
    form.get_by_label("Agent names", exact=True).fill("a1,a2")
    form.get_by_label("Stdout file", exact=True).fill(str(tmp_path / "adhoc-${E:AGENT_TAG}.out"))
    form.get_by_label("Stderr file", exact=True).fill(str(tmp_path / "adhoc-${E:AGENT_TAG}.err"))
    shot(page, "events-adhoc-form")
    form.get_by_role("button", name="Run ad-hoc command").click()

    page.wait_for_url(re.compile(r"/events/\d+$"))
    expect(page.get_by_role("status").first).to_contain_text("Adhoc command 'hello' submitted.")
    expect(page.get_by_role("status").first).to_contain_text("Agent(s): a1,a2")
    results = page.locator('[data-test="adhoc-results"]')
    expect(results).to_have_attribute("data-live", re.compile(r"^adhoc:\d+$"))
    expect(page.locator("#live-status")).to_have_text("live")
    for name in ("a1", "a2"):
        block = page.locator(f'section.adhoc-result[data-agent="{name}"]')
        expect(block.locator("h3 [data-state]")).to_have_attribute("data-state", "SUCCESS")
        expect(block.locator("h3 [data-state]")).to_have_text("SUCCESS")  # by name, not colour
        stdout = block.locator('pre[data-stream="stdout"]')
        expect(stdout).to_contain_text(f"done on {name}")
        assert HOSTILE in stdout.inner_text()  # text, never markup
        assert stdout.locator("script, b").count() == 0
        expect(block.locator('pre[data-stream="stderr"]')).to_have_text("warn")
        expect(block.locator('[data-test="return-code"]')).to_have_text("0")
    expect(page.locator('[data-test="adhoc-progress"]')).to_have_text("Every execution has ended.")
    shot(page, "event-adhoc")
    assert (tmp_path / "adhoc-a2.out").read_text().endswith("done on a2\n")
    assert page.errors == []  # type: ignore[attr-defined]  # no alert(1), no JS error


def test_a_viewer_has_no_adhoc_form_nor_restart_and_a_forged_post_is_refused(
    cluster: Cluster, browser: Browser
) -> None:
    two_agents(cluster)
    page = new_page(browser)
    log_in(page, cluster, "vera", user(cluster, "vera", "viewer"))
    page.goto(cluster.dashboard + "/events")
    expect(page.get_by_role("heading", name="History")).to_be_visible()
    expect(page.locator('[data-event="ADHOC"]')).to_have_count(0)
    expect(page.get_by_role("button", name="Run ad-hoc command")).to_have_count(0)
    page.goto(cluster.dashboard + "/agents")
    expect(page.locator('[data-test="agent-counts"]')).to_have_text("2 online, 0 offline")
    expect(page.get_by_role("button", name=re.compile("Restart"))).to_have_count(0)
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    form = {"csrf": csrf, "event": "ADHOC", "name": "x", "cmd": "touch /tmp/pwned",
            "select": "all"}  # fmt: skip
    answer = page.request.post(cluster.dashboard + "/events", form=form)
    assert answer.status == 403 and "role viewer may not run ad-hoc commands" in answer.text()
    answer = page.request.post(cluster.dashboard + "/agents/a1/restart", form={"csrf": csrf})
    assert answer.status == 403 and "role viewer may not control agents" in answer.text()
    listed = json.loads(cluster.ctl("events", "list", "--event-name", "ADHOC", "-o", "json").stdout)
    assert listed == []
    assert "restart requested" not in cluster.agents["a1"].output()


def test_restart_sends_the_action_and_the_agent_comes_back_online(
    cluster: Cluster, browser: Browser
) -> None:
    two_agents(cluster)
    page = new_page(browser)
    log_in(page, cluster, SUPERUSER, password_of(cluster))
    page.get_by_role("link", name="Agents", exact=True).click()
    row = page.locator('tr[data-agent="a1"]')
    expect(row.locator('[data-test="disk"]')).to_contain_text("free of")
    expect(row.locator('[data-test="max-runs"]')).to_have_text("no cap")
    expect(page.locator("#live-status")).to_have_text("live")
    shot(page, "agents-restart")
    page.evaluate("window.confirm = () => true")  # the button asks first
    row.get_by_role("button", name="Restart agent a1").click()
    expect(page.get_by_role("status").first).to_have_text("Restart action sent to agent 'a1'.")
    agent = cluster.agents["a1"]
    wait_until("the agent to log the request",
               lambda: "restart requested by easytask_superuser" in agent.output())  # fmt: skip
    wait_until("the agent to reconnect", lambda: cluster.agent_online("a1"))
    expect(row.locator('[data-test="agent-status"]')).to_have_text("online")

    # Its page: the agents-get panel and the history, OFFLINE then ONLINE again.
    row.get_by_role("link", name="a1").click()
    expect(page.get_by_role("heading", name=re.compile("Agent a1"))).to_be_visible()
    changes = page.locator('[data-test="agent-changes"] tbody tr')
    expect(changes.filter(has_text="offline")).not_to_have_count(0)
    expect(page.locator('[data-test="disk"]')).to_contain_text("free of")
    shot(page, "agent")

    # Not connected: refused with a notice, nothing sent.
    cluster.agents["a2"].stop()
    page.goto(cluster.dashboard + "/agents")
    a2 = page.locator('tr[data-agent="a2"]')
    expect(a2.locator('[data-test="agent-status"]')).to_have_text("offline", timeout=10_000)
    expect(a2.get_by_role("button")).to_have_count(0)
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    page.request.post(cluster.dashboard + "/agents/a2/restart", form={"csrf": csrf},
                      max_redirects=0)  # fmt: skip
    page.goto(cluster.dashboard + "/agents")
    expect(page.get_by_role("status").first).to_have_text(
        "Not restarted: agent 'a2' is not connected"
    )
    assert page.errors == []  # type: ignore[attr-defined]

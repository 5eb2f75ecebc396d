"""The agents page follows the fleet live: an agent that stops shows offline, a running run
appears in its row, without a reload."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import log_in, new_page, password_of, shot
from tests.e2e.harness import Cluster, task_json

pytestmark = pytest.mark.e2e


def test_agents_page_is_live(cluster: Cluster, browser: Browser, tmp_path: Path) -> None:
    cluster.start_scheduler()
    cluster.start_agent("a1", "q1")
    cluster.start_agent("a2", "q2")
    gate = tmp_path / "gate"
    doc = task_json(1001, "waits", "q1", f"while [ ! -e {gate} ]; do sleep 0.1; done", tmp_path)
    (tmp_path / "t.json").write_text(json.dumps(doc))
    cluster.ctl("tasks", "create", "-f", str(tmp_path / "t.json"))
    page = new_page(browser)
    log_in(page, cluster, "easytask_superuser", password_of(cluster))
    page.get_by_role("link", name="Agents", exact=True).click()
    rows = page.locator('[data-test="agents"] tbody tr')
    expect(rows).to_have_count(2)
    expect(page.locator('[data-test="agent-counts"]')).to_have_text("2 online, 0 offline")
    expect(page.locator("#live-status")).to_have_text("live")

    cluster.ctl("events", "force-run", "1001")
    a1 = page.locator('tr[data-agent="a1"]')
    expect(a1.locator("a.mono")).to_have_text(re.compile(r":1001:"))
    shot(page, "agents")
    gate.touch()
    expect(a1).to_contain_text("none")
    cluster.agents["a2"].stop()
    a2 = page.locator('tr[data-agent="a2"] [data-test="agent-status"]')
    expect(a2).to_have_text("offline", timeout=10_000)  # the 2 s refresh at the latest
    expect(page.locator('[data-test="agent-counts"]')).to_have_text("1 online, 1 offline")
    assert page.errors == []  # type: ignore[attr-defined]

"""Group pages in a real browser against a real scheduler and agent: the list with member
counts, a group created through its form (field error first), Force run from the group page,
the member states and the Gantt arriving live, and the dependency graph drawn by dagre with
edges labelled by state letter, nodes coloured live and the failed upstream outlined."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import log_in, new_page, password_of, shot
from tests.e2e.harness import Cluster

pytestmark = pytest.mark.e2e


def member(tid: int, name: str, cmd: str, out: Path, dep: str = "") -> dict[str, object]:
    return {"tid": tid, "name": name, "cmd": cmd, "run_on_host": "q1", "task_group": "etl",
            "stdout": str(out / f"{name}.out"), "stderr": str(out / f"{name}.err"),
            "dependency": dep}  # fmt: skip


def test_group_form_force_run_gantt_and_live_graph(
    cluster: Cluster, browser: Browser, tmp_path: Path
) -> None:
    cluster.start_scheduler()
    cluster.start_agent("a1", "q1")
    page = new_page(browser)
    log_in(page, cluster, "easytask_superuser", password_of(cluster))

    # The form: a bad trigger time is named next to its field, then the group is saved.
    page.get_by_role("link", name="Groups", exact=True).click()
    page.get_by_role("link", name="New group").click()
    page.get_by_label("Name", exact=True).fill("etl")
    page.get_by_label("Timezone", exact=True).fill("UTC")
    page.get_by_label("Days of week", exact=True).fill("1111111")
    page.get_by_label("Trigger times", exact=True).fill("25:99")
    page.get_by_role("button", name="Save").click()
    expect(page.locator('[data-error="trigger_times"]')).to_be_visible()
    expect(page.get_by_label("Name", exact=True)).to_have_value("etl")
    page.get_by_label("Trigger times", exact=True).fill("03:17")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".notice.ok")).to_contain_text("Group inserted successfully (gid 1)")

    gate = tmp_path / "gate"
    tasks = [
        member(5001, "extract", "echo extract", tmp_path),
        member(5002, "load", f"while [ ! -e {gate} ]; do sleep 0.1; done; exit 1", tmp_path,
               "S:extract"),
        member(5003, "on_fail", "echo cleanup", tmp_path, "F:load"),
    ]  # fmt: skip
    for task in tasks:
        path = tmp_path / f"{task['name']}.json"
        path.write_text(json.dumps(task))
        cluster.ctl("tasks", "create", "-f", str(path))

    page.get_by_role("link", name="Groups", exact=True).click()
    row = page.locator('[data-test="groups"] tr[data-gid="1"]')
    expect(row.locator('[data-test="members"]')).to_have_text("3")
    shot(page, "groups")

    # Force run; the member table and the Gantt follow the occurrence without a reload.
    row.get_by_role("link", name="etl", exact=True).click()
    expect(page.get_by_role("heading", name="Group 1 · etl")).to_be_visible()
    page.get_by_role("button", name="Force run").click()
    expect(page.locator(".notice.ok")).to_contain_text("Force run triggered for group 1 (etl)")
    members = page.locator('[data-test="members"]')
    expect(members.locator('tr[data-node="t:extract"] .state')).to_have_text("SUCCESS")
    expect(members.locator('tr[data-node="t:load"] .state')).to_have_text("RUNNING")
    expect(page.locator('[data-test="gantt"] .bar')).to_have_count(2)
    expect(page.locator('[data-test="occurrence"] .state')).to_have_text("RUNNING")

    # The graph: dagre's layout as SVG, edges labelled S and F, live colours.
    page.get_by_role("link", name="Dependency graph").click()
    graph = page.locator('[data-test="graph"]')
    expect(graph).to_have_attribute("data-ready", "true")
    expect(graph.locator(".node")).to_have_count(3)
    edge = graph.locator('.edge[data-from="t:extract"][data-to="t:load"]')
    expect(edge.locator(".edge-label")).to_have_text("S")
    expect(graph.locator('.edge[data-from="t:load"] .edge-label')).to_have_text("F")
    load = graph.locator('a.node[data-node="t:load"]')
    expect(load).to_have_class(re.compile(r"state-fill-RUNNING"))
    expect(load.locator(".node-state")).to_have_text("RUNNING")
    gate.touch()  # load fails; on_fail runs on F:load; the graph says so without a reload
    expect(load).to_have_class(re.compile(r"state-fill-FAILED"))
    expect(load).to_have_class(re.compile(r"failed-upstream"))
    expect(graph.locator('a.node[data-node="t:on_fail"] .node-state')).to_have_text("SUCCESS")
    expect(graph.locator('.edge[data-from="t:load"]')).to_have_class(re.compile("edge-failed"))
    shot(page, "group-graph")
    page.go_back()
    expect(page.locator('[data-test="occurrence"] .state')).to_have_text("FAILED")
    expect(page.locator('[data-test="gantt"] .bar')).to_have_count(3)
    shot(page, "group")
    assert page.errors == []  # type: ignore[attr-defined]

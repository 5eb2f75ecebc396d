"""Every dashboard page checked by axe-core (WCAG 2.0/2.1 A and AA) in the light and the dark
theme against a real scheduler and agent holding a representative installation, with light and
dark screenshots of each page; no serious or critical violation on any of them.

axe is injected with ``page.evaluate(source)``: Playwright evaluates through the DevTools
protocol, which the page's Content-Security-Policy (no inline script) does not govern, so the
pages are checked as they are served, CSP included (a ``bypass_csp`` context would also lift
the CSP's effect on what is drawn). ``EASYTASK_DOCS_SCREENSHOTS=1`` (scripts/screenshots) also
copies each page's two screenshots into docs/screenshots/ for the README.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import ARTIFACTS, log_in, password_of, shot
from tests.e2e.harness import Cluster, task_json, wait_until

pytestmark = pytest.mark.e2e

SUPERUSER = "easytask_superuser"
ROOT = Path(__file__).resolve().parents[2]
AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
DOCS = ROOT / "docs" / "screenshots"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
BLOCKING = {"serious", "critical"}
# Output with markup and ANSI colours: shown as text, coloured by class.
COLOURS = (
    "printf '<script>alert(1)</script><b>not bold</b>\\n'; "
    "printf '\\033[32mok\\033[0m step 1\\n\\033[31merror\\033[0m step 2\\n"
    "\\033[1;33mwarning\\033[0m step 3\\n'; echo 'to stderr' >&2"
)
# An ad-hoc command on both agents: markup in its output, a2's run failing.
ADHOC = (
    "printf '<script>alert(1)</script>\\n'; echo \"disk of $AGENT_TAG: fine\"; "
    "[ \"$AGENT_TAG\" = a1 ] || { echo 'no such mount: /data' >&2; exit 2; }"
)
RUN_AXE = """async (tags) => {
  const result = await axe.run(document, {runOnly: {type: "tag", values: tags},
                                          resultTypes: ["violations"]});
  return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => ({target: n.target.join(" "), summary: n.failureSummary}))}));
}"""


def check(page: Page, name: str, found: dict[str, list[dict[str, Any]]], doc: bool = True) -> None:
    """axe in both themes, then the screenshots (into docs/ too when asked and ``doc``);
    violations are collected under ``name``."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text())
    html = page.locator("html")
    for theme in ("light", "dark"):
        html.evaluate(f"el => el.dataset.theme = '{theme}'")
        for v in page.evaluate(RUN_AXE, TAGS):
            found.setdefault(f"{name} ({theme})", []).append(v)
    shot(page, name)
    if doc and os.environ.get("EASYTASK_DOCS_SCREENSHOTS"):
        DOCS.mkdir(parents=True, exist_ok=True)
        for theme in ("light", "dark"):
            shutil.copyfile(ARTIFACTS / f"{name}-{theme}.png", DOCS / f"{name}-{theme}.png")


def report(found: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Print every violation with its nodes; the blocking ones, one line each."""
    blocking = []
    for where, violations in found.items():
        for v in violations:
            print(f"[{v['impact']}] {where}: {v['id']} ({v['help']})")
            for node in v["nodes"]:
                print(f"    {node['target']}\n      {node['summary']}".replace("\n", "\n      "))
            if v["impact"] in BLOCKING:
                blocking.append(f"{where}: {v['id']} on {len(v['nodes'])} node(s)")
    return blocking


def create_task(cluster: Cluster, tmp_path: Path, doc: dict[str, Any]) -> None:
    path = tmp_path / f"{doc['name']}.json"
    path.write_text(json.dumps(doc))
    cluster.ctl("tasks", "create", "-f", str(path))


def force(cluster: Cluster, tid: int) -> str:
    before = {r.run_id for r in cluster.runs(tid)}
    cluster.ctl("events", "force-run", str(tid))
    new = wait_until("the forced run", lambda: [r.run_id for r in cluster.runs(tid)
                                                if r.run_id not in before])  # fmt: skip
    return str(new[0])


def adhoc(cluster: Cluster, tmp_path: Path) -> str:
    """An ADHOC event run on both agents to its end; its id."""
    out, err = (str(tmp_path / f"adhoc-${{E:AGENT_TAG}}.{s}") for s in ("out", "err"))
    cluster.ctl("events", "adhoc", "-n", "disk_check", "-c", ADHOC, "--agents", "a1,a2",
                "--wait", "--stdout", out, "--stderr", err, check=False)  # fmt: skip
    listed = json.loads(cluster.ctl("events", "list", "--event-name", "ADHOC", "-o", "json").stdout)
    return str(max(e["id"] for e in listed))


def install(cluster: Cluster, tmp_path: Path) -> dict[str, str]:
    """Tasks (one printing markup and colours, one failing, one still running), a group of
    three with dependencies and a forced occurrence, a calendar with a holiday, a second user,
    an event, an ad-hoc command on two agents; the ids the pages need."""
    gate = tmp_path / "gate"
    create_task(cluster, tmp_path, task_json(1001, "colours", "q1", COLOURS, tmp_path,
                                              description="Markup and ANSI colours"))  # fmt: skip
    create_task(cluster, tmp_path, task_json(1002, "fails", "q1", "echo no; exit 3", tmp_path))
    # Bounded, so that a failed test leaves no process behind (the agent leaves runs running).
    waits = f"echo waiting; for i in $(seq 900); do [ -e {gate} ] && break; sleep 0.1; done"
    create_task(cluster, tmp_path, task_json(1003, "waits", "q1", waits, tmp_path))
    cluster.ctl("groups", "create", "-n", "etl", "-z", "UTC", "--day-of-week", "1111111",
                "--trigger-times", "02:00", "-d", "Nightly extract and load")  # fmt: skip
    for tid, name, cmd, dep in ((5001, "extract", "echo extract", ""),
                                (5002, "load", "echo load; exit 1", "S:extract"),
                                (5003, "on_fail", "echo cleanup", "F:load")):  # fmt: skip
        create_task(cluster, tmp_path, {
            "tid": tid, "name": name, "cmd": cmd, "run_on_host": "q1", "task_group": "etl",
            "stdout": str(tmp_path / f"{name}.out"), "stderr": str(tmp_path / f"{name}.err"),
            "dependency": dep})  # fmt: skip
    cluster.ctl("calendars", "create", "-d", "Factory shut", "Plant closures")
    cluster.ctl("calendars", "add-holiday", "--date", "2026-12-24", "--to", "2026-12-26",
                "--reason", "Winter break", "Plant closures")  # fmt: skip
    doc = {"username": "olga", "password": "olga-operates-1", "role": "operator"}
    cluster.ctl("admin", "users", "create", "-f", "-", stdin=json.dumps(doc))
    cluster.ctl("events", "freeze", "1002", "--trigger-time", "03:17")

    finished = force(cluster, 1001)
    assert cluster.wait_final(finished).state == "SUCCESS"
    for _ in range(2):  # a few points on the task's duration chart
        assert cluster.wait_final(force(cluster, 1001)).state == "SUCCESS"
    assert cluster.wait_final(force(cluster, 1002)).state == "FAILED"
    running = force(cluster, 1003)
    cluster.wait_state(running, {"RUNNING"})
    cluster.ctl("events", "force-run", "--group", "1")
    wait_until("the group's members to end", lambda: all(
        cluster.runs(t) and cluster.runs(t)[-1].state in {"SUCCESS", "FAILED"}
        for t in (5001, 5002, 5003)))  # fmt: skip
    return {"finished": finished, "running": running, "gate": str(gate),
            "adhoc": adhoc(cluster, tmp_path)}  # fmt: skip


def test_every_page_has_no_serious_violation_in_either_theme(
    cluster: Cluster, browser: Browser, tmp_path: Path
) -> None:
    cluster.start_scheduler()
    for name, queue in (("a1", "q1"), ("a2", "q2")):
        cluster.env["AGENT_TAG"] = name  # what the ad-hoc command prints and writes to
        cluster.start_agent(name, queue)
    ids = install(cluster, tmp_path)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    found: dict[str, list[dict[str, Any]]] = {}
    base = cluster.dashboard

    page.goto(base + "/login")
    check(page, "login", found)
    log_in(page, cluster, SUPERUSER, password_of(cluster))

    def visit(path: str, name: str, ready: str = "h1", text: str = "", doc: bool = True) -> None:
        page.goto(base + path)
        expect(page.locator(ready).first).to_contain_text(text)
        check(page, name, found, doc)

    visit("/", "board", "#live-status", "live")
    visit("/tasks", "tasks")
    # The new-task form with a field error shown next to its field.
    page.goto(base + "/tasks/new")
    page.get_by_label("Name", exact=True).fill("nightly")
    page.get_by_label("Command", exact=True).fill("echo done")
    page.get_by_label("Queue (run on host)", exact=True).fill("q1")
    page.get_by_label("Stdout file", exact=True).fill("/var/log/nightly.out")
    page.get_by_label("Stderr file", exact=True).fill("/var/log/nightly.err")
    page.get_by_label("Timezone", exact=True).fill("UTC")
    page.get_by_label("Days of week", exact=True).fill("1111100")
    page.get_by_label("Trigger times", exact=True).fill("25:99")
    page.get_by_role("button", name="Save").click()
    expect(page.locator('[data-error="trigger_times"]')).to_be_visible()
    check(page, "task-form-errors", found)
    visit("/tasks/1001", "task", '[data-test="duration-summary"]', "Median")
    visit("/tasks/1001/edit", "task-edit", "h1", "Edit task 1001")
    visit("/groups", "groups")
    visit("/groups/new", "group-new", "h1", "New group")
    visit("/groups/1", "group", '[data-test="occurrence"] .state', "FAILED")
    page.goto(base + "/groups/1/graph")
    expect(page.locator('[data-test="graph"]')).to_have_attribute("data-ready", "true")
    check(page, "group-graph", found)
    visit("/groups/1/edit", "group-edit", "h1", "Edit group")
    visit("/runs", "runs")
    run = ids["finished"].replace(":", "%3A")
    visit(f"/runs/{run}", "run", '[data-test="run-state"]', "SUCCESS")
    visit(f"/runs/{run}/log", "run-log", 'pre[data-stream="stdout"]', "step 3")
    assert page.locator('pre[data-stream="stdout"] script').count() == 0
    running = ids["running"].replace(":", "%3A")
    # The same two pages while the run is going (following, Terminate): checked, not for docs/.
    stdout = 'pre[data-stream="stdout"]'
    visit(f"/runs/{running}/log", "run-log-running", stdout, "waiting", doc=False)
    visit(f"/runs/{running}", "run-running", '[data-test="run-state"]', "RUNNING", doc=False)
    visit("/upcoming", "upcoming")
    page.goto(base + "/events")
    page.locator('details[data-event="ADHOC"] > summary').click()  # the ad-hoc form, open
    page.get_by_label("Name", exact=True).fill("disk_check")
    page.get_by_label("Command", exact=True).fill("df -h /")
    page.get_by_label("Agent names", exact=True).fill("a1,a2")
    check(page, "events", found)
    row = page.locator('[data-test="events"] tbody tr', has_text="FREEZE_TASK")
    href = row.locator("a").first.get_attribute("href") or ""
    assert re.fullmatch(r"/events/\d+", href), href
    visit(href, "event", '[data-test="event-args"]', "{")
    ended = "Every execution has ended."
    visit(f"/events/{ids['adhoc']}", "event-adhoc", '[data-test="adhoc-progress"]', ended)
    assert page.locator('[data-test="adhoc-results"] script').count() == 0
    visit("/agents", "agents", '[data-test="agent-counts"]', "2 online")
    visit("/agents/a1", "agent", '[data-test="agent-changes"]', "online")
    visit("/calendars", "calendars")
    visit("/calendars/Plant%20closures", "calendar", '[data-test="holidays"]', "Winter break")
    visit("/users", "users")
    visit("/users/olga", "user", '[data-test="role"]', "operator")
    page.goto(base + "/tasks/999999")
    expect(page.get_by_role("alert")).to_be_visible()
    check(page, "error-404", found)
    Path(ids["gate"]).touch()

    blocking = report(found)
    sys.stdout.flush()
    assert blocking == [], "serious or critical axe violations:\n" + "\n".join(blocking)
    assert errors == []
    context.close()

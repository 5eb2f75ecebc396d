"""Times in the viewer's choice of zone (UTC, the browser's, the task's), kept across pages
and applied to live updates; /upcoming as a timeline with one lane per task or group."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import log_in, password_of, shot
from tests.e2e.harness import Cluster, task_json

pytestmark = pytest.mark.e2e


def shown(utc_text: str, zone: str) -> str:
    at = datetime.fromisoformat(utc_text + "+00:00")
    return at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")


def test_times_follow_the_chosen_zone_and_upcoming_is_a_timeline(
    cluster: Cluster, browser: Browser, tmp_path: Path
) -> None:
    cluster.start_scheduler()
    cluster.start_agent("a1", "q1")
    for tid, name, zone, times in ((1001, "tokyo", "Asia/Tokyo", "03:17,09:00,15:00,21:00"),
                                   (1002, "paris", "Europe/Paris", "06:30,18:30")):  # fmt: skip
        doc = task_json(tid, name, "q1", "echo hi", tmp_path, timezone=zone, trigger_times=times)
        (tmp_path / f"{name}.json").write_text(json.dumps(doc))
        cluster.ctl("tasks", "create", "-f", str(tmp_path / f"{name}.json"))
    cluster.ctl("groups", "create", "-n", "etl", "-z", "America/Chicago", "--day-of-week",
                "1111111", "--trigger-times", "01:00,13:00,19:00")  # fmt: skip
    context = browser.new_context(viewport={"width": 1280, "height": 900},
                                  timezone_id="America/New_York")  # fmt: skip
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    log_in(page, cluster, "easytask_superuser", password_of(cluster))

    page.goto(cluster.dashboard + "/tasks/1001")
    page.get_by_role("button", name="Force run").click()
    expect(page.locator('[data-test="run-state"]')).to_contain_text("SUCCESS")
    scheduled = page.locator("dd time").first
    utc_text = scheduled.get_attribute("datetime") or ""
    utc_text = utc_text.removesuffix("Z").replace("T", " ")
    expect(scheduled).to_have_text(utc_text)  # UTC by default, as rendered

    select = page.get_by_label("Show times in")
    select.select_option("task")
    expect(scheduled).to_have_text(shown(utc_text, "Asia/Tokyo"))
    expect(scheduled).to_have_attribute("title", "Asia/Tokyo")
    select.select_option("browser")
    expect(scheduled).to_have_text(shown(utc_text, "America/New_York"))

    # The choice holds on the next page, and for rows that arrive live.
    page.goto(cluster.dashboard + "/runs")
    expect(page.get_by_label("Show times in")).to_have_value("browser")
    cell = page.locator('[data-test="runs"] tbody tr').first.locator("time")
    iso = (cell.get_attribute("datetime") or "").removesuffix("Z").replace("T", " ")
    expect(cell).to_have_text(shown(iso, "America/New_York"))
    cluster.ctl("events", "force-run", "1002")
    rows = page.locator('[data-test="runs"] tbody tr[data-run-id^="default:1002:"]')
    expect(rows).to_have_count(1)
    live = rows.first.locator("time")
    live_iso = (live.get_attribute("datetime") or "").removesuffix("Z").replace("T", " ")
    expect(live).to_have_text(shown(live_iso, "America/New_York"))

    page.get_by_role("link", name="Upcoming", exact=True).click()
    chart = page.locator('[data-test="timeline"]')
    expect(chart.locator(".lane")).to_have_count(3)
    expect(chart.locator('.lane[data-key="t1001"] .mark')).to_have_count(4)
    expect(chart.locator('.lane[data-key="t1002"] .mark')).to_have_count(2)
    expect(chart.locator('.lane[data-key="g1"] .mark')).to_have_count(3)
    expect(chart.locator('.lane[data-key="g1"] text')).to_have_text("group etl")
    table = page.locator('[data-test="upcoming"]')
    expect(table.get_by_role("link", name="etl")).to_have_count(3)
    page.get_by_label("GID", exact=True).fill("1")
    page.get_by_role("button", name="Show").click()
    expect(chart.locator(".lane")).to_have_count(1)
    expect(table.locator("tbody tr")).to_have_count(3)
    page.get_by_label("GID", exact=True).fill("")
    page.get_by_role("button", name="Show").click()
    expect(chart.locator(".tick-label").first).to_have_text("now")
    first = page.locator('[data-test="upcoming"] tbody tr').first.locator("time")
    first_iso = (first.get_attribute("datetime") or "").removesuffix("Z").replace("T", " ")
    expect(first).to_have_text(shown(first_iso, "America/New_York"))
    shot(page, "upcoming-timeline")
    assert errors == []
    context.close()

"""The events, calendars and users pages in a real browser against a real scheduler: an event
published from its form lands in the history, a field error is shown next to its field, a
holiday range is added to a new calendar, and a user created on /users logs in."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import log_in, new_page, password_of, shot
from tests.e2e.harness import Cluster, task_json

pytestmark = pytest.mark.e2e

SUPERUSER = "easytask_superuser"


def test_events_and_holidays(cluster: Cluster, browser: Browser, tmp_path: Path) -> None:
    cluster.start_scheduler()
    (tmp_path / "t.json").write_text(json.dumps(task_json(1001, "nightly", "q1", "true", tmp_path)))
    cluster.ctl("tasks", "create", "-f", str(tmp_path / "t.json"))
    page = new_page(browser)
    log_in(page, cluster, SUPERUSER, password_of(cluster))

    page.get_by_role("link", name="Events", exact=True).click()
    disable = page.locator('details[data-event="DISABLE_TASK"]')
    disable.locator("summary").click()
    disable.get_by_label("Task (TID or name)").fill("nightly")
    disable.get_by_role("button", name="Disable").click()
    expect(page.get_by_role("status").first).to_contain_text("Task 1001 disabled on scheduler.")
    first = page.locator('[data-test="events"] tbody tr').first
    expect(first).to_contain_text("DISABLE_TASK")
    expect(first).to_contain_text("SUCCESS")
    expect(first).to_contain_text(SUPERUSER)
    listed = json.loads(cluster.ctl("tasks", "get", "1001", "-o", "json").stdout)
    assert listed["active"] is False

    # A bad value is named next to its field; the form stays open with what was typed.
    freeze = page.locator('details[data-event="FREEZE_TASK"]')
    freeze.locator("summary").click()
    freeze.get_by_label("Task (TID or name)").fill("1001")
    freeze.get_by_label("Trigger time").fill("25:99")
    freeze.get_by_role("button", name="Freeze").click()
    freeze = page.locator('details[data-event="FREEZE_TASK"]')
    expect(freeze.locator('[data-error="trigger_time"]')).to_contain_text("HH:MM")
    expect(freeze.get_by_label("Task (TID or name)")).to_have_value("1001")
    shot(page, "events-form-error")
    freeze.get_by_label("Trigger time").fill("23:59")
    freeze.get_by_role("button", name="Freeze").click()
    expect(page.get_by_role("status").first).to_contain_text("Task 1001 frozen for date")
    page.get_by_label("Status", exact=True).select_option("SUCCESS")
    page.get_by_label("Target", exact=False).fill("nightly")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"status=SUCCESS"))
    expect(page.locator('[data-test="events"] tbody tr')).to_have_count(2)
    shot(page, "events")
    page.locator('[data-test="events"] tbody tr').first.get_by_role("link").first.click()
    expect(page.locator('[data-test="event-args"]')).to_contain_text('"trigger_time": "23:59"')
    shot(page, "event")

    page.get_by_role("link", name="Calendars", exact=True).click()
    page.get_by_label("Name", exact=True).fill("Plant closures")
    page.get_by_label("Description", exact=True).fill("Factory shut")
    page.get_by_role("button", name="Create calendar").click()
    expect(page.get_by_role("heading", name=re.compile("Plant closures"))).to_be_visible()
    page.get_by_label("Date", exact=True).fill("2026-12-24")
    page.get_by_label("To date", exact=True).fill("2026-12-26")
    page.get_by_label("Reason", exact=True).fill("Winter break")
    page.get_by_role("button", name="Add holiday").click()
    expect(page.get_by_role("status").first).to_contain_text(
        "Holiday added to Plant closures: 2026-12-24..2026-12-26 (Winter break)"
    )
    row = page.locator('[data-test="holidays"] tr[data-entry]')
    expect(row).to_contain_text("Winter break")
    expect(row.get_by_role("button", name="Delete holiday 1")).to_be_visible()
    shot(page, "calendar")
    listed = json.loads(cluster.ctl("calendars", "get", "Plant closures", "-o", "json").stdout)
    assert [(h["start_date"], h["end_date"]) for h in listed["holidays"]] == [
        ("2026-12-24", "2026-12-26")
    ]
    page.get_by_role("link", name="All calendars").click()
    expect(page.locator('[data-calendar="Plant closures"]')).to_contain_text("user")
    shot(page, "calendars")
    assert page.errors == []  # type: ignore[attr-defined]


def test_a_user_created_on_the_users_page_logs_in(cluster: Cluster, browser: Browser) -> None:
    cluster.start_scheduler()
    page = new_page(browser)
    log_in(page, cluster, SUPERUSER, password_of(cluster))
    page.get_by_role("link", name="Users", exact=True).click()
    page.get_by_label("Username", exact=True).fill("olga")
    page.get_by_label("Role", exact=True).select_option("operator")
    page.get_by_label("Password", exact=True).fill("olga-operates-1")
    page.get_by_role("button", name="Create user").click()
    expect(page.get_by_role("status").first).to_contain_text("User created: olga (operator)")
    expect(page.locator('[data-test="role"]')).to_have_text("operator")
    expect(page.get_by_label("New password")).to_have_value("")
    shot(page, "user")
    page.get_by_role("link", name="All users").click()
    expect(page.locator('[data-user="olga"]')).to_contain_text("active")
    shot(page, "users")

    olga = new_page(browser)
    log_in(olga, cluster, "olga", "olga-operates-1")
    expect(olga.locator('[data-test="whoami"]')).to_contain_text("olga (operator)")
    expect(olga.get_by_role("link", name="Users", exact=True)).to_have_count(0)
    olga.get_by_role("link", name="Events", exact=True).click()
    expect(olga.locator('details[data-event="ENABLE_DEBUG"]')).to_have_count(1)
    olga.goto(cluster.dashboard + "/users")
    expect(olga.get_by_role("alert")).to_contain_text("role operator may not manage users")
    assert page.errors == [] and olga.errors == []  # type: ignore[attr-defined]

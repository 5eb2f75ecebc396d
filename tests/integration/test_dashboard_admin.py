"""The events, calendars and users pages over real HTTP against a real scheduler with a fake
clock: events published through their forms and found in the filtered history, calendar entries
added and removed, users created, changed and deleted; a viewer sees no form and every POST of
theirs is refused by the application (403); hostile input is named, never a 500."""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from easytask.core.authz import Caller, Role
from easytask.core.errors import CalendarNotFoundError, UserNotFoundError
from easytask.core.records import EventFilter
from easytask.scheduler.app import SchedulerApp
from easytask.scheduler.service import SchedulerService
from easytask.store.ports import Store
from tests.contract.conftest import store  # noqa: F401  (both store implementations)
from tests.integration.conftest import START, running_service
from tests.support.fakeclock import FakeClock

SUPERUSER = "easytask_superuser"
ROOT = Caller(SUPERUSER, Role.SUPERADMIN)
HUGE = "x" * 10_000
LONG = "y" * 4_000  # in a URL: aiohttp refuses request lines over 8 KiB itself (400)


class Browser:
    """One logged-in user's cookies, and the requests a page of theirs would make."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def login(self, username: str, password: str) -> int:
        form = {"username": username, "password": password, "next": "/"}
        answer = await self.http.post(self.base + "/login", data=form, allow_redirects=False)
        return answer.status

    def csrf(self) -> str:
        return next((c.value for c in self.http.cookie_jar if c.key == "et_csrf"), "")

    async def post(self, path: str, **form: str) -> aiohttp.ClientResponse:
        data = {**form, "csrf": self.csrf()}
        return await self.http.post(self.base + path, data=data, allow_redirects=False)

    async def get(self, path: str) -> tuple[int, str]:
        answer = await self.http.get(self.base + path, allow_redirects=False)
        return answer.status, await answer.text()

    async def follow(self, answer: aiohttp.ClientResponse) -> str:
        """The page a 303 leads to (with its one-shot notice)."""
        assert answer.status == 303, (answer.status, await answer.text())
        status, text = await self.get(answer.headers["Location"])
        assert status == 200, text
        return text


class Dash:
    def __init__(self, service: SchedulerService, clock: FakeClock, home: Path) -> None:
        self.service, self.clock = service, clock
        self.base = f"http://127.0.0.1:{service.http_port}"
        self.password = json.loads((home / "credentials.json").read_text())["password"]
        self.browsers: list[Browser] = []

    @property
    def app(self) -> SchedulerApp:
        assert self.service.app is not None
        return self.service.app

    async def browser(self, username: str = SUPERUSER, password: str = "") -> Browser:
        b = Browser(self.base)
        self.browsers.append(b)
        assert await b.login(username, password or self.password) == 303
        return b

    async def events(self) -> int:
        return (await self.app.find_events(EventFilter(), "", 1, 1))[1]


@pytest.fixture
async def dash(tmp_path: Path) -> AsyncIterator[Dash]:
    clock = FakeClock(START)
    home = tmp_path / "home"
    async with running_service(home, clock, http_listen="127.0.0.1:0") as service:
        d = Dash(service, clock, home)
        try:
            yield d
        finally:
            for b in d.browsers:
                await b.http.close()


async def create_task(app: SchedulerApp, tid: int, name: str) -> None:
    doc = {"tid": tid, "name": name, "cmd": "true", "run_on_host": "q1", "stdout": "/tmp/o",
           "stderr": "/tmp/e", "timezone": "UTC", "day_of_week": "1111111",
           "trigger_times": "12:00"}  # fmt: skip
    await app.create_task(doc, ROOT)


def notice(page: str) -> str:
    found = re.search(r'<p class="notice (ok|error)" role="status">(.*?)</p>', page, re.S)
    assert found, "no notice on the page"
    return f"{found[1]}: {html.unescape(found[2])}"


def event_rows(page: str) -> list[str]:
    """The history's rows as text: ``id event target status ... published_by``."""
    rows = re.findall(r'<tr data-event-id="\d+">(.*?)</tr>', page, re.S)
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", r)).split()) for r in rows]


def field_error(page: str, field: str) -> str:
    found = re.search(rf'data-error="{field}">(.*?)</p>', page, re.S)
    assert found, f"no error shown for {field}"
    return html.unescape(found[1])


# ----- events -----


async def test_events_published_through_the_forms_appear_in_the_filtered_history(
    dash: Dash,
) -> None:
    await create_task(dash.app, 1001, "nightly")
    root = await dash.browser()
    status, page = await root.get("/events")
    assert status == 200
    for event in ("FORCE_RUN_TASK", "MODIFY_TASK_STATUS", "REFRESH_CALENDAR", "ENABLE_DEBUG",
                  "REFRESH_TASK_GROUP_DEFINITION", "TERMINATE_TASK", "UNFREEZE_TASK"):  # fmt: skip
        assert f'data-event="{event}"' in page

    page = await root.follow(await root.post("/events", event="ENABLE_DEBUG"))
    assert notice(page) == "ok: Enabled scheduler in DEBUG mode (event 1)"
    page = await root.follow(await root.post("/events", event="DISABLE_DEBUG"))
    answer = await root.post("/events", event="FORCE_RUN_TASK", task="1001", run_date="2026-06-01")
    page = await root.follow(answer)
    assert notice(page).startswith(
        "ok: Force run triggered for task 1001 (nightly)\nRun date: 2026"
    )
    answer = await root.post("/events", event="FREEZE_TASK", task="nightly", run_date="20260602",
                             trigger_time="9:05")  # fmt: skip
    assert notice(await root.follow(answer)) == "ok: Task 1001 frozen for date 20260602. (event 4)"
    answer = await root.post("/events", event="UNFREEZE_TASK", task="1001", run_date="2026-06-09")
    assert notice(await root.follow(answer)) == (
        "error: no freeze for task 1001 on 20260609 (event 5)"
    )
    answer = await root.post("/events", event="DISABLE_TASK", group="4242")
    assert notice(await root.follow(answer)).startswith("error: group 4242 not found")
    await root.post("/events", event="DISABLE_TASK", group="42")  # refused too: event 7
    await dash.clock.advance(86_400)
    answer = await root.post("/events", event="REFRESH_GRAPH")
    assert notice(await root.follow(answer)) == "ok: Dependency graph refreshed. (event 8)"

    _, page = await root.get("/events")
    rows = event_rows(page)
    assert len(rows) == 8 and rows[0].startswith("8 2026-06-02")
    assert all(f" UI {SUPERUSER} " in r for r in rows)
    assert "FREEZE_TASK 1001 SUCCESS" in rows[4]
    filtered = {
        "status=FAILURE": ["7", "6", "5"],
        "event=FORCE_RUN_TASK": ["3"],
        "target=nightly": ["5", "4", "3"],
        "target=1001": ["5", "4", "3"],
        "target=group+4242": ["6"],
        "target=group+42": ["7"],  # exactly: not group 4242
        "target=Group++42": ["7"],
        "target=groupie": [],  # a task name, not a group
        "from=2026-06-02": ["8"],
        "to=2026-06-01": ["7", "6", "5", "4", "3", "2", "1"],
        "from=2026-06-01&to=2026-06-01&status=SUCCESS&origin=UI": ["4", "3", "2", "1"],
        f"published_by={SUPERUSER}&event=REFRESH_GRAPH": ["8"],
        "published_by=vera": [],
        "origin=CLI": [],
    }
    for query, ids in filtered.items():
        status, page = await root.get("/events?" + query)
        assert status == 200 and "data-error" not in page, query
        assert [r.split()[0] for r in event_rows(page)] == ids, query

    # One event: its arguments as JSON, the run it made linked.
    status, page = await root.get("/events/3")
    assert status == 200
    shown = re.search(r'data-test="event-args">(.*?)</pre>', page, re.S)
    assert shown is not None
    args = json.loads(html.unescape(shown[1]))
    assert args["run_date"] == "20260601" and args["run_id"].startswith("default:1001:")
    assert f'href="/runs/{args["run_id"]}"' in page.replace("%3A", ":")
    assert (await root.get("/events/99"))[0] == 404
    assert (await root.get("/events/abc"))[0] == 404


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"event": "FREEZE_TASK", "task": "1001", "run_date": "2026-13-45"}, "run_date",
         "Run date must be a date YYYY-MM-DD"),
        ({"event": "FREEZE_TASK", "task": "1001", "run_date": "tomorrow"}, "run_date",
         "Run date must be a date YYYY-MM-DD"),
        ({"event": "FREEZE_TASK", "task": HUGE}, "task",
         "Task (TID or name) must be at most 128 characters (got 10000)"),
        ({"event": "REFRESH_TASK_DEFINITION", "task": "night\x01ly"}, "task",
         "Task (TID or name) must not contain control character U+0001 (at 5)"),
        ({"event": "FORCE_RUN_TASK", "task": "99999999999"}, "task", "an id is a number"),
        ({"event": "FORCE_RUN_TASK"}, "task", "a task or a group is required"),
        ({"event": "FORCE_RUN_TASK", "task": "1001", "group": "1"}, "group", "not both"),
        ({"event": "TERMINATE_TASK", "task": "1001", "trigger_time": "25:00"}, "trigger_time",
         "Trigger time must be HH:MM"),
        ({"event": "MODIFY_TASK_STATUS", "task": "1001", "status": "<b>DONE</b>"}, "status",
         "New status must be one of SUCCESS"),
        ({"event": "TERMINATE_TASK", "task": "1001", "run_id": HUGE}, "run_id", "at most 200"),
    ],
)  # fmt: skip
async def test_a_bad_event_form_names_its_field_and_publishes_nothing(
    dash: Dash, form: dict[str, str], field: str, message: str
) -> None:
    await create_task(dash.app, 1001, "nightly")
    root = await dash.browser()
    answer = await root.post("/events", **form)
    page = await answer.text()
    assert answer.status == 422, page
    assert message in field_error(page, field)
    assert f'data-event="{form["event"]}" open' in page  # the form with the error is open
    assert HUGE not in page  # a huge value is named, not echoed into the error
    assert await dash.events() == 0


async def test_unknown_events_and_hostile_history_filters_get_a_named_answer(dash: Dash) -> None:
    root = await dash.browser()
    answer = await root.post("/events", event="REBOOT_EVERYTHING")
    page = html.unescape(await answer.text())
    assert answer.status == 422 and "unknown event 'REBOOT_EVERYTHING'" in page
    answer = await root.post("/events", event="ADHOC")  # offered now: its fields are named
    assert answer.status == 422 and "name is required" in field_error(await answer.text(), "name")
    answer = await root.post("/events", event=HUGE)
    assert answer.status == 422 and HUGE not in await answer.text()
    query = ("from=yesterday&to=2026-02-30&published_by=%01&target=" + LONG
             + "&event=%3Cb%3E&status=x&origin=y&page=%C2%B2")  # fmt: skip
    status, page = await root.get("/events?" + query)
    assert status == 200
    for key, text in (("from", "From date must be a date"), ("to", "To date must be a date"),
                      ("published_by", "control character U+0001"), ("target", "at most 128"),
                      ("event", "Event must be one of"), ("status", "Status must be one of"),
                      ("origin", "Origin must be one of CLI, UI, API")):  # fmt: skip
        assert text in field_error(page, key), key
    assert "<b>" not in page


async def test_event_store_filters_by_publisher_and_date_range(store: Store) -> None:  # noqa: F811
    t0 = START
    for i, who in enumerate(("alice", "bob", "alice")):
        at = t0 + timedelta(days=i)
        await store.add_event("REFRESH_GRAPH", "", {}, "SUCCESS", "ok", "UI", who, at, at, "x")
    alice, total = await store.find_events(EventFilter(published_by="alice"), 0, 10)
    assert [e.id for e in alice] == [3, 1] and total == 2
    assert (await store.find_events(EventFilter(published_by="ALICE"), 0, 10))[1] == 0
    day_two = EventFilter(since=t0 + timedelta(hours=12), until=t0 + timedelta(days=1, hours=12))
    assert [e.id for e in (await store.find_events(day_two, 0, 10))[0]] == [2]
    before = EventFilter(until=t0 + timedelta(days=1), published_by="alice")
    assert [e.id for e in (await store.find_events(before, 0, 10))[0]] == [1]


# ----- calendars -----


async def test_calendar_create_entries_and_delete(dash: Dash) -> None:
    root = await dash.browser()
    answer = await root.post("/calendars", name="Plant closures", description="Factory shut")
    assert answer.headers["Location"] == "/calendars/Plant%20closures"
    page = await root.follow(answer)
    assert notice(page) == "ok: Calendar created: Plant closures"
    _, listing = await root.get("/calendars")
    assert 'data-calendar="Plant closures"' in listing
    href = "/calendars/Plant%20closures"

    answer = await root.post(href + "/holidays", start_date="2026-12-24", end_date="2026-12-26",
                             reason="Winter break")  # fmt: skip
    assert notice(await root.follow(answer)) == (
        "ok: Holiday added to Plant closures: 2026-12-24..2026-12-26 (Winter break) [id 1]"
    )
    answer = await root.post(href + "/holidays", start_date="2027-01-01", reason="New year")
    assert answer.headers["Location"] == href + "?year=2027"
    detail = dash.app.get_calendar("Plant closures", 0)
    assert [(h.span.id, str(h.span.start_date), str(h.span.end_date)) for h in detail.holidays] == [
        (1, "2026-12-24", "2026-12-26"), (2, "2027-01-01", "2027-01-01")]  # fmt: skip
    _, page = await root.get(href + "?year=2026")
    assert 'data-entry="1"' in page and 'data-entry="2"' not in page and "Winter break" in page
    _, page = await root.get(href + "?year=2027")
    assert 'data-entry="2"' in page and 'data-entry="1"' not in page

    # Bad input is named by its field; nothing is added.
    for form, field, message in (
        ({"start_date": "2026-02-30", "reason": "r"}, "start_date", "Date must be a date"),
        ({"start_date": "12/24/2026", "reason": "r"}, "start_date", "Date must be a date"),
        ({"start_date": "2026-05-02", "end_date": "2026-05-01", "reason": "r"}, "end_date",
         "end_date must not be before start_date"),
        ({"start_date": "2026-05-02", "reason": HUGE}, "reason", "Reason must be at most 256"),
        ({"start_date": "2026-05-02", "reason": "bell\x07"}, "reason", "control character U+0007"),
        ({"start_date": "2026-05-02", "reason": ""}, "reason", "reason is required"),
    ):  # fmt: skip
        answer = await root.post(href + "/holidays", **form)
        page = await answer.text()
        assert answer.status == 422 and message in field_error(page, field), (form, page[-2000:])
        assert HUGE not in page
    assert len(dash.app.get_calendar("Plant closures", 0).holidays) == 2

    answer = await root.post(href + "/holidays/1/delete")
    assert notice(await root.follow(answer)) == "ok: Holiday 1 removed from Plant closures"
    assert [h.span.id for h in dash.app.get_calendar("Plant closures", 0).holidays] == [2]
    for path in (href + "/holidays/1/delete", href + "/holidays/x/delete",
                 "/calendars/nope/holidays/2/delete"):  # fmt: skip
        assert (await root.post(path)).status == 404, path

    # A built-in calendar takes extra entries but cannot be deleted.
    status, page = await root.get("/calendars/US_HOLIDAYS?year=2026")
    assert status == 200 and "2026-07-03" in page and "generated" in page
    answer = await root.post("/calendars/US_HOLIDAYS/delete")
    assert notice(await root.follow(answer)) == (
        "error: built-in calendar US_HOLIDAYS cannot be deleted"
    )
    answer = await root.post(href + "/delete")
    assert notice(await root.follow(answer)) == "ok: Calendar deleted: Plant closures"
    with pytest.raises(CalendarNotFoundError):
        dash.app.get_calendar("Plant closures", 0)
    assert (await root.get(href))[0] == 404


async def test_hostile_calendar_input_never_500(dash: Dash) -> None:
    root = await dash.browser()
    for form, field, message in (
        ({"name": "US_HOLIDAYS"}, "name", "reserved for built-in calendars"),
        ({"name": "a/b<c>"}, "name", "only letters, digits"),
        ({"name": HUGE}, "name", "Name must be at most 64"),
        ({"name": "ok", "description": "\x00"}, "description", "must not contain NUL"),
    ):  # fmt: skip
        answer = await root.post("/calendars", **form)
        page = await answer.text()
        assert answer.status == 422 and message in field_error(page, field), form
    for path in ("/calendars/nope", "/calendars/" + LONG, "/calendars/%00",
                 "/calendars/US_HOLIDAYS?year=99999", "/calendars/US_HOLIDAYS?year=%C2%B2",
                 "/calendars?page=-3&builtin=%00", "/calendars?builtin=all&page=999",
                 "/calendars?open=" + LONG, "/calendars?open=US_HOLIDAYS"):  # fmt: skip
        status, page = await root.get(path)
        assert status in (200, 303, 404, 422), (path, status)
        assert "Traceback" not in page and LONG not in page
    status, page = await root.get("/calendars/US_HOLIDAYS?year=abc")
    assert status == 200 and "Year must be a number" in page


# ----- users -----


async def test_users_create_change_disable_reset_and_delete(dash: Dash) -> None:
    root = await dash.browser()
    status, page = await root.get("/users")
    assert status == 200 and f'data-user="{SUPERUSER}"' in page
    answer = await root.post("/users", username="olga", role="operator",
                             password="olga-first-password", email="olga@example.com",
                             first_name="Olga")  # fmt: skip
    assert answer.headers["Location"] == "/users/olga"
    page = await root.follow(answer)
    assert notice(page) == "ok: User created: olga (operator)"
    assert "olga-first-password" not in page

    olga = Browser(dash.base)
    dash.browsers.append(olga)
    assert await olga.login("olga", "olga-first-password") == 303
    answer = await root.post("/users/olga/role", role="user")
    assert notice(await root.follow(answer)) == "ok: Role set: olga -> user"
    assert (await dash.app.get_user(ROOT, "olga")).role == "user"
    assert (await olga.get("/events"))[0] == 303  # the role change ended her session

    answer = await root.post("/users/olga/disable")
    assert notice(await root.follow(answer)) == "ok: User olga disabled"
    assert await olga.login("olga", "olga-first-password") == 401
    answer = await root.post("/users/olga/enable")
    assert notice(await root.follow(answer)) == "ok: User olga enabled"
    answer = await root.post("/users/olga/password", password="olga-second-password")
    page = await root.follow(answer)
    assert notice(page) == "ok: Password reset for user olga" and "olga-second" not in page
    assert await olga.login("olga", "olga-first-password") == 401
    assert await olga.login("olga", "olga-second-password") == 303
    answer = await root.post("/users/olga/details", email="o@example.org", first_name="",
                             last_name="Petrova")  # fmt: skip
    page = await root.follow(answer)
    assert notice(page) == "ok: Details saved for user olga"
    saved = await dash.app.get_user(ROOT, "olga")
    assert (saved.email, saved.first_name, saved.last_name) == ("o@example.org", "", "Petrova")
    answer = await root.post("/users/olga/details", email="x" * 400, last_name="a\x01b")
    page = await answer.text()
    assert answer.status == 422 and "at most 320" in field_error(page, "email")
    assert "control character" in field_error(page, "last_name")
    assert (await dash.app.get_user(ROOT, "olga")).last_name == "Petrova"  # nothing half-saved

    # Refusals of the application come back as notices or field errors, never a password.
    answer = await root.post("/users/olga/password", password="too-short")
    page = await answer.text()
    assert answer.status == 422 and "at least 12 characters" in field_error(page, "password")
    assert "too-short" not in page
    answer = await root.post("/users", username="bad name!", password="Secret-Echo-Test-123")
    page = await answer.text()
    assert answer.status == 422 and "username must be" in field_error(page, "username")
    assert "Secret-Echo-Test-123" not in page and 'value="bad name!"' in page
    answer = await root.post("/users", username="olga", password="another-password-1")
    assert "already exists" in field_error(await answer.text(), "username")
    answer = await root.post(f"/users/{SUPERUSER}/role", role="admin")
    assert "last active superadmin" in notice(await root.follow(answer))
    answer = await root.post(f"/users/{SUPERUSER}/delete")
    assert notice(await root.follow(answer)) == "error: you cannot delete your own account"

    answer = await root.post("/users/olga/delete")
    assert notice(await root.follow(answer)) == "ok: User deleted: olga"
    with pytest.raises(UserNotFoundError):
        await dash.app.get_user(ROOT, "olga")
    for path in ("/users/olga", "/users/" + LONG, "/users/%00"):
        status, page = await root.get(path)
        assert status == 404 and LONG not in page, path
    assert (await root.post("/users/olga/frobnicate")).status == 404


async def test_an_admin_may_not_touch_superadmins(dash: Dash) -> None:
    root = await dash.browser()
    await root.post("/users", username="adam", role="admin", password="adam-admin-password")
    adam = await dash.browser("adam", "adam-admin-password")
    status, page = await adam.get(f"/users/{SUPERUSER}")
    assert status == 200 and "Only a superadmin may change" in page
    assert "Reset password" not in page and 'action="/users/easytask_superuser/delete"' not in page
    _, page = await adam.get("/users")
    assert '<option value="superadmin"' not in page and '<option value="admin"' in page
    for path, form in ((f"/users/{SUPERUSER}/role", {"role": "viewer"}),
                       (f"/users/{SUPERUSER}/password", {"password": "hijacked-password-1"}),
                       (f"/users/{SUPERUSER}/disable", {}), (f"/users/{SUPERUSER}/delete", {}),
                       ("/users", {"username": "boss", "role": "superadmin",
                                   "password": "boss-password-123"})):  # fmt: skip
        answer = await adam.post(path, **form)
        assert answer.status == 403, path
        assert "may not" in await answer.text()
    assert (await dash.app.get_user(ROOT, SUPERUSER)).role == "superadmin"
    assert await root.login(SUPERUSER, dash.password) == 303


# ----- a viewer -----


async def test_a_viewer_sees_no_forms_and_every_post_is_refused(dash: Dash) -> None:
    await create_task(dash.app, 1001, "nightly")
    await dash.app.create_calendar("Plant", "", ROOT)
    await dash.app.add_holiday("Plant", "2026-06-10", "", "Inventory", ROOT)
    root = await dash.browser()
    answer = await root.post("/users", username="vera", role="viewer",
                             password="vera-reads-only-1")  # fmt: skip
    assert answer.status == 303
    vera = await dash.browser("vera", "vera-reads-only-1")
    before = await dash.events()

    status, page = await vera.get("/events")
    assert status == 200 and 'type="hidden" name="event"' not in page
    assert "Publish an event" not in page and 'method="post" action="/events"' not in page
    status, page = await vera.get("/calendars")
    assert status == 200 and "Create calendar" not in page and 'data-calendar="Plant"' in page
    status, page = await vera.get("/calendars/Plant?year=2026")
    assert status == 200 and "Inventory" in page
    assert "Add holiday" not in page and "Delete" not in page
    assert (await vera.get("/users"))[0] == 403
    assert (await vera.get("/users/vera"))[0] == 403
    assert 'href="/users"' not in (await vera.get("/events"))[1]

    forged = [
        ("/events", {"event": "ENABLE_DEBUG"}, "role viewer may not switch debug logging"),
        ("/events", {"event": "FORCE_RUN_TASK", "task": "1001"}, "role viewer may not run tasks"),
        ("/events", {"event": "DISABLE_TASK", "group": "1"}, "role viewer may not change groups"),
        ("/events", {"event": "REFRESH_CALENDAR"}, "may not refresh the scheduler"),
        ("/events", {"event": "MODIFY_TASK_STATUS", "task": "1001", "status": "SUCCESS"},
         "may not modify run states"),
        ("/calendars", {"name": "Mine"}, "role viewer may not manage calendars"),
        ("/calendars/Plant/holidays", {"start_date": "2026-07-01", "reason": "r"}, "calendars"),
        ("/calendars/Plant/holidays/1/delete", {}, "may not manage calendars"),
        ("/calendars/Plant/delete", {}, "may not manage calendars"),
        ("/users", {"username": "v2", "password": "vera-reads-only-2"}, "may not manage users"),
        ("/users/vera/role", {"role": "admin"}, "may not manage users"),
        ("/users/vera/password", {"password": "vera-reads-only-3"}, "may not manage users"),
        (f"/users/{SUPERUSER}/delete", {}, "may not manage users"),
    ]  # fmt: skip
    for path, form, message in forged:
        answer = await vera.post(path, **form)
        assert answer.status == 403, (path, form)
        assert message in html.unescape(await answer.text()), (path, form)
    assert await dash.events() == before  # a refusal is not an event
    assert len(dash.app.get_calendar("Plant", 0).holidays) == 1
    assert (await dash.app.get_user(ROOT, "vera")).role == "viewer"
    assert not [u for u in (await dash.app.list_users(ROOT, "v2", 1, 10))[0]]


async def test_hostile_paths_of_these_pages_never_500(dash: Dash) -> None:
    root = await dash.browser()
    paths: list[Any] = [
        "/events/%C2%B2",
        "/events/" + "9" * 30,
        "/events?page=-1&from=%00",
        "/events/0",
        "/users?search=%00&page=x",
        "/users?search=" + LONG,
    ]
    for path in paths:
        status, page = await root.get(path)
        assert status in (200, 404), (path, status)
        assert "Traceback" not in page and LONG not in page

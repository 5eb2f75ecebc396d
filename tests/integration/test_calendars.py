"""Holiday calendars through the real public API (spec 5): edits apply to a running scheduler."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import grpc
import pytest

from easytask.rpc.v1 import api_pb2 as pb
from easytask.scheduler.calendars import BuiltinCalendars
from tests.integration.conftest import Harness

NOON_MS = 1780315200000  # 2026-06-01T12:00:00Z, a Monday
DAY_MS = 86_400_000


def run_id(tid: int, ms: int = NOON_MS) -> str:
    return f"default:{tid}:{ms}:1"


def field_errors(err: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    for key, value in err.trailing_metadata() or ():
        if key == "easytask-field-errors":
            return [(e["field"], e["message"]) for e in json.loads(value)]
    return []


async def call_fails(harness: Harness, method: str, request: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await getattr(harness.api, method)(request, metadata=harness.md)
    return err.value


async def create_calendar(harness: Harness, name: str, description: str = "") -> pb.Calendar:
    request = pb.CreateCalendarRequest(name=name, description=description)
    reply: pb.Calendar = await harness.api.CreateCalendar(request, metadata=harness.md)
    return reply


async def add_holiday(
    harness: Harness, name: str, start: str, end: str = "", reason: str = "closed"
) -> pb.HolidayEntry:
    request = pb.AddHolidayRequest(name=name, start_date=start, end_date=end, reason=reason)
    reply: pb.HolidayEntry = await harness.api.AddHoliday(request, metadata=harness.md)
    return reply


async def test_holiday_added_while_running_skips_the_slot_and_removal_lets_the_next_run(
    harness: Harness,
) -> None:
    created = await create_calendar(harness, "Ops freeze", "change freezes")
    assert (created.name, created.kind, created.entries) == ("Ops freeze", "user", 0)
    await harness.create(tid=3001, calendar="Ops freeze")
    agent = await harness.agent("a1", ["q1"])

    # The 12:00 occurrence is already on the wheel; the entry must still apply to it.
    entry = await add_holiday(harness, "Ops freeze", "2026-05-31", "2026-06-02", "maintenance")
    assert (entry.start_date, entry.end_date, entry.source, entry.id) == (
        "2026-05-31", "2026-06-02", "user", 1,
    )  # fmt: skip
    await harness.clock.advance(60)
    run = await harness.wait_state(run_id(3001), "SKIPPED")
    assert run.reason == "holiday in calendar Ops freeze: maintenance"

    listed = await harness.api.ListCalendars(pb.ListCalendarsRequest(), metadata=harness.md)
    assert [(c.name, c.kind, c.entries, c.description) for c in listed.calendars] == [
        ("Ops freeze", "user", 1, "change freezes")
    ]
    removed = await harness.api.RemoveHoliday(
        pb.RemoveHolidayRequest(name="Ops freeze", entry_id=entry.id), metadata=harness.md
    )
    assert removed.id == entry.id and removed.reason == "maintenance"

    # 2026-06-02 was inside the removed range: its slot now runs.
    await harness.clock.advance(DAY_MS / 1000)
    order = await agent.recv("run")
    assert order.run_id == run_id(3001, NOON_MS + DAY_MS)
    run = await harness.wait_state(order.run_id, "TRIGGER")
    assert run.reason != "holiday in calendar Ops freeze: maintenance"


async def test_task_naming_an_unknown_calendar_is_refused(harness: Harness) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await harness.create(tid=3002, calendar="No such calendar")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_errors(err.value) == [("calendar", "calendar does not exist")]
    await create_calendar(harness, "No such calendar")
    task = await harness.create(tid=3002, calendar="No such calendar")
    assert task["calendar"] == "No such calendar"


async def test_a_referenced_calendar_cannot_be_deleted(harness: Harness) -> None:
    await create_calendar(harness, "Ops")
    await add_holiday(harness, "Ops", "2026-06-10")
    await harness.create(tid=3003, name="uses-ops", calendar="Ops")
    err = await call_fails(harness, "DeleteCalendar", pb.DeleteCalendarRequest(name="Ops"))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.details() == "calendar is referenced by 1 tasks/groups (uses-ops)"

    await harness.api.DeleteTask(
        pb.DeleteTaskRequest(ref=pb.TaskRef(tid=3003)), metadata=harness.md
    )
    deleted = await harness.api.DeleteCalendar(
        pb.DeleteCalendarRequest(name="Ops"), metadata=harness.md
    )
    assert (deleted.name, deleted.entries) == ("Ops", 1)
    err = await call_fails(harness, "GetCalendar", pb.GetCalendarRequest(name="Ops"))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert err.details() == "calendar Ops not found"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await harness.create(tid=3004, calendar="Ops")
    assert field_errors(refused.value) == [("calendar", "calendar does not exist")]


async def test_the_holiday_is_the_local_date_of_the_slot(harness: Harness) -> None:
    # 2026-06-01T12:00Z is 2026-06-02 00:00 in Auckland (NZST, UTC+12).
    await create_calendar(harness, "NZ ops")
    await add_holiday(harness, "NZ ops", "2026-06-02", reason="Auckland day off")
    await harness.create(
        tid=3005, name="akl", calendar="NZ ops", timezone="Pacific/Auckland", trigger_times="00:00"
    )
    await harness.create(tid=3006, name="utc", calendar="NZ ops")
    await harness.agent("a1", ["q1"])
    await harness.clock.advance(60)
    skipped = await harness.wait_state(run_id(3005), "SKIPPED")
    assert (skipped.run_date, skipped.reason) == (
        "20260602", "holiday in calendar NZ ops: Auckland day off",
    )  # fmt: skip
    ran = await harness.wait_state(run_id(3006), "TRIGGER")
    assert ran.run_date == "20260601"


async def test_user_entry_on_a_builtin_calendar_merges_and_wins(harness: Harness) -> None:
    entry = await add_holiday(harness, "US_HOLIDAYS", "2026-06-01", reason="company day")
    await add_holiday(harness, "US_HOLIDAYS", "2026-07-03", reason="office closed")
    await harness.create(tid=3007, calendar="US_HOLIDAYS")
    await harness.clock.advance(60)
    run = await harness.wait_state(run_id(3007), "SKIPPED")
    assert run.reason == "holiday in calendar US_HOLIDAYS: company day"

    got = await harness.api.GetCalendar(
        pb.GetCalendarRequest(name="US_HOLIDAYS", year=2026), metadata=harness.md
    )
    assert (got.calendar.kind, got.calendar.entries, got.year) == ("builtin", 2, 2026)
    rows = [(e.start_date, e.reason, e.source, e.id) for e in got.entries]
    assert ("2026-06-01", "company day", "user", entry.id) in rows
    assert rows.index(("2026-07-03", "office closed", "user", entry.id + 1)) + 1 == rows.index(
        ("2026-07-03", "Independence Day (observed)", "builtin", 0)
    )
    generated = BuiltinCalendars().holidays_of("US_HOLIDAYS", 2026)
    assert [(r[0], r[1]) for r in rows if r[2] == "builtin"] == [
        (day.isoformat(), reason) for day, reason in generated
    ]
    # Built-ins with extra entries are listed without --builtin; all of them with it.
    listed = await harness.api.ListCalendars(pb.ListCalendarsRequest(), metadata=harness.md)
    assert [(c.name, c.kind, c.entries) for c in listed.calendars] == [
        ("US_HOLIDAYS", "builtin", 2)
    ]
    every = await harness.api.ListCalendars(
        pb.ListCalendarsRequest(include_builtin=True, per_page=500), metadata=harness.md
    )
    assert {"GB_HOLIDAYS", "NYSE_HOLIDAYS", "US_HOLIDAYS"} <= {c.name for c in every.calendars}
    assert every.total == len(every.calendars) > 100
    err = await call_fails(harness, "DeleteCalendar", pb.DeleteCalendarRequest(name="US_HOLIDAYS"))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.details() == "built-in calendar US_HOLIDAYS cannot be deleted"


async def test_business_day_ordinals_move_at_once_when_a_holiday_is_added(
    harness: Harness,
) -> None:
    await create_calendar(harness, "Bank")
    await harness.create(
        tid=3008, calendar="Bank", day_of_week=None, ordinal_day="first business day of every month"
    )
    engine = harness.service.core.engine if harness.service.core else None
    assert engine is not None
    first = engine.next_slot_of(3008)
    assert first is not None and first.run_date == "20260601"
    await add_holiday(harness, "Bank", "2026-06-01", reason="bank holiday")
    moved = engine.next_slot_of(3008)
    assert moved is not None and moved.run_date == "20260602"
    upcoming = await harness.api.Upcoming(
        pb.UpcomingRequest(tid=3008, hours=48), metadata=harness.md
    )
    assert [e.next_run_utc for e in upcoming.entries] == ["2026-06-02T12:00:00.000Z"]
    await harness.clock.advance(60)
    assert await harness.runs(3008) == []


async def test_calendar_validation_names_the_fields(harness: Harness) -> None:
    err = await call_fails(
        harness, "CreateCalendar", pb.CreateCalendarRequest(name="bad/name", description="x" * 257)
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_errors(err) == [
        ("name", "name may contain only letters, digits, spaces and _ - ."),
        ("description", "description must be at most 256 characters"),
    ]
    for name, message in [
        ("", "name is required"),
        ("x" * 65, "name must be at most 64 characters"),
        ("XX_HOLIDAYS", "names of the form <CODE>_HOLIDAYS are reserved for built-in calendars"),
        ("US_HOLIDAYS", "names of the form <CODE>_HOLIDAYS are reserved for built-in calendars"),
    ]:
        err = await call_fails(harness, "CreateCalendar", pb.CreateCalendarRequest(name=name))
        assert field_errors(err) == [("name", message)], name
    await create_calendar(harness, "Ops 1.a_b-c")
    err = await call_fails(harness, "CreateCalendar", pb.CreateCalendarRequest(name="Ops 1.a_b-c"))
    assert field_errors(err) == [("name", "name already exists")]

    bad = pb.AddHolidayRequest(
        name="Ops 1.a_b-c", start_date="2026-06-10", end_date="2026-06-09", reason=" "
    )
    err = await call_fails(harness, "AddHoliday", bad)
    assert field_errors(err) == [
        ("end_date", "end_date must not be before start_date"),
        ("reason", "reason is required"),
    ]
    bad = pb.AddHolidayRequest(name="Ops 1.a_b-c", start_date="20260610", reason="r" * 257)
    assert field_errors(await call_fails(harness, "AddHoliday", bad)) == [
        ("start_date", "start_date must be a date YYYY-MM-DD"),
        ("reason", "reason must be at most 256 characters"),
    ]
    bad = pb.AddHolidayRequest(name="Ops 1.a_b-c", start_date="2026-02-30", reason="r")
    assert field_errors(await call_fails(harness, "AddHoliday", bad)) == [
        ("start_date", "start_date must be a date YYYY-MM-DD")
    ]
    unknown = pb.AddHolidayRequest(name="Nope", start_date="2026-06-10", reason="r")
    err = await call_fails(harness, "AddHoliday", unknown)
    assert (err.code(), err.details()) == (grpc.StatusCode.NOT_FOUND, "calendar Nope not found")
    err = await call_fails(
        harness, "RemoveHoliday", pb.RemoveHolidayRequest(name="Ops 1.a_b-c", entry_id=99)
    )
    assert (err.code(), err.details()) == (
        grpc.StatusCode.NOT_FOUND, "holiday 99 not found in calendar Ops 1.a_b-c",
    )  # fmt: skip
    err = await call_fails(harness, "GetCalendar", pb.GetCalendarRequest(name="Ops", year=10000))
    assert field_errors(err) == [("year", "year must be between 1 and 9999")]


async def test_refresh_reloads_calendars_changed_behind_the_schedulers_back(
    harness: Harness,
) -> None:
    await create_calendar(harness, "Ops")
    await harness.create(tid=3009, calendar="Ops")
    with sqlite3.connect(harness.home / "easytask.db") as db:
        db.execute(
            "INSERT INTO calendar_entries (calendar, start_date, end_date, reason, created_at) "
            "VALUES ('Ops', '2026-06-01', '2026-06-01', 'loaded by hand', '')"
        )
    reply = await harness.api.RefreshCalendars(
        pb.RefreshCalendarsRequest(origin="CLI"), metadata=harness.md
    )
    assert (reply.status, reply.message) == ("SUCCESS", "Holiday calendars refreshed.")
    assert reply.event_id > 0
    await harness.clock.advance(60)
    run = await harness.wait_state(run_id(3009), "SKIPPED")
    assert run.reason == "holiday in calendar Ops: loaded by hand"

    # The next id given out follows the hand-made one.
    entry = await add_holiday(harness, "Ops", "2026-06-05")
    assert entry.id == 2
    with sqlite3.connect(harness.home / "easytask.db") as db:
        event = db.execute(
            "SELECT event, target, status, message, origin, acked_by FROM events WHERE id = ?",
            (reply.event_id,),
        ).fetchone()
    assert event == (
        "REFRESH_CALENDAR", "", "SUCCESS", "Holiday calendars refreshed.", "CLI", "default",
    )  # fmt: skip

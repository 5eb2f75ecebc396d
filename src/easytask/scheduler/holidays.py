"""HolidayService: the holiday calendar use cases (spec 5): validate, store, update the book."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from datetime import date

from easytask.core.clock import Clock
from easytask.core.errors import (
    CalendarNotFoundError,
    ConflictError,
    FieldError,
    HolidayNotFoundError,
    ValidationError,
)
from easytask.core.records import BUILTIN, USER, CalendarDetail, CalendarView, ListedHoliday
from easytask.core.timespec import parse_ordinal_day
from easytask.scheduler.calendars import CalendarBook, CalendarRecord, HolidaySpan
from easytask.scheduler.engine import Engine
from easytask.store.ports import CalendarStorePort

log = logging.getLogger(__name__)

MAX_NAME = 64
MAX_DESCRIPTION = 256
MAX_REASON = 256
_NAME_CHARS = re.compile(r"[A-Za-z0-9 _.-]+")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Ordinal targets whose selected date depends on the calendar (spec 4.4).
_CALENDAR_TARGETS = frozenset({"weekday", "business day"})


class HolidayService:
    """Every calendar change is validated, committed to the store, then applied to the book.

    The engine reads the same book when an occurrence fires, so a change applies from the next
    occurrence on without a restart.
    """

    def __init__(
        self, *, store: CalendarStorePort, book: CalendarBook, engine: Engine, clock: Clock
    ) -> None:
        self._store = store
        self._book = book
        self._engine = engine
        self._clock = clock
        self._lock = asyncio.Lock()
        self._last_id = 0

    async def load(self) -> None:
        """Replace the book's user calendars and entries with the stored ones."""
        async with self._lock:
            calendars, entries = await self._store.load()
            self._book.replace(calendars, entries)
            self._last_id = max(self._last_id, await self._store.last_entry_id())
            self._reschedule(None)
        log.info("loaded %d user calendars and %d calendar entries", len(calendars), len(entries))

    # ----- reads -----

    def calendars(
        self, include_builtin: bool, page: int = 1, per_page: int = 0
    ) -> tuple[list[CalendarView], int]:
        """User calendars, then built-in ones (those with extra entries, or all), each by name."""
        book = self._book
        builtin = book.builtins.names() if include_builtin else []
        builtin += [n for n in book.names_with_entries() if book.builtins.exists(n)]
        names = [c.name for c in book.user_calendars()] + sorted(set(builtin))
        if per_page <= 0:
            return [self._view(n) for n in names], len(names)
        start = (page - 1) * per_page
        return [self._view(n) for n in names[start : start + per_page]], len(names)

    def get(self, name: str, year: int) -> CalendarDetail:
        """The calendar's user entries and generated dates.

        Args:
            name: A built-in or user calendar.
            year: Only entries touching this year; 0 = every user entry and the built-in dates
                of the current (UTC) year.
        """
        if year and not 1 <= year <= 9999:
            raise ValidationError([FieldError("year", "year must be between 1 and 9999")])
        view = self._view(self.require(name))
        shown = year or self._clock.now().year
        rows = [
            ListedHoliday(span, USER)
            for span in self._book.entries(name)
            if not year or span.start_date.year <= year <= span.end_date.year
        ]
        rows += [
            ListedHoliday(HolidaySpan(day, day, reason, calendar=name), BUILTIN)
            for day, reason in self._book.builtins.holidays_of(name, shown)
        ]
        rows.sort(key=lambda r: (r.span.start_date, r.source != USER, r.span.id))
        return CalendarDetail(view, shown, rows)

    def require(self, name: str) -> str:
        if not self._book.exists(name):
            raise CalendarNotFoundError(name)
        return name

    def _view(self, name: str) -> CalendarView:
        count = len(self._book.entries(name))
        record = self._book.user_calendar(name)
        if record is None:
            return CalendarView(name, BUILTIN, self._book.builtins.describe(name), count)
        return CalendarView(
            name, USER, record.description, count, record.created_by, record.created_at
        )

    # ----- changes -----

    async def create(self, name: str, description: str, user: str) -> CalendarView:
        description = description.strip()
        errors = self._name_errors(name)
        if len(description) > MAX_DESCRIPTION:
            errors.append(
                FieldError(
                    "description", f"description must be at most {MAX_DESCRIPTION} characters"
                )
            )
        async with self._lock:
            if not errors and self._book.exists(name):
                errors.append(FieldError("name", "name already exists"))
            if errors:
                raise ValidationError(errors)
            record = CalendarRecord(name, description, user, self._clock.now())
            await self._store.add_calendar(record)
            self._book.put_calendar(record)
        log.info("calendar %r created by %s", name, user)
        return self._view(name)

    async def add_holiday(
        self, name: str, start_date: str, end_date: str, reason: str, user: str
    ) -> HolidaySpan:
        """Add a single date (``end_date`` empty or equal) or an inclusive date range."""
        errors: list[FieldError] = []
        start = _parse_date(start_date, "start_date", errors)
        end = _parse_date(end_date, "end_date", errors) if end_date else start
        if start is not None and end is not None and end < start:
            errors.append(FieldError("end_date", "end_date must not be before start_date"))
        reason = reason.strip()
        if not reason:
            errors.append(FieldError("reason", "reason is required"))
        elif len(reason) > MAX_REASON:
            errors.append(FieldError("reason", f"reason must be at most {MAX_REASON} characters"))
        if errors:
            raise ValidationError(errors)
        assert start is not None and end is not None
        async with self._lock:
            self.require(name)
            self._last_id += 1
            span = HolidaySpan(start, end, reason, self._last_id, name, user, self._clock.now())
            await self._store.add_entry(span)
            self._book.put_entry(span)
            self._reschedule({name})
        log.info("holiday %d (%s..%s) added to calendar %r by %s", span.id, start, end, name, user)
        return span

    async def remove_holiday(self, name: str, entry_id: int) -> HolidaySpan:
        async with self._lock:
            self.require(name)
            span = next((s for s in self._book.entries(name) if s.id == entry_id), None)
            if span is None:
                raise HolidayNotFoundError(entry_id, name)
            await self._store.delete_entry(entry_id)
            self._book.drop_entry(name, entry_id)
            self._reschedule({name})
        log.info("holiday %d removed from calendar %r", entry_id, name)
        return span

    async def delete(self, name: str) -> CalendarView:
        """Delete a user calendar and its entries; refused while tasks reference it."""
        async with self._lock:
            record = self._book.user_calendar(name)
            if record is None:
                if self._book.builtins.exists(name):
                    raise ConflictError(f"built-in calendar {name} cannot be deleted")
                raise CalendarNotFoundError(name)
            users = sorted(t.name for t in self._engine.index.tasks.values() if t.calendar == name)
            if users:
                shown = ", ".join(users[:5]) + (", …" if len(users) > 5 else "")
                raise ConflictError(
                    f"calendar is referenced by {len(users)} tasks/groups ({shown})"
                )
            view = self._view(name)
            entries = self._book.entries(name)
            # Out of the book before the await, so a task created meanwhile cannot name it.
            self._book.drop_calendar(name)
            try:
                await self._store.delete_calendar(name)
            except BaseException:
                self._book.put_calendar(record)
                for span in entries:
                    self._book.put_entry(span)
                raise
        log.info("calendar %r deleted with %d entries", name, len(entries))
        return view

    # ----- helpers -----

    def _name_errors(self, name: str) -> list[FieldError]:
        if not name:
            return [FieldError("name", "name is required")]
        if len(name) > MAX_NAME:
            return [FieldError("name", f"name must be at most {MAX_NAME} characters")]
        if not _NAME_CHARS.fullmatch(name):
            return [FieldError("name", "name may contain only letters, digits, spaces and _ - .")]
        if name != name.strip():
            return [FieldError("name", "name cannot start or end with a space")]
        if self._book.builtins.is_builtin_name(name):
            reserved = "names of the form <CODE>_HOLIDAYS are reserved for built-in calendars"
            return [FieldError("name", reserved)]
        return []

    def _reschedule(self, names: Iterable[str] | None) -> None:
        """Recompute the next occurrence of tasks whose next date depends on the calendar.

        Only `weekday`/`business day` ordinals pick their dates by the calendar; every other
        task keeps its wheel entry and is checked for a holiday when the occurrence fires.
        """
        wanted = None if names is None else set(names)
        now = self._clock.now()
        self._engine.calendars_changed()
        for task in list(self._engine.index.tasks.values()):
            if not task.calendar or not task.ordinal_day:
                continue
            if wanted is not None and task.calendar not in wanted:
                continue
            if parse_ordinal_day(task.ordinal_day).target in _CALENDAR_TARGETS:
                self._engine.put_task(task, now)


def _parse_date(text: str, field: str, errors: list[FieldError]) -> date | None:
    if not text:
        errors.append(FieldError(field, f"{field} is required"))
        return None
    try:
        if _ISO_DATE.fullmatch(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    errors.append(FieldError(field, f"{field} must be a date YYYY-MM-DD"))
    return None

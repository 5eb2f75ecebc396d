"""Run dates (spec 8, 10): a real calendar date, written ``YYYYMMDD`` or ``YYYY-MM-DD``."""

from __future__ import annotations

import re
from datetime import date

from easytask.core.errors import FieldError, ValidationError

_FORMS = (
    re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})"),
    re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})"),
)


def parse_run_date(text: str, field: str = "run_date") -> str:
    """The date as ``YYYYMMDD``.

    Args:
        text: ``YYYYMMDD`` or ``YYYY-MM-DD``.
        field: The name the refusal gives (``run_date``, ``date``, ``to``).

    Raises:
        ValidationError: naming ``field`` when the text is not one of the two forms or not a
            day of the calendar (``20261345``, ``2026-02-30``).
    """
    for form in _FORMS:
        match = form.fullmatch(text)
        if match:
            year, month, day = (int(part) for part in match.groups())
            try:
                day_of = date(year, month, day)
            except ValueError:
                break
            return f"{day_of.year:04d}{day_of.month:02d}{day_of.day:02d}"
    message = f"{field} must be a calendar date YYYYMMDD or YYYY-MM-DD: {text!r}"
    raise ValidationError([FieldError(field, message)])

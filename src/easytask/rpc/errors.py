"""Error mapping for the API: EasyTask errors to gRPC status codes (the one place that does)."""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from easytask.core.errors import (
    ConflictError,
    FieldError,
    NotFoundError,
    TransitionError,
    ValidationError,
)

R = TypeVar("R")
FIELD_ERRORS_KEY = "easytask-field-errors"
DEFAULT_PER_PAGE = 25


def _status_of(exc: Exception) -> grpc.StatusCode | None:
    if isinstance(exc, ValidationError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, NotFoundError):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, ConflictError | TransitionError):
        return grpc.StatusCode.FAILED_PRECONDITION
    return None


def errors_mapped(
    fn: Callable[..., Awaitable[R]],
) -> Callable[..., Awaitable[R]]:
    """Translate EasyTask errors into gRPC status codes (the one place that does)."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            return await fn(self, request, context)
        except Exception as exc:
            code = _status_of(exc)
            if code is None:
                raise
            if isinstance(exc, ValidationError):
                payload = json.dumps([{"field": e.field, "message": e.message} for e in exc.errors])
                context.set_trailing_metadata(((FIELD_ERRORS_KEY, payload),))
                await context.abort(code, "\n".join(str(e) for e in exc.errors))
            await context.abort(code, str(exc.args[0]) if exc.args else str(exc))
            raise  # unreachable: abort raises

    return wrapper


def json_object(text: str, field: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError([FieldError(field, f"not valid JSON ({exc.msg})")]) from exc


def page_of(page: int, per_page: int) -> tuple[int, int]:
    return max(page, 1), per_page if per_page > 0 else DEFAULT_PER_PAGE

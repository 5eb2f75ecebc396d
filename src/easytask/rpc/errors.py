"""Error mapping for the API: EasyTask errors to gRPC status codes (the one place that does).

Every handler answers with a status: a refusal names the field (INVALID_ARGUMENT, with the
field errors as trailing metadata), a missing or clashing record says which, and anything
unexpected is logged once with its traceback and answered INTERNAL with an id to quote. Texts
sent back are cut short and made ASCII-safe: a status whose details cannot be encoded, or
whose metadata outgrows the client's limit, never reaches the caller.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from easytask.core.authz import Caller
from easytask.core.errors import (
    AuthError,
    ConflictError,
    FieldError,
    NotFoundError,
    PermissionDeniedError,
    TransitionError,
    ValidationError,
)
from easytask.core.text import parse_json, text_problem
from easytask.rpc.auth import token_of

log = logging.getLogger(__name__)

R = TypeVar("R")
FIELD_ERRORS_KEY = "easytask-field-errors"
DEFAULT_PER_PAGE = 25
MESSAGE_LIMIT = 300  # characters of one error message sent back
# Bytes on the wire of a status's details (percent-encoded as grpc-message) and of the
# field-errors trailer: together well under gRPC's 8 KiB soft limit for metadata, beyond
# which a client drops the reply at random (RESOURCE_EXHAUSTED instead of our status).
DETAILS_LIMIT = 2500
FIELD_ERRORS_LIMIT = 3000


def _status_of(exc: Exception) -> grpc.StatusCode | None:
    if isinstance(exc, ValidationError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, NotFoundError):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, ConflictError | TransitionError):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(exc, AuthError):
        return grpc.StatusCode.UNAUTHENTICATED
    if isinstance(exc, PermissionDeniedError):
        return grpc.StatusCode.PERMISSION_DENIED
    return None


_CALLER: contextvars.ContextVar[Caller] = contextvars.ContextVar("caller")
NO_LOGIN_NEEDED = frozenset({"Login", "RefreshLogin"})


def caller() -> Caller:
    """Who is calling: set by ``errors_mapped`` (or ``authenticate``) before the handler runs."""
    return _CALLER.get()


def bearer_token(context: grpc.aio.ServicerContext) -> str:
    return token_of(context.invocation_metadata())


class _Authenticator(Protocol):
    async def authenticate(self, token: str) -> Caller: ...


async def authenticate(app: _Authenticator, context: grpc.aio.ServicerContext) -> Caller:
    """The caller behind the call's bearer token (AuthError when none); remembered for
    ``caller()`` in this call's task."""
    who = await app.authenticate(bearer_token(context))
    _CALLER.set(who)
    return who


def errors_mapped(
    fn: Callable[..., Awaitable[R]],
) -> Callable[..., Awaitable[R]]:
    """Authenticate the caller, check the request's texts, then translate what the handler
    raises into a status."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            if fn.__name__ not in NO_LOGIN_NEEDED:
                await authenticate(self._app, context)
            check_request_text(request)
            return await fn(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await abort_with(context, exc, fn.__name__)
            raise  # unreachable: abort raises

    return wrapper


async def abort_with(context: grpc.aio.ServicerContext, exc: Exception, call: str) -> None:
    """End the call with the status ``exc`` maps to (INTERNAL, logged once, if none)."""
    code = _status_of(exc)
    if code is None:
        error_id = secrets.token_hex(4)
        log.error("internal error %s in %s", error_id, call, exc_info=exc)
        await context.abort(
            grpc.StatusCode.INTERNAL, f"internal error {error_id} (see the scheduler log)"
        )
    if isinstance(exc, ValidationError):
        context.set_trailing_metadata(((FIELD_ERRORS_KEY, field_errors_payload(exc.errors)),))
        lines = [_safe(str(e), MESSAGE_LIMIT) for e in exc.errors]
        await context.abort(code, status_details("\n".join(lines)))
    await context.abort(code, status_details(str(exc.args[0]) if exc.args else str(exc)))


def status_details(text: str) -> str:
    """``text`` cut so that its percent-encoded UTF-8 (grpc-message) is at most DETAILS_LIMIT
    bytes, with "…" where it was cut; lone surrogates escaped."""
    text = _safe(text, len(text))
    size = 0
    for i, char in enumerate(text):
        size += _wire_size(char)
        if size > DETAILS_LIMIT - _wire_size("…"):
            return text[:i] + "…"
    return text


def _wire_size(char: str) -> int:
    """Bytes of one character in grpc-message: printable ASCII as is, else %XX per byte."""
    if " " <= char <= "~" and char != "%":
        return 1
    return 3 * len(char.encode("utf-8"))


def field_errors_payload(errors: list[FieldError]) -> str:
    """The field errors as ASCII JSON of at most FIELD_ERRORS_LIMIT bytes; the rest counted."""
    entries: list[dict[str, str]] = []
    size = 2
    for i, e in enumerate(errors):
        entry = {"field": _safe(e.field, 64), "message": _safe(e.message, MESSAGE_LIMIT)}
        size += len(json.dumps(entry)) + 2
        if size > FIELD_ERRORS_LIMIT - 80:  # room for the "and N more errors" entry
            more = {"field": entry["field"], "message": f"and {len(errors) - i} more errors"}
            entries.append(more)
            break
        entries.append(entry)
    return json.dumps(entries)


def _safe(text: str, limit: int) -> str:
    """At most ``limit`` characters, encodable as UTF-8 (lone surrogates escaped)."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def check_request_text(request: Message) -> None:
    """Refuse NUL and control characters (tab and line breaks aside) in any string field.

    Raises:
        ValidationError: naming the first offending field of the request (nested messages
            included) by its protobuf name.
    """
    errors: list[FieldError] = []
    todo: list[Message] = [request]
    while todo and not errors:
        message = todo.pop()
        for fd, value in message.ListFields():
            if fd.type == FieldDescriptor.TYPE_MESSAGE:
                todo.extend(value if _repeated(fd) else [value])
            elif fd.type == FieldDescriptor.TYPE_STRING:
                for text in value if _repeated(fd) else [value]:
                    problem = text_problem(text, lines=True)
                    if problem is not None:
                        errors.append(FieldError(fd.name, f"{fd.name} {problem}"))
                        break
    if errors:
        raise ValidationError(errors)


def _repeated(fd: FieldDescriptor) -> bool:
    return bool(fd.is_repeated)


def json_object(text: str, field: str) -> Any:
    """A request's JSON document, bounded in size and depth (see ``core.text.parse_json``)."""
    return parse_json(text, field)


def page_of(page: int, per_page: int) -> tuple[int, int]:
    return max(page, 1), per_page if per_page > 0 else DEFAULT_PER_PAGE

"""The exception tree of EasyTask: every error raised on purpose is defined here.

EasyTaskError
├── ValidationError (ValueError)        a record has field errors; carries every one of them
├── DependencyError (ValueError)        a dependency expression breaks the grammar (spec 6.1)
├── NotFoundError (LookupError)         an id or name names nothing; ``ref`` is that id or name
│   ├── TaskNotFoundError
│   ├── GroupNotFoundError
│   ├── RunNotFoundError
│   ├── EventNotFoundError
│   ├── CalendarNotFoundError
│   ├── HolidayNotFoundError
│   ├── UserNotFoundError
│   ├── AgentNotFoundError
│   └── AgentTokenNotFoundError
├── ConflictError (ValueError)          the request clashes with stored state
├── TransitionError (ValueError)        a run state change the table refuses
├── AuthError                           missing or wrong token, or a failed login
├── PermissionDeniedError               the caller's role may not do this (spec 14)
├── ConfigError (ValueError)            a setting of a process is unusable
├── StoreWriteError                     a batch could not be committed (disk full, I/O)
├── AlertDeliveryError                  one attempt to deliver an alert failed (spec 15)
├── MalformedMessageError (ValueError)  an agent-protocol message that cannot be understood
├── StreamEndedError                    the agent's stream to the scheduler ended
├── PrepareError                        the agent cannot prepare a run (user, profile, text)
├── SpawnError                          the agent cannot start a run's process
├── JournalClosedError                  an append to the agent's journal after close()
└── CtlError                            a CLI failure, reported with its exit code
"""

from __future__ import annotations

from dataclasses import dataclass


class EasyTaskError(Exception):
    """Root of every error EasyTask raises on purpose."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One validation failure: the field and what is wrong with it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ValidationError(EasyTaskError, ValueError):
    """A record failed validation; ``errors`` lists every failure at once."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(str(e) for e in self.errors))


class DependencyError(EasyTaskError, ValueError):
    """A dependency expression does not match the grammar of spec 6.1.

    ``detail`` says what is wrong and where (``unexpected 'and' at position 7``); ``position``
    is that 0-based offset (None when there is none).
    """

    def __init__(self, detail: str, position: int | None = None) -> None:
        self.detail = detail
        self.position = position
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """The validation message of spec 2.2: ``Bad dependency expression (<detail>)``."""
        return f"Bad dependency expression ({self.detail})"


class NotFoundError(EasyTaskError, LookupError):
    """An id or name names nothing: ``<what> <ref> not found``; ``ref`` keeps the id or name.

    A name is quoted (``task 'nightly' not found``) unless names are ids of their own kind
    (``quote_names = False``: run ids, calendar names).
    """

    what = "record"
    quote_names = True

    def __init__(self, ref: int | str, where: str = "") -> None:
        self.ref = ref
        shown = repr(ref) if isinstance(ref, str) and self.quote_names else str(ref)
        super().__init__(f"{self.what} {shown} not found{where}")


class TaskNotFoundError(NotFoundError):
    """No task with that tid or name."""

    what = "task"


class GroupNotFoundError(NotFoundError):
    """No task group with that gid or name."""

    what = "group"


class RunNotFoundError(NotFoundError):
    """No run with that run id."""

    what = "run"
    quote_names = False


class GroupRunNotFoundError(NotFoundError):
    """No group occurrence with that id."""

    what = "group occurrence"
    quote_names = False


class EventNotFoundError(NotFoundError):
    """No event with that id."""

    what = "event"


class CalendarNotFoundError(NotFoundError):
    """No built-in or user calendar with that name."""

    what = "calendar"
    quote_names = False


class HolidayNotFoundError(NotFoundError):
    """No entry with that id in the calendar."""

    what = "holiday"

    def __init__(self, entry_id: int, calendar: str) -> None:
        super().__init__(entry_id, f" in calendar {calendar}")
        self.calendar = calendar


class AgentNotFoundError(NotFoundError):
    """No agent ever connected with that name."""

    what = "agent"


class AgentTokenNotFoundError(NotFoundError):
    """No token issued for that agent name."""

    what = "agent token for"


class UserNotFoundError(NotFoundError):
    """No account with that username."""

    what = "user"


class ConflictError(EasyTaskError, ValueError):
    """The request is well formed but clashes with stored state."""


class TransitionError(EasyTaskError, ValueError):
    """A run state change that the transition table does not allow."""


class AuthError(EasyTaskError):
    """Missing or invalid credentials."""


class PermissionDeniedError(EasyTaskError):
    """The caller is known but its role may not do this; the message names the rule."""


class ConfigError(EasyTaskError, ValueError):
    """A process's settings are unusable (e.g. a public bind without TLS)."""


class StoreWriteError(EasyTaskError):
    """A batch could not be committed (disk full, I/O error); nothing of it was stored."""


class AlertDeliveryError(EasyTaskError):
    """One attempt to deliver an alert failed; the message names the channel and the cause and
    never holds a password or a webhook URL, so it is stored with the attempt and logged."""


class MalformedMessageError(EasyTaskError, ValueError):
    """An agent-protocol message that cannot be understood; it is dropped and logged."""


class StreamEndedError(EasyTaskError):
    """The scheduler closed the agent's stream, or stopped answering heartbeats."""


class PrepareError(EasyTaskError):
    """The run cannot be prepared; the message is what the FAILED run records."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SpawnError(EasyTaskError):
    """The process could not be started; the message is recorded on the FAILED run."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class JournalClosedError(EasyTaskError):
    """An append after the agent's journal was closed."""


class CtlError(EasyTaskError):
    """A failure to report as ``Error: <message>`` (plus ``details`` lines) with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.details = list(details or [])

    def lines(self) -> list[str]:
        return [f"Error: {self.message}", *self.details]


class NotAuthenticatedError(CtlError):
    """The server does not know the caller (no token, a bad one, an ended session): exit 3."""

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(f"not authenticated: {message}", 3, details)

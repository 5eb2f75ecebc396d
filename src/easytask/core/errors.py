"""The exception tree of EasyTask.

EasyTaskError
├── ValidationError (ValueError)        a record has field errors; carries every one of them
├── NotFoundError (LookupError)
│   ├── TaskNotFoundError
│   ├── GroupNotFoundError
│   └── RunNotFoundError
├── ConflictError (ValueError)          the request clashes with stored state
├── TransitionError (ValueError)        a run state change the table refuses
├── AuthError                           missing or wrong token
├── StoreWriteError                     a batch could not be committed (disk full, I/O)
└── MalformedMessageError (ValueError)  an agent-protocol message that cannot be understood
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


class NotFoundError(EasyTaskError, LookupError):
    """An id or name names nothing."""


class TaskNotFoundError(NotFoundError):
    """No task with that tid or name."""


class GroupNotFoundError(NotFoundError):
    """No task group with that gid or name."""


class RunNotFoundError(NotFoundError):
    """No run with that run id."""


class ConflictError(EasyTaskError, ValueError):
    """The request is well formed but clashes with stored state."""


class TransitionError(EasyTaskError, ValueError):
    """A run state change that the transition table does not allow."""


class AuthError(EasyTaskError):
    """Missing or invalid credentials."""


class StoreWriteError(EasyTaskError):
    """A batch could not be committed (disk full, I/O error); nothing of it was stored."""


class MalformedMessageError(EasyTaskError, ValueError):
    """An agent-protocol message that cannot be understood; it is dropped and logged."""

"""Logins the CLI keeps: one per server in ``~/.config/easytask/logins.json`` (mode 0600).

``auth login`` stores the access and refresh tokens here; every later command on that server
uses them, and a command that finds the access token expired (or refused) refreshes it once,
under a file lock so parallel commands do not use up one refresh token twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from easytask.core.errors import CtlError

FILE_NAME = "logins.json"


@dataclass(frozen=True, slots=True)
class StoredLogin:
    """What ``auth login`` leaves behind for one server."""

    server: str
    username: str
    access_token: str
    refresh_token: str
    access_expires_at: str  # ISO 8601 UTC, as the server sent it
    instance: str = ""

    def expired(self, now: datetime) -> bool:
        """True when the access token is past its expiry (or the expiry is unreadable)."""
        try:
            expires = datetime.fromisoformat(self.access_expires_at.replace("Z", "+00:00"))
        except ValueError:
            return True
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        return expires <= now


def config_dir(environ: Mapping[str, str]) -> Path:
    """``$XDG_CONFIG_HOME/easytask``, else ``~/.config/easytask``."""
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME") or "~") / ".config")
    return Path(base).expanduser() / "easytask"


class LoginFile:
    """The logins file; each change rewrites it atomically with mode 0600."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def default(cls, environ: Mapping[str, str]) -> LoginFile:
        return cls(config_dir(environ) / FILE_NAME)

    def _read(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise CtlError(f"cannot read logins file {self.path}: {exc}") from None
        if not isinstance(data, dict):
            raise CtlError(f"cannot read logins file {self.path}: not a JSON object")
        return {k: v for k, v in data.items() if isinstance(v, dict)}

    def get(self, server: str) -> StoredLogin | None:
        entry = self._read().get(server)
        if entry is None:
            return None
        try:
            return StoredLogin(
                server=server,
                username=str(entry["username"]),
                access_token=str(entry["access_token"]),
                refresh_token=str(entry["refresh_token"]),
                access_expires_at=str(entry["access_expires_at"]),
                instance=str(entry.get("instance", "")),
            )
        except KeyError as exc:
            raise CtlError(
                f"logins file {self.path}: the entry for {server} lacks {exc.args[0]}; "
                "run `easytaskctl auth login` again"
            ) from None

    def put(self, login: StoredLogin) -> None:
        data = self._read()
        entry = asdict(login)
        del entry["server"]
        data[login.server] = entry
        self._write(data)

    def remove(self, server: str) -> StoredLogin | None:
        login = self.get(server)
        if login is not None:
            data = self._read()
            data.pop(server, None)
            self._write(data)
        return login

    def _write(self, data: dict[str, dict[str, str]]) -> None:
        directory = self.path.parent
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = directory / f".{self.path.name}.{os.getpid()}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2, sort_keys=True)
                f.write("\n")
            os.replace(tmp, self.path)
        except OSError as exc:
            raise CtlError(f"cannot write logins file {self.path}: {exc.strerror}") from None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the logins lock (a sibling ``.lock`` file) for a read-refresh-write."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            lock_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise CtlError(f"cannot lock logins file {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

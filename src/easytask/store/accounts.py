"""AccountStore: users and login tokens (spec 14) in the SQLite file."""

from __future__ import annotations

import asyncio
from datetime import datetime

import aiosqlite

from easytask.core.records import TokenRecord, UserRecord
from easytask.core.runid import iso_utc, parse_iso_utc
from easytask.store.writer import BatchWriter

_USER_COLUMNS = (
    "username, email, first_name, last_name, role, active, password_hash, created_at, updated_at"
)
_UPSERT_USER = (
    f"INSERT INTO users ({_USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(username) DO UPDATE SET email = excluded.email, "
    "first_name = excluded.first_name, last_name = excluded.last_name, role = excluded.role, "
    "active = excluded.active, password_hash = excluded.password_hash, "
    "updated_at = excluded.updated_at"
)


def _time(text: str) -> datetime:
    when = parse_iso_utc(text)
    assert when is not None
    return when


def _user(r: aiosqlite.Row) -> UserRecord:
    return UserRecord(
        username=r["username"],
        role=r["role"],
        password_hash=r["password_hash"],
        created_at=_time(r["created_at"]),
        updated_at=_time(r["updated_at"]),
        email=r["email"],
        first_name=r["first_name"],
        last_name=r["last_name"],
        active=bool(r["active"]),
    )


class AccountStore:
    """Reads on the store's read connection; writes go through its batch writer."""

    def __init__(self, rdb: aiosqlite.Connection, writer: BatchWriter) -> None:
        self._rdb = rdb
        self._writer = writer

    async def load_users(self) -> list[UserRecord]:
        await self._writer.flush()
        async with self._rdb.execute(f"SELECT {_USER_COLUMNS} FROM users ORDER BY username") as c:
            return [_user(r) for r in await c.fetchall()]

    async def get_user(self, username: str) -> UserRecord | None:
        await self._writer.flush()
        sql = f"SELECT {_USER_COLUMNS} FROM users WHERE username = ?"
        async with self._rdb.execute(sql, (username,)) as cur:
            row = await cur.fetchone()
        return None if row is None else _user(row)

    async def put_user(self, user: UserRecord) -> None:
        await self._writer.write(
            _UPSERT_USER,
            (user.username, user.email, user.first_name, user.last_name, user.role,
             int(user.active), user.password_hash, iso_utc(user.created_at),
             iso_utc(user.updated_at)),
        )  # fmt: skip

    async def delete_user(self, username: str) -> None:
        # Queued back to back: one batch, so a deleted user never keeps a token.
        await asyncio.gather(
            self._writer.write("DELETE FROM auth_tokens WHERE username = ?", (username,)),
            self._writer.write("DELETE FROM users WHERE username = ?", (username,)),
        )

    async def add_token(self, token: TokenRecord) -> None:
        await self._writer.write(
            "INSERT INTO auth_tokens (token_hash, username, kind, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (token.token_hash, token.username, token.kind, iso_utc(token.created_at),
             iso_utc(token.expires_at)),
        )  # fmt: skip

    async def find_token(self, token_hash: str) -> TokenRecord | None:
        await self._writer.flush()
        sql = (
            "SELECT token_hash, username, kind, created_at, expires_at FROM auth_tokens "
            "WHERE token_hash = ?"
        )
        async with self._rdb.execute(sql, (token_hash,)) as cur:
            r = await cur.fetchone()
        if r is None:
            return None
        return TokenRecord(r[0], r[1], r[2], _time(r[3]), _time(r[4]))

    async def delete_token(self, token_hash: str) -> None:
        await self._writer.write("DELETE FROM auth_tokens WHERE token_hash = ?", (token_hash,))

    async def delete_tokens(self, username: str) -> None:
        await self._writer.write("DELETE FROM auth_tokens WHERE username = ?", (username,))

    async def delete_expired_tokens(self, now: datetime) -> None:
        await self._writer.write("DELETE FROM auth_tokens WHERE expires_at <= ?", (iso_utc(now),))

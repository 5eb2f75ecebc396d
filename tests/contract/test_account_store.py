"""Account store contract: users and tokens round-trip, revocation is per user (both stores)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from easytask.core.records import TokenRecord, UserRecord
from easytask.store.ports import Store
from tests.contract.test_store import T0


def user(name: str, role: str = "viewer") -> UserRecord:
    return UserRecord(name, role, "$argon2id$v=19$fake", T0, T0, email=f"{name}@example.org",
                      first_name="Ada", last_name="Lovelace")  # fmt: skip


def token(digest: str, name: str, kind: str = "access", hours: float = 1) -> TokenRecord:
    return TokenRecord(digest, name, kind, T0, T0 + timedelta(hours=hours))


async def test_users_round_trip_and_keep_their_creation_time(store: Store) -> None:
    accounts = store.accounts
    assert await accounts.load_users() == []
    await accounts.put_user(user("bob"))
    await accounts.put_user(user("alice", "admin"))
    later = T0 + timedelta(hours=2)
    changed = replace(user("bob", "operator"), active=False, created_at=later, updated_at=later)
    await accounts.put_user(changed)
    assert [u.username for u in await accounts.load_users()] == ["alice", "bob"]
    bob = await accounts.get_user("bob")
    assert bob == replace(changed, created_at=T0)
    assert await accounts.get_user("carol") is None


async def test_tokens_are_found_by_hash_and_revoked_per_user(store: Store) -> None:
    accounts = store.accounts
    await accounts.put_user(user("bob"))
    await accounts.put_user(user("alice"))
    await accounts.add_token(token("h1", "bob"))
    await accounts.add_token(token("h2", "bob", "refresh", hours=168))
    await accounts.add_token(token("h3", "alice"))
    assert await accounts.find_token("h2") == token("h2", "bob", "refresh", hours=168)
    await accounts.delete_tokens("bob")
    assert await accounts.find_token("h1") is None and await accounts.find_token("h2") is None
    assert await accounts.find_token("h3") is not None
    await accounts.delete_token("h3")
    assert await accounts.find_token("h3") is None


async def test_deleting_a_user_deletes_its_tokens(store: Store) -> None:
    accounts = store.accounts
    await accounts.put_user(user("bob"))
    await accounts.add_token(token("h1", "bob"))
    await accounts.delete_user("bob")
    assert await accounts.get_user("bob") is None and await accounts.find_token("h1") is None


async def test_expired_tokens_are_forgotten(store: Store) -> None:
    accounts = store.accounts
    await accounts.add_token(token("old", "bob", hours=1))
    await accounts.add_token(token("new", "bob", hours=3))
    await accounts.delete_expired_tokens(T0 + timedelta(hours=1))
    assert await accounts.find_token("old") is None and await accounts.find_token("new")

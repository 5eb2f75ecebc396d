"""Freezes: the slots an operator froze (a whole run date, or one trigger time of it)."""

from __future__ import annotations

from collections.abc import Iterator

FreezeKey = tuple[int, str, str]  # (tid, run date, trigger time or "" for the whole date)


class Freezes:
    def __init__(self, keys: set[FreezeKey] | None = None) -> None:
        self._keys: set[FreezeKey] = set(keys or ())

    def __iter__(self) -> Iterator[FreezeKey]:
        return iter(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def replace(self, keys: set[FreezeKey]) -> None:
        self._keys = set(keys)

    def add(self, key: FreezeKey) -> None:
        self._keys.add(key)

    def discard(self, key: FreezeKey) -> None:
        self._keys.discard(key)

    def covers(self, tid: int, run_date: str, local_time: str) -> bool:
        """A stored freeze covers the slot (the whole date, or that trigger time)."""
        return (tid, run_date, "") in self._keys or (tid, run_date, local_time) in self._keys

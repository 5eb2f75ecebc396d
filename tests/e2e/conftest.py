"""Fixtures for end-to-end tests with real processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(home=tmp_path / "home")
    try:
        yield c
    finally:
        c.stop_all()
        for proc in [c.scheduler, *c.agents.values()]:
            if proc is not None:
                print(f"---- {proc.log.name}\n{proc.output()[-4000:]}")

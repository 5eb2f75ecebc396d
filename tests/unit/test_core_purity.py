"""core/ stays pure: stdlib + pydantic imports only, no clock reads, no asyncio (style.md)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import easytask.core

CORE_DIR = Path(easytask.core.__file__).parent
CORE_PACKAGE = "easytask.core"
ALLOWED_THIRD_PARTY = frozenset(
    {"pydantic", "pydantic_core", "annotated_types", "typing_extensions"}
)
# Stdlib, but not for a pure core: event loops and storage belong to the services.
FORBIDDEN_STDLIB = frozenset({"asyncio", "sqlite3"})
# Clock reads: core takes time as an argument.
FORBIDDEN_CALLS = (
    "datetime.now",
    "datetime.utcnow",
    "datetime.today",
    "date.today",
    "time.time",
    "time.time_ns",
    "time.monotonic",
    "time.perf_counter",
)
FORBIDDEN_TIME_IMPORTS = frozenset({"time", "time_ns", "monotonic", "perf_counter"})


def _module_name(path: Path) -> str:
    parts = path.relative_to(CORE_DIR).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((CORE_PACKAGE, *parts))


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """Absolute module name of a (possibly relative) ``from ... import``."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    drop = node.level - 1 if is_package else node.level
    base = base[: len(base) - drop]
    return ".".join([*base, node.module] if node.module else base)


def _import_allowed(name: str) -> bool:
    top = name.split(".")[0]
    if name == CORE_PACKAGE or name.startswith(CORE_PACKAGE + "."):
        return True
    if top in FORBIDDEN_STDLIB:
        return False
    return top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return None if inner is None else f"{inner}.{node.attr}"
    return None


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """Every purity violation in ``source`` (the module named ``module``)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if not _import_allowed(a.name)]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node, module, is_package)
            if not _import_allowed(target):
                found.append(f"from {target} import")
            if target == "time":
                found += [
                    f"from time import {a.name}"
                    for a in node.names
                    if a.name in FORBIDDEN_TIME_IMPORTS
                ]
        elif isinstance(node, ast.Call):
            name = _dotted(node.func) or ""
            found += [
                f"call {name}()" for c in FORBIDDEN_CALLS if name == c or name.endswith("." + c)
            ]
        elif isinstance(node, ast.Name) and node.id == "asyncio":
            found.append("uses asyncio")
    return found


def _core_files() -> list[Path]:
    return sorted(CORE_DIR.rglob("*.py"))


def test_core_has_modules() -> None:
    names = {p.name for p in _core_files()}
    assert {"__init__.py", "models.py", "states.py", "validation.py"} <= names


@pytest.mark.parametrize("path", _core_files(), ids=lambda p: p.name)
def test_core_module_is_pure(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    assert violations(source, _module_name(path), path.name == "__init__.py") == []


@pytest.mark.parametrize(
    "source",
    [
        "import asyncio",
        "from asyncio import sleep",
        "import sqlite3",
        "import grpc",
        "from aiohttp import web",
        "import easytask.store",
        "from easytask.scheduler import service",
        "from .. import store",
        "from ..rpc import convert",
        "from datetime import datetime\nx = datetime.now()",
        "import datetime\nx = datetime.datetime.now(datetime.UTC)",
        "from datetime import date\nx = date.today()",
        "import time\nx = time.time()",
        "import time\nx = time.monotonic()",
        "from time import time",
        "def f(loop):\n    return asyncio.get_running_loop()",
    ],
)
def test_checker_catches(source: str) -> None:
    assert violations(source, "easytask.core.example") != []


@pytest.mark.parametrize(
    "source",
    [
        "from __future__ import annotations",
        "import re, dataclasses\nfrom collections.abc import Callable",
        "from datetime import UTC, datetime\nx = datetime(2025, 1, 1, tzinfo=UTC)",
        "from zoneinfo import ZoneInfo",
        "from pydantic import BaseModel\nimport pydantic_core, annotated_types, typing_extensions",
        "from easytask.core.errors import FieldError",
        "from . import states\nfrom .states import RunState",
        "import time\nx = time.strftime('%H')",
        "class C:\n    def now(self) -> int:\n        return 0\nC().now()",
    ],
)
def test_checker_accepts(source: str) -> None:
    assert violations(source, "easytask.core.example") == []

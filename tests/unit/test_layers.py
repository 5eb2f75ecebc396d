"""The import structure of src/easytask: no cycle anywhere, and each layer imports only what
architecture.md allows (TYPE_CHECKING imports count: a cycle in types is a cycle in design)."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import easytask

SRC = Path(easytask.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, module: str, is_package: bool, known: Iterable[str]) -> set[str]:
    """The project modules ``source`` imports (``from pkg import mod`` names the module)."""
    known = set(known)
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - (node.level - 1 if is_package else node.level)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    return {m for m in found if m in known and m != module}


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in SRC.rglob("*.py")}
    return {
        name: imports_of(p.read_text(encoding="utf-8"), name, p.name == "__init__.py", paths)
        for name, p in paths.items()
    }


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle_under_src() -> None:
    assert cycles(import_graph()) == []


def test_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_type_checking_imports_count() -> None:
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from easytask.x import Y\n"
    assert imports_of(source, "easytask.z", False, {"easytask.x", "easytask.z"}) == {"easytask.x"}


# Who may import whom (architecture.md, "Dependency rule"). A module's imports must each start
# with one of its layer's allowed prefixes; the first matching layer (most specific) applies.
ROOT = "easytask"
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("easytask.core", ("easytask.core",)),
    ("easytask.store", ("easytask.core", "easytask.store")),
    # The composition roots wire concrete classes together: anything of the scheduler side.
    (
        "easytask.scheduler.service",
        (
            "easytask.core",
            "easytask.store",
            "easytask.scheduler",
            "easytask.rpc",
            "easytask.ui",
            ROOT,
        ),
    ),
    ("easytask.scheduler.main", ("easytask.core", "easytask.scheduler", ROOT)),
    # The application: core and the store's ports, never a concrete store or a transport.
    (
        "easytask.scheduler",
        ("easytask.core", "easytask.store.ports", "easytask.scheduler", ROOT),
    ),
    # Transports: the application's operations (SchedulerApp; the hub for agent streams).
    (
        "easytask.rpc",
        ("easytask.core", "easytask.rpc", "easytask.scheduler.app", "easytask.scheduler.hub", ROOT),
    ),
    ("easytask.ui", ("easytask.core", "easytask.ui", "easytask.scheduler.app", ROOT)),
    # The agent speaks core.protocol; its stream and conversions are rpc's.
    (
        "easytask.agentd",
        ("easytask.core", "easytask.agentd", "easytask.rpc.agent_client", ROOT),
    ),
    # The CLI is a client of the public API, as a client in any language would be.
    (
        "easytask.ctl",
        (
            "easytask.core",
            "easytask.ctl",
            "easytask.rpc.v1.api_pb2",
            "easytask.rpc.v1.api_pb2_grpc",
            ROOT,
        ),
    ),
]


def _layer(module: str) -> tuple[str, ...] | None:
    for prefix, allowed in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return allowed
    return None


def _allowed(target: str, allowed: tuple[str, ...]) -> bool:
    return any(
        target == a or target.startswith(a + ".") if a != ROOT else target == ROOT for a in allowed
    )


def layer_violations(graph: Mapping[str, set[str]]) -> list[str]:
    found = []
    for module, targets in sorted(graph.items()):
        allowed = _layer(module)
        if allowed is None or module.startswith("easytask.rpc.v1"):
            continue  # generated code, and the package root
        found += [f"{module} imports {t}" for t in sorted(targets) if not _allowed(t, allowed)]
    return found


def test_every_import_follows_the_layer_rule() -> None:
    assert layer_violations(import_graph()) == []


def test_the_layer_rule_catches_wrong_imports() -> None:
    graph = {
        "easytask.rpc.api": {"easytask.scheduler.engine", "easytask.scheduler.app"},
        "easytask.scheduler.runs": {"easytask.store.sqlite", "easytask.store.ports"},
        "easytask.agentd.session": {"easytask.rpc.v1.agent_pb2", "easytask.core.protocol"},
        "easytask.ctl.tasks": {"easytask.scheduler.app"},
        "easytask.store.sqlite": {"easytask.scheduler.bus"},
        "easytask.core.models": {"easytask.store"},
    }
    assert layer_violations(graph) == [
        "easytask.agentd.session imports easytask.rpc.v1.agent_pb2",
        "easytask.core.models imports easytask.store",
        "easytask.ctl.tasks imports easytask.scheduler.app",
        "easytask.rpc.api imports easytask.scheduler.engine",
        "easytask.scheduler.runs imports easytask.store.sqlite",
        "easytask.store.sqlite imports easytask.scheduler.bus",
    ]


def test_transports_call_the_application_not_what_is_behind_it() -> None:
    """rpc/ (and ui/) never reach through SchedulerApp into its private services."""
    reach = []
    for path in [*SRC.glob("rpc/*.py"), *SRC.glob("ui/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "_app"
            ):
                reach.append(f"{path.name}:{node.lineno} _app.{node.attr}")
    assert reach == []


def test_every_error_class_lives_in_core_errors_under_its_root() -> None:
    from easytask.core import errors

    defined_elsewhere = []
    for path in SRC.rglob("*.py"):
        if path.parent.name == "v1" or path == Path(errors.__file__):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.name.endswith(("Error", "Exception")):
                defined_elsewhere.append(f"{module_name(path)}.{node.name}")
    assert defined_elsewhere == []
    classes = [
        v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, BaseException)
    ]
    assert classes and all(issubclass(c, errors.EasyTaskError) for c in classes)

"""Property test: generated task and group documents, valid and hostile, through the real gRPC API.

Every call answers within its deadline with a deliberate status (never UNKNOWN or INTERNAL),
every refusal names a field, a refused record leaves the store as it was, and the scheduler
is healthy afterwards (issue 7).

The suite's normal run sends ``EASYTASK_PROPERTY_EXAMPLES`` documents per test (default 400,
so about 800 in all); the full count the issue asks for is
``EASYTASK_PROPERTY_EXAMPLES=5000 .venv/bin/pytest tests/integration/test_hostile_property.py``
(two tests, 10,000 documents).
"""

from __future__ import annotations

import json
import os
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from easytask.core.groups import GROUP_FIELDS
from easytask.core.models import TASK_FIELDS
from easytask.rpc.errors import FIELD_ERRORS_KEY
from easytask.rpc.v1 import api_pb2 as pb
from tests.integration.conftest import Harness

EXAMPLES = int(os.environ.get("EASYTASK_PROPERTY_EXAMPLES", "400"))
DEADLINE = 10.0
DELIBERATE = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
}

# Text with what breaks naive code: lone surrogates, NUL and other controls, huge strings.
hostile_chars = st.one_of(
    st.characters(codec="utf-8"),
    st.sampled_from(
        ["\x00", "\x01", "\x1b", "\x7f", "\t", "\n", "\ud800", "\udfff", "$", "{", "}"]
    ),
)
texts = st.one_of(
    st.text(hostile_chars, max_size=40),
    st.builds(lambda c, n: c * n, st.sampled_from(["A", "\udfff", "é"]), st.integers(60, 5000)),
)
GOOD_VALUES: dict[str, list[Any]] = {
    "cmd": ["true", "echo ${T:task_name}", "echo a\n\techo b"],
    "timezone": ["UTC", "Europe/Paris", "Mars/Olympus"],
    "trigger_times": ["08:00", "08:00,20:30", "25:00"],
    "day_of_week": ["1111100", "0000000", "11"],
    "run_frequency": ["15", "00:00-23:59/5"],
    "ordinal_day": ["1", "L", "-1"],
    "run_on_host": ["q1", "bad queue"],
    "misfire_policy": ["run_once", "skip", "bogus"],
    "profile": ["", "p"],
    "dependency": ["S:t1", "S:t1 and (", "F:g"],
}
leaves = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63), st.floats(), texts)
json_values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
odd_keys = st.sampled_from(["", "\udfff", "k" * 100, "tid\x00", "colour"])


def documents(fields: tuple[str, ...], base: dict[str, Any]) -> st.SearchStrategy[str]:
    """A valid record with some fields replaced by anything; sometimes raw hostile text."""
    field_values = st.one_of(
        st.sampled_from(fields).flatmap(
            lambda f: st.tuples(st.just(f), st.sampled_from(GOOD_VALUES.get(f, [None])))
        ),
        st.tuples(st.sampled_from(fields), json_values),
        st.tuples(odd_keys, json_values),
    )

    def build(name: str, changes: list[tuple[str, Any]]) -> str:
        doc = dict(base, name=name)
        doc.update(changes)
        return json.dumps(doc)

    names = st.text(st.sampled_from("abcxyz019_.-"), min_size=1, max_size=12)
    structured = st.builds(build, names, st.lists(field_values, max_size=4))
    raw = st.one_of(
        st.integers(30, 4000).map(lambda n: '{"name": ' + "[" * n + "]" * n + "}"),
        st.integers(30, 4000).map(lambda n: '{"alert": ' + '{"a":' * n + "1" + "}" * (n + 1)),
        structured.map(lambda d: d[: len(d) // 2]),
        st.text(hostile_chars, max_size=60),
    )
    return st.one_of(structured, structured, structured, raw)


TASK_BASE = {"cmd": "true", "run_on_host": "q1", "stdout": "/tmp/o", "stderr": "/tmp/e",
             "timezone": "UTC", "day_of_week": "1111111", "trigger_times": "12:00"}  # fmt: skip
GROUP_BASE = {"timezone": "UTC", "day_of_week": "1111111", "trigger_times": "12:00"}


async def _totals(h: Harness) -> tuple[int, int]:
    tasks = await h.api.ListTasks(pb.ListTasksRequest(per_page=1), metadata=h.md)
    groups = await h.api.ListGroups(pb.ListGroupsRequest(per_page=1), metadata=h.md)
    return tasks.total, groups.total


async def _check(h: Harness, call: Any, request: Any) -> None:
    """One call: a deliberate answer, the store unchanged by a refusal, the scheduler healthy."""
    await _answer(h, call, request)
    health = await h.api.Health(pb.HealthRequest(), metadata=h.md, timeout=DEADLINE)
    assert health.status == "HEALTHY"


async def _answer(h: Harness, call: Any, request: Any) -> None:
    before = await _totals(h)
    try:
        await call(request, metadata=h.md, timeout=DEADLINE)
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
        event(code.name)  # --hypothesis-show-statistics: how many of each answer
        assert code in DELIBERATE, f"{code}: {exc.details()}"
        if code is grpc.StatusCode.INVALID_ARGUMENT:
            payload = dict(exc.trailing_metadata() or ()).get(FIELD_ERRORS_KEY)
            assert payload, exc.details()
            entries = json.loads(payload)
            assert entries and all(e["field"] for e in entries), entries
        assert await _totals(h) == before
        return
    event("OK")
    after = await _totals(h)
    assert sum(after) == sum(before) + 1


def _settings() -> Any:
    return settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.large_base_example,
            HealthCheck.data_too_large,
        ],
    )


@pytest.mark.timeout(max(120, EXAMPLES // 10))
@_settings()
@given(doc=documents(TASK_FIELDS, TASK_BASE))
async def test_generated_task_documents(harness: Harness, doc: str) -> None:
    await _check(harness, harness.api.CreateTask, pb.CreateTaskRequest(task_json=doc))


@pytest.mark.timeout(max(120, EXAMPLES // 10))
@_settings()
@given(doc=documents(GROUP_FIELDS, GROUP_BASE))
async def test_generated_group_documents(harness: Harness, doc: str) -> None:
    await _check(harness, harness.api.CreateGroup, pb.CreateGroupRequest(group_json=doc))

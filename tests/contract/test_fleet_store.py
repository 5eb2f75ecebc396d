"""Fleet store contract: agent changes, agent tokens and ad-hoc results round-trip."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from easytask.core.records import AdhocResult, AgentChange, AgentToken
from easytask.store.ports import Store

T0 = datetime(2026, 5, 9, 12, 30, 0, 123000, tzinfo=UTC)


async def test_agent_changes_newest_first_per_agent(store: Store) -> None:
    fleet = store.fleet
    for i, (agent, status) in enumerate([("a", "ONLINE"), ("b", "ONLINE"), ("a", "OFFLINE")]):
        fleet.add_agent_change(AgentChange(agent, status, T0 + timedelta(seconds=i), "why"))
    await store.flush()
    changes = await fleet.agent_changes("a", 10)
    assert [(c.status, c.at) for c in changes] == [
        ("OFFLINE", T0 + timedelta(seconds=2)),
        ("ONLINE", T0),
    ]
    assert len(await fleet.agent_changes("a", 1)) == 1
    assert await fleet.agent_changes("nobody", 10) == []


async def test_adhoc_results_are_replaced_by_event_and_index(store: Store) -> None:
    fleet = store.fleet
    first = AdhocResult(7, 0, "a1", "h1", "default:adhoc-7-0")
    second = AdhocResult(7, 1, "a2", "h2", "default:adhoc-7-1")
    other = AdhocResult(8, 0, "a1", "h1", "default:adhoc-8-0")
    for r in (second, first, other):
        await fleet.save_adhoc_result(r)
    ended = T0 + timedelta(seconds=1)
    done = replace(first, state="SUCCESS", return_code=0, pid=42, started_at=T0, ended_at=ended,
                   stdout=b"\x00out\xff", stdout_cut=True)  # fmt: skip
    await fleet.save_adhoc_result(done)
    results = await fleet.adhoc_results(7)
    assert results == [done, second]
    assert [r.run_id for r in await fleet.unfinished_adhoc_results()] == [
        "default:adhoc-7-1",
        "default:adhoc-8-0",
    ]
    assert await fleet.adhoc_results(9) == []


async def test_agent_tokens_are_kept_touched_and_revoked(store: Store) -> None:
    fleet = store.fleet
    await fleet.save_agent_token(AgentToken("b", "hash-b", T0, "admin"))
    await fleet.save_agent_token(AgentToken("a", "hash-a", T0, "admin"))
    fleet.touch_agent_token("a", T0 + timedelta(minutes=1))
    await store.flush()
    tokens = await fleet.agent_tokens()
    assert [(t.name, t.last_used) for t in tokens] == [
        ("a", T0 + timedelta(minutes=1)),
        ("b", None),
    ]
    assert await fleet.delete_agent_token("a") is True
    assert await fleet.delete_agent_token("a") is False
    assert [t.name for t in await fleet.agent_tokens()] == ["b"]

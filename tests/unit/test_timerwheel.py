"""TimerWheel: ordering, replacement, cancellation and advance()."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from easytask.core.timerwheel import TimerWheel

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_advance_pops_due_entries_in_time_order() -> None:
    wheel: TimerWheel[str] = TimerWheel()
    wheel.schedule("b", at(2), "B")
    wheel.schedule("a", at(1), "A")
    wheel.schedule("c", at(3), "C")
    assert wheel.next_due() == at(1)
    assert wheel.advance(at(2)) == [("a", "A"), ("b", "B")]
    assert wheel.next_due() == at(3)
    assert len(wheel) == 1


def test_schedule_replaces_the_previous_deadline_of_a_key() -> None:
    wheel: TimerWheel[str] = TimerWheel()
    wheel.schedule("task", at(10), "old")
    wheel.schedule("task", at(5), "new")
    assert wheel.advance(at(7)) == [("task", "new")]
    assert wheel.advance(at(20)) == []
    assert wheel.next_due() is None


def test_cancel_removes_the_entry() -> None:
    wheel: TimerWheel[int] = TimerWheel()
    wheel.schedule(1, at(1))
    wheel.schedule(2, at(2))
    wheel.cancel(1)
    wheel.cancel(99)  # unknown keys are ignored
    assert 1 not in wheel and 2 in wheel
    assert wheel.advance(at(5)) == [(2, None)]


def test_equal_deadlines_fire_in_insertion_order() -> None:
    wheel: TimerWheel[int] = TimerWheel()
    for key in range(5):
        wheel.schedule(key, at(1))
    assert [k for k, _ in wheel.advance(at(1))] == [0, 1, 2, 3, 4]


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 1000)), max_size=200))
def test_matches_a_dict_of_last_deadlines(ops: list[tuple[int, int]]) -> None:
    wheel: TimerWheel[int] = TimerWheel()
    expected: dict[int, int] = {}
    for key, due in ops:
        wheel.schedule(key, at(due))
        expected[key] = due
    fired = wheel.advance(at(500))
    assert sorted(k for k, _ in fired) == sorted(k for k, d in expected.items() if d <= 500)
    dues = [wheel.due_of(k) for k, d in expected.items() if d > 500]
    assert all(d is not None and d > at(500) for d in dues)
    assert len(wheel) == sum(1 for d in expected.values() if d > 500)


def test_in_order_reads_live_entries_by_deadline_without_changing_the_wheel() -> None:
    rng = random.Random(7)
    wheel: TimerWheel[int] = TimerWheel()
    base = datetime(2026, 6, 1, tzinfo=UTC)
    for i in range(2000):
        key = rng.randrange(500)
        if rng.random() < 0.2:
            wheel.cancel(key)
        else:
            wheel.schedule(key, base + timedelta(seconds=rng.randrange(3600)), f"p{i}")
    listed = list(wheel.in_order())
    assert [due for _, due, _ in listed] == sorted(due for _, due, _ in listed)
    live = {k: (wheel.due_of(k), wheel.payload_of(k)) for k in range(500) if k in wheel}
    assert {k: (due, payload) for k, due, payload in listed} == live
    assert len(listed) == len(wheel)
    first_ten = []
    for item in wheel.in_order():  # lazily: the first few without walking the rest
        first_ten.append(item)
        if len(first_ten) == 10:
            break
    assert first_ten == listed[:10]
    fired = wheel.advance(base + timedelta(hours=2))
    assert [k for k, _ in fired] == [k for k, _, _ in listed]  # the same order as advance

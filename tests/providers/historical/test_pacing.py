"""The pacing limiter on a fake clock: each of IB's three rules, weights, and a property test."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algo_trader.providers.historical.pacing import PacingLimiter, PacingRules


class FakeClock:
    """Monotonic seconds that only ``sleep`` moves."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds
        await asyncio.sleep(0)


def limiter() -> tuple[PacingLimiter, FakeClock]:
    clock = FakeClock()
    return PacingLimiter(clock=clock, sleep=clock.sleep), clock


def acquire_all(lim: PacingLimiter, requests: list[tuple[Hashable, Hashable, int]]) -> list[float]:
    """Acquire one after another; the seconds each one waited."""

    async def go() -> list[float]:
        return [await lim.acquire(*r) for r in requests]

    return asyncio.run(go())


def test_a_free_request_goes_at_once():
    lim, clock = limiter()
    assert lim.delay("r", "c") == 0.0
    assert acquire_all(lim, [("r", "c", 1)]) == [0.0] and clock.t == 0.0


def test_an_identical_request_waits_15_s():
    lim, clock = limiter()
    waited = acquire_all(lim, [("r", "c", 1), ("other", "c2", 1), ("r", "c", 1)])
    assert waited[:2] == [0.0, 0.0]
    assert waited[2] == pytest.approx(15.0, abs=0.01) and clock.t >= 15.0


def test_the_sixth_request_on_a_contract_waits_for_the_2_s_window():
    lim, _ = limiter()
    waited = acquire_all(lim, [(i, "c", 1) for i in range(6)])
    assert waited[:5] == [0.0] * 5
    assert waited[5] == pytest.approx(2.0, abs=0.01)
    assert acquire_all(lim, [("x", "another contract", 1)]) == [0.0]


def test_the_61st_request_waits_for_the_10_minute_window():
    lim, _ = limiter()
    waited = acquire_all(lim, [(i, f"contract {i}", 1) for i in range(61)])
    assert waited[:60] == [0.0] * 60
    assert waited[60] == pytest.approx(600.0, abs=0.01)


def test_bid_ask_counts_twice():
    lim, _ = limiter()
    waited = acquire_all(lim, [(1, "c", 2), (2, "c", 2), (3, "c", 1), (4, "c", 1)])
    assert waited[:3] == [0.0, 0.0, 0.0]  # 2 + 2 + 1 = 5 fit in the window
    assert waited[3] == pytest.approx(2.0, abs=0.01)


def test_a_request_heavier_than_the_limits_is_refused():
    lim, _ = limiter()
    with pytest.raises(ValueError, match="weight 6"):
        acquire_all(lim, [("r", "c", 6)])


def _check_rules(records: list[tuple[float, Hashable, Hashable, int]], rules: PacingRules) -> None:
    last: dict[Hashable, float] = {}
    per_contract: dict[Hashable, list[float]] = {}
    total: list[float] = []
    for at, request, contract, weight in sorted(records, key=lambda r: r[0]):
        assert request not in last or at - last[request] >= rules.identical_gap
        last[request] = at
        per_contract.setdefault(contract, []).extend([at] * weight)
        total.extend([at] * weight)
    for times in per_contract.values():
        n, window = rules.per_contract, rules.per_contract_window
        assert all(b - a >= window for a, b in zip(times, times[n:], strict=False))
    n, window = rules.total, rules.total_window
    assert all(b - a >= window for a, b in zip(total, total[n:], strict=False))


request_strategy = st.tuples(
    st.floats(0.0, 30.0),  # start offset
    st.integers(0, 8),  # request id (repeats are identical requests)
    st.integers(0, 2),  # contract
    st.sampled_from([1, 1, 1, 2]),  # weight (2 = BID_ASK)
)


@settings(max_examples=60, deadline=None)
@given(st.lists(request_strategy, min_size=1, max_size=90))
def test_concurrent_requests_never_break_a_rule(plan: list[tuple[float, int, int, int]]):
    lim, clock = limiter()
    records: list[tuple[float, Hashable, Hashable, int]] = []

    async def one(offset: float, request: int, contract: int, weight: int) -> None:
        await clock.sleep(offset)
        await lim.acquire((request, contract), contract, weight)
        records.append((clock(), (request, contract), contract, weight))

    async def go() -> None:
        await asyncio.gather(*(one(*p) for p in plan))

    asyncio.run(go())
    assert len(records) == len(plan)
    _check_rules(records, lim.rules)

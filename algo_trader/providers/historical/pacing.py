"""IB's historical-data pacing rules as a limiter that sleeps just long enough.

Interactive Brokers answers a request that breaks its pacing rules with error 162
"Historical data request pacing violation" (and, repeated, with a temporary ban). The rules,
from IB's "Historical Data Limitations" page (TWS API reference, section "Pacing
Violations for Small Bars"):

* no identical historical data request within 15 seconds;
* "six or more historical data requests for the same Contract, Exchange and Tick Type
  within two seconds" is a violation, so at most five;
* no more than 60 requests in any ten-minute period;
* a ``BID_ASK`` request counts twice.

IB states them for bars of 30 seconds or less and calls the rest a soft limit; the limiter
applies them to every request because a violation costs far more than the wait.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

# Sleep this much past the computed limit so that float rounding of ``t + window - now`` can
# never leave a request exactly on the edge of a window (and the loop spinning on 1e-16 s).
_SLACK = 1e-3


@dataclass(frozen=True)
class PacingRules:
    """The three limits, in seconds and request counts."""

    identical_gap: float = 15.0
    per_contract: int = 5
    per_contract_window: float = 2.0
    total: int = 60
    total_window: float = 600.0


DEFAULT_RULES = PacingRules()


def _window_wait(times: deque[float], limit: int, window: float, weight: int, now: float) -> float:
    """Seconds until ``weight`` more requests fit in a rolling ``window`` holding ``times``."""
    # ``times`` is sorted, so the requests still counting (``now - t < window``) are a suffix.
    first = next((i for i, t in enumerate(times) if now - t < window), len(times))
    recent = len(times) - first
    excess = recent + weight - limit
    if excess <= 0:
        return 0.0
    oldest_to_expire = times[len(times) - recent + excess - 1]
    return oldest_to_expire + window - now


class PacingLimiter:
    """Spaces requests so that none breaks :class:`PacingRules`.

    Parameters
    ----------
    rules
        The limits to keep.
    clock
        Monotonic seconds (``time.monotonic``); tests pass a fake clock.
    sleep
        Awaitable sleep (``asyncio.sleep``); a fake clock's sleep advances it.
    """

    def __init__(
        self,
        rules: PacingRules = DEFAULT_RULES,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rules = rules
        self._clock = clock
        self._sleep = sleep
        self._last: dict[Hashable, float] = {}
        self._per_contract: dict[Hashable, deque[float]] = {}
        self._all: deque[float] = deque()

    def delay(self, request: Hashable, contract: Hashable, weight: int = 1) -> float:
        """Seconds to wait before ``request`` on ``contract`` may go out (0 when it may now).

        ``request`` identifies the request completely (contract, end, duration, bar size,
        what to show, RTH); ``contract`` is the contract, exchange and tick type it counts
        against; ``weight`` is 2 for ``BID_ASK``.
        """
        rules, now = self.rules, self._clock()
        last = self._last.get(request)
        # Same predicate as the windows (``now - t < limit``), so a check after sleeping agrees
        # with the one that decided to sleep, to the last bit.
        too_soon = last is not None and now - last < rules.identical_gap
        identical = last + rules.identical_gap - now if last is not None and too_soon else 0.0
        same = self._per_contract.get(contract, deque())
        return max(
            0.0,
            identical,
            _window_wait(same, rules.per_contract, rules.per_contract_window, weight, now),
            _window_wait(self._all, rules.total, rules.total_window, weight, now),
        )

    async def acquire(self, request: Hashable, contract: Hashable, weight: int = 1) -> float:
        """Wait until ``request`` may go out, then count it as sent; returns seconds waited."""
        if weight > min(self.rules.per_contract, self.rules.total):
            raise ValueError(f"a request of weight {weight} can never fit the pacing rules")
        waited = 0.0
        # Re-check after every sleep: other coroutines may have taken the slot meanwhile.
        while (wait := self.delay(request, contract, weight)) > 0:
            await self._sleep(wait + _SLACK)
            waited += wait + _SLACK
        self._record(request, contract, weight)
        return waited

    def _record(self, request: Hashable, contract: Hashable, weight: int) -> None:
        now = self._clock()
        self._last[request] = now
        same = self._per_contract.setdefault(contract, deque())
        for times, window in (
            (same, self.rules.per_contract_window),
            (self._all, self.rules.total_window),
        ):
            times.extend([now] * weight)
            while times and now - times[0] >= window:
                times.popleft()
        # Identical-request memory only matters for ``identical_gap``; drop older entries.
        if len(self._last) > 4 * self.rules.total:
            cutoff = now - self.rules.identical_gap
            self._last = {k: t for k, t in self._last.items() if t > cutoff}

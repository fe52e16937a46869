"""Weekly OHLC and close-to-close weekly returns.

Weeks start Monday 00:00 UTC. An asset's weekly open is the open of its first Mon-Fri bar
in the week (Monday when it has one), its close the close of its last (Friday when it has
one). The return at week ``w`` compares with the calendar week immediately before, so the
weekend gap is included (that is what holding the asset earns) and a week after a gap, or
an asset's first week, is missing rather than spanning the gap.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from algo_trader.application.data_cleaning.periods import (
    PeriodBars,
    StackedBars,
    aggregate_periods,
    week_numbers,
)

ReturnType = Literal["simple", "log"]
RETURN_TYPES: tuple[ReturnType, ...] = ("simple", "log")

LABEL_RULE = (
    "weeks start Monday 00:00 UTC; Mon-Fri bars only; each week is labelled with the latest "
    "bar timestamp in it across all assets"
)


def weekly_bars(stacked: StackedBars) -> PeriodBars:
    """Weekly OHLCV of every asset; rows = weeks in which at least one asset has a bar."""
    return aggregate_periods(stacked, week_numbers(stacked.ts))


def weekly_returns(weekly: PeriodBars, return_type: ReturnType) -> np.ndarray:
    """``(weeks, assets)`` close-to-close returns against the previous calendar week.

    Parameters
    ----------
    weekly
        Output of :func:`weekly_bars`.
    return_type
        ``simple``: ``C_w / C_{w-1} - 1``; ``log``: ``log C_w - log C_{w-1}``.

    Returns
    -------
    numpy.ndarray
        NaN where either close is missing or week ``w - 1`` has no row at all.
    """
    if return_type not in RETURN_TYPES:
        raise ValueError(f"return_type {return_type!r} is not one of {', '.join(RETURN_TYPES)}")
    close = weekly.close
    previous = np.full_like(close, np.nan)
    # Row i-1 is the previous calendar week only when the week numbers are adjacent.
    adjacent = np.diff(weekly.periods) == 1
    previous[1:][adjacent] = close[:-1][adjacent]
    if return_type == "simple":
        return close / previous - 1.0
    return np.log(close) - np.log(previous)

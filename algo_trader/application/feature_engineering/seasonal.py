"""Seasonal group: day-of-week means of daily log returns over the last 26 weeks.

Per asset, ``r_d = log C_d - log C_prev`` over the asset's valid daily bars (missing days
dropped: after a Monday holiday, Tuesday's return spans Friday to Tuesday and counts as a
Tuesday). At weekly label ``t`` the window is the 26 calendar weeks ending with ``t``'s week
(:mod:`.sampling`; ``t`` is its week's last bar, so that week is complete), Mon-Fri only.

Outputs (key -> columns)
    ``dow_alpha`` -> ``dow_alpha_Mon_26w``, ``dow_alpha_Fri_26w``: the mean of the window's
    Monday (Friday) returns.
    ``dow_spread`` -> ``dow_spread_26w``: max minus min of the five weekday means.

Choices the spec leaves open
    * A weekday mean needs at least 13 of its 26 possible returns (half), else NaN;
      ``dow_spread`` needs all five weekday means.
    * Goodness (``valid / horizon``): a weekday's valid returns / 26; for the spread, the
      smallest of the five.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from algo_trader.application.feature_engineering.daily_kernels import (
    DailyReturns,
    prefix_sums,
    window_sums,
)
from algo_trader.application.feature_engineering.inputs import FeatureInputs, GroupResult
from algo_trader.application.feature_engineering.registry import FeatureGroup, register_group
from algo_trader.application.feature_engineering.sampling import (
    MIN_COVERAGE,
    DailyColumn,
    daily_result,
)

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri")
HORIZON_WEEKS = 26
ALPHA_DAYS = ("Mon", "Fri")


def weekday_means(daily: DailyReturns, weeks: int) -> tuple[np.ndarray, np.ndarray]:
    """Per weekly label and asset, each weekday's mean return over ``weeks`` weeks.

    Returns
    -------
    tuple of numpy.ndarray
        ``(means, counts)``, each ``(T_w, A, 5)`` (Mon..Fri); a mean is NaN with fewer than
        half its ``weeks`` returns.
    """
    weekday = np.asarray(daily.inputs.daily_index.day_of_week)
    one_hot = (weekday[:, None] == np.arange(len(WEEKDAYS))[None, :]).astype(np.float64)
    valid = ~np.isnan(daily.returns)
    r = np.where(valid, daily.returns, 0.0)
    parts = np.concatenate(
        [valid[:, :, None] * one_hot[:, None, :], r[:, :, None] * one_hot[:, None, :]], axis=2
    )  # (T_d, A, 10): weekday counts, weekday sums
    sums = window_sums(prefix_sums(parts), daily.windows(weeks))
    counts, totals = sums[:, :, : len(WEEKDAYS)], sums[:, :, len(WEEKDAYS) :]
    with np.errstate(invalid="ignore", divide="ignore"):
        means = totals / counts
    min_count = int(np.ceil(MIN_COVERAGE * weeks))
    return np.where(counts >= min_count, means, np.nan), counts


def dow_alpha(means: np.ndarray, counts: np.ndarray) -> list[DailyColumn]:
    """``dow_alpha_Mon_26w``, ``dow_alpha_Fri_26w`` from :func:`weekday_means`."""
    return [
        DailyColumn(
            f"dow_alpha_{day}_{HORIZON_WEEKS}w",
            means[:, :, WEEKDAYS.index(day)],
            counts[:, :, WEEKDAYS.index(day)] / HORIZON_WEEKS,
        )
        for day in ALPHA_DAYS
    ]


def dow_spread(means: np.ndarray, counts: np.ndarray) -> list[DailyColumn]:
    """``dow_spread_26w``: max minus min weekday mean (NaN unless all five are present)."""
    complete = ~np.isnan(means).any(axis=2)
    filled = np.where(complete[:, :, None], means, 0.0)
    spread = np.where(complete, filled.max(axis=2) - filled.min(axis=2), np.nan)
    return [DailyColumn(f"dow_spread_{HORIZON_WEEKS}w", spread, counts.min(axis=2) / HORIZON_WEEKS)]


BUILDERS: dict[str, Callable[[np.ndarray, np.ndarray], list[DailyColumn]]] = {
    "dow_alpha": dow_alpha,
    "dow_spread": dow_spread,
}


def compute(inputs: FeatureInputs, keys: Sequence[str]) -> GroupResult:
    """The selected seasonal keys on the weekly index (``valid / horizon`` goodness)."""
    means, counts = weekday_means(DailyReturns(inputs), HORIZON_WEEKS)
    return daily_result([col for key in keys for col in BUILDERS[key](means, counts)])


GROUP = register_group(FeatureGroup("seasonal", tuple(BUILDERS), compute, uses_daily=True))

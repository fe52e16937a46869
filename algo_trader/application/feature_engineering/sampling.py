"""Daily rows -> weekly labels, without look-ahead.

Two rules map the daily panel onto the weekly index (both only read daily labels ``<= t``):

Point sampling
    The value at weekly label ``t`` is the daily value at the last daily label ``<= t``
    (:func:`week_end_rows`, :func:`sample_last_valid`).

Horizon windows
    A horizon of ``h`` weeks ending at weekly label ``t`` is the set of daily rows whose
    label falls in the last ``h`` *calendar* weeks ending with ``t``'s week: from Monday
    00:00 UTC of the week ``h - 1`` weeks before ``t``'s week, up to and including ``t``
    (:func:`daily_windows`). Calendar windows (rather than "the last ``5h`` rows") keep a
    holiday or an asset's missing day from stretching the window back in time, so a value
    never reads data older than its horizon; the horizon's nominal size is
    ``DAYS_TO_WEEKS * h`` trading days, and ``valid / (DAYS_TO_WEEKS * h)`` is the data-quality
    ratio (goodness) the daily groups report. ``t``'s own week counts as completed because
    the weekly label is the latest bar of its week (data lake contract).

``DAYS_TO_WEEKS`` is the horizon mapping recorded in every group's ``metadata.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from algo_trader.application.feature_engineering.inputs import GroupResult

DAYS_TO_WEEKS = 5  # nominal trading days (Mon-Fri) per calendar week
MIN_COVERAGE = 0.5  # a window statistic needs at least this share of its nominal days


@dataclass(frozen=True)
class DailyWindows:
    """Daily row ranges ``[start, end)`` of one horizon, one per weekly label.

    Attributes
    ----------
    weeks
        The horizon ``h`` in weeks.
    start, end
        ``(T_w,)`` int64: first daily row of the window and one past its last row (the
        number of daily labels ``<= t``). ``start == end`` for an empty window.
    """

    weeks: int
    start: np.ndarray
    end: np.ndarray

    @property
    def horizon_days(self) -> int:
        """Nominal number of trading days in the horizon (``DAYS_TO_WEEKS * weeks``)."""
        return DAYS_TO_WEEKS * self.weeks

    @property
    def length(self) -> int:
        """Rows of the longest window: the nominal size unless a window holds more rows.

        Only daily indexes with weekend rows (outside the data lake contract) can exceed
        it; a fixed length keeps gathered windows the same shape on truncated inputs.
        """
        longest = int((self.end - self.start).max()) if self.end.size else 0
        return max(self.horizon_days, longest)

    @property
    def min_count(self) -> int:
        """Fewest valid observations a window statistic is computed from (at least 2)."""
        return max(2, int(np.ceil(MIN_COVERAGE * self.horizon_days)))


def week_end_rows(daily_index: pd.DatetimeIndex, weekly_index: pd.DatetimeIndex) -> np.ndarray:
    """Per weekly label ``t``, the number of daily labels ``<= t`` (``end`` of its windows)."""
    return np.asarray(daily_index.searchsorted(weekly_index, side="right"), dtype=np.int64)


def week_starts(weekly_index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Monday 00:00 UTC of the calendar week of each weekly label."""
    midnight = weekly_index.normalize()
    return midnight - pd.to_timedelta(weekly_index.day_of_week, unit="D")


def daily_windows(
    daily_index: pd.DatetimeIndex, weekly_index: pd.DatetimeIndex, weeks: int
) -> DailyWindows:
    """The daily rows of the last ``weeks`` calendar weeks ending at each weekly label.

    Parameters
    ----------
    daily_index, weekly_index
        Sorted UTC labels.
    weeks
        Horizon ``h >= 1``.
    """
    if weeks < 1:
        raise ValueError(f"weeks must be >= 1, got {weeks}")
    first_day = week_starts(weekly_index) - pd.Timedelta(days=7 * (weeks - 1))
    start = np.asarray(daily_index.searchsorted(first_day, side="left"), dtype=np.int64)
    end = week_end_rows(daily_index, weekly_index)
    return DailyWindows(weeks, np.minimum(start, end), end)


def last_valid_rows(valid: np.ndarray) -> np.ndarray:
    """Per row and column, the latest row ``<=`` it where ``valid`` is True (-1 if none)."""
    rows = np.where(valid, np.arange(valid.shape[0])[:, None], -1)
    return np.maximum.accumulate(rows, axis=0)


def sample_last_valid(values: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Per weekly label and asset, the asset's latest non-NaN daily value at a row ``< end``.

    Parameters
    ----------
    values
        ``(T_d, A)`` daily values, NaN = missing (the asset has no bar that day).
    end
        ``(T_w,)`` from :func:`week_end_rows`.

    Returns
    -------
    numpy.ndarray
        ``(T_w, A)``; NaN where the asset has no value yet. Callers bound staleness with
        a window count (a value is stale when its window holds too few valid days).
    """
    out = np.full((end.size, values.shape[1]), np.nan)
    if values.shape[0] == 0:
        return out
    latest = last_valid_rows(~np.isnan(values))  # (T_d, A)
    has_row = end > 0
    rows = latest[end[has_row] - 1]  # (T_w', A)
    picked = np.take_along_axis(values, np.maximum(rows, 0), axis=0)
    out[has_row] = np.where(rows >= 0, picked, np.nan)
    return out


class DailyColumn(NamedTuple):
    """One daily-input feature on the weekly index: name, values and goodness, ``(T_w, A)``.

    ``values`` is NaN where the feature is missing; ``goodness`` is ``valid / horizon``.
    """

    name: str
    values: np.ndarray
    goodness: np.ndarray


def daily_result(columns: list[DailyColumn]) -> GroupResult:
    """Stack daily-input feature columns into a :class:`GroupResult`.

    Goodness is clipped to [0, 1] and is 0 (never NaN) where nothing was valid.
    """
    values = np.stack([c.values for c in columns], axis=2)
    goodness = np.stack([np.nan_to_num(c.goodness, nan=0.0) for c in columns], axis=2)
    return GroupResult([c.name for c in columns], values, np.clip(goodness, 0.0, 1.0))

"""Stack bar frames of many assets and aggregate them into calendar periods in one pass.

All assets go into one long set of arrays sorted by (asset, time). A period key (ISO week
or UTC day, as an integer) is computed for every bar; because bars are sorted inside each
asset, the bars of one (asset, period) pair are contiguous, so open/high/low/close/volume
of every pair come out of a handful of ``np.*.reduceat`` calls - no loop over periods.
The result is a dense ``periods x assets x fields`` array (NaN = the asset has no bar in
that period) with one label per period: the latest bar timestamp in it across all assets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from algo_trader.domain.market_data.bars import BAR_COLUMNS
from algo_trader.infrastructure.data.atomic import UTC_FORMAT

DAY_NS = 86_400 * 10**9
# 1970-01-01 was a Thursday: shifting day numbers by 3 makes Monday weekday 0 and makes
# ``(day + 3) // 7`` change exactly at Monday 00:00 UTC.
_MONDAY_SHIFT = 3


def day_numbers(ts_ns: np.ndarray) -> np.ndarray:
    """UTC calendar day of each int64-ns timestamp, as days since 1970-01-01."""
    return np.floor_divide(ts_ns, DAY_NS)


def weekdays(ts_ns: np.ndarray) -> np.ndarray:
    """Weekday of each timestamp in UTC: Monday = 0 ... Sunday = 6."""
    return (day_numbers(ts_ns) + _MONDAY_SHIFT) % 7


def week_numbers(ts_ns: np.ndarray) -> np.ndarray:
    """Calendar week (from Monday 00:00 UTC) of each timestamp; consecutive weeks differ by 1."""
    return np.floor_divide(day_numbers(ts_ns) + _MONDAY_SHIFT, 7)


@dataclass(frozen=True)
class StackedBars:
    """Mon-Fri bars of every asset in one set of arrays, sorted by (asset, time)."""

    assets: tuple[str, ...]
    codes: np.ndarray  # int64 (n,): index into ``assets``
    ts: np.ndarray  # int64 (n,): ns since the epoch, UTC
    values: np.ndarray  # float64 (n, 5): open, high, low, close, volume


def stack_bars(frames: Mapping[str, pd.DataFrame]) -> StackedBars:
    """Stack per-asset bar frames (the bar frame contract) and drop weekend bars.

    Parameters
    ----------
    frames
        ``{asset: bars}``; each frame indexed by a sorted, unique, tz-aware UTC index with
        columns ``open, high, low, close, volume``.

    Returns
    -------
    StackedBars
        Assets in sorted order; only bars stamped Monday to Friday (UTC).
    """
    assets = tuple(sorted(frames))
    parts = [frames[a] for a in assets]
    stamps = [np.empty(0, np.int64)]
    blocks = [np.empty((0, len(BAR_COLUMNS)))]
    # One pass per asset only to collect its arrays; all the work below is on the stack.
    for asset, frame in zip(assets, parts, strict=True):
        index = frame.index
        if not isinstance(index, pd.DatetimeIndex) or str(index.tz) != "UTC":
            raise ValueError(f"{asset}: bars must be indexed by a tz-aware UTC DatetimeIndex")
        stamps.append(index.as_unit("ns").asi8)
        blocks.append(frame.loc[:, list(BAR_COLUMNS)].to_numpy(np.float64))
    ts = np.concatenate(stamps).astype(np.int64, copy=False)
    values = np.concatenate(blocks)
    codes = np.repeat(np.arange(len(assets), dtype=np.int64), [len(f) for f in parts])
    # Sortedness inside each asset is what makes one (asset, period) group contiguous.
    same_asset = codes[1:] == codes[:-1]
    if np.any(same_asset & (ts[1:] <= ts[:-1])):
        bad = assets[int(codes[1:][same_asset & (ts[1:] <= ts[:-1])][0])]
        raise ValueError(f"{bad}: bars must be sorted by time with unique timestamps")
    keep = weekdays(ts) < 5
    return StackedBars(assets, codes[keep], ts[keep], values[keep])


@dataclass(frozen=True)
class PeriodBars:
    """OHLCV per (period, asset); rows are only the periods in which some asset has a bar."""

    assets: tuple[str, ...]
    periods: np.ndarray  # int64 (P,): period numbers, increasing
    labels: pd.DatetimeIndex  # (P,): latest bar timestamp of the period across all assets
    values: np.ndarray  # float64 (P, A, 5); NaN where the asset has no bar in the period

    @property
    def close(self) -> np.ndarray:
        return self.values[:, :, BAR_COLUMNS.index("close")]

    @property
    def missing(self) -> np.ndarray:
        """``(P, A)`` bool: the asset has no bar in the period."""
        return np.isnan(self.close)


def _nan_sum(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per-group sum ignoring NaN; NaN where the whole group is NaN."""
    present = ~np.isnan(values)
    total = np.add.reduceat(np.where(present, values, 0.0), starts)
    counts = np.add.reduceat(present.astype(np.int64), starts)
    return np.where(counts > 0, total, np.nan)


def aggregate_periods(stacked: StackedBars, period: np.ndarray) -> PeriodBars:
    """Aggregate stacked bars into ``period`` groups (one integer key per bar).

    ``period`` must be non-decreasing in time (week or day numbers are). Per group: open
    of the first bar, max high, min low, close of the last bar, volume summed.
    """
    n_assets = len(stacked.assets)
    if len(stacked.ts) == 0:
        empty = pd.DatetimeIndex([], tz="UTC", name="timestamp")
        return PeriodBars(
            stacked.assets, np.empty(0, np.int64), empty, np.empty((0, n_assets, len(BAR_COLUMNS)))
        )
    codes, vals = stacked.codes, stacked.values
    change = (codes[1:] != codes[:-1]) | (period[1:] != period[:-1])
    starts = np.flatnonzero(np.r_[True, change])
    ends = np.r_[starts[1:], len(codes)] - 1
    group_ohlcv = np.column_stack(
        [
            vals[starts, 0],
            np.maximum.reduceat(vals[:, 1], starts),
            np.minimum.reduceat(vals[:, 2], starts),
            vals[ends, 3],
            _nan_sum(vals[:, 4], starts),
        ]
    )
    periods, row = np.unique(period[starts], return_inverse=True)
    col = codes[starts]
    dense = np.full((len(periods), n_assets, len(BAR_COLUMNS)), np.nan)
    dense[row, col] = group_ohlcv
    last = np.full((len(periods), n_assets), np.iinfo(np.int64).min)
    last[row, col] = stacked.ts[ends]
    labels = pd.DatetimeIndex(pd.to_datetime(last.max(axis=1), utc=True), name="timestamp")
    return PeriodBars(stacked.assets, periods, labels, dense)


def ohlc_frame(bars: PeriodBars) -> pd.DataFrame:
    """The contract's wide frame: MultiIndex columns (``asset``, ``field``), index ``timestamp``."""
    columns = pd.MultiIndex.from_product([bars.assets, BAR_COLUMNS], names=["asset", "field"])
    flat = bars.values.reshape(len(bars.periods), len(bars.assets) * len(BAR_COLUMNS))
    return pd.DataFrame(flat, index=bars.labels, columns=columns)


def iso_labels(bars: PeriodBars) -> np.ndarray:
    """Period labels as ISO 8601 UTC strings (the project's CSV/JSON timestamp format)."""
    return np.asarray(bars.labels.strftime(UTC_FORMAT), dtype=object)


def missing_labels(bars: PeriodBars) -> dict[str, list[str]]:
    """``{asset: [ISO labels of the periods where it has no bar]}`` for every asset."""
    missing, iso = bars.missing, iso_labels(bars)
    return {a: iso[missing[:, j]].tolist() for j, a in enumerate(bars.assets)}

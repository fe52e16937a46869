"""The feature stage's inputs: weekly and daily OHLC panels read from the data lake.

The data lake (see the data lake contract) holds ``weekly_ohlc.csv`` and ``daily_ohlc.csv``,
both with MultiIndex columns ``(asset, field)``. This module turns them into dense
``(T, A)`` float64 arrays per field (NaN = missing), one column per asset in the same
order for both frequencies, so that every feature kernel works on whole arrays.

Missing weekly OHLC
    Inside an asset's *trading span* (from its first to its last week with any OHLC value)
    every weekly open/high/low/close must be present; a gap raises :class:`DataError`
    naming the asset, the week, the file line and the field. Weeks before an asset's first
    bar (it starts later) or after its last bar (it stopped trading) are simply missing: the
    features there are NaN and the missing mask says so. Volume may be missing (some
    sources have none) and no weekly feature uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from algo_trader.application.feature_engineering.kernels import window_missing_ratio
from algo_trader.domain.errors import DataError

FIELDS = ("open", "high", "low", "close", "volume")
PRICE_FIELDS = ("open", "high", "low", "close")
WEEKLY_FILE = "weekly_ohlc.csv"
DAILY_FILE = "daily_ohlc.csv"
# to_csv of a frame with 2 column levels writes 2 header lines plus an index-name line.
_FIRST_DATA_LINE = 4


@dataclass(frozen=True)
class FeatureInputs:
    """Weekly and daily OHLC panels of the same assets.

    Attributes
    ----------
    assets
        Asset names, the column order of every array.
    weekly_index
        UTC weekly labels (the latest bar timestamp of each calendar week).
    weekly
        ``open, high, low, close, volume`` -> ``(T_w, A)`` float64, NaN = missing.
    daily_index
        UTC daily labels.
    daily
        Same fields as ``weekly``, ``(T_d, A)``.
    """

    assets: list[str]
    weekly_index: pd.DatetimeIndex
    weekly: dict[str, np.ndarray]
    daily_index: pd.DatetimeIndex
    daily: dict[str, np.ndarray]


@dataclass(frozen=True)
class GroupResult:
    """What one feature group computes, on the weekly index.

    Attributes
    ----------
    names
        Output column names (spec names, e.g. ``z_mom_4w``).
    values
        ``(T_w, A, F)`` float64; NaN = missing (warm-up, asset not trading...).
    goodness
        ``(T_w, A, F)`` float64 data-quality ratio in [0, 1]: ``missing / horizon`` for the
        weekly groups, ``valid / horizon`` for the daily ones (the spec's goodness.json rule).
    """

    names: list[str]
    values: np.ndarray
    goodness: np.ndarray

    def __post_init__(self) -> None:
        expected = (*self.values.shape[:2], len(self.names))
        if self.values.ndim != 3 or self.values.shape != expected:
            raise ValueError(f"values shape {self.values.shape} != (T, A, {len(self.names)})")
        if self.goodness.shape != self.values.shape:
            raise ValueError(f"goodness shape {self.goodness.shape} != {self.values.shape}")


class WeeklyColumn(NamedTuple):
    """One weekly feature before assembly: its name, ``(T, A)`` values and lookback.

    ``lookback`` is the number of weekly rows (ending at ``t``) the value at ``t`` reads.
    """

    name: str
    values: np.ndarray
    lookback: int


def weekly_result(columns: list[WeeklyColumn], close: np.ndarray) -> GroupResult:
    """Stack weekly columns into a :class:`GroupResult` with ``missing / horizon`` goodness.

    A weekly feature is produced only from a complete window: wherever any of its
    ``lookback`` rows lacks a weekly bar (warm-up, an asset starting later or one that has
    stopped trading) the value is NaN, and goodness says what share of the window is missing.
    """
    valid = ~np.isnan(close)
    shape = (*close.shape, len(columns))
    values = np.empty(shape)
    goodness = np.empty(shape)
    for i, column in enumerate(columns):
        ratio = window_missing_ratio(valid, column.lookback)
        goodness[:, :, i] = ratio
        values[:, :, i] = np.where(ratio == 0.0, column.values, np.nan)
    return GroupResult([c.name for c in columns], values, goodness)


def _panel_from_frame(
    frame: pd.DataFrame, assets: list[str], path: Path
) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray]]:
    """Split a ``(asset, field)`` frame into one ``(T, A)`` array per field."""
    if frame.columns.nlevels != 2:
        raise DataError("expected 2 header rows (asset, field)", path=path)
    fields = set(frame.columns.get_level_values(1))
    unknown = sorted(fields - set(FIELDS))
    if unknown:
        raise DataError(
            f"unknown field(s); valid: {', '.join(FIELDS)}", path=path, line=2, value=unknown
        )
    have = set(frame.columns.get_level_values(0))
    absent = [a for a in assets if a not in have]
    if absent:
        raise DataError(
            f"asset(s) missing from the header; expected {assets}", path=path, line=1, value=absent
        )
    arrays: dict[str, np.ndarray] = {}
    for field in FIELDS:
        cols = pd.MultiIndex.from_product([assets, [field]])
        block = frame.reindex(columns=cols)
        arrays[field] = np.ascontiguousarray(block.to_numpy(dtype=np.float64))
    return pd.DatetimeIndex(frame.index), arrays


def _read_panel_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError("file not found; run data_cleaning first", path=path)
    frame = pd.read_csv(path, header=[0, 1], index_col=0)
    try:
        frame.index = pd.to_datetime(frame.index, utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise DataError(f"bad timestamp in column 'timestamp': {exc}", path=path) from None
    frame.index.name = "timestamp"
    if not frame.index.is_monotonic_increasing or frame.index.has_duplicates:
        raise DataError("timestamps must be sorted and unique", path=path, column="timestamp")
    bad = frame.apply(pd.to_numeric, errors="coerce").isna() & frame.notna()
    if bad.to_numpy().any():
        row, col = np.argwhere(bad.to_numpy())[0]
        raise DataError(
            "not a number",
            path=path,
            line=_FIRST_DATA_LINE + int(row),
            column="/".join(frame.columns[col]),
            value=frame.iat[row, col],
        )
    return frame.astype(np.float64)


def inputs_from_frames(weekly: pd.DataFrame, daily: pd.DataFrame) -> FeatureInputs:
    """Build :class:`FeatureInputs` from two ``(asset, field)`` frames (UTC index).

    The asset order is that of ``weekly``'s first column level; ``daily`` is reordered to it.
    """
    assets = list(dict.fromkeys(str(a) for a in weekly.columns.get_level_values(0)))
    w_index, w_arrays = _panel_from_frame(weekly, assets, Path(WEEKLY_FILE))
    d_index, d_arrays = _panel_from_frame(daily, assets, Path(DAILY_FILE))
    return FeatureInputs(assets, w_index, w_arrays, d_index, d_arrays)


def trading_span(close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per asset, the first and last row with a value (``-1`` when it has none).

    Parameters
    ----------
    close
        ``(T, A)`` array, NaN = missing.
    """
    present = ~np.isnan(close)
    any_present = present.any(axis=0)
    first = np.where(any_present, present.argmax(axis=0), -1)
    last = np.where(any_present, close.shape[0] - 1 - present[::-1].argmax(axis=0), -1)
    return first, last


def check_weekly_complete(inputs: FeatureInputs, path: Path) -> None:
    """Raise if an asset lacks a weekly open/high/low/close inside its trading span.

    Raises
    ------
    DataError
        Naming the file, line, ``asset/field`` and the week's label.
    """
    prices = np.stack([inputs.weekly[f] for f in PRICE_FIELDS], axis=2)  # (T, A, 4)
    present = ~np.isnan(prices).all(axis=2)
    rows = np.arange(prices.shape[0])[:, None]
    first, last = trading_span(np.where(present, 0.0, np.nan))
    inside = (rows >= first[None, :]) & (rows <= last[None, :])
    gaps = np.isnan(prices) & inside[:, :, None]
    if gaps.any():
        t, a, f = np.argwhere(gaps)[0]
        week = inputs.weekly_index[t].strftime("%Y-%m-%dT%H:%M:%S+00:00")
        raise DataError(
            f"missing weekly {PRICE_FIELDS[f]} for asset {inputs.assets[a]!r} in week {week}, "
            f"inside its trading span {inputs.weekly_index[first[a]].date()}.."
            f"{inputs.weekly_index[last[a]].date()}; every weekly OHLC value must be present "
            "between an asset's first and last week",
            path=path,
            line=_FIRST_DATA_LINE + int(t),
            column=f"{inputs.assets[a]}/{PRICE_FIELDS[f]}",
            value=week,
        )


def _check_positive(
    arrays: dict[str, np.ndarray], index: pd.DatetimeIndex, assets: list[str], path: Path
) -> None:
    """Prices must be finite and > 0 where present (log prices are taken)."""
    for field in PRICE_FIELDS:
        values = arrays[field]
        bad = ~np.isnan(values) & ~(np.isfinite(values) & (values > 0))
        if bad.any():
            t, a = np.argwhere(bad)[0]
            raise DataError(
                f"{field} must be a finite price > 0 at {index[t]}",
                path=path,
                line=_FIRST_DATA_LINE + int(t),
                column=f"{assets[a]}/{field}",
                value=float(values[t, a]),
            )


def load_inputs(data_lake_dir: Path) -> FeatureInputs:
    """Read ``weekly_ohlc.csv`` and ``daily_ohlc.csv`` of one data lake folder.

    Parameters
    ----------
    data_lake_dir
        A ``DATA_LAKE_SOURCE/<YYYY-WW>`` folder written by data_cleaning.

    Returns
    -------
    FeatureInputs
        Both panels with the weekly file's asset order.

    Raises
    ------
    DataError
        A file is absent or malformed, a price is not > 0, the two files disagree on the
        assets, or a weekly OHLC value is missing inside an asset's trading span.
    """
    weekly_path = Path(data_lake_dir) / WEEKLY_FILE
    daily_path = Path(data_lake_dir) / DAILY_FILE
    weekly = _read_panel_csv(weekly_path)
    daily = _read_panel_csv(daily_path)
    assets = list(dict.fromkeys(str(a) for a in weekly.columns.get_level_values(0)))
    extra = sorted(set(daily.columns.get_level_values(0)) - set(assets))
    if extra:
        raise DataError(
            f"asset(s) not in {WEEKLY_FILE}; expected {assets}",
            path=daily_path,
            line=1,
            value=extra,
        )
    w_index, w_arrays = _panel_from_frame(weekly, assets, weekly_path)
    d_index, d_arrays = _panel_from_frame(daily, assets, daily_path)
    _check_positive(w_arrays, w_index, assets, weekly_path)
    _check_positive(d_arrays, d_index, assets, daily_path)
    inputs = FeatureInputs(assets, w_index, w_arrays, d_index, d_arrays)
    check_weekly_complete(inputs, weekly_path)
    return inputs


def truncate(inputs: FeatureInputs, t: pd.Timestamp) -> FeatureInputs:
    """Keep only the weekly and daily rows labelled ``<= t`` (for look-ahead tests)."""
    w_keep = int(inputs.weekly_index.searchsorted(t, side="right"))
    d_keep = int(inputs.daily_index.searchsorted(t, side="right"))
    return FeatureInputs(
        assets=list(inputs.assets),
        weekly_index=inputs.weekly_index[:w_keep],
        weekly={k: v[:w_keep] for k, v in inputs.weekly.items()},
        daily_index=inputs.daily_index[:d_keep],
        daily={k: v[:d_keep] for k, v in inputs.daily.items()},
    )

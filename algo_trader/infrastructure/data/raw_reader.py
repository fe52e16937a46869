"""Reading the raw layout back: one month's file, or an asset's months as one bar frame.

On top of :mod:`~algo_trader.infrastructure.data.bar_csv`'s strict parsing (raw rules:
header ``timestamp,open,high,low,close,volume`` then optional extras, UTC offsets) this
enforces what the layout adds: a ``hist_data_YYYY-MM.csv`` file lives in its year's folder
and holds only that month's bars. :func:`load_asset` is what data cleaning calls per asset.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from algo_trader.domain.errors import DataError
from algo_trader.domain.market_data.bars import BadBar
from algo_trader.infrastructure.data.bar_csv import (
    RAW_RULES,
    BarTable,
    InvalidBars,
    apply_invalid_bars,
    read_bar_csvs,
)
from algo_trader.infrastructure.data.raw_store import MONTH_FILE, Month, RawBarStore


@dataclass(frozen=True)
class LoadedAsset:
    """One asset's bars over a month range, checked, with what was read."""

    asset: str
    bars: pd.DataFrame
    """Bar-frame contract: UTC index ``timestamp``, float64 ``open..volume``."""
    quarantine: list[BadBar]
    """Bad bars dropped under ``invalid_bars='drop'`` (empty otherwise)."""
    files: list[Path]
    """Monthly files read, in month order."""
    sha256: str
    """SHA-256 over the files' bytes in order (for manifests)."""


def month_of_file(path: Path) -> Month:
    """The month a ``hist_data_YYYY-MM.csv`` file is for, checked against its year folder."""
    match = MONTH_FILE.match(path.name)
    if not match:
        raise DataError(
            "not a raw monthly file name; expected hist_data_YYYY-MM.csv, e.g. "
            "hist_data_2024-03.csv",
            path=path,
            value=path.name,
        )
    month = Month(int(match.group(1)), int(match.group(2)))
    if not 1 <= month.month <= 12:
        raise DataError("month must be 01..12", path=path, value=path.name)
    _check_year_folder(path, month)
    return month


def _check_year_folder(path: Path, month: Month) -> None:
    expected = f"{month.year:04d}"
    if path.parent.name != expected:
        raise DataError(
            f"the file of {month} is in the wrong year folder; it belongs in "
            f"{path.parent.parent / expected}",
            path=path,
            column="folder",
            value=path.parent.name,
        )


def _check_months(table: BarTable, months: list[Month]) -> None:
    """Every row must fall inside its own file's month."""
    starts = np.array([m.start().value for m in months], dtype=np.int64)
    ends = np.array([m.end().value for m in months], dtype=np.int64)
    stamps = table.index.asi8
    outside = (stamps < starts[table.file_index]) | (stamps >= ends[table.file_index])
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        month = months[int(table.file_index[row])]
        ts = table.index[row]
        raise table.error(
            row,
            "timestamp",
            ts.isoformat(),
            f"a bar of {Month.of(ts)} in the file of {month}; hist_data_{month}.csv holds "
            f"only bars from {month.start().isoformat()} up to {month.end().isoformat()}",
        )


def read_raw_month(path: str | Path, month: Month | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Read one raw monthly file under the raw contract.

    Parameters
    ----------
    path
        ``.../<asset>/<YYYY>/hist_data_YYYY-MM.csv``.
    month
        The month the file must hold; by default the month in its name.

    Returns
    -------
    (DataFrame, ndarray)
        The bars (bar-frame contract plus any extra columns) and each row's 1-based line.
        Bad bar values are not removed (see :func:`load_asset`).

    Raises
    ------
    DataError
        Naming file, line, column and value for any violation of the contract.
    """
    file = Path(path)
    if month is None:
        month = month_of_file(file)
    else:
        _check_year_folder(file, month)
    table = read_bar_csvs([file], RAW_RULES)
    _check_months(table, [month])
    return table.frame, table.lines


def load_asset(
    store: RawBarStore,
    asset: str,
    start: Month | None,
    end: Month | None,
    invalid_bars: InvalidBars = "raise",
) -> LoadedAsset:
    """Load an asset's monthly files ``start..end`` (inclusive) as one checked bar frame.

    Parameters
    ----------
    store
        The raw layout.
    asset
        Asset folder name.
    start, end
        Month range; None means unbounded on that side.
    invalid_bars
        ``'raise'``: the first bad bar stops with its error (which counts them all and
        names ``--invalid-bars drop``); ``'drop'``: bad rows are removed and returned in
        ``quarantine``.

    Returns
    -------
    LoadedAsset

    Raises
    ------
    DataError
        When no file is in range (naming the folder and the months available) or any file
        breaks the raw contract; a timestamp repeated across two files is an error too.
    """
    available = store.months(asset)
    chosen = [
        (m, p) for m, p in available if (start is None or start <= m) and (end is None or m <= end)
    ]
    if not chosen:
        have = (
            f"{available[0][0]}..{available[-1][0]} ({len(available)} files)"
            if available
            else "none"
        )
        raise DataError(
            f"no monthly files for {asset!r} between {start or 'the first month'} and "
            f"{end or 'the last month'}; months available: {have}",
            path=store.root / asset,
            value=f"{start}..{end}",
        )
    months = [m for m, _ in chosen]
    files = [p for _, p in chosen]
    for month, path in chosen:
        _check_year_folder(path, month)
    # Extra columns (IB's average, bar_count) are not part of the bar frame: skip parsing them.
    table = read_bar_csvs(files, replace(RAW_RULES, keep_extra=False))
    _check_months(table, months)
    kept, quarantine = apply_invalid_bars(table, invalid_bars)
    return LoadedAsset(
        asset=asset, bars=kept.frame, quarantine=quarantine, files=files, sha256=table.sha256
    )

"""Daily OHLC and the per-asset record of missing Mon-Fri days.

Daily rows are the Mon-Fri UTC dates on which at least one asset has a bar, labelled with
the latest bar timestamp that day across all assets (the "last available hour"; daily
input bars are stamped 00:00, so their label is midnight). A day on which an asset has no
bar is recorded as missing for it at that label, and counted per calendar month of the
label.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from algo_trader.application.data_cleaning.periods import (
    PeriodBars,
    StackedBars,
    aggregate_periods,
    day_numbers,
    iso_labels,
    missing_labels,
)


def daily_bars(stacked: StackedBars) -> PeriodBars:
    """Daily OHLCV of every asset; rows = Mon-Fri dates on which some asset has a bar."""
    return aggregate_periods(stacked, day_numbers(stacked.ts))


def missing_by_month(daily: PeriodBars) -> dict[str, dict[str, int]]:
    """``{asset: {"YYYY-MM": missing days}}`` over every month that has a daily row."""
    months, row_month = np.unique(np.asarray(daily.labels.strftime("%Y-%m")), return_inverse=True)
    counts = np.zeros((len(months), len(daily.assets)), dtype=np.int64)
    np.add.at(counts, row_month, daily.missing.astype(np.int64))
    return {
        a: dict(zip(months.tolist(), counts[:, j].tolist(), strict=True))
        for j, a in enumerate(daily.assets)
    }


def _edge_days(daily: PeriodBars) -> tuple[dict[str, Any], dict[str, Any]]:
    present = ~daily.missing
    has_any = np.asarray(present.any(axis=0))
    first = np.argmax(present, axis=0)
    last = len(daily.labels) - 1 - np.argmax(present[::-1], axis=0)
    iso = iso_labels(daily)
    first_day = {a: str(iso[first[j]]) if has_any[j] else None for j, a in enumerate(daily.assets)}
    last_day = {a: str(iso[last[j]]) if has_any[j] else None for j, a in enumerate(daily.assets)}
    return first_day, last_day


def daily_meta(daily: PeriodBars) -> dict[str, Any]:
    """The ``daily_ohlc_meta.json`` payload (timestamps as ISO 8601 UTC strings).

    Keys: ``assets``, ``days`` (row count), ``missing_days`` ``{asset: [labels]}``,
    ``missing_by_month`` ``{asset: {"YYYY-MM": count}}``, ``first_day``/``last_day``
    ``{asset: label of its first/last day with a bar}``.
    """
    first_day, last_day = _edge_days(daily)
    return {
        "assets": list(daily.assets),
        "days": len(daily.labels),
        "missing_days": missing_labels(daily),
        "missing_by_month": missing_by_month(daily),
        "first_day": first_day,
        "last_day": last_day,
    }

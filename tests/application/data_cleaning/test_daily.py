"""Daily bars, missing days and monthly counts on generated frames."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from algo_trader.application.data_cleaning.daily import daily_bars, daily_meta
from algo_trader.application.data_cleaning.periods import stack_bars

Factory = Callable[..., pd.DataFrame]


def test_daily_labels_missing_days_and_monthly_counts(bars_factory: Factory) -> None:
    a = bars_factory(
        [
            "2024-02-28T09:00:00Z",
            "2024-02-28T16:00:00Z",
            "2024-03-01T09:00:00Z",
            "2024-03-02T09:00:00Z",
        ],  # the Saturday bar is not a day row
        [1.0, 2.0, 3.0, 4.0],
    )
    b = bars_factory(["2024-02-29T23:00:00Z", "2024-03-01T21:00:00Z"], [5.0, 6.0])
    daily = daily_bars(stack_bars({"A": a, "B": b}))
    assert list(daily.labels.strftime("%m-%d %H")) == ["02-28 16", "02-29 23", "03-01 21"]
    assert daily.values[0, 0].tolist() == [0.5, 3.0, -0.5, 2.0, 20.0]  # two hourly bars
    meta = daily_meta(daily)
    assert meta["days"] == 3
    assert meta["missing_days"] == {
        "A": ["2024-02-29T23:00:00+00:00"],
        "B": ["2024-02-28T16:00:00+00:00"],
    }
    assert meta["missing_by_month"] == {
        "A": {"2024-02": 1, "2024-03": 0},
        "B": {"2024-02": 1, "2024-03": 0},
    }
    assert meta["first_day"] == {"A": "2024-02-28T16:00:00+00:00", "B": "2024-02-29T23:00:00+00:00"}
    assert meta["last_day"] == {"A": "2024-03-01T21:00:00+00:00", "B": "2024-03-01T21:00:00+00:00"}


def test_an_asset_without_weekday_bars_has_no_first_day(bars_factory: Factory) -> None:
    a = bars_factory(["2024-03-04T09:00:00Z"], [1.0])
    b = bars_factory(["2024-03-03T09:00:00Z"], [1.0])  # Sunday only
    meta = daily_meta(daily_bars(stack_bars({"A": a, "B": b})))
    assert meta["first_day"]["B"] is None and meta["last_day"]["B"] is None
    assert meta["missing_days"]["B"] == ["2024-03-04T09:00:00+00:00"]

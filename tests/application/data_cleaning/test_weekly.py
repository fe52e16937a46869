"""Weekly bars and returns on generated frames."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from algo_trader.application.data_cleaning.daily import daily_bars
from algo_trader.application.data_cleaning.periods import ohlc_frame, stack_bars
from algo_trader.application.data_cleaning.weekly import weekly_bars, weekly_returns

Factory = Callable[..., pd.DataFrame]


def test_returns_need_the_previous_calendar_week(bars_factory: Factory) -> None:
    # Weeks of Mar 4, Mar 11, (nothing in the week of Mar 18), Mar 25.
    frame = bars_factory(
        ["2024-03-04T10:00:00Z", "2024-03-12T10:00:00Z", "2024-03-26T10:00:00Z"],
        [100.0, 110.0, 99.0],
    )
    weekly = weekly_bars(stack_bars({"A": frame}))
    simple = weekly_returns(weekly, "simple")[:, 0]
    assert np.isnan(simple[0]) and np.isnan(simple[2])  # first week; gap before week 3
    assert simple[1] == pytest.approx(0.1)
    log = weekly_returns(weekly, "log")[:, 0]
    assert log[1] == pytest.approx(np.log(1.1))
    np.testing.assert_allclose(log[1:2], np.log1p(simple[1:2]))


def test_a_row_kept_by_another_asset_still_breaks_the_chain(bars_factory: Factory) -> None:
    a = bars_factory(["2024-03-04T10:00:00Z", "2024-03-18T10:00:00Z"], [100.0, 90.0])
    b = bars_factory(["2024-03-11T10:00:00Z", "2024-03-18T10:00:00Z"], [10.0, 11.0])
    returns = weekly_returns(weekly_bars(stack_bars({"A": a, "B": b})), "simple")
    assert np.isnan(returns[:, 0]).all()  # A's week of Mar 11 is missing
    assert returns[2, 1] == pytest.approx(0.1)


def test_unknown_return_type_is_rejected(bars_factory: Factory) -> None:
    weekly = weekly_bars(stack_bars({"A": bars_factory(["2024-03-04T10:00:00Z"], [1.0])}))
    with pytest.raises(ValueError, match="'pct' is not one of simple, log"):
        weekly_returns(weekly, "pct")  # type: ignore[arg-type]


def test_hourly_and_daily_inputs_give_the_same_weekly_ohlc() -> None:
    rng = np.random.default_rng(3)
    hours = pd.date_range("2024-01-01", "2024-03-01", freq="h", tz="UTC", name="timestamp")
    hours = hours[rng.random(len(hours)) > 0.3]  # generated, with random gaps
    close = 50 + np.cumsum(rng.normal(0, 0.1, len(hours)))
    hourly = pd.DataFrame(
        {
            "open": close + 0.05,
            "high": close + 0.2,
            "low": close - 0.2,
            "close": close,
            "volume": rng.integers(1, 9, len(hours)) * 1.0,
        },
        index=hours,
    )
    from_hourly = ohlc_frame(weekly_bars(stack_bars({"A": hourly})))
    # The same bars first aggregated to days and re-stamped at 00:00, as daily sources are.
    days = pd.DataFrame(ohlc_frame(daily_bars(stack_bars({"A": hourly})))["A"])
    days.index = pd.DatetimeIndex(days.index).normalize()
    from_daily = ohlc_frame(weekly_bars(stack_bars({"A": days})))
    np.testing.assert_allclose(from_daily.to_numpy(), from_hourly.to_numpy())
    assert (pd.DatetimeIndex(from_hourly.index).normalize() == from_daily.index).all()

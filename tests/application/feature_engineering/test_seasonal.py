"""Seasonal (day-of-week) features against a plain loop, on generated and hand-made bars."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from algo_trader.application.feature_engineering import seasonal
from algo_trader.application.feature_engineering.inputs import FeatureInputs
from algo_trader.application.feature_engineering.registry import default_group_registry

NAN = math.nan
ALL_KEYS = list(seasonal.GROUP.keys)


@pytest.fixture
def irregular(
    daily_factory: Callable[..., pd.DataFrame], inputs_of: Callable[..., FeatureInputs]
) -> FeatureInputs:
    """Generated bars: GEN1 misses ~10% of days, GEN2 starts late, a Monday holiday."""
    daily = daily_factory(n_assets=3, n_weeks=60, seed=21)
    daily.loc[np.random.default_rng(8).random(len(daily)) < 0.1, "GEN1"] = NAN
    daily.loc[daily.index[:50], "GEN2"] = NAN
    return inputs_of(daily.drop(index=daily.index[150]))


def plain_weekday_means(inputs: FeatureInputs, a: int) -> list[list[float]]:
    """Per weekly label, the five weekday means of the last 26 calendar weeks."""
    close = inputs.daily["close"][:, a]
    valid = [
        not any(math.isnan(inputs.daily[f][i, a]) for f in ("open", "high", "low", "close"))
        for i in range(len(close))
    ]
    rets: list[tuple[pd.Timestamp, float]] = []
    prev = NAN
    for i, ts in enumerate(inputs.daily_index):
        if valid[i]:
            if not math.isnan(prev):
                rets.append((ts, math.log(close[i] / prev)))
            prev = close[i]
    out = []
    for t in inputs.weekly_index:
        first = (t - pd.Timedelta(days=t.weekday())).normalize() - pd.Timedelta(weeks=25)
        by_day: list[list[float]] = [[] for _ in range(5)]
        for ts, r in rets:
            if first <= ts <= t:
                by_day[ts.weekday()].append(r)
        out.append([math.fsum(x) / len(x) if len(x) >= 13 else NAN for x in by_day])
    return out


def test_features_match_plain_loop(irregular: FeatureInputs) -> None:
    result = seasonal.compute(irregular, ALL_KEYS)
    assert result.names == ["dow_alpha_Mon_26w", "dow_alpha_Fri_26w", "dow_spread_26w"]
    assert np.isfinite(result.values).sum() > 300
    for a in range(len(irregular.assets)):
        means = plain_weekday_means(irregular, a)
        spread = [max(m) - min(m) if not any(math.isnan(x) for x in m) else NAN for m in means]
        np.testing.assert_allclose(result.values[:, a, 0], [m[0] for m in means], atol=1e-15)
        np.testing.assert_allclose(result.values[:, a, 1], [m[4] for m in means], atol=1e-15)
        np.testing.assert_allclose(result.values[:, a, 2], spread, atol=1e-15)


def test_goodness_counts_weekday_returns(irregular: FeatureInputs) -> None:
    result = seasonal.compute(irregular, ["dow_alpha"])
    # GEN0 at week 40: 26 Mondays minus the Monday holiday in week 30
    assert result.goodness[40, 0, 0] == pytest.approx(25 / 26)
    assert result.goodness[40, 0, 1] == 1.0
    assert (result.goodness[40:, 1, 0] < 1).all()  # GEN1's missing days
    assert result.goodness[5, 0, 0] == pytest.approx(5 / 26)  # day 0 (a Monday) has no return


def test_hand_computed_monday_effect() -> None:
    """Mondays gain 1%, every other day 0: alpha_Mon = 0.01, alpha_Fri = 0, spread 0.01."""
    index = pd.bdate_range("2024-01-05", periods=5 * 30 + 1, tz="UTC")  # from a Friday
    r = np.where(index.day_of_week == 0, 0.01, 0.0)
    r[0] = 0.0
    close = 100 * np.exp(np.cumsum(r))[:, None]
    weekly_index = index[index.day_of_week == 4]
    fields = {
        "open": close,
        "high": close,
        "low": close,
        "close": close,
        "volume": np.full_like(close, NAN),
    }
    rows = index.searchsorted(weekly_index)
    inputs = FeatureInputs(
        ["GEN0"], weekly_index, {k: v[rows] for k, v in fields.items()}, index, fields
    )
    result = seasonal.compute(inputs, ALL_KEYS)
    np.testing.assert_allclose(result.values[-1, 0], [0.01, 0.0, 0.01], atol=1e-15)
    assert np.isnan(result.values[:13]).all()  # 13 Mondays needed
    assert np.isfinite(result.values[13:]).all()
    # constant prices: all zero, never NaN/inf after warm-up
    flat = {k: np.full_like(v, 50.0) for k, v in fields.items()}
    const = FeatureInputs(
        ["GEN0"], weekly_index, {k: v[rows] for k, v in flat.items()}, index, flat
    )
    np.testing.assert_array_equal(seasonal.compute(const, ALL_KEYS).values[13:], 0.0)


def test_asset_starting_later(irregular: FeatureInputs) -> None:
    values = seasonal.compute(irregular, ALL_KEYS).values[:, 2, :]  # GEN2 starts in week 10
    assert np.isnan(values[:22]).all()
    assert np.isfinite(values[24:]).all()
    assert not np.isinf(values).any()


def test_registered_as_a_daily_group() -> None:
    assert default_group_registry().get("seasonal") is seasonal.GROUP
    assert seasonal.GROUP.uses_daily

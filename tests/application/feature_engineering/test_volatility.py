"""Volatility features against plain one-asset, one-window loops on generated daily bars.

The generated panel (not market data) has the awkward cases in it: one asset misses random
days, one starts late, one halts for eight weeks, and one day is a holiday for all.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from algo_trader.application.feature_engineering import volatility
from algo_trader.application.feature_engineering.inputs import FeatureInputs
from algo_trader.application.feature_engineering.registry import default_group_registry
from algo_trader.domain.errors import DataError

NAN = math.nan
EPS = 1e-6
ALL_KEYS = list(volatility.GROUP.keys)

Bars = list[tuple[int, float, float, float]]  # (label in ns, high, low, close)
Returns = tuple[list[int], list[float]]  # (labels in ns, log returns)


def irregular_daily(daily_factory: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    """Generated bars: GEN1 misses ~8% of days, GEN2 starts late, GEN3 halts 8 weeks."""
    daily = daily_factory(n_assets=4, n_weeks=70, seed=11)
    gaps = np.random.default_rng(5).random(len(daily)) < 0.08
    daily.loc[gaps, "GEN1"] = NAN
    daily.loc[daily.index[:60], "GEN2"] = NAN
    daily.loc[daily.index[200:240], "GEN3"] = NAN
    return daily.drop(index=daily.index[130])  # a holiday for everyone


@pytest.fixture
def irregular(
    daily_factory: Callable[..., pd.DataFrame], inputs_of: Callable[..., FeatureInputs]
) -> FeatureInputs:
    return inputs_of(irregular_daily(daily_factory))


# --- the plain reference -------------------------------------------------------------


def plain_bars(inputs: FeatureInputs, a: int) -> Bars:
    d = inputs.daily
    out = []
    for i, ts in enumerate(inputs.daily_index):
        o, h, lo, c = d["open"][i, a], d["high"][i, a], d["low"][i, a], d["close"][i, a]
        if not any(math.isnan(v) for v in (o, h, lo, c)):
            out.append((ts.value, h, lo, c))
    return out


def plain_returns(bars: Bars) -> Returns:
    times = [bars[i][0] for i in range(1, len(bars))]
    return times, [math.log(bars[i][3] / bars[i - 1][3]) for i in range(1, len(bars))]


def window_bounds(t: pd.Timestamp, weeks: int) -> tuple[int, int]:
    """First and last label (ns) of the ``weeks`` calendar weeks ending with ``t``."""
    monday = (t - pd.Timedelta(days=t.weekday())).normalize()
    return (monday - pd.Timedelta(weeks=weeks - 1)).value, t.value


def window(rets: Returns, t: pd.Timestamp, weeks: int) -> list[float]:
    first, last = window_bounds(t, weeks)
    times, values = rets
    return values[bisect.bisect_left(times, first) : bisect.bisect_right(times, last)]


def need(weeks: int) -> int:
    return max(2, math.ceil(0.5 * 5 * weeks))


def sample_std(xs: list[float]) -> float:
    mean = math.fsum(xs) / len(xs)
    return math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (len(xs) - 1))


def stdev(xs: list[float], weeks: int) -> float:
    return sample_std(xs) if len(xs) >= need(weeks) else NAN


def log_ratio(a: float, b: float) -> float:
    return math.log((a + EPS) / (b + EPS))


def vs_prior_median(series: list[float]) -> list[float]:
    out = []
    for i, x in enumerate(series):
        prior = [v for v in series[max(0, i - 26) : i] if not math.isnan(v)]
        ok = len(prior) >= 13 and not math.isnan(x)
        out.append(log_ratio(x, statistics.median(prior)) if ok else NAN)
    return out


def plain_wilder_atrp(bars: Bars, weekly: pd.DatetimeIndex, n: int = 20) -> list[float]:
    atr_at: list[tuple[int, float]] = []
    trs: list[float] = []
    value = NAN
    for i in range(1, len(bars)):
        ts, h, lo, c = bars[i]
        prev = bars[i - 1][3]
        trs.append(max(h - lo, abs(h - prev), abs(lo - prev)))
        if len(trs) == n:
            value = sum(trs) / n
        elif len(trs) > n:
            value = (value * (n - 1) + trs[-1]) / n
        if len(trs) >= n:
            atr_at.append((ts, value / c))
    out = []
    for t in weekly:
        first, last = window_bounds(t, 4)
        fresh = sum(1 for b in bars if first <= b[0] <= last) >= need(4)
        past = [v for ts, v in atr_at if ts <= last]
        out.append(past[-1] if fresh and past else NAN)
    return out


def plain_features(inputs: FeatureInputs, a: int) -> dict[str, list[float]]:
    """Every volatility output of asset ``a``, one weekly label at a time."""
    bars = plain_bars(inputs, a)
    rets = plain_returns(bars)
    out: dict[str, list[float]] = {
        name: []
        for name in (
            "vol_cc_d_4w",
            "vol_cc_d_26w",
            "vol_ts_cc_1w_4w",
            "vol_ts_cc_4w_26w",
            "down_up_vol_ratio_4w",
            "realized_skew_d_12w",
            "tail_5p_sigma_ratio_12w",
            "jump_freq_4w",
            "a12",
        )
    }
    for t in inputs.weekly_index:
        w1, w4, w12, w26 = (window(rets, t, h) for h in (1, 4, 12, 26))
        s1, s4, s12, s26 = stdev(w1, 1), stdev(w4, 4), stdev(w12, 12), stdev(w26, 26)
        out["vol_cc_d_4w"].append(s4)
        out["vol_cc_d_26w"].append(s26)
        out["vol_ts_cc_1w_4w"].append(log_ratio(max(s1, EPS), max(s4, EPS)))
        out["vol_ts_cc_4w_26w"].append(log_ratio(max(s4, EPS), max(s26, EPS)))
        n4 = len(w4)
        if n4 >= need(4):
            down = math.sqrt(sum(r * r for r in w4 if r < 0) / n4)
            up = math.sqrt(sum(r * r for r in w4 if r > 0) / n4)
            out["down_up_vol_ratio_4w"].append(log_ratio(max(down, EPS), max(up, EPS)))
        else:
            out["down_up_vol_ratio_4w"].append(NAN)
        out["jump_freq_4w"].append(
            sum(abs(r) > 2 * s12 for r in w4) / n4 if n4 >= need(4) and s12 == s12 else NAN
        )
        if len(w12) >= need(12):
            mean = sum(w12) / len(w12)
            m2 = sum((r - mean) ** 2 for r in w12) / len(w12)
            m3 = sum((r - mean) ** 3 for r in w12) / len(w12)
            out["realized_skew_d_12w"].append(min(5.0, max(-5.0, m3 / m2**1.5)))
            loss = max(-float(np.quantile(w12, 0.05)), 0.0)
            out["tail_5p_sigma_ratio_12w"].append(log_ratio(loss, 1.645 * s12))
            out["a12"].append(sample_std([abs(r) for r in w12]))
        else:
            for name in ("realized_skew_d_12w", "tail_5p_sigma_ratio_12w", "a12"):
                out[name].append(NAN)
    out["vol_regime_cc_4w_26w"] = vs_prior_median(out["vol_cc_d_4w"])
    out["vov_norm_12w"] = vs_prior_median(out.pop("a12"))
    out["atrp_d_4w"] = plain_wilder_atrp(bars, inputs.weekly_index)
    return out


# --- tests ---------------------------------------------------------------------------


def test_every_feature_matches_plain_loop(irregular: FeatureInputs) -> None:
    result = volatility.compute(irregular, ALL_KEYS)
    assert sorted(result.names) == sorted(plain_features(irregular, 0))
    assert (np.isfinite(result.values).sum(axis=(0, 1)) > 150).all()  # compared on values
    for a in range(len(irregular.assets)):
        want = plain_features(irregular, a)
        for f, name in enumerate(result.names):
            np.testing.assert_allclose(
                result.values[:, a, f],
                want[name],
                rtol=1e-9,
                atol=1e-12,
                err_msg=f"{name} of {irregular.assets[a]}",
            )


def test_spec_names_and_key_selection(irregular: FeatureInputs) -> None:
    assert volatility.compute(irregular, ALL_KEYS).names == [
        "vol_cc_d_4w",
        "vol_cc_d_26w",
        "atrp_d_4w",
        "vol_regime_cc_4w_26w",
        "vov_norm_12w",
        "vol_ts_cc_1w_4w",
        "vol_ts_cc_4w_26w",
        "down_up_vol_ratio_4w",
        "realized_skew_d_12w",
        "tail_5p_sigma_ratio_12w",
        "jump_freq_4w",
    ]
    one = volatility.compute(irregular, ["jump_freq_4w", "vol_cc_d"])
    assert one.names == ["jump_freq_4w", "vol_cc_d_4w", "vol_cc_d_26w"]
    assert volatility.GROUP.uses_daily


def test_goodness_is_valid_days_over_horizon(irregular: FeatureInputs) -> None:
    result = volatility.compute(irregular, ["vol_cc_d", "vol_ts_cc_1w_4w"])
    for a in range(len(irregular.assets)):
        rets = plain_returns(plain_bars(irregular, a))
        for i, t in enumerate(irregular.weekly_index):
            n1, n4, n26 = (len(window(rets, t, h)) for h in (1, 4, 26))
            assert result.goodness[i, a, 0] == pytest.approx(min(1.0, n4 / 20))
            assert result.goodness[i, a, 1] == pytest.approx(min(1.0, n26 / 130))
            assert result.goodness[i, a, 2] == pytest.approx(min(n1 / 5, n4 / 20, 1.0))


def test_holiday_and_missing_days_lower_goodness(irregular: FeatureInputs) -> None:
    result = volatility.compute(irregular, ["vol_cc_d"])
    after_holiday = irregular.daily_index[129] + pd.Timedelta(days=1)
    holiday_week = int(irregular.weekly_index.searchsorted(after_holiday))
    # everyone loses the holiday: 19 of 20 days in the 4 weeks that hold it
    assert result.goodness[holiday_week, 0, 0] == pytest.approx(19 / 20)
    assert (result.goodness[40:, 1, 0] < 1.0).any()  # GEN1's missing days
    assert np.isfinite(result.values[holiday_week, :2, 0]).all()  # still enough days


def test_asset_starting_later_and_halted(irregular: FeatureInputs) -> None:
    result = volatility.compute(irregular, ALL_KEYS)
    gen2 = result.values[:, 2, 0]  # GEN2 starts on day 60 (week 12)
    assert np.isnan(gen2[:12]).all()
    assert np.isfinite(gen2[14:]).all()
    # GEN3 halts on days 200-239 (weeks 40-47): its 4-week vol goes missing, not stale
    assert np.isnan(result.values[43:47, 3, 0]).all()
    assert (result.goodness[43:47, 3, 0] == 0.0).all()
    assert np.isfinite(result.values[43:47, 0, 0]).all()


def test_nan_only_where_data_is_short_and_never_inf(irregular: FeatureInputs) -> None:
    result = volatility.compute(irregular, ALL_KEYS)
    assert not np.isinf(result.values).any()
    assert np.isfinite(result.goodness).all()
    assert ((result.goodness >= 0) & (result.goodness <= 1)).all()
    # a value is present only with at least half of its window valid
    assert (result.goodness[~np.isnan(result.values)] >= 0.5).all()


def daily_inputs(
    close: np.ndarray, high: np.ndarray, low: np.ndarray, start: str = "2024-01-01"
) -> FeatureInputs:
    """Daily Mon-Fri inputs from ``(T_d, A)`` arrays, weekly labels on each Friday."""
    index = pd.bdate_range(start, periods=close.shape[0], tz="UTC")
    weekly_index = index[index.day_of_week == 4]
    fields = {
        "open": close,
        "high": high,
        "low": low,
        "close": close,
        "volume": np.full_like(close, np.nan),
    }
    rows = index.searchsorted(weekly_index)
    return FeatureInputs(
        [f"GEN{i}" for i in range(close.shape[1])],
        weekly_index,
        {k: v[rows] for k, v in fields.items()},
        index,
        fields,
    )


def test_hand_computed_pattern() -> None:
    """12 weeks of the weekly return pattern +2%, -1%, -1%, 0, 0 (log returns)."""
    pattern = [0.02, -0.01, -0.01, 0.0, 0.0]
    r = np.array([0.0] + pattern * 12)
    close = 100.0 * np.exp(np.cumsum(r))[:, None]
    inputs = daily_inputs(close, close + 1.0, close - 1.0, start="2023-12-29")
    result = volatility.compute(inputs, ALL_KEYS)
    last = dict(zip(result.names, result.values[-1, 0], strict=True))
    # 20 returns: mean 0, sum r^2 = 4*4e-4 + 8*1e-4 = 24e-4
    assert last["vol_cc_d_4w"] == pytest.approx(math.sqrt(24e-4 / 19), rel=1e-12)
    # semivolatilities sqrt(8e-4/20) and sqrt(16e-4/20)
    down, up = math.sqrt(8e-4 / 20), math.sqrt(16e-4 / 20)
    assert last["down_up_vol_ratio_4w"] == pytest.approx(math.log((down + EPS) / (up + EPS)))
    # m2 = 1.2e-4, m3 = 1.2e-6: skew = 1 / sqrt(1.2)
    assert last["realized_skew_d_12w"] == pytest.approx(1 / math.sqrt(1.2), rel=1e-9)
    assert last["vol_ts_cc_1w_4w"] == pytest.approx(
        math.log((math.sqrt(6e-4 / 4) + EPS) / (math.sqrt(24e-4 / 19) + EPS)), rel=1e-9
    )
    # 5% quantile of 60 returns: position 2.95 among the 24 sorted -0.01s -> -0.01
    sigma12 = math.sqrt(72e-4 / 59)
    assert last["tail_5p_sigma_ratio_12w"] == pytest.approx(
        math.log((0.01 + EPS) / (1.645 * sigma12 + EPS)), rel=1e-9
    )
    assert last["jump_freq_4w"] == 0.0  # 2 sigma_12 = 0.022 > every |r|


def test_hand_computed_atr() -> None:
    """Closes alternate 100, 102 with high/low 1 away: every true range is 3."""
    close = np.where(np.arange(60) % 2 == 0, 100.0, 102.0)[:, None]
    inputs = daily_inputs(close, close + 1.0, close - 1.0)
    atrp = volatility.compute(inputs, ["atrp_d"]).values[:, 0, 0]
    assert np.isnan(atrp[:4]).all()  # 21 bars needed: the 5th Friday is bar 25
    np.testing.assert_allclose(atrp[4:], 3.0 / close[inputs.daily_index.day_of_week == 4][4:, 0])


def test_constant_price_gives_zeros_not_inf() -> None:
    close = np.full((200, 2), 50.0)
    result = volatility.compute(daily_inputs(close, close, close), ALL_KEYS)
    assert not np.isinf(result.values).any()
    settled = result.values[30:]  # after the 26-week windows and prior medians fill
    np.testing.assert_array_equal(settled, 0.0)


def test_single_asset() -> None:
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (200, 1)), axis=0))
    result = volatility.compute(daily_inputs(close, close * 1.01, close * 0.99), ALL_KEYS)
    assert result.values.shape == (40, 1, 11)
    assert np.isfinite(result.values[32:]).all()


def test_bad_close_is_a_clear_error(irregular: FeatureInputs) -> None:
    irregular.daily["close"][5, 0] = -1.0
    with pytest.raises(DataError, match="GEN0/close"):
        volatility.compute(irregular, ["vol_cc_d"])


def test_registered_as_a_daily_group() -> None:
    assert default_group_registry().get("volatility") is volatility.GROUP
    assert volatility.GROUP.keys == tuple(volatility.BUILDERS)


def test_without_daily_bars_everything_is_missing(
    arrays_to_inputs: Callable[..., FeatureInputs],
) -> None:
    result = volatility.compute(arrays_to_inputs(np.full((30, 2), 10.0)), ALL_KEYS)
    assert np.isnan(result.values).all()
    assert (result.goodness == 0.0).all()

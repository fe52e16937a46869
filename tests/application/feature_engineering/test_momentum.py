"""Momentum features against plain one-asset loops on generated bars, plus degenerate cases."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

import numpy as np
import pytest

from algo_trader.application.feature_engineering import momentum
from algo_trader.application.feature_engineering.inputs import FeatureInputs

EPS = 1e-8
NAN = math.nan


def plain_z_mom(close: list[float], h: int) -> list[float]:
    out = []
    for t in range(len(close)):
        window = close[max(0, t - 26) : t + 1]
        if t < 26 or any(math.isnan(c) for c in window):
            out.append(NAN)
            continue
        rets = [math.log(window[i + 1] / window[i]) for i in range(26)]
        sigma = statistics.stdev(rets)
        out.append(math.log(close[t] / close[t - h]) / (sigma * math.sqrt(h) + EPS))
    return out


def plain_ema(values: list[float], t: int, span: int) -> float:
    alpha = 2.0 / (span + 1.0)
    num = den = 0.0
    for i in range(t + 1):
        if not math.isnan(values[i]):
            w = (1.0 - alpha) ** (t - i)
            num += w * values[i]
            den += w
    return num / den


def plain_atr(high: list[float], low: list[float], close: list[float], n: int) -> list[float]:
    out = [NAN] * len(close)
    trs: list[float] = []
    value = NAN
    for t in range(1, len(close)):
        if math.isnan(close[t - 1]) or math.isnan(close[t]):
            continue
        tr = max(high[t] - low[t], abs(high[t] - close[t - 1]), abs(low[t] - close[t - 1]))
        trs.append(tr)
        if len(trs) == n:
            value = sum(trs) / n
        elif len(trs) > n:
            value = (value * (n - 1) + tr) / n
        else:
            continue
        out[t] = value
    return out


def plain_ema_spread(high: list, low: list, close: list, short: int, long: int) -> list:
    atr = plain_atr(high, low, close, long)
    out = []
    for t in range(len(close)):
        window = close[max(0, t - long) : t + 1]
        if t < long or any(math.isnan(c) for c in window):
            out.append(NAN)
            continue
        spread = plain_ema(close, t, short) - plain_ema(close, t, long)
        out.append(spread / (atr[t] + EPS))
    return out


def _column(inputs: FeatureInputs, keys: list[str], name: str) -> np.ndarray:
    result = momentum.compute(inputs, keys)
    values: np.ndarray = result.values[:, :, result.names.index(name)]
    return values


@pytest.mark.parametrize("h", [4, 12, 26])
def test_z_mom_matches_plain_loop(panel: FeatureInputs, h: int) -> None:
    got = _column(panel, ["vol_scaled_momentum"], f"z_mom_{h}w")
    for a in range(len(panel.assets)):
        want = plain_z_mom(list(panel.weekly["close"][:, a]), h)
        np.testing.assert_allclose(got[:, a], want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("short", [4, 12])
def test_ema_spread_matches_plain_loop(panel: FeatureInputs, short: int) -> None:
    got = _column(panel, ["ema_spread"], f"ema_spread_{short}w_26w")
    w = panel.weekly
    for a in range(len(panel.assets)):
        want = plain_ema_spread(
            list(w["high"][:, a]), list(w["low"][:, a]), list(w["close"][:, a]), short, 26
        )
        np.testing.assert_allclose(got[:, a], want, rtol=1e-9, atol=1e-12)


def test_keys_select_columns(generated_inputs: FeatureInputs) -> None:
    assert momentum.compute(generated_inputs, ["ema_spread"]).names == [
        "ema_spread_4w_26w",
        "ema_spread_12w_26w",
    ]
    assert momentum.GROUP.keys == ("vol_scaled_momentum", "ema_spread")


def test_constant_price_gives_zero_not_nan(arrays_to_inputs: Callable[..., FeatureInputs]) -> None:
    result = momentum.compute(arrays_to_inputs(np.full((40, 2), 50.0)), list(momentum.GROUP.keys))
    assert np.isnan(result.values[:26]).all()
    np.testing.assert_array_equal(result.values[26:], 0.0)
    np.testing.assert_array_equal(result.goodness[26:], 0.0)


def test_asset_starting_later_warms_up_on_its_own(generated_inputs: FeatureInputs) -> None:
    result = momentum.compute(generated_inputs, list(momentum.GROUP.keys))
    start = int(np.argmax(~np.isnan(generated_inputs.weekly["close"][:, 3])))
    assert start > 0
    gen3 = result.values[:, 3, :]
    assert np.isnan(gen3[: start + 26]).all()
    assert np.isfinite(gen3[start + 26 :]).all()
    # goodness: share of the 27-week lookback before the asset's first week
    np.testing.assert_allclose(result.goodness[start, 3, 0], 26 / 27)
    # the other assets do not care
    assert np.isfinite(result.values[26:, 0, :]).all()


def test_single_asset(arrays_to_inputs: Callable[..., FeatureInputs]) -> None:
    close = np.exp(np.cumsum(np.random.default_rng(2).normal(0, 0.02, (60, 1)), axis=0))
    result = momentum.compute(
        arrays_to_inputs(close, close * 1.01, close * 0.99), list(momentum.GROUP.keys)
    )
    assert result.values.shape == (60, 1, 5)
    assert np.isfinite(result.values[26:]).all()


def test_nan_only_where_goodness_says_so(generated_inputs: FeatureInputs) -> None:
    result = momentum.compute(generated_inputs, list(momentum.GROUP.keys))
    assert not np.isinf(result.values).any()
    np.testing.assert_array_equal(np.isnan(result.values), result.goodness > 0)

"""Kernels against hand-computed numbers, pandas, and plain per-window computations."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from algo_trader.application.feature_engineering import kernels as k

NAN = np.nan


def col(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)[:, None]


# --- EWM ------------------------------------------------------------------------------


@pytest.mark.parametrize("decay", [{"alpha": 0.5}, {"span": 3}, {"halflife": 1}])
def test_ema_hand_computed(decay: dict[str, Any]) -> None:
    # alpha 0.5 three ways; adjust=True weights 1, 1/2, 1/4 on x_t, x_{t-1}, x_{t-2}.
    out = k.ema(col(1, 2, 3), **decay)
    np.testing.assert_allclose(out[:, 0], [1.0, 2.5 / 1.5, 4.25 / 1.75], rtol=1e-15)


def test_ewm_std_hand_computed() -> None:
    # Two points, weights 1/2 and 1: bias-corrected weighted var = 0.5 (= sample var).
    out = k.ewm_std(col(1, 2), alpha=0.5)
    assert math.isnan(out[0, 0])
    assert out[1, 0] == pytest.approx(math.sqrt(0.5), rel=1e-15)


def test_ewm_matches_pandas_with_gaps_and_late_start() -> None:
    rng = np.random.default_rng(1)
    x = np.cumsum(rng.normal(size=(200, 3)), axis=0) + 50.0
    x[:30, 1] = NAN
    x[90:94, 2] = NAN
    frame = pd.DataFrame(x)
    for hl in (4, 26):
        np.testing.assert_allclose(
            k.ema(x, halflife=hl, min_periods=hl),
            frame.ewm(halflife=hl, min_periods=hl).mean(),
            rtol=1e-12,
        )
        np.testing.assert_allclose(
            k.ewm_std(x, halflife=hl, min_periods=hl),
            frame.ewm(halflife=hl, min_periods=hl).std(),
            rtol=1e-9,
        )


def test_ewm_constant_series_is_exact() -> None:
    x = np.full((50, 2), 123.456)
    np.testing.assert_array_equal(k.ema(x, span=12), x)
    np.testing.assert_array_equal(k.ewm_std(x, halflife=12)[1:], 0.0)


def test_ewm_rejects_bad_decay() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        k.ema(col(1.0), span=3, halflife=2)
    with pytest.raises(ValueError, match="alpha"):
        k.ema(col(1.0), alpha=1.5)


# --- Wilder ----------------------------------------------------------------------------


def test_rsi_hand_computed() -> None:
    # changes +1 -1 +2 +1 -1; seed (n=4): gain 4/4 = 1, loss 1/4 -> RSI 80;
    # next: gain (3*1 + 0)/4 = 0.75, loss (3*0.25 + 1)/4 = 0.4375 -> 100*0.75/1.1875.
    out = k.rsi(col(10, 11, 10, 12, 13, 12), 4)[:, 0]
    np.testing.assert_array_equal(np.isnan(out), [True] * 4 + [False] * 2)
    assert out[4] == pytest.approx(80.0, rel=1e-15)
    assert out[5] == pytest.approx(1200.0 / 19.0, rel=1e-15)


def test_rsi_flat_is_50_and_monotone_is_100() -> None:
    out = k.rsi(np.column_stack([np.full(8, 5.0), np.arange(8.0) + 1]), 3)
    np.testing.assert_array_equal(out[3:, 0], 50.0)
    np.testing.assert_array_equal(out[3:, 1], 100.0)


def test_rsi_skips_missing_rows() -> None:
    with_gap = k.rsi(col(10, 11, NAN, 10, 12, 13, 12), 4)[:, 0]
    without = k.rsi(col(10, 11, 10, 12, 13, 12), 4)[:, 0]
    assert math.isnan(with_gap[2])
    np.testing.assert_array_equal(np.delete(with_gap, 2), without)


def test_atr_hand_computed() -> None:
    high = col(11, 12, 11.5, 14, 13, 16)
    low = col(9, 10, 10.5, 11, 9, 15)
    close = col(10, 11, 11, 13, 10, 15.5)
    # TR from bar 1: 2, 1, 3, 4, 6 (gap up: |16 - 10|); n=3 seed (2+1+3)/3 = 2,
    # then (2*2 + 4)/3 = 8/3, then (8/3*2 + 6)/3 = 34/9.
    out = k.atr(high, low, close, 3)[:, 0]
    np.testing.assert_array_equal(np.isnan(out), [True] * 3 + [False] * 3)
    np.testing.assert_allclose(out[3:], [2.0, 8.0 / 3.0, 34.0 / 9.0], rtol=1e-15)


# --- rolling ---------------------------------------------------------------------------


def test_rolling_median_mad_hand_computed() -> None:
    x = col(1, 2, 3, 4, 100)
    med3, mad3 = k.rolling_median_mad(x, 3)
    np.testing.assert_array_equal(med3[2:, 0], [2.0, 3.0, 4.0])
    np.testing.assert_array_equal(mad3[2:, 0], [1.0, 1.0, 1.0])
    med4, mad4 = k.rolling_median_mad(x, 4)
    # [1,2,3,4]: median 2.5, |dev| 1.5 .5 .5 1.5 -> 1.0; [2,3,4,100]: 3.5, .5 .5 1.5 96.5 -> 1.0
    np.testing.assert_array_equal(med4[3:, 0], [2.5, 3.5])
    np.testing.assert_array_equal(mad4[3:, 0], [1.0, 1.0])
    assert np.isnan(med4[:3]).all()


def _plain_median_mad(x: np.ndarray, window: int, min_periods: int) -> tuple[list, list]:
    meds, mads = [], []
    for t in range(len(x)):
        w = [v for v in x[max(0, t - window + 1) : t + 1] if not math.isnan(v)]
        if len(w) < min_periods:
            meds.append(NAN)
            mads.append(NAN)
            continue
        m = float(np.median(w))
        meds.append(m)
        mads.append(float(np.median([abs(v - m) for v in w])))
    return meds, mads


@settings(max_examples=60, deadline=None)
@given(
    x=arrays(
        np.float64,
        st.integers(1, 40),
        elements=st.one_of(st.just(NAN), st.integers(-5, 5).map(float), st.floats(-1e3, 1e3)),
    ),
    window=st.integers(1, 9),
    min_periods=st.integers(1, 9),
)
def test_rolling_median_mad_matches_plain(x: np.ndarray, window: int, min_periods: int) -> None:
    med, mad = k.rolling_median_mad(x[:, None], window, min(min_periods, window))
    want_med, want_mad = _plain_median_mad(x, window, min(min_periods, window))
    np.testing.assert_array_equal(med[:, 0], want_med)
    np.testing.assert_array_equal(mad[:, 0], want_mad)


def test_rolling_kernels_match_pandas() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(120, 4))
    x[rng.random(x.shape) < 0.15] = NAN
    frame = pd.DataFrame(x)
    for window, mp in ((4, None), (12, 6), (26, 20)):
        roll = frame.rolling(window, min_periods=mp or window)
        np.testing.assert_allclose(k.rolling_mean(x, window, mp), roll.mean(), rtol=1e-12)
        np.testing.assert_allclose(k.rolling_std(x, window, mp), roll.std(), rtol=1e-10)
        np.testing.assert_array_equal(k.rolling_max(x, window, mp), roll.max())
        np.testing.assert_array_equal(k.rolling_min(x, window, mp), roll.min())


def test_rolling_std_of_constant_is_exactly_zero() -> None:
    np.testing.assert_array_equal(k.rolling_std(np.full((30, 2), 0.1), 12)[11:], 0.0)


def test_window_missing_ratio() -> None:
    valid = np.array([[False], [True], [True], [True], [False]])
    np.testing.assert_array_equal(k.window_missing_ratio(valid, 2)[:, 0], [1.0, 0.5, 0.0, 0.0, 0.5])


def test_log_returns_and_lag() -> None:
    x = col(1.0, math.e, math.e**3)
    np.testing.assert_allclose(k.log_returns(x)[:, 0], [NAN, 1.0, 2.0])
    np.testing.assert_array_equal(k.lag(x, 5), np.full((3, 1), NAN))


# --- cross-sectional -------------------------------------------------------------------


def test_cs_percentile_rank_hand_computed() -> None:
    x = np.array([[3.0, 1.0, 2.0, NAN], [5.0, 5.0, 1.0, NAN], [NAN, 7.0, NAN, NAN], [NAN] * 4])
    out = k.cs_percentile_rank(x)
    np.testing.assert_allclose(out[0], [2.5 / 3, 0.5 / 3, 1.5 / 3, NAN])
    np.testing.assert_allclose(out[1], [2 / 3, 2 / 3, 1 / 6, NAN])  # tie shares rank 2.5
    np.testing.assert_array_equal(out[2], [NAN, 0.5, NAN, NAN])  # N_eff = 1 -> midpoint
    assert np.isnan(out[3]).all()

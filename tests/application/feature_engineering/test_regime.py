"""Regime features against plain one-window loops on generated bars, plus degenerate cases."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from algo_trader.application.feature_engineering import regime
from algo_trader.application.feature_engineering.daily_kernels import (
    VAR_REL_FLOOR,
    DailyReturns,
    corr_and_pc1_share,
)
from algo_trader.application.feature_engineering.inputs import FeatureInputs
from algo_trader.application.feature_engineering.registry import default_group_registry

NAN = math.nan
EPS = 1e-6
ALL_KEYS = list(regime.GROUP.keys)
NAMES = [
    "glob_vol_cc_d_4w",
    "glob_vol_regime_cc_4w_26w",
    "glob_corr_mean_12w",
    "glob_pc1_share_12w",
    "glob_disp_ret_1w",
    "glob_disp_mom_12w",
    "glob_disp_vol_4w",
]


@pytest.fixture
def irregular(
    daily_factory: Callable[..., pd.DataFrame], inputs_of: Callable[..., FeatureInputs]
) -> FeatureInputs:
    """Generated bars: GEN1 misses ~8% of days, GEN2 starts late, one holiday for all."""
    daily = daily_factory(n_assets=5, n_weeks=60, seed=31)
    daily.loc[np.random.default_rng(9).random(len(daily)) < 0.08, "GEN1"] = NAN
    daily.loc[daily.index[:70], "GEN2"] = NAN
    return inputs_of(daily.drop(index=daily.index[100]))


# --- the plain reference -------------------------------------------------------------


def plain_return_table(inputs: FeatureInputs) -> pd.DataFrame:
    """Daily log returns per asset against its previous complete bar (labels x assets)."""
    table = {}
    for a, asset in enumerate(inputs.assets):
        prev, col = NAN, {}
        for i, ts in enumerate(inputs.daily_index):
            bar = [inputs.daily[f][i, a] for f in ("open", "high", "low", "close")]
            if any(math.isnan(v) for v in bar):
                continue
            if not math.isnan(prev):
                col[ts] = math.log(bar[3] / prev)
            prev = bar[3]
        table[asset] = pd.Series(col, dtype=float)
    return pd.DataFrame(table).reindex(inputs.daily_index)


def window_rows(table: pd.DataFrame, t: pd.Timestamp, weeks: int) -> pd.DataFrame:
    first = (t - pd.Timedelta(days=t.weekday())).normalize() - pd.Timedelta(weeks=weeks - 1)
    return table[(table.index >= first) & (table.index <= t)]


def plain_corr_pc1(x: np.ndarray, min_count: int) -> tuple[float, float]:
    x = x[:, (~np.isnan(x)).sum(axis=0) >= min_count]
    if x.shape[1] == 0:
        return NAN, NAN
    filled = np.where(np.isnan(x), np.nanmean(x, axis=0), x)
    keep = [
        j
        for j in range(filled.shape[1])
        if np.var(filled[:, j]) > VAR_REL_FLOOR * np.mean(filled[:, j] ** 2)
    ]
    filled = filled[:, keep]
    k = filled.shape[1]
    corr = (np.corrcoef(filled, rowvar=False).sum() - k) / (k * (k - 1)) if k >= 2 else NAN
    if k == 0:
        return corr, NAN
    cov = np.atleast_2d(np.cov(filled, rowvar=False))
    return corr, float(np.linalg.eigvalsh(cov)[-1] / np.trace(cov))


def mad(values: list[float]) -> float:
    if not values:
        return NAN
    med = statistics.median(values)
    return 1.4826 * statistics.median([abs(v - med) for v in values])


def plain_regime(inputs: FeatureInputs) -> dict[str, list[float]]:
    table = plain_return_table(inputs)
    out: dict[str, list[float]] = {name: [] for name in NAMES}
    close = inputs.weekly["close"]
    for i, t in enumerate(inputs.weekly_index):
        vols = []
        for asset in inputs.assets:
            w4 = window_rows(table, t, 4)[asset].dropna()
            vols.append(float(np.std(w4, ddof=1)) if len(w4) >= 10 else NAN)
        ok = [v for v in vols if not math.isnan(v)]
        out["glob_vol_cc_d_4w"].append(sum(ok) / len(ok) if ok else NAN)
        out["glob_disp_vol_4w"].append(mad(ok))
        corr, share = plain_corr_pc1(window_rows(table, t, 12).to_numpy(), 30)
        out["glob_corr_mean_12w"].append(corr)
        out["glob_pc1_share_12w"].append(share)
        for name, h in (("glob_disp_ret_1w", 1), ("glob_disp_mom_12w", 12)):
            moves = [
                math.log(close[i, a] / close[i - h, a])
                for a in range(close.shape[1])
                if i >= h and not math.isnan(close[i, a] / close[i - h, a])
            ]
            out[name].append(mad(moves))
    g = out["glob_vol_cc_d_4w"]
    for i, x in enumerate(g):
        prior = [v for v in g[max(0, i - 26) : i] if not math.isnan(v)]
        out["glob_vol_regime_cc_4w_26w"].append(
            math.log((x + EPS) / (statistics.median(prior) + EPS)) if len(prior) >= 13 else NAN
        )
    return out


# --- tests ---------------------------------------------------------------------------


def test_every_feature_matches_plain_loop(irregular: FeatureInputs) -> None:
    result = regime.compute(irregular, ALL_KEYS)
    assert result.names == NAMES
    assert (np.isfinite(result.values[:, 0]).sum(axis=0) > 25).all()
    want = plain_regime(irregular)
    for f, name in enumerate(NAMES):
        np.testing.assert_allclose(
            result.values[:, 0, f], want[name], rtol=1e-9, atol=1e-13, err_msg=name
        )


def test_broadcast_to_every_asset(irregular: FeatureInputs) -> None:
    result = regime.compute(irregular, ALL_KEYS)
    np.testing.assert_array_equal(result.values, result.values[:, :1, :].repeat(5, axis=1))
    np.testing.assert_array_equal(result.goodness, result.goodness[:, :1, :].repeat(5, axis=1))


def test_goodness(irregular: FeatureInputs) -> None:
    result = regime.compute(irregular, ["glob_vol_cc_d", "glob_disp_ret"])
    # week 30: GEN2 (starts day 70) full, GEN1 misses days, the others have 20 of 20
    daily = DailyReturns(irregular)
    per_asset = np.minimum(daily.stats(4).count[30] / 20, 1)
    assert result.goodness[30, 0, 0] == pytest.approx(per_asset.mean())
    assert result.goodness[30, 0, 0] < 1
    assert result.goodness[0, 0, 1] == 0.0  # no weekly return in the first week
    assert result.goodness[5, 0, 1] == pytest.approx(4 / 5)  # GEN2 not trading yet


def single_or_flat(close: np.ndarray) -> FeatureInputs:
    index = pd.bdate_range("2024-01-01", periods=close.shape[0], tz="UTC")
    weekly_index = index[index.day_of_week == 4]
    fields = {
        "open": close,
        "high": close,
        "low": close,
        "close": close,
        "volume": np.full_like(close, NAN),
    }
    rows = index.searchsorted(weekly_index)
    return FeatureInputs(
        [f"GEN{i}" for i in range(close.shape[1])],
        weekly_index,
        {k: v[rows] for k, v in fields.items()},
        index,
        fields,
    )


def test_single_asset_says_what_it_does() -> None:
    rng = np.random.default_rng(6)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (200, 1)), axis=0))
    result = regime.compute(single_or_flat(close), ALL_KEYS)
    last = dict(zip(NAMES, result.values[-1, 0], strict=True))
    r = np.diff(np.log(close[-20:, 0]), prepend=np.log(close[-21, 0]))
    assert last["glob_vol_cc_d_4w"] == pytest.approx(np.std(r, ddof=1))
    assert math.isnan(last["glob_corr_mean_12w"])  # no pair of assets
    assert last["glob_pc1_share_12w"] == 1.0  # a 1x1 covariance matrix
    assert last["glob_disp_ret_1w"] == 0.0 and last["glob_disp_mom_12w"] == 0.0
    assert last["glob_disp_vol_4w"] == 0.0


def test_constant_prices_give_zeros_and_undefined_correlation() -> None:
    result = regime.compute(single_or_flat(np.full((200, 3), 20.0)), ALL_KEYS)
    assert not np.isinf(result.values).any()
    last = dict(zip(NAMES, result.values[-1, 0], strict=True))
    assert math.isnan(last["glob_corr_mean_12w"]) and math.isnan(last["glob_pc1_share_12w"])
    for name in (
        "glob_vol_cc_d_4w",
        "glob_vol_regime_cc_4w_26w",
        "glob_disp_ret_1w",
        "glob_disp_mom_12w",
        "glob_disp_vol_4w",
    ):
        assert last[name] == 0.0, name


def test_mirror_assets_are_one_factor() -> None:
    rng = np.random.default_rng(7)
    lr = np.cumsum(rng.normal(0, 0.01, 200))
    close = 100 * np.exp(np.stack([lr, -lr, 2 * lr], axis=1))
    last = regime.compute(single_or_flat(close), ["glob_corr_mean", "glob_pc1_share"])
    # pairs: (1, 2) -> -1, (1, 3) -> +1, (2, 3) -> -1
    assert last.values[-1, 0, 0] == pytest.approx(-1 / 3)
    assert last.values[-1, 0, 1] == pytest.approx(1.0)


def plain_loop_timing(returns: np.ndarray, inputs: FeatureInputs) -> float:
    start = time.perf_counter()
    table = pd.DataFrame(returns, index=inputs.daily_index)
    for t in inputs.weekly_index:
        plain_corr_pc1(window_rows(table, t, 12).to_numpy(), 30)
    return time.perf_counter() - start


@pytest.mark.slow
def test_batched_correlation_beats_a_per_window_loop(
    daily_factory: Callable[..., pd.DataFrame], inputs_of: Callable[..., FeatureInputs]
) -> None:
    """100 generated assets x 20 years of daily bars (1043 weekly ends)."""
    daily = daily_factory(n_assets=100, n_weeks=1043, seed=1)
    inputs = inputs_of(daily)
    returns = DailyReturns(inputs).returns
    windows = DailyReturns(inputs).windows(12)
    start = time.perf_counter()
    corr_and_pc1_share(returns, windows)
    batched = time.perf_counter() - start
    naive = plain_loop_timing(returns, inputs)
    print(
        f"\ncorr + pc1 share at {windows.end.size} weekly ends: batched {batched:.3f} s, "
        f"per-window loop {naive:.3f} s"
    )
    assert batched < naive


def test_registered_and_weekly_parts_work_without_daily_bars(
    arrays_to_inputs: Callable[..., FeatureInputs],
) -> None:
    assert default_group_registry().get("regime") is regime.GROUP
    close = np.exp(np.cumsum(np.random.default_rng(8).normal(0, 0.02, (30, 3)), axis=0))
    result = regime.compute(arrays_to_inputs(close), ALL_KEYS)
    daily_parts = [0, 1, 2, 3, 6]
    assert np.isnan(result.values[:, :, daily_parts]).all()
    assert (result.goodness[:, :, daily_parts] == 0.0).all()
    assert np.isfinite(result.values[1:, :, 4]).all()  # glob_disp_ret_1w from weekly closes
    assert np.isfinite(result.values[12:, :, 5]).all()  # glob_disp_mom_12w

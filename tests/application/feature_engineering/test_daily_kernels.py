"""Daily kernels on hand-computable series and against numpy one-window-at-a-time loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algo_trader.application.feature_engineering.daily_kernels import (
    VAR_REL_FLOOR,
    central_moments,
    corr_and_pc1_share,
    daily_log_returns,
    gather_windows,
    mad_dispersion,
    nan_median,
    prefix_sums,
    prior_median,
    sorted_quantile,
    top_eigenvalue,
    valid_bars,
    window_sums,
)
from algo_trader.application.feature_engineering.sampling import DailyWindows

NAN = math.nan


def windows(starts: list[int], ends: list[int], weeks: int = 1) -> DailyWindows:
    return DailyWindows(weeks, np.array(starts), np.array(ends))


def test_valid_bars_needs_all_four_prices() -> None:
    one = np.array([[1.0, 1.0, 1.0]])
    daily = {
        "open": one,
        "high": np.array([[1.0, NAN, 1.0]]),
        "low": one,
        "close": np.array([[1.0, 1.0, NAN]]),
        "volume": np.full((1, 3), NAN),
    }
    np.testing.assert_array_equal(valid_bars(daily), [[True, False, False]])


def test_log_returns_skip_missing_days() -> None:
    close = np.array([[100.0, NAN], [110.0, 50.0], [NAN, 55.0], [121.0, NAN], [121.0, 60.5]])
    r = daily_log_returns(close, ~np.isnan(close))
    want = [
        [NAN, NAN],
        [math.log(1.1), NAN],
        [NAN, math.log(1.1)],
        [math.log(1.1), NAN],
        [0.0, math.log(1.1)],
    ]
    np.testing.assert_allclose(r, want, rtol=1e-14)


def test_window_sums_and_counts() -> None:
    x = np.array([[1.0], [2.0], [0.0], [4.0]])
    prefix = prefix_sums(x)
    np.testing.assert_array_equal(
        window_sums(prefix, windows([0, 1, 2], [2, 4, 3])), [[3.0], [6.0], [0.0]]
    )


def test_prefix_sums_give_exact_zero_for_a_flat_stretch() -> None:
    x = np.array([[0.1], [0.7], [0.0], [0.0], [0.0]])
    assert window_sums(prefix_sums(x), windows([2], [5]))[0, 0] == 0.0


def test_central_moments() -> None:
    xs = np.array([1.0, 2.0, 4.0, 9.0])
    n = np.array([4.0])
    mean, m2, m3 = central_moments(
        n, np.array([xs.sum()]), np.array([(xs**2).sum()]), np.array([(xs**3).sum()])
    )
    assert mean[0] == 4.0
    assert m2[0] == pytest.approx(np.mean((xs - 4) ** 2))
    assert m3 is not None and m3[0] == pytest.approx(np.mean((xs - 4) ** 3))


def test_central_moments_floor_rounding_noise() -> None:
    xs = np.full(20, 0.01)  # a constant-growth price: every return equal
    _, m2, _ = central_moments(np.array([20.0]), np.array([xs.sum()]), np.array([(xs**2).sum()]))
    assert m2[0] == 0.0
    assert VAR_REL_FLOOR < 1e-9


def test_gather_windows_pads_with_nan() -> None:
    x = np.arange(6.0).reshape(3, 2)
    got = gather_windows(x, windows([0, 1, 3], [2, 3, 3], weeks=1))
    assert got.shape == (3, 5, 2)
    np.testing.assert_array_equal(got[0, :2], [[0, 1], [2, 3]])
    np.testing.assert_array_equal(got[1, :2], [[2, 3], [4, 5]])
    assert np.isnan(got[0, 2:]).all() and np.isnan(got[2]).all()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.floats(-1e3, 1e3), st.just(NAN)), min_size=1, max_size=12))
def test_nan_median_matches_numpy(values: list[float]) -> None:
    x = np.array([values])
    want = np.nanmedian(x, axis=1) if (~np.isnan(x)).any() else np.array([NAN])
    np.testing.assert_allclose(nan_median(x), want, rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1.0, 1.0), min_size=1, max_size=30), st.sampled_from([0.05, 0.5, 0.95]))
def test_sorted_quantile_matches_numpy(values: list[float], q: float) -> None:
    x = np.array(values + [NAN] * 3)[None, :, None]
    got = sorted_quantile(np.sort(x, axis=1), np.array([[len(values)]]), q)
    assert got[0, 0] == pytest.approx(np.quantile(values, q), abs=1e-15)


def test_prior_median_excludes_the_current_row() -> None:
    x = np.array([[1.0], [5.0], [NAN], [3.0], [100.0]])
    median, count = prior_median(x, rows=3, min_count=2)
    np.testing.assert_array_equal(median[:, 0], [NAN, NAN, 3.0, 3.0, 4.0])
    np.testing.assert_array_equal(count[:, 0], [0, 1, 2, 2, 2])


def test_mad_dispersion() -> None:
    x = np.array([[1.0, 2.0, 3.0, 4.0, 100.0], [NAN, 2.0, NAN, NAN, NAN], [NAN] * 5])
    got = mad_dispersion(x, 1.4826)
    # row 0: median 3, |dev| = 2, 1, 0, 1, 97 -> MAD 1
    np.testing.assert_allclose(got, [1.4826, 0.0, NAN])


def random_gram(rng: np.random.Generator, b: int, m: int, factor: float) -> np.ndarray:
    y = rng.standard_normal((b, 2 * m, m)) + factor * rng.standard_normal((b, 2 * m, 1))
    out: np.ndarray = y.transpose(0, 2, 1) @ y
    return out


@pytest.mark.parametrize("factor", [0.0, 0.3, 2.0])
def test_top_eigenvalue_matches_eigvalsh(factor: float) -> None:
    rng = np.random.default_rng(1)
    gram = random_gram(rng, 50, 8, factor)
    got = top_eigenvalue(gram, rng.standard_normal((50, 8)))
    np.testing.assert_allclose(got, np.linalg.eigvalsh(gram)[:, -1], rtol=1e-9)


def test_top_eigenvalue_degenerate_matrices() -> None:
    eye = np.eye(4)
    rank_one = np.outer([1.0, 2.0, 0.0, 0.0], [1.0, 2.0, 0.0, 0.0])
    gram = np.stack([np.zeros((4, 4)), eye, 3 * eye, rank_one, rank_one])
    start = np.array(
        [[1.0, 1, 1, 1], [1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], [0, 0, 1, 0]]
    )  # the last start lies in the null space
    np.testing.assert_allclose(top_eigenvalue(gram, start), [0.0, 1.0, 3.0, 5.0, 5.0])


def test_top_eigenvalue_does_not_depend_on_the_batch() -> None:
    rng = np.random.default_rng(4)
    gram = random_gram(rng, 30, 6, 0.5)
    start = rng.standard_normal((30, 6))
    full = top_eigenvalue(gram, start)
    part = top_eigenvalue(gram[:7], start[:7])
    np.testing.assert_array_equal(full[:7], part)


def plain_corr_pc1(returns: np.ndarray, w: DailyWindows) -> tuple[list[float], list[float]]:
    """One window at a time: mean-fill the missing days, then numpy corrcoef / cov."""
    corr, share = [], []
    for s, e in zip(w.start, w.end, strict=True):
        x = returns[s:e]
        x = x[:, (~np.isnan(x)).sum(axis=0) >= w.min_count]
        filled = np.where(np.isnan(x), np.nanmean(x, axis=0), x) if x.size else x
        keep = [
            j
            for j in range(filled.shape[1])
            if np.var(filled[:, j]) > VAR_REL_FLOOR * np.mean(filled[:, j] ** 2)
        ]
        filled = filled[:, keep]
        k = filled.shape[1]
        if k >= 2:
            r = np.corrcoef(filled, rowvar=False)
            corr.append((r.sum() - k) / (k * (k - 1)))
        else:
            corr.append(NAN)
        if k >= 1:
            cov = np.atleast_2d(np.cov(filled, rowvar=False))
            share.append(np.linalg.eigvalsh(cov)[-1] / np.trace(cov))
        else:
            share.append(NAN)
    return corr, share


def panel_with_gaps(seed: int, n_days: int, n_assets: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    market = rng.standard_normal((n_days, 1)) * 0.01
    r = market * rng.uniform(0.5, 1.5, n_assets) + rng.standard_normal((n_days, n_assets)) * 0.01
    r[rng.random(r.shape) < 0.05] = NAN  # scattered missing days
    r[:40, 1] = NAN  # an asset starting later
    r[:, 2] = np.where(np.isnan(r[:, 2]), NAN, 0.0)  # a flat asset
    return r


def weekly_windows(n_days: int, weeks: int) -> DailyWindows:
    ends = np.arange(5, n_days + 1, 5)
    return DailyWindows(weeks, np.maximum(ends - 5 * weeks, 0), ends)


@pytest.mark.parametrize("n_assets", [3, 6, 80])  # Gram on the asset side and the day side
def test_corr_and_pc1_share_match_plain_loop(n_assets: int) -> None:
    r = panel_with_gaps(0, 300, n_assets)
    w = weekly_windows(300, 12)
    corr, share = corr_and_pc1_share(r, w)
    want_corr, want_share = plain_corr_pc1(r, w)
    np.testing.assert_allclose(corr, want_corr, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(share, want_share, rtol=1e-9, atol=1e-12)
    assert np.isfinite(corr[15:]).all()  # asset 1 (starting on day 40) has 30 returns


def test_corr_and_pc1_share_hand_cases() -> None:
    rng = np.random.default_rng(2)
    base = rng.standard_normal((60, 1)) * 0.01
    w = weekly_windows(60, 12)
    # mirror images: correlation -1, one factor holds everything
    corr, share = corr_and_pc1_share(np.hstack([base, -base]), w)
    assert corr[-1] == pytest.approx(-1.0) and share[-1] == pytest.approx(1.0)
    # one asset: no pair, a 1x1 covariance
    corr, share = corr_and_pc1_share(base, w)
    assert math.isnan(corr[-1]) and share[-1] == 1.0
    # flat prices: nothing varies
    corr, share = corr_and_pc1_share(np.zeros((60, 3)), w)
    assert math.isnan(corr[-1]) and math.isnan(share[-1])


def test_corr_on_empty_daily_panel() -> None:
    w = DailyWindows(12, np.zeros(3, dtype=np.int64), np.zeros(3, dtype=np.int64))
    corr, share = corr_and_pc1_share(np.empty((0, 2)), w)
    assert np.isnan(corr).all() and np.isnan(share).all()

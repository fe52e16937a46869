"""Scoring kernels against independent references (scoringrules, plain loops, numpy)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scoringrules
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from algo_trader.application.simulation.scoring import (
    central_coverage,
    crps_per_week,
    energy_score_per_week,
    fit_whitener,
    mad_scale,
    nan_median,
    pinball,
    pit_values,
    quantile_loss_per_week,
    shrinkage,
    sorted_summaries,
    to_z,
    whiten,
)
from algo_trader.domain.errors import DataError


def draws(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def loop_energy_score(samples: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The definition, one term at a time."""
    n_samples, n_weeks, _ = samples.shape
    out = []
    for t in range(n_weeks):
        term1 = sum(math.dist(samples[s, t], truth[t]) for s in range(n_samples)) / n_samples
        pairs = itertools.product(range(n_samples), repeat=2)
        term2 = sum(math.dist(samples[s, t], samples[r, t]) for s, r in pairs)
        out.append(term1 - term2 / (2 * n_samples**2))
    return np.array(out)


# ------------------------------------------------------------------------- energy score


def test_energy_score_matches_plain_loop_to_1e9() -> None:
    samples, truth = 3.0 * draws(0, 40, 5, 7), draws(1, 5, 7)
    got = energy_score_per_week(samples, truth).numpy()
    np.testing.assert_allclose(got, loop_energy_score(samples.numpy(), truth.numpy()), rtol=1e-9)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_energy_score_matches_scoringrules(backend: str) -> None:
    samples, truth = draws(2, 60, 9, 12) + 0.5, draws(3, 9, 12)
    ref = scoringrules.es_ensemble(truth.numpy(), samples.permute(1, 0, 2).numpy(), backend=backend)
    np.testing.assert_allclose(energy_score_per_week(samples, truth).numpy(), ref, rtol=1e-6)


@pytest.mark.parametrize("budget", [1, 8 * 30 * 30 * 3 * 2, 10**9])
def test_chunked_energy_score_equals_unchunked(budget: int) -> None:
    # 1 byte forces one sample row per cdist call; the middle value blocks of 2 weeks.
    # Blocks change cdist's summation order only: equal to rounding.
    samples, truth = draws(4, 30, 7, 6) + 3.0, draws(5, 7, 6)
    whole = energy_score_per_week(samples, truth, memory_budget_bytes=10**9)
    chunked = energy_score_per_week(samples, truth, memory_budget_bytes=budget)
    np.testing.assert_allclose(chunked.numpy(), whole.numpy(), rtol=1e-13)


def test_energy_score_drops_weeks_with_missing_truth() -> None:
    samples, truth = draws(6, 20, 4, 3), draws(7, 4, 3)
    truth[1, 2] = torch.nan
    got = energy_score_per_week(samples, truth)
    assert torch.isnan(got[1]) and not torch.isnan(got[[0, 2, 3]]).any()


def test_non_finite_samples_and_bad_shapes_raise() -> None:
    samples, truth = draws(8, 5, 2, 3), draws(9, 2, 3)
    samples[0, 1, 2] = torch.inf
    with pytest.raises(ValueError, match="1 non-finite"):
        energy_score_per_week(samples, truth)
    with pytest.raises(ValueError, match=r"\(S, T, A\)"):
        crps_per_week(draws(8, 5, 2, 3), draws(9, 3, 2))


ensembles = st.tuples(
    st.integers(1, 12), st.integers(1, 4), st.integers(1, 5), st.integers(0, 10**6)
)


@settings(max_examples=30, deadline=None)
@given(ensembles, st.floats(0.01, 100.0))
def test_perfect_ensemble_scores_zero(shape: tuple[int, int, int, int], scale: float) -> None:
    n_samples, n_weeks, n_assets, seed = shape
    truth = scale * draws(seed, n_weeks, n_assets)
    samples = truth.expand(n_samples, n_weeks, n_assets)
    assert energy_score_per_week(samples, truth).shape == (n_weeks,)
    assert energy_score_per_week(samples, truth).abs().max() <= 1e-12 * scale
    assert crps_per_week(samples, truth).abs().max() <= 1e-12 * scale


@settings(max_examples=40, deadline=None)
@given(ensembles, st.floats(0.01, 100.0), st.floats(-5.0, 5.0))
def test_scores_are_non_negative(
    shape: tuple[int, int, int, int], scale: float, shift: float
) -> None:
    # the ensemble's score is half the energy distance between it and a point mass: >= 0
    n_samples, n_weeks, n_assets, seed = shape
    samples = scale * draws(seed, n_samples, n_weeks, n_assets)
    truth = shift + draws(seed + 1, n_weeks, n_assets)
    tol = 1e-12 * (scale + abs(shift) + 1)
    assert energy_score_per_week(samples, truth).min() >= -tol
    crps = crps_per_week(samples, truth)
    assert crps.shape == (n_weeks, n_assets) and crps.min() >= -tol
    assert quantile_loss_per_week(samples, truth, 0.1).min() >= 0.0


def generated_truth_and_forecasts(seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Truth ~ N(0, C) per week, forecasts drawn from the true and from wrong Gaussians."""
    n_samples, n_weeks, n_assets = 100, 400, 4
    chol = torch.linalg.cholesky(0.5 * torch.ones(4, 4, dtype=torch.float64) + 0.5 * torch.eye(4))
    truth = draws(seed, n_weeks, n_assets) @ chol.T
    base = draws(seed + 1, n_samples, n_weeks, n_assets) @ chol.T
    forecasts = {
        "true": base,
        "shifted": base + 0.5,
        "over-dispersed": 1.5 * base,
        "under-dispersed": 0.6 * base,
    }
    return truth, forecasts


def test_true_distribution_scores_best_on_average() -> None:
    truth, forecasts = generated_truth_and_forecasts(10)
    es = {k: float(energy_score_per_week(v, truth).mean()) for k, v in forecasts.items()}
    crps = {k: float(crps_per_week(v, truth).mean()) for k, v in forecasts.items()}
    for name in ("shifted", "over-dispersed", "under-dispersed"):
        assert es["true"] < es[name], (name, es)
        assert crps["true"] < crps[name], (name, crps)


# -------------------------------------------------------------------------- CRPS & co.


def test_crps_matches_scoringrules_and_pairwise_form() -> None:
    samples, truth = 2.0 * draws(11, 70, 6, 5), draws(12, 6, 5)
    truth[2, 3] = torch.nan
    got = crps_per_week(samples, truth)
    ref = scoringrules.crps_ensemble(
        truth.numpy(), samples.permute(1, 2, 0).numpy(), estimator="nrg", backend="numba"
    )
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-6)
    pairwise = (samples - truth).abs().mean(dim=0) - (
        samples.unsqueeze(0) - samples.unsqueeze(1)
    ).abs().sum(dim=(0, 1)) / (2 * 70**2)
    np.testing.assert_allclose(got.numpy(), pairwise.numpy(), rtol=1e-12)
    assert torch.isnan(got[2, 3]) and torch.isnan(got).sum() == 1


def test_sorted_summaries_quantiles_pit_and_crps() -> None:
    samples, truth = draws(13, 51, 4, 3), draws(14, 4, 3)
    levels = (0.0, 0.05, 0.5, 0.975, 1.0)
    out = sorted_summaries(samples, truth, levels)
    x = samples.numpy()
    np.testing.assert_allclose(out.quantiles.numpy(), np.quantile(x, levels, axis=0), rtol=1e-14)
    np.testing.assert_array_equal(out.pit.numpy(), (x <= truth.numpy()).mean(axis=0))
    np.testing.assert_allclose(out.crps.numpy(), crps_per_week(samples, truth).numpy())
    assert out.levels == levels


def test_pit_ties_missing_and_randomization() -> None:
    samples = torch.tensor([1.0, 2.0, 2.0, 2.0, 3.0], dtype=torch.float64).view(5, 1, 1)
    samples = samples.expand(5, 1, 2)
    truth = torch.tensor([[2.0, torch.nan]], dtype=torch.float64)
    pit = pit_values(samples, truth)
    assert pit[0, 0] == 0.8 and torch.isnan(pit[0, 1])
    randomized = pit_values(samples, truth, torch.Generator().manual_seed(0))
    assert 0.2 <= randomized[0, 0] <= 0.8 and torch.isnan(randomized[0, 1])


def test_quantile_loss_is_pinball_of_numpy_quantile() -> None:
    samples, truth = draws(15, 33, 5, 4), draws(16, 5, 4)
    q = np.quantile(samples.numpy(), 0.05, axis=0)
    e = truth.numpy() - q
    expected = (0.05 - (e < 0)) * e
    np.testing.assert_allclose(quantile_loss_per_week(samples, truth, 0.05).numpy(), expected)
    assert float(pinball(torch.tensor(1.0), torch.tensor(3.0), 0.25)) == 1.5  # (0.25-1)(-2)


def test_central_coverage_against_explicit_bounds() -> None:
    samples, truth = draws(17, 41, 6, 3), 1.2 * draws(18, 6, 3)
    got = central_coverage(samples, truth, [0.5, 0.9])
    x = samples.numpy()
    for i, c in enumerate((0.5, 0.9)):
        lo, hi = np.quantile(x, [(1 - c) / 2, (1 + c) / 2], axis=0)
        np.testing.assert_array_equal(got[i].numpy(), (lo <= truth.numpy()) & (truth.numpy() <= hi))
    with pytest.raises(ValueError, match="outside"):
        central_coverage(samples, truth, [1.5])


# ----------------------------------------------------------------------------- whitener


def test_shrinkage_schedule_boundaries() -> None:
    assert [shrinkage(n) for n in (2, 149, 150, 299, 300, 10**6)] == [
        0.30,
        0.30,
        0.15,
        0.15,
        0.075,
        0.075,
    ]


def test_nan_median_and_mad_match_numpy() -> None:
    y = draws(19, 10, 4)
    y[[1, 4, 7], 0] = torch.nan
    y[:, 3] = torch.nan
    y_np = y.numpy()
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        expected_median = np.nanmedian(y_np, axis=0)
        expected_mad = np.nanmedian(np.abs(y_np - expected_median), axis=0)
    np.testing.assert_allclose(nan_median(y).numpy(), expected_median, equal_nan=True)
    np.testing.assert_allclose(mad_scale(y, 1e-3).numpy(), expected_mad + 1e-3, equal_nan=True)


def test_whitened_training_targets_have_the_derived_covariance() -> None:
    # Two assets, 200 fully observed weeks (lambda 0.15). With sample covariance
    # C = [[a, b], [b, d]] of z, the shrunk matrix is [[a + c, k b], [k b, d + c]]
    # (k = 1 - lambda, c = var_floor + eps); its Cholesky factor is L11 = sqrt(a + c),
    # L21 = k b / L11, L22 = sqrt(d + c - L21^2), and W = L^{-1} gives
    # cov(u) = W C W^T = [[a / L11^2, (b - L21 a / L11) / (L11 L22)],
    #                     [., (d - 2 L21 b / L11 + L21^2 a / L11^2) / L22^2]].
    y = draws(20, 200, 2) @ torch.tensor([[2.0, 0.0], [1.5, 0.5]], dtype=torch.float64).T
    var_floor, eps = 0.3, 1e-5
    w = fit_whitener(y, mad_eps=1e-12, eps=eps, var_floor=var_floor)
    z = y.numpy() / np.median(np.abs(y.numpy() - np.median(y.numpy(), axis=0)), axis=0)
    (a, b), (_, d) = np.cov(z.T)
    k, c = 1 - 0.15, var_floor + eps
    l11 = math.sqrt(a + c)
    l21 = k * b / l11
    l22 = math.sqrt(d + c - l21**2)
    off = (b - l21 * a / l11) / (l11 * l22)
    expected = np.array(
        [[a / l11**2, off], [off, (d - 2 * l21 * b / l11 + l21**2 * a / l11**2) / l22**2]]
    )
    u = whiten(to_z(y, w), w).numpy()
    np.testing.assert_allclose(np.cov(u.T), expected, rtol=1e-10)
    assert (w.lam, w.n_eff) == (0.15, 200)
    assert w.W[0, 1] == 0.0  # lower triangular, u_1 depends on z_1 only


def test_whitener_is_exact_inverse_of_the_shrunk_covariance() -> None:
    y = draws(21, 120, 6) @ draws(22, 6, 6)
    w = fit_whitener(y, eps=1e-4)
    cov = np.cov((y.numpy() / w.scale.numpy()).T)
    shrunk = 0.7 * cov + 0.3 * np.diag(np.diag(cov)) + 1e-4 * np.eye(6)
    np.testing.assert_allclose(w.W.numpy() @ shrunk @ w.W.numpy().T, np.eye(6), atol=1e-10)


def test_whitener_uses_full_rows_for_cov_and_all_rows_for_mad() -> None:
    y = draws(23, 160, 3)
    y[:20, 1] = torch.nan  # 140 fully observed rows -> lambda 0.30
    w = fit_whitener(y)
    assert (w.n_eff, w.lam) == (140, 0.30)
    np.testing.assert_allclose(w.scale[1], mad_scale(y[20:, 1:2])[0])
    cov = np.cov((y[20:].numpy() / w.scale.numpy()).T)
    shrunk = 0.7 * cov + 0.3 * np.diag(np.diag(cov)) + 1e-5 * np.eye(3)
    np.testing.assert_allclose(w.W.numpy() @ shrunk @ w.W.numpy().T, np.eye(3), atol=1e-10)


def test_whitener_rejects_unusable_training_targets() -> None:
    y = draws(24, 10, 3)
    y[:, 2] = torch.nan
    with pytest.raises(DataError, match=r"asset column\(s\) \[2\]"):
        fit_whitener(y)
    y = draws(25, 10, 2)
    y[1:, 0] = torch.nan
    y[0, 1] = torch.nan
    with pytest.raises(DataError, match="0 fully observed"):
        fit_whitener(y)

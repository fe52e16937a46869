"""horseshoe_regression / horseshoe_guide on data generated from the model's own process.

All data here is generated (sparse coefficients, Student-t noise, known parameters), not
market data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from scipy import stats

from algo_trader.domain.errors import ConfigError
from algo_trader.domain.simulation.config import SVIConfig
from algo_trader.pipeline.stages.modeling.batched import FitSpec, fit_batched
from algo_trader.pipeline.stages.modeling.contracts import ModelBatch, ModelShapeError
from algo_trader.pipeline.stages.modeling.horseshoe_guide import HorseshoeGuide
from algo_trader.pipeline.stages.modeling.horseshoe_regression import (
    HorseshoeRegression,
    effective_nonzero,
    regularized_local_scale,
    shrinkage_factors,
)
from algo_trader.pipeline.stages.modeling.predictive import posterior_samples, predict
from algo_trader.pipeline.stages.modeling.registry import build_pair
from algo_trader.pipeline.stages.modeling.trainer import check_obs, fit, param_scope

STEPS = 300
# A high start and a decay to a tenth converge in few steps without ending noisy.
SVI = SVIConfig(num_steps=STEPS, learning_rate=0.08, lr_decay=0.1 ** (1 / STEPS), log_every=None)
T, HELD_OUT, A, F = 120, 80, 3, 6
NAMES = ("horseshoe_regression", HorseshoeGuide.name)


@dataclass(frozen=True)
class Truth:
    """Known parameters of a generated panel (model units, s = 1)."""

    beta: torch.Tensor
    alpha: torch.Tensor
    sigma: torch.Tensor
    nu: float


def make_truth(seed: int) -> Truth:
    g = torch.Generator().manual_seed(seed)
    beta = torch.zeros(F)
    beta[:2] = torch.tensor([0.5, -0.3])
    return Truth(
        beta=beta,
        alpha=0.1 * torch.randn(A, generator=g),
        sigma=0.7 + 0.5 * torch.rand(A, generator=g),
        nu=6.0,
    )


def generate(truth: Truth, rows: int, seed: int) -> ModelBatch:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(rows, A, F, generator=g)
    torch.manual_seed(seed)
    noise = dist.StudentT(truth.nu).sample((rows, A))
    return ModelBatch(X=X, y=truth.alpha + (X * truth.beta).sum(-1) + truth.sigma * noise)


def _draws(batch: ModelBatch, state, seed: int = 0) -> dict[str, torch.Tensor]:
    model, guide = build_pair(*NAMES, {}, {})
    return posterior_samples(model, guide, state, batch, 1000, seed=seed)


@pytest.fixture(scope="module")
def fitted():
    """Three generated panels fitted as one batched program, and the first one alone."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        truths = [make_truth(k) for k in range(3)]
        panels = [generate(t, T + HELD_OUT, seed=10 + k) for k, t in enumerate(truths)]
        train = [p.rows(0, T) for p in panels]
        specs = [FitSpec(b, SVI, {}, {}, seed=k) for k, b in enumerate(train)]
        states = fit_batched(*NAMES, specs, device="cpu")
        model, guide = build_pair(*NAMES, {}, {})
        alone = fit(model, guide, train[0], SVI, seed=0, device="cpu")
    finally:
        torch.set_num_threads(threads)
    return {
        "truths": truths,
        "panels": panels,
        "train": train,
        "states": states,
        "draws": [_draws(b, s) for b, s in zip(train, states, strict=True)],
        "alone": _draws(train[0], alone),
    }


def _covered(draws: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    lo, hi = torch.quantile(draws, torch.tensor([0.05, 0.95]), dim=0)
    return ((lo <= truth) & (truth <= hi)).flatten()


def test_posterior_recovers_sparse_coefficients_intercepts_and_scales(fitted) -> None:
    for truth, draws in zip(fitted["truths"], fitted["draws"], strict=True):
        gap = (draws["beta"].mean(0) - truth.beta).abs()
        assert bool((gap <= 3.5 * draws["beta"].std(0)).all()), gap
        torch.testing.assert_close(draws["alpha"].mean(0), truth.alpha, atol=0.25, rtol=0)
        torch.testing.assert_close(draws["sigma"].mean(0), truth.sigma, atol=0, rtol=0.25)
        # The two real signals are found; the four noise coefficients are shrunk.
        lo, hi = torch.quantile(draws["beta"][:, :2], torch.tensor([0.05, 0.95]), dim=0)
        assert bool(((lo > 0) | (hi < 0)).all())
        assert float(draws["beta"][:, 2:].mean(0).abs().max()) < 0.1


def test_ninety_percent_intervals_cover_roughly_nominally(fitted) -> None:
    covered = [
        _covered(draws[site], getattr(truth, site))
        for truth, draws in zip(fitted["truths"], fitted["draws"], strict=True)
        for site in ("beta", "alpha")
    ]
    # 27 intervals at a nominal 90% (variational posteriors run somewhat narrow).
    assert float(torch.cat(covered).float().mean()) >= 0.7


@pytest.mark.slow
def test_ninety_percent_intervals_cover_over_repeated_draws() -> None:
    truths = [make_truth(100 + k) for k in range(12)]
    batches = [generate(t, 200, seed=200 + k) for k, t in enumerate(truths)]
    specs = [FitSpec(b, SVI, {}, {}, seed=k) for k, b in enumerate(batches)]
    states = fit_batched(*NAMES, specs, device="cpu")
    covered = [
        _covered(_draws(b, s)[site], getattr(t, site))
        for t, b, s in zip(truths, batches, states, strict=True)
        for site in ("beta", "alpha")
    ]
    assert 0.78 <= float(torch.cat(covered).float().mean()) <= 1.0


def test_batched_fit_matches_a_separate_fit(fitted) -> None:
    batched, alone = fitted["draws"][0], fitted["alone"]
    for site in ("beta", "alpha", "sigma"):
        gap = (batched[site].mean(0) - alone[site].mean(0)).abs()
        assert bool((gap <= 2.5 * alone[site].std(0)).all()), (site, gap)


def _pit(draws: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    return (draws <= y).double().mean(0).flatten().numpy()


def test_predictive_is_calibrated_and_a_too_narrow_one_is_not(fitted) -> None:
    model, guide = build_pair(*NAMES, {}, {})
    held_out = fitted["panels"][0].rows(T, T + HELD_OUT)
    draws = predict(model, guide, fitted["states"][0], held_out, 400, seed=1, device="cpu")
    assert draws.shape == (400, HELD_OUT, A)
    assert stats.kstest(_pit(draws, held_out.y), "uniform").pvalue > 0.01
    centre = draws.median(0).values
    narrow = centre + 0.5 * (draws - centre)
    assert stats.kstest(_pit(narrow, held_out.y), "uniform").pvalue < 0.01


def test_regularized_local_scale_and_shrinkage_factors() -> None:
    tau, c2, sigma = torch.tensor(0.5), torch.tensor(4.0), torch.tensor(2.0)
    lam = torch.tensor([1.0, 2.0, 1e6])
    # tau^2 lam^2 = 0.25, 1, huge -> c2 t / (c2 + t) = 1/4.25, 0.8, -> c2 (the slab).
    local = regularized_local_scale(tau, lam, c2)
    torch.testing.assert_close(local**2, torch.tensor([1.0 / 4.25, 0.8, 4.0]))
    kappa = shrinkage_factors(tau, lam, c2, sigma, n=100.0)
    want = 1.0 / (1.0 + 100.0 * local**2 / 4.0)
    torch.testing.assert_close(kappa, want)
    torch.testing.assert_close(effective_nonzero(tau, lam, c2, sigma, 100.0), (1 - want).sum())


def test_global_scale_follows_the_p0_rule_on_observed_training_targets() -> None:
    batch = generate(make_truth(0), 50, seed=0)
    M = torch.ones(50, A, dtype=torch.bool)
    M[:, 0] = False  # one asset never observed
    window = ModelBatch(X=batch.X, y=batch.y, M=M, loss_mask=torch.arange(50) >= 10, obs_scale=2.0)
    model = HorseshoeRegression({"prior": {"expected_nonzero": 2.0}})
    with poutine.trace() as capture:
        model(window)
    n = 40 * 2 * 2.0  # trained rows x observed assets x obs_scale
    tau0 = 2.0 / (F - 2.0) / math.sqrt(n)
    assert float(capture.trace.nodes["tau"]["fn"].scale) == pytest.approx(tau0, rel=1e-6)


def test_complexity_and_p0_bounds() -> None:
    # p0 = F / 10 = 4 coefficients, 20 intercepts and 20 scales, nu.
    assert HorseshoeRegression({}).complexity(num_assets=20, num_features=40) == 45.0
    model = HorseshoeRegression({"prior": {"expected_nonzero": 6.0}})
    with pytest.raises(ConfigError, match=r"expected_nonzero=6.0.*\(6\)"):
        model.complexity(num_assets=2, num_features=6)


def test_shape_errors_name_model_site_and_shapes() -> None:
    model, _ = build_pair(*NAMES, {}, {})
    one_feature = ModelBatch(X=torch.zeros(5, 2, 1), y=torch.zeros(5, 2))
    with pytest.raises(
        ModelShapeError, match=r"'horseshoe_regression', site 'beta': X \(5, 2, 1\)"
    ):
        check_obs(model, one_feature)
    check_obs(model, generate(make_truth(0), 5, seed=0))


@pytest.mark.parametrize("covariance", ["full", "diagonal"])
def test_guide_covariance_of_the_coefficients(covariance: str) -> None:
    batch = generate(make_truth(0), 20, seed=0)
    model = HorseshoeRegression({})
    guide = HorseshoeGuide({"beta_covariance": covariance}, model)
    with param_scope(), poutine.trace() as capture:
        guide(batch)
    site = capture.trace.nodes["beta"]
    assert site["value"].shape == (F,)
    assert isinstance(site["fn"], dist.MultivariateNormal) == (covariance == "full")
    with param_scope(), pytest.raises(ConfigError, match=r"beta_covariance='dense'"):
        HorseshoeGuide({"beta_covariance": "dense"}, model)(batch)

"""regime_switching / regime_guide on data generated from the model's own process.

All data here is generated (two volatility regimes with known parameters), not market data.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO, infer_discrete
from scipy import stats

from algo_trader.domain.errors import ConfigError
from algo_trader.domain.simulation.config import SVIConfig
from algo_trader.pipeline.stages.modeling.contracts import ModelBatch, ModelShapeError
from algo_trader.pipeline.stages.modeling.predictive import posterior_samples, predict
from algo_trader.pipeline.stages.modeling.regime_guide import RegimeGuide
from algo_trader.pipeline.stages.modeling.regime_switching import (
    RegimeSwitching,
    stationary_distribution,
)
from algo_trader.pipeline.stages.modeling.registry import build_pair
from algo_trader.pipeline.stages.modeling.trainer import fit, param_scope

# The scan marginalization leaves TraceEnum_ELBO nothing to enumerate, which it warns about.
pytestmark = pytest.mark.filterwarnings("ignore:TraceEnum_ELBO found no sample sites")

STEPS = 250
# A high start and a decay to a tenth converge in few steps without ending noisy.
SVI = SVIConfig(num_steps=STEPS, learning_rate=0.08, lr_decay=0.1 ** (1 / STEPS), log_every=None)
WINDOWED = SVIConfig(**{**SVI.model_dump(), "tbptt_window_len": 80, "tbptt_burn_in_len": 20})
TRAIN, HELD_OUT = 200, 100


@dataclass(frozen=True)
class Truth:
    """Known parameters of a generated two-regime panel (model units, s = 1)."""

    transition: torch.Tensor
    multipliers: torch.Tensor
    alpha: torch.Tensor
    sigma: torch.Tensor
    beta: torch.Tensor
    nu: float

    def draws(self, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
        """The latent sites' values (what ``poutine.condition`` needs)."""
        P = self.transition.to(dtype)
        values = {
            "transition": P / P.sum(-1, keepdim=True),
            "log_ratio": torch.diff(torch.log(self.multipliers.to(dtype))),
            "alpha": self.alpha,
            "sigma": self.sigma,
            "beta": self.beta,
            "nu": torch.tensor(self.nu),
        }
        return {name: value.to(dtype) for name, value in values.items()}


TRUTH = Truth(
    transition=torch.tensor([[0.95, 0.05], [0.10, 0.90]]),
    multipliers=torch.tensor([1.0, 2.5]),
    alpha=torch.tensor([0.05, 0.0, -0.05, 0.1]),
    sigma=torch.tensor([0.6, 0.8, 1.0, 0.7]),
    beta=torch.tensor([0.2, 0.0, -0.1]),
    nu=8.0,
)


def generate(truth: Truth, T: int, seed: int) -> tuple[ModelBatch, torch.Tensor]:
    """A generated panel and its regime path: the chain is sampled step by step (it is
    sequential by nature), the returns in one call given the path."""
    g = torch.Generator().manual_seed(seed)
    A, F = truth.alpha.shape[0], truth.beta.shape[0]
    uniforms = torch.rand(T, generator=g)
    z = torch.zeros(T, dtype=torch.long)
    pi = stationary_distribution(truth.transition)
    z[0] = int(uniforms[0] > pi[0])
    for t in range(1, T):
        z[t] = int(uniforms[t] > truth.transition[z[t - 1], 0])
    X = torch.randn(T, A, F, generator=g)
    torch.manual_seed(seed)
    noise = dist.StudentT(truth.nu).sample((T, A))
    y = truth.alpha + (X * truth.beta).sum(-1) + truth.sigma * truth.multipliers[z, None] * noise
    return ModelBatch(X=X, y=y), z


def _fit(batch: ModelBatch, config: SVIConfig = SVI, seed: int = 0):
    model, guide = build_pair("regime_switching", "regime_guide", {}, {})
    state = fit(model, guide, batch, config, seed=seed, device="cpu")
    return model, guide, state, posterior_samples(model, guide, state, batch, 500, seed=seed)


@pytest.fixture(scope="module")
def fitted():
    """One generated series of 200 weeks (+ 100 held out), fitted on the full sequence
    and with TBPTT windows (module scope: the fits are the slow part)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        batch, z = generate(TRUTH, T=TRAIN + HELD_OUT, seed=11)
        train = batch.rows(0, TRAIN)
        full = _fit(train)
        windowed = _fit(train, WINDOWED)
    finally:
        torch.set_num_threads(threads)
    return {"batch": batch, "z": z, "train": train, "full": full, "windowed": windowed}


def _within(draws: torch.Tensor, target: torch.Tensor, num_sd: float) -> None:
    """Posterior means within ``num_sd`` posterior sds of ``target``, elementwise."""
    gap = (draws.mean(0) - target).abs()
    limit = num_sd * draws.std(0)
    assert bool((gap <= limit).all()), f"|mean - target| {gap.tolist()} > {limit.tolist()}"


def test_stationary_distribution_solves_pi_p_equals_pi() -> None:
    P = torch.tensor([[[0.9, 0.1], [0.2, 0.8]], [[0.5, 0.5], [0.5, 0.5]]], dtype=torch.float64)
    pi = stationary_distribution(P)
    torch.testing.assert_close(pi, torch.tensor([[2 / 3, 1 / 3], [0.5, 0.5]], dtype=torch.float64))


def _loss(model: RegimeSwitching, batch: ModelBatch, seed: int = 1) -> float:
    guide = RegimeGuide({}, model)
    with param_scope():
        pyro.set_rng_seed(seed)
        loss = TraceEnum_ELBO(max_plate_nesting=0).differentiable_loss(model, guide, batch)
    return float(loss.detach())


def test_scan_and_enumeration_give_the_same_elbo() -> None:
    batch, _ = generate(TRUTH, T=40, seed=3)
    M = torch.rand(40, 4, generator=torch.Generator().manual_seed(0)) > 0.1
    window = ModelBatch(X=batch.X, y=batch.y, M=M, loss_mask=torch.arange(40) >= 10, obs_scale=1.7)
    scan = _loss(RegimeSwitching({}), window)
    enumerated = _loss(RegimeSwitching({"marginalization": "enumerate"}), window)
    assert scan == pytest.approx(enumerated, rel=1e-5)


def _brute_force_log_lik(truth: Truth, batch: ModelBatch, rows: torch.Tensor) -> float:
    """log p(y[rows]) summing over every regime path (2^T of them), with scipy densities."""
    T = batch.num_rows
    # Rows of the float32 matrix sum to 1 only to float32 precision; the model normalises.
    P64 = truth.transition.double() / truth.transition.double().sum(-1, keepdim=True)
    P = P64.numpy()
    pi = stationary_distribution(P64).numpy()
    loc = (truth.alpha + (batch.X * truth.beta).sum(-1)).double().numpy()
    y = batch.y.double().numpy()
    keep = rows.numpy()
    total = []
    for path in itertools.product(range(2), repeat=T):
        z = np.array(path)
        log_p = np.log(pi[z[0]]) + np.log(P[z[:-1], z[1:]]).sum()
        scale = truth.sigma.double().numpy()[None, :] * truth.multipliers.numpy()[z][:, None]
        dens = stats.t.logpdf(y, truth.nu, loc=loc, scale=scale)
        total.append(log_p + dens[keep].sum())
    return float(np.logaddexp.reduce(total))


def _conditioned_log_lik(batch: ModelBatch) -> float:
    """The model's likelihood terms (obs and burn-in context) at the true parameters."""
    model = RegimeSwitching({})
    with poutine.trace() as capture, poutine.condition(data=TRUTH.draws(batch.X.dtype)):
        model(batch)
    trace = capture.trace
    trace.compute_log_prob()
    return sum(
        float(site["log_prob_sum"])
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and name in ("obs", "context")
    )


def test_burn_in_rows_are_conditioned_on_not_scored() -> None:
    batch, _ = generate(TRUTH, T=7, seed=5)
    batch = ModelBatch(X=batch.X.double(), y=batch.y.double())
    window = ModelBatch(X=batch.X, y=batch.y, loss_mask=torch.arange(7) >= 3)
    context = torch.arange(7) < 3
    everything = torch.ones(7, dtype=torch.bool)
    # log p(y[3:] | y[:3]) = log p(y) - log p(y[:3]), each summed over all 128 paths.
    want = _brute_force_log_lik(TRUTH, batch, everything) - _brute_force_log_lik(
        TRUTH, batch, context
    )
    assert _conditioned_log_lik(window) == pytest.approx(want, rel=1e-9)
    assert _conditioned_log_lik(batch) == pytest.approx(
        _brute_force_log_lik(TRUTH, batch, everything), rel=1e-9
    )


def test_posterior_recovers_transitions_and_regime_scales(fitted) -> None:
    draws = fitted["full"][3]
    truth = TRUTH.draws()
    for site in ("transition", "log_ratio", "sigma", "beta", "alpha"):
        _within(draws[site], truth[site], num_sd=3.5)
    # ... and is informative: the regimes are told apart.
    assert float(draws["transition"].std(0).max()) < 0.08
    assert float(draws["log_ratio"].mean()) > 0.6


def test_tbptt_windows_give_the_full_sequence_answer(fitted) -> None:
    full, windowed = fitted["full"][3], fitted["windowed"][3]
    for site in ("transition", "log_ratio", "sigma", "beta", "alpha"):
        _within(windowed[site], full[site].mean(0), num_sd=3.0)


@pytest.mark.slow
def test_ninety_percent_intervals_cover_at_about_the_nominal_rate() -> None:
    truth = TRUTH.draws()
    covered = []
    for rep in range(8):
        batch, _ = generate(TRUTH, T=300, seed=100 + rep)
        draws = _fit(batch, seed=rep)[3]
        for site in ("transition", "log_ratio", "sigma", "beta", "alpha"):
            lo, hi = torch.quantile(draws[site], torch.tensor([0.05, 0.95]), dim=0)
            covered.append(((lo <= truth[site]) & (truth[site] <= hi)).flatten())
    rate = float(torch.cat(covered).float().mean())
    # 8 x 16 intervals at a nominal 90%; mean-field guides run somewhat narrow.
    assert 0.75 <= rate <= 1.0


def _pit(draws: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """PIT of each observation under its predictive draws ``(S, H, A)``."""
    return (draws <= y).double().mean(0).flatten().numpy()


def test_forecast_is_calibrated_and_a_too_narrow_one_is_not(fitted) -> None:
    model, _, _, draws = fitted["full"]
    batch = fitted["batch"]
    future = batch.rows(TRAIN, TRAIN + HELD_OUT)
    pyro.set_rng_seed(0)
    forecast = model.forecast(draws, fitted["train"], future)
    assert forecast.shape == (500, HELD_OUT, 4)
    pit = _pit(forecast, future.y)
    assert stats.kstest(pit, "uniform").pvalue > 0.01
    centre = forecast.median(0).values
    narrow = centre + 0.5 * (forecast - centre)
    assert stats.kstest(_pit(narrow, future.y), "uniform").pvalue < 0.01


def test_predict_without_history_starts_from_the_stationary_law(fitted) -> None:
    model, guide, state, _ = fitted["full"]
    draws = predict(
        model, guide, state, fitted["batch"].rows(TRAIN, TRAIN + 10), 64, seed=0, device="cpu"
    )
    assert draws.shape == (64, 10, 4)
    assert torch.isfinite(draws).all()


def test_infer_discrete_decodes_the_regime_path() -> None:
    batch, z = generate(TRUTH, T=60, seed=7)
    model = RegimeSwitching({"marginalization": "enumerate"})
    conditioned = poutine.condition(model, data=TRUTH.draws())
    decoder = infer_discrete(conditioned, first_available_dim=-1, temperature=0)
    with poutine.trace() as capture:
        decoder(batch)
    path = torch.stack([capture.trace.nodes[f"regime_{t}"]["value"] for t in range(60)])
    assert float((path == z).float().mean()) >= 0.85


def test_batched_programs_and_mismatched_guides_name_model_site_and_shapes() -> None:
    batch, _ = generate(TRUTH, T=10, seed=0)
    model = RegimeSwitching({})
    batched = ModelBatch(X=batch.X, y=batch.y, fit_mask=torch.ones(2, 10, dtype=torch.bool))
    with pytest.raises(ModelShapeError, match=r"'regime_switching'.*2 fits, X \(10, 4, 3\)"):
        model(batched)
    three = RegimeSwitching({"num_regimes": 3})
    with (
        param_scope(),
        pytest.raises(ModelShapeError, match=r"site 'transition'.*\(3, 3\).*\(\.\.\., 2, 2\)"),
    ):
        TraceEnum_ELBO(max_plate_nesting=0).differentiable_loss(
            model, RegimeGuide({}, three), batch
        )


@pytest.mark.parametrize(
    "params",
    [{"num_regimes": 1}, {"marginalization": "forward"}, {"likelihood": {"family": "laplace"}}],
)
def test_bad_params_are_config_errors(params) -> None:
    batch, _ = generate(TRUTH, T=5, seed=0)
    with pytest.raises(ConfigError, match=r"model\.params"):
        RegimeSwitching(params)(batch)


def test_normal_family_has_no_degrees_of_freedom() -> None:
    batch, _ = generate(TRUTH, T=20, seed=0)
    model = RegimeSwitching({"likelihood": {"family": "normal"}})
    with param_scope(), poutine.trace() as capture:
        RegimeGuide({}, model)(batch)
    assert "nu" not in capture.trace.nodes
    assert math.isfinite(_loss(model, batch))


def test_complexity_counts_free_parameters() -> None:
    # 2 transitions + 1 scale step + 2 x 20 asset params + 40 coefficients + nu
    assert RegimeSwitching({}).complexity(num_assets=20, num_features=40) == 84.0
    assert (
        RegimeSwitching({"regime_signal": True, "num_regimes": 3}).complexity(20, 40)
        == 6 + 2 + 40 + 120 + 1
    )

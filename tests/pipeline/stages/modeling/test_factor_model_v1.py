from __future__ import annotations

import pyro
import pytest
import torch

from algo_trader.domain.simulation.config import SVIConfig
from algo_trader.pipeline.stages.modeling.contracts import ModelBatch, ModelShapeError
from algo_trader.pipeline.stages.modeling.predictive import posterior_samples
from algo_trader.pipeline.stages.modeling.registry import build_pair
from algo_trader.pipeline.stages.modeling.trainer import check_obs, fit

PARAMS = {"num_factors": 1, "nu": 6.0}
SVI = SVIConfig(num_steps=400, learning_rate=0.05, lr_decay=0.995)


def _fit(batch: ModelBatch, seed: int = 0):
    model, guide = build_pair("factor_model_v1", "factor_guide_v1", PARAMS, {})
    state = fit(model, guide, batch, SVI, seed=seed, device="cpu")
    draws = posterior_samples(model, guide, state, batch, 400, seed=seed)
    return state, draws


def test_posterior_means_recover_generated_parameters(factor_data) -> None:
    truth = factor_data.truth()
    _, draws = _fit(factor_data.batch(truth, T=300, seed=1))
    torch.testing.assert_close(draws["beta"].mean(0), truth.beta, atol=0.05, rtol=0)
    torch.testing.assert_close(draws["alpha"].mean(0), truth.alpha, atol=0.06, rtol=0)
    W, sigma = draws["W"].mean(0), draws["sigma"].mean(0)
    cov = W @ W.T + torch.diag(sigma**2)
    # Loadings are identified up to sign (rotation), their outer product is not.
    torch.testing.assert_close(cov, truth.cov_scale, atol=0.05, rtol=0.25)


@pytest.mark.slow
def test_ninety_percent_intervals_cover_beta_at_about_the_nominal_rate(factor_data) -> None:
    truth = factor_data.truth()
    covered = []
    for rep in range(12):
        _, draws = _fit(factor_data.batch(truth, T=300, seed=100 + rep), seed=rep)
        lo, hi = torch.quantile(draws["beta"], torch.tensor([0.05, 0.95]), dim=0)
        covered.append((lo <= truth.beta) & (truth.beta <= hi))
    rate = torch.stack(covered).float().mean()
    # Mean-field guides run narrow; 36 intervals at a nominal 90%.
    assert 0.7 <= float(rate) <= 1.0


def test_missing_targets_are_marginalised_not_scored_as_zero(factor_data) -> None:
    batch = factor_data.batch(factor_data.truth(), T=20, seed=3)
    model, _guide = build_pair("factor_model_v1", "factor_guide_v1", PARAMS, {})
    y = batch.y.clone()
    y[0, :2] = float("nan")
    masked = ModelBatch.from_arrays(batch.X, y)
    shifted = y.clone()
    shifted[0, :2] = 1e6  # what sits under the mask must not matter
    traces = []
    for target in (masked, ModelBatch(X=batch.X, y=torch.nan_to_num(shifted), M=masked.M)):
        pyro.set_rng_seed(0)
        with pyro.poutine.trace() as capture:
            model(target)
        capture.trace.compute_log_prob()
        traces.append(capture.trace.nodes["obs"]["log_prob"])
    torch.testing.assert_close(traces[0], traces[1])
    assert torch.isfinite(traces[0]).all()


def test_obs_shape_error_names_model_site_and_shapes(factor_data) -> None:
    model, _ = build_pair("factor_model_v1", "factor_guide_v1", PARAMS, {})
    batch = factor_data.batch(factor_data.truth(), T=10, seed=0)
    with pytest.raises(
        ModelShapeError, match=r"ModelBatch.y has shape \(10, 4\); with X \(10, 5, 3\)"
    ):
        ModelBatch(X=batch.X, y=batch.y[:, :4])
    check_obs(model, batch)


def test_complexity_counts_identified_parameters() -> None:
    model, _ = build_pair("factor_model_v1", "factor_guide_v1", {"num_factors": 2}, {})
    # beta 40 + tau 1 + alpha 20 + sigma 20 + loadings 20*2 - 1 rotation.
    assert model.complexity(num_assets=20, num_features=40) == 120.0

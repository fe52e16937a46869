from __future__ import annotations

import pytest
import torch
from scipy import stats

from algo_trader.domain.errors import ConfigError
from algo_trader.domain.simulation.config import SVIConfig
from algo_trader.pipeline.stages.modeling.predictive import predict, predict_batched
from algo_trader.pipeline.stages.modeling.registry import build_pair
from algo_trader.pipeline.stages.modeling.trainer import FitState, fit

PARAMS = {"num_factors": 1, "nu": 6.0}


@pytest.fixture(scope="module")
def holdout(factor_data):
    """A fit on 300 generated rows and the 100 rows after them."""
    truth = factor_data.truth()
    data = factor_data.batch(truth, T=400, seed=7)
    train, test = data.rows(0, 300), data.rows(300, 400)
    model, guide = build_pair("factor_model_v1", "factor_guide_v1", PARAMS, {})
    state = fit(
        model,
        guide,
        train,
        SVIConfig(num_steps=400, learning_rate=0.05, lr_decay=0.995),
        seed=0,
        device="cpu",
    )
    return model, guide, state, test


def _pit(samples: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (samples < y).float().mean(0).flatten()


def test_pit_of_held_out_rows_is_uniform_and_a_narrow_model_fails(holdout) -> None:
    model, guide, state, test = holdout
    samples = predict(model, guide, state, test, 400, seed=1, device="cpu")
    assert samples.shape == (400, 100, 5)
    calibrated = stats.kstest(_pit(samples, test.y).numpy(), "uniform")
    assert calibrated.pvalue > 0.01
    # The same fit with every scale a third as wide: over-confident, and KS says so.
    narrow = dict(state.params)
    narrow["sigma_loc"] = narrow["sigma_loc"] - torch.log(torch.tensor(3.0))
    narrow["W_loc"] = narrow["W_loc"] / 3.0
    too_narrow = FitState(narrow, state.loss_history, state.metadata)
    samples = predict(model, guide, too_narrow, test, 400, seed=1, device="cpu")
    assert stats.kstest(_pit(samples, test.y).numpy(), "uniform").pvalue < 1e-6


def test_predictive_draws_carry_cross_asset_correlation(holdout, factor_data) -> None:
    model, guide, state, test = holdout
    samples = predict(model, guide, state, test, 2000, seed=2, device="cpu")
    draws = samples[:, 0, :] - samples[:, 0, :].mean(0)
    corr = torch.corrcoef(draws.T)
    truth = factor_data.truth()
    cov = truth.cov_scale
    want = cov / torch.sqrt(torch.outer(torch.diagonal(cov), torch.diagonal(cov)))
    torch.testing.assert_close(corr, want, atol=0.15, rtol=0)


def test_draws_are_reproducible_from_the_seed_and_batched_matches_shapes(factor_data) -> None:
    truth = factor_data.truth()
    batch = factor_data.batch(truth, T=30, seed=0)
    model, guide = build_pair("factor_model_v1", "factor_guide_v1", PARAMS, {})
    state = fit(model, guide, batch, SVIConfig(num_steps=5), seed=0, device="cpu")
    a = predict(model, guide, state, batch, 10, seed=3, device="cpu")
    assert torch.equal(a, predict(model, guide, state, batch, 10, seed=3, device="cpu"))
    assert not torch.equal(a, predict(model, guide, state, batch, 10, seed=4, device="cpu"))
    out = predict_batched(
        "factor_model_v1",
        "factor_guide_v1",
        [PARAMS, PARAMS],
        {},
        [state, state],
        [batch, batch.rows(0, 12)],
        10,
        seed=3,
        device="cpu",
    )
    assert [o.shape for o in out] == [(10, 30, 5), (10, 12, 5)]
    # Both fits hold the same state: their draws share a distribution, so similar means.
    assert abs(float(out[0].mean() - a.mean())) < 0.5
    with pytest.raises(ConfigError, match="num_samples"):
        predict(model, guide, state, batch, 0, seed=3, device="cpu")

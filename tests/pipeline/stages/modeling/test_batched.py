from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from algo_trader.domain.errors import ConfigError
from algo_trader.domain.simulation.config import EarlyStoppingConfig, SVIConfig
from algo_trader.pipeline.stages.modeling.batched import (
    FitSpec,
    fit_batched,
    group_key,
    program_seed,
    stack_batches,
    stack_params,
)
from algo_trader.pipeline.stages.modeling.contracts import ModelBatch, ModelShapeError
from algo_trader.pipeline.stages.modeling.registry import build_pair
from algo_trader.pipeline.stages.modeling.trainer import fit

SVI = SVIConfig(num_steps=200, learning_rate=0.05, lr_decay=0.98)


def _t(value: object) -> torch.Tensor:
    """The tensor behind an optional/union-typed field (the test expects one)."""
    assert isinstance(value, torch.Tensor)
    return value


def _splits(factor_data, K: int = 3) -> list[ModelBatch]:
    """K overlapping row subsets of one generated panel, like CPCV training sets."""
    full = factor_data.batch(factor_data.truth(), T=120, seed=4)
    starts = [0, 20, 40][:K]
    return [full.rows(s, s + 70 + 10 * i) for i, s in enumerate(starts)]


def test_batched_test_model_fits_match_separate_fits() -> None:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(90, 3, 2, generator=g)
    y = (X * torch.tensor([0.4, -0.2])).sum(-1) + 0.3 * torch.randn(90, 3, generator=g)
    full = ModelBatch(X=X, y=y)
    config = SVIConfig(num_steps=150, learning_rate=0.05, lr_decay=0.98)
    specs = [
        FitSpec(full.rows(0, 60), config, {}, {}, 0),
        FitSpec(full.rows(20, 90), config, {}, {}, 1),
    ]
    batched = fit_batched("test_model", "test_guide", specs, device="cpu")
    for spec, state in zip(specs, batched, strict=True):
        alone = fit(
            *build_pair("test_model", "test_guide"),
            spec.batch,
            config,
            seed=spec.seed,
            device="cpu",
        )
        for name in ("w", "b", "sigma"):
            sd = torch.exp(alone.params[f"{name}_scale"])
            gap = (state.params[f"{name}_loc"] - alone.params[f"{name}_loc"]).abs() / sd
            assert float(gap.max()) < 1.0, name


@pytest.mark.slow
def test_batched_fits_match_separate_fits(factor_data) -> None:
    params = {"num_factors": 1, "nu": 6.0}
    specs = [FitSpec(b, SVI, params, {}, seed=i) for i, b in enumerate(_splits(factor_data, 2))]
    batched = fit_batched("factor_model_v1", "factor_guide_v1", specs, device="cpu")
    for spec, state in zip(specs, batched, strict=True):
        alone = fit(
            *build_pair("factor_model_v1", "factor_guide_v1", params, {}),
            spec.batch,
            spec.config,
            seed=spec.seed,
            device="cpu",
        )
        assert state.params.keys() == alone.params.keys()
        # Up to optimizer noise: within a fraction of the posterior sd (a separate fit
        # with another seed differs from this one by as much).
        for name in ("beta", "alpha", "sigma"):
            sd = torch.exp(alone.params[f"{name}_scale"])
            gap = (state.params[f"{name}_loc"] - alone.params[f"{name}_loc"]).abs() / sd
            assert float(gap.max()) < 1.0, name
        assert state.loss_history.shape == alone.loss_history.shape == (200,)
        # Same data, same ELBO up to Monte Carlo noise.
        assert abs(float(state.loss_history[-20:].mean() - alone.loss_history[-20:].mean())) < 5.0
        assert state.metadata["batched"]["num_fits"] == 2


def test_per_fit_learning_rate_steps_and_early_stopping(factor_data) -> None:
    batch = _splits(factor_data, 1)[0]
    stop = EarlyStoppingConfig(enabled=True, patience=3, min_delta=1e9)
    configs = [
        SVIConfig(num_steps=10, learning_rate=1e-9),
        SVIConfig(num_steps=25, learning_rate=0.05),
        SVIConfig(num_steps=25, learning_rate=0.05, early_stopping=stop),
    ]
    specs = [FitSpec(batch, c, {"num_factors": 1}, {}, seed=0) for c in configs]
    frozen, free, stopped = fit_batched("factor_model_v1", "factor_guide_v1", specs, device="cpu")
    assert [s.metadata["steps_run"] for s in (frozen, free, stopped)] == [10, 25, 4]
    assert stopped.metadata["stopped_early"] and not free.metadata["stopped_early"]
    assert frozen.params["beta_loc"].abs().max() < 1e-6  # lr 1e-9 barely moves it
    assert free.params["beta_loc"].abs().max() > 0.05


def test_warm_start_rows_load_into_their_fit(factor_data) -> None:
    batches = _splits(factor_data, 2)
    warm = fit(
        *build_pair("factor_model_v1", "factor_guide_v1", {"num_factors": 1}, {}),
        batches[0],
        SVIConfig(num_steps=100, learning_rate=0.05),
        seed=0,
        device="cpu",
    )
    still = SVIConfig(num_steps=1, learning_rate=1e-12)
    specs = [
        FitSpec(batches[0], still, {"num_factors": 1}, {}, 0, init_state=warm),
        FitSpec(batches[1], still, {"num_factors": 1}, {}, 1),
    ]
    resumed, cold = fit_batched("factor_model_v1", "factor_guide_v1", specs, device="cpu")
    torch.testing.assert_close(
        resumed.params["beta_loc"], warm.params["beta_loc"], atol=1e-6, rtol=0
    )
    assert cold.params["beta_loc"].abs().max() < 1e-6


def test_stack_params_turns_differing_floats_into_per_fit_tensors() -> None:
    merged = stack_params(
        [
            {"nu": 5.0, "num_factors": 2, "likelihood": {"sigma_scale": 1.0}},
            {"nu": 7.0, "num_factors": 2, "likelihood": {"sigma_scale": 1.0}},
        ]
    )
    assert merged["num_factors"] == 2 and merged["likelihood"] == {"sigma_scale": 1.0}
    assert torch.equal(merged["nu"], torch.tensor([5.0, 7.0], dtype=torch.float64))
    with pytest.raises(ConfigError, match=r"model.params.num_factors differs"):
        stack_params([{"num_factors": 1}, {"num_factors": 2}])


def test_stack_batches_shares_equal_panels_and_pads_different_ones() -> None:
    X, y = torch.randn(5, 2, 3), torch.randn(5, 2)
    one = ModelBatch(X=X, y=y)
    shared = stack_batches([one, one])
    assert shared.X is X and _t(shared.fit_mask).shape == (2, 5) and bool(_t(shared.fit_mask).all())
    short = ModelBatch(X=X[:3], y=y[:3])
    padded = stack_batches([one, short])
    assert padded.X.shape == (2, 5, 2, 3)
    assert _t(padded.fit_mask).tolist() == [[True] * 5, [True] * 3 + [False] * 2]
    padded_y = _t(padded.y)
    assert torch.equal(padded_y[1, :3], y[:3]) and bool((padded_y[1, 3:] == 0).all())
    with pytest.raises(ModelShapeError, match=r"share \(A, F\)"):
        stack_batches([one, ModelBatch(X=torch.randn(5, 2, 4), y=y)])


def test_group_key_separates_structural_settings() -> None:
    batch = ModelBatch(X=torch.randn(5, 2, 3), y=torch.randn(5, 2))
    base = FitSpec(batch, SVIConfig(), {"nu": 5.0, "num_factors": 2}, {}, 0)
    key = group_key("factor_model_v1", "factor_guide_v1", base)
    same = replace(base, params={"nu": 9.0, "num_factors": 2}, config=SVIConfig(learning_rate=0.1))
    assert group_key("factor_model_v1", "factor_guide_v1", same) == key
    for other in (
        replace(base, params={"nu": 5.0, "num_factors": 3}),
        replace(base, config=SVIConfig(tbptt_window_len=4)),
    ):
        assert group_key("factor_model_v1", "factor_guide_v1", other) != key
    assert program_seed([1, 2]) == program_seed([1, 2]) != program_seed([2, 1])


def test_fits_step_only_on_windows_holding_their_rows() -> None:
    # Fit 1 has 20 rows, padded to 60: windows 2 and 3 (of 20 rows) hold none of them.
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(60, 2, 1, generator=g), torch.randn(60, 2, generator=g)
    config = SVIConfig(num_steps=6, tbptt_window_len=20)
    specs = [
        FitSpec(ModelBatch(X=X, y=y), config, {}, {}, 0),
        FitSpec(ModelBatch(X=X[:20], y=y[:20]), config, {}, {}, 1),
    ]
    long, short = fit_batched("test_model", "test_guide", specs, device="cpu")
    assert long.metadata["steps_run"] == short.metadata["steps_run"] == 6
    assert long.loss_history.shape == short.loss_history.shape == (6,)

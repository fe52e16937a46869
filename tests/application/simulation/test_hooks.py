"""The hooks: the stub model, the portfolio hooks on hand-worked inputs, the full-mode seam."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from algo_trader.application.simulation import allocation
from algo_trader.application.simulation.hooks import (
    STUB_SHRINKAGE,
    AllocationSpec,
    CostSpec,
    HookConfig,
    PyroState,
    allocation_spec,
    cost_pnl,
    cost_spec,
    full_hooks,
    policy_allocate,
    stub_hooks,
)
from algo_trader.domain.errors import ConfigError
from algo_trader.domain.simulation.config import (
    AllocationConfig,
    CostConfig,
    ScoreSpec,
    SimulationConfig,
)

NAN = float("nan")


def hook_config(seed: int = 5) -> HookConfig:
    return HookConfig(config=SimulationConfig(), seed=seed)


def test_stub_fit_is_mean_and_shrunk_covariance() -> None:
    y = torch.tensor([[1.0, 10.0], [3.0, NAN], [5.0, 14.0]], dtype=torch.float64)
    state = stub_hooks().fit_model(torch.zeros(3, 2, 1), y, hook_config(), None)
    np.testing.assert_allclose(state["mean"].numpy(), [3.0, 12.0])
    # Centred, missing -> 0: [[-2, -2], [0, 0], [2, 2]]; / (3 - 1).
    raw = np.array([[4.0, 4.0], [4.0, 4.0]])
    shrunk = (1 - STUB_SHRINKAGE) * raw + STUB_SHRINKAGE * np.diag(np.diag(raw))
    np.testing.assert_allclose(state["cov"].numpy(), shrunk, rtol=1e-5)
    assert state["n_obs"].tolist() == [3, 2]


def test_stub_predict_is_seeded_and_shaped() -> None:
    hooks = stub_hooks()
    y = torch.randn(50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    state = hooks.fit_model(torch.zeros(50, 3, 2), y, hook_config(), None)
    a = hooks.predict(torch.zeros(4, 3, 2), state, hook_config(11), 2000)
    b = hooks.predict(torch.zeros(4, 3, 2), state, hook_config(11), 2000)
    c = hooks.predict(torch.zeros(4, 3, 2), state, hook_config(12), 2000)
    assert a["samples"].shape == (2000, 4, 3)
    assert torch.equal(a["samples"], b["samples"])
    assert not torch.equal(a["samples"], c["samples"])
    # 2000 draws: the sample mean is within a few standard errors of the fitted mean.
    err = (a["samples"].mean(dim=0) - state["mean"]).abs()
    assert bool((err < 5 * state["cov"].diagonal().sqrt() / np.sqrt(2000)).all())


def test_stub_score_is_the_configured_metric() -> None:
    samples = torch.tensor([[[1.0, 2.0]], [[3.0, 4.0]]], dtype=torch.float64)  # mean [2, 3]
    y_true = torch.tensor([[4.0, NAN]], dtype=torch.float64)
    spec = ScoreSpec(metric_name="neg_mse")
    assert stub_hooks().score(y_true, {"samples": samples}, spec) == -4.0
    assert np.isnan(stub_hooks().score(torch.full((1, 2), NAN), {"samples": samples}, spec))


def test_allocate_converts_y_units_to_returns_for_the_policy() -> None:
    rng = np.random.default_rng(3)
    returns = rng.normal(0.002, 0.03, size=(400, 3))
    spec = AllocationSpec(AllocationConfig(policy="mean_variance", risk_aversion=4.0), 1e6)
    w = stub_hooks().allocate(returns * 1e6, np.zeros(3), spec)
    expected = allocation.allocate(returns * 1e6 / 1e6, np.zeros(3), spec.config)
    np.testing.assert_array_equal(w, expected)
    equal = AllocationSpec(AllocationConfig(policy="equal_weight"), 1e6)
    assert stub_hooks().allocate(returns, np.zeros(3), equal).tolist() == [1 / 3] * 3


def test_allocation_spec_checks_the_policy_against_the_panel() -> None:
    config = SimulationConfig.model_validate(
        {"allocation": {"max_weight": 0.2}, "data": {"dataset_params": {"target_scale": 100}}}
    )
    with pytest.raises(ConfigError, match="max_weight"):
        allocation_spec(config, 3)  # 3 x 0.2 cannot reach net exposure 1
    assert allocation_spec(config, 5) == AllocationSpec(config.allocation, 100.0)


def test_pnl_hand_worked_with_proportional_per_asset_and_fixed_costs() -> None:
    cost = CostConfig(bps=10.0, per_asset_bps={"B": 20.0}, fixed_per_rebalance=0.0005)
    spec = cost_spec(cost, ["A", "B"], 1e6)
    w, w_prev = np.array([0.5, 0.5]), np.array([1.0, 0.0])
    y = np.array([20_000.0, NAN])  # +2 % on A, B missing
    pnl = cost_pnl(w, y, w_prev, spec)
    assert pnl["gross"] == pytest.approx(0.01, abs=1e-15)
    # 10 bps x 0.5 (A) + 20 bps x 0.5 (B) + the fixed 5 bps of a rebalance.
    assert pnl["cost"] == pytest.approx(0.0005 + 0.001 + 0.0005, abs=1e-15)
    assert pnl["net"] == pytest.approx(0.008, abs=1e-15)
    assert pnl["turnover"] == 1.0 and pnl["missing"] == 1.0


def test_zero_turnover_costs_nothing() -> None:
    spec = cost_spec(CostConfig(bps=50.0, fixed_per_rebalance=0.01), ["A", "B"], 1e6)
    w = np.array([0.3, 0.7])
    pnl = cost_pnl(w, np.array([1e4, -1e4]), w.copy(), spec)
    assert pnl["cost"] == 0.0 and pnl["turnover"] == 0.0
    assert pnl["net"] == pnl["gross"] == pytest.approx(0.003 - 0.007, abs=1e-15)


def test_cost_spec_rejects_an_unknown_asset() -> None:
    spec = cost_spec(CostConfig(bps=5.0), ["A", "B"], 1e6)
    assert spec == CostSpec(CostConfig(bps=5.0), ("A", "B"), 1e6)
    with pytest.raises(ConfigError, match=r"cost.per_asset_bps: \['C'\]"):
        cost_spec(CostConfig(per_asset_bps={"C": 1.0}), ["A", "B"], 1.0)


def test_stub_and_full_share_the_portfolio_hooks() -> None:
    assert stub_hooks().allocate is policy_allocate and stub_hooks().compute_pnl is cost_pnl


def test_full_hooks_fit_and_predict_a_real_pyro_model() -> None:
    config = SimulationConfig.model_validate(
        {
            "model": {"model_name": "test_model", "guide_name": "test_guide"},
            "training": {"svi": {"num_steps": 30}},
        }
    )
    rng = np.random.default_rng(0)
    X = torch.from_numpy(rng.normal(size=(40, 3, 2)))
    y = X[..., 0] * 2.0 + torch.from_numpy(rng.normal(scale=0.1, size=(40, 3)))
    hooks = full_hooks()
    hc = HookConfig(config=config, seed=5)
    state = hooks.fit_model(X, y, hc, None)
    assert isinstance(state, PyroState)
    pred = hooks.predict(X[:4], state, hc, 7)
    assert pred["samples"].shape == (7, 4, 3) and pred["samples"].dtype == torch.float64
    # Batched fitting returns one state per fit, each predicting like a single fit.
    many = hooks.fit_many([(X, y, hc), (X[:30], y[:30], HookConfig(config=config, seed=6))])
    assert len(many) == 2 and all(isinstance(s, PyroState) for s in many)

"""The stub hooks on small hand-checked inputs, and the full-mode placeholder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from algo_trader.application.simulation.hooks import (
    STUB_SHRINKAGE,
    CostSpec,
    HookConfig,
    cost_spec,
    full_hooks,
    stub_hooks,
)
from algo_trader.domain.errors import ConfigError, NotYetImplementedError
from algo_trader.domain.simulation.config import AllocationConfig, CostConfig, SimulationConfig

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


def test_stub_score_is_negative_mse_on_observed_targets() -> None:
    samples = torch.tensor([[[1.0, 2.0]], [[3.0, 4.0]]], dtype=torch.float64)  # mean [2, 3]
    y_true = torch.tensor([[4.0, NAN]], dtype=torch.float64)
    assert stub_hooks().score(y_true, {"samples": samples}, None) == -4.0
    assert np.isnan(stub_hooks().score(torch.full((1, 2), NAN), {"samples": samples}, None))


def test_stub_allocate_is_equal_weight_at_gross_leverage() -> None:
    pred = {"samples": torch.zeros(3, 1, 4)}
    w = stub_hooks().allocate(pred, AllocationConfig(gross_leverage=2.0))
    assert w.tolist() == [0.5, 0.5, 0.5, 0.5]


def test_stub_pnl_charges_proportional_and_fixed_cost() -> None:
    spec = CostSpec(rate=np.array([0.1, 0.2]), fixed=0.05)
    w = torch.tensor([0.5, 0.5], dtype=torch.float64)
    w_prev = torch.tensor([1.0, 0.0], dtype=torch.float64)
    y = torch.tensor([2.0, NAN], dtype=torch.float64)
    pnl = stub_hooks().compute_pnl(w, y, w_prev, spec)
    assert pnl["gross"] == 1.0
    assert pnl["cost"] == pytest.approx(0.1 * 0.5 + 0.2 * 0.5 + 0.05)
    assert pnl["net"] == pytest.approx(1.0 - 0.2)
    assert pnl["turnover"] == 1.0 and pnl["missing"] == 1.0
    unchanged = stub_hooks().compute_pnl(w, y, w, spec)
    assert unchanged["cost"] == 0.0


def test_cost_spec_in_target_units_and_unknown_asset() -> None:
    spec = cost_spec(CostConfig(bps=5.0, per_asset_bps={"B": 10.0}), ["A", "B"], 1e6)
    np.testing.assert_allclose(spec.rate, [500.0, 1000.0])
    with pytest.raises(ConfigError, match=r"cost.per_asset_bps: \['C'\]"):
        cost_spec(CostConfig(per_asset_bps={"C": 1.0}), ["A", "B"], 1.0)


def test_full_hooks_say_which_issue_brings_them() -> None:
    with pytest.raises(NotYetImplementedError, match="issue #5"):
        full_hooks()

"""Outer walk-forward: realized-label training sets, warm starts, hand-worked PnL, honesty."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch

from algo_trader.application.simulation.cv_groups import OuterFold
from algo_trader.application.simulation.hooks import (
    HookConfig,
    Hooks,
    cost_spec,
    stub_fit_model,
    stub_hooks,
    stub_predict,
)
from algo_trader.application.simulation.outer_walk_forward import (
    OuterResult,
    evaluate_outer_walk_forward,
    expanding_train_idx,
    predictive_summary,
)
from algo_trader.application.simulation.panel import Panel
from algo_trader.domain.simulation.config import CostConfig, SimulationConfig

SCALE = 1_000_000  # the config's default target_scale: y = return x 1e6


def fold(train_end: int, n_test: int, k: int = 2) -> OuterFold:
    return OuterFold(
        k=k,
        train_idx=np.arange(train_end, dtype=np.int64),
        test_idx=np.arange(train_end, train_end + n_test, dtype=np.int64),
        inner_groups=[0, 1],
    )


def make_panel(y_returns: np.ndarray, X: np.ndarray | None = None) -> Panel:
    """A panel with the given returns (y in panel units) and generated features."""
    T, A = y_returns.shape
    if X is None:
        X = np.random.default_rng(1).normal(size=(T, A, 2))
    y = y_returns * SCALE
    return Panel(
        X=X,
        y=y,
        missing_mask=np.isnan(X),
        y_missing_mask=np.isnan(y),
        timestamps=np.arange(T, dtype=np.int64) * 7 * 86_400 * 10**9,
        assets=[f"A{i}" for i in range(A)],
        features=["z_a", "z_b"],
        sources={},
    )


def config(**sections: Any) -> SimulationConfig:
    return SimulationConfig.model_validate({"predictive": {"num_samples": 64}, **sections})


def run(panel: Panel, f: OuterFold, cfg: SimulationConfig, hooks: Hooks | None = None,
        bps: float = 10.0, fixed: float = 0.0) -> OuterResult:  # fmt: skip
    costs = cost_spec(CostConfig(bps=bps, fixed_per_rebalance=fixed), panel.assets, SCALE)
    return evaluate_outer_walk_forward(panel, f, cfg, hooks or stub_hooks(), costs)


def test_expanding_train_keeps_only_realized_labels() -> None:
    f = fold(20, 4)
    # Horizon 1: at t = 20 rows 0..19; at t = 22 also the test weeks 20 and 21.
    assert expanding_train_idx(f, 0, 1).tolist() == list(range(20))
    assert expanding_train_idx(f, 2, 1).tolist() == list(range(22))
    # Horizon 2: the label of row 19 ends at week 21, after t = 20.
    assert expanding_train_idx(f, 0, 2).tolist() == list(range(19))
    assert expanding_train_idx(f, 3, 2).tolist() == list(range(22))


def two_asset_returns() -> np.ndarray:
    """Hand-made returns: A earns +1 %, B loses 1 % for 8 weeks, then they swap signs."""
    r = np.tile([0.01, -0.01], (12, 1))
    r[8] = [-0.50, 0.50]
    r[9] = [0.02, 0.04]
    r[10] = [0.03, -0.02]
    r[11] = [0.05, 0.01]
    return r


def test_two_asset_pnl_by_hand_through_the_outer_loop() -> None:
    # sign_of_mean, long-only, fully invested: all in the asset whose training mean is
    # positive. At t=8 (rows 0..7) that is A; from t=9 the -50 % week of A is in training
    # and B's mean is positive: all in B. Costs 10 bps of turnover.
    panel = make_panel(two_asset_returns())
    cfg = config(allocation={"policy": "sign_of_mean"}, predictive={"num_samples": 4000})
    result = run(panel, fold(8, 4), cfg)
    np.testing.assert_array_equal(result.weights.to_numpy(), [[1, 0], [0, 1], [0, 1], [0, 1]])
    np.testing.assert_allclose(result.pnl["turnover"], [1.0, 2.0, 0.0, 0.0])
    np.testing.assert_allclose(result.pnl["gross"], [-0.50, 0.04, -0.02, 0.01], atol=1e-15)
    np.testing.assert_allclose(result.pnl["cost"], [0.001, 0.002, 0.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(result.pnl["net"], [-0.501, 0.038, -0.02, 0.01], atol=1e-15)
    np.testing.assert_allclose(result.returns.to_numpy(), two_asset_returns()[8:12])
    assert list(result.pnl.index) == list(panel.index[8:12])
    assert result.metrics()["total_net"] == pytest.approx(-0.501 + 0.038 - 0.02 + 0.01)


def test_equal_weight_pays_only_the_first_rebalance_and_missing_earns_nothing() -> None:
    r = np.random.default_rng(4).normal(0.0, 0.02, size=(24, 3))
    r[21, 0] = np.nan
    panel = make_panel(r)
    result = run(panel, fold(20, 4), config(), bps=10.0, fixed=0.0002)
    np.testing.assert_allclose(result.weights.to_numpy(), 1 / 3)
    # From cash into 1/3 each: turnover 1, 10 bps + the fixed fee; then nothing trades.
    assert result.pnl["cost"].tolist() == pytest.approx([0.001 + 0.0002, 0.0, 0.0, 0.0])
    assert result.pnl["cost"].iloc[1:].eq(0.0).all()
    np.testing.assert_allclose(result.pnl["gross"], np.nansum(r[20:24] / 3, axis=1), atol=1e-15)
    assert result.pnl["missing"].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert len(set(result.seeds)) == 4 and result.kept == ["z_a", "z_b"]
    assert np.isfinite(result.score) and result.score < 0


def test_predictive_summary_by_hand() -> None:
    draws = np.array([[[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]]])  # 1 week, 3 draws, 2 assets
    index = make_panel(np.zeros((1, 2))).index
    frame = predictive_summary(draws, np.array([[2.5, np.nan]]), index, ["A", "B"], [0.5, 0.75])
    assert list(frame.columns) == ["timestamp", "asset", "mean", "sd", "q0.5", "q0.75", "realized"]
    assert frame["asset"].tolist() == ["A", "B"]
    np.testing.assert_allclose(frame["mean"], [2.0, 20.0])
    np.testing.assert_allclose(frame["sd"], [1.0, 10.0])
    np.testing.assert_allclose(frame["q0.75"], [2.5, 25.0])
    assert frame["realized"].iloc[0] == 2.5 and np.isnan(frame["realized"].iloc[1])


def test_fold_predictive_summary_is_in_return_units() -> None:
    r = np.random.default_rng(5).normal(0.0, 0.02, size=(24, 2))
    result = run(make_panel(r), fold(20, 4), config())
    assert len(result.predictive) == 4 * 2
    np.testing.assert_allclose(result.predictive["realized"], r[20:24].ravel())
    # The stub predicts the training mean and spread: sd of order 0.02, not 2e4.
    assert result.predictive["sd"].between(0.005, 0.05).all()


def test_first_week_fits_from_scratch_then_warm_starts_with_fewer_steps() -> None:
    calls: list[tuple[int, Any, int]] = []

    def fit(X: torch.Tensor, y: torch.Tensor, cfg: HookConfig, init: Any) -> Any:
        calls.append((cfg.config.training.svi.num_steps, init, int(y.shape[0])))
        return {**stub_fit_model(X, y, cfg, init), "week": len(calls)}

    hooks = replace(stub_hooks(), fit_model=fit)
    cfg = config(outer={"warm_start_steps": 7}, training={"svi": {"num_steps": 300}})
    r = np.random.default_rng(6).normal(0.0, 0.02, size=(24, 2))
    run(make_panel(r), fold(20, 4), cfg, hooks)
    assert [c[0] for c in calls] == [300, 7, 7, 7]
    assert calls[0][1] is None
    assert [c[1]["week"] for c in calls[1:]] == [1, 2, 3]  # each from the previous state
    assert [c[2] for c in calls] == [20, 21, 22, 23]  # realized labels only (horizon 1)


def x_aware_hooks() -> Hooks:
    """The stub model plus a mean shift driven by the scaled features of the predicted week,
    so that features (and the scaler fitted on the training rows) move the weights."""

    def fit(X: torch.Tensor, y: torch.Tensor, cfg: HookConfig, init: Any) -> Any:
        return {**stub_fit_model(X, y, cfg, init), "x_level": torch.nan_to_num(X).mean()}

    def predict(X: torch.Tensor, state: Any, cfg: HookConfig, n: int) -> dict[str, torch.Tensor]:
        pred = stub_predict(X, state, cfg, n)
        shift = 5e3 * (torch.nan_to_num(X).mean(dim=-1) - state["x_level"])  # (T, A)
        return {"samples": pred["samples"] + shift}

    return replace(stub_hooks(), name="x_aware", fit_model=fit, predict=predict)


def perturbed_after(panel: Panel, t: int, shift: int) -> Panel:
    """``panel`` with every feature after week ``t`` and every label realized after ``t``
    (rows ``s + shift > t``) replaced by other draws, some missing."""
    rng = np.random.default_rng(99)
    X, y = panel.X.copy(), panel.y.copy()
    X[t + 1 :] = rng.normal(3.0, 2.0, size=X[t + 1 :].shape)
    X[t + 1 :: 3, 0, 1] = np.nan
    first_label = t - shift + 1
    y[first_label:] = rng.normal(0.0, 0.2, size=y[first_label:].shape) * SCALE
    y[first_label + 1, 1] = np.nan
    return replace(panel, X=X, y=y, missing_mask=np.isnan(X), y_missing_mask=np.isnan(y))


@pytest.mark.parametrize("hooks", [stub_hooks(), x_aware_hooks()], ids=["stub", "x_aware"])
@pytest.mark.parametrize("shift", [1, 2])
def test_weights_at_t_depend_only_on_data_up_to_t(hooks: Hooks, shift: int) -> None:
    r = np.random.default_rng(7).normal(0.003, 0.03, size=(40, 3))
    panel = make_panel(r, np.random.default_rng(8).normal(size=(40, 3, 2)))
    cfg = config(
        allocation={"policy": "mean_variance", "risk_aversion": 50.0, "turnover_penalty": 1e-4},
        cv={"horizon": shift},
        data={"dataset_params": {"target_shift": shift}},
    )
    f = fold(24, 10)
    base = run(panel, f, cfg, hooks).weights.to_numpy()
    assert np.ptp(base, axis=0).max() > 0.05  # the weights do move with the data
    for step in (2, 6):
        t = int(f.test_idx[step])
        changed = run(perturbed_after(panel, t, shift), f, cfg, hooks).weights.to_numpy()
        np.testing.assert_array_equal(changed[: step + 1], base[: step + 1])
        assert not np.array_equal(changed[step + 1 :], base[step + 1 :])

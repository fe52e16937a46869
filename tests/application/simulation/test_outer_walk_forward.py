"""Outer walk-forward: expanding realized-label training sets and the weekly PnL."""

from __future__ import annotations

import numpy as np
import pytest

from algo_trader.application.simulation.cv_groups import OuterFold
from algo_trader.application.simulation.hooks import CostSpec, stub_hooks
from algo_trader.application.simulation.outer_walk_forward import (
    evaluate_outer_walk_forward,
    expanding_train_idx,
)
from algo_trader.application.simulation.panel import Panel
from algo_trader.domain.simulation.config import SimulationConfig

T, A = 24, 3


def fold(train_end: int = 20, horizon_rows: int = 4) -> OuterFold:
    return OuterFold(
        k=2,
        train_idx=np.arange(train_end, dtype=np.int64),
        test_idx=np.arange(train_end, train_end + horizon_rows, dtype=np.int64),
        inner_groups=[0, 1],
    )


def generated_panel() -> Panel:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(T, A, 2))
    y = rng.normal(size=(T, A))
    y[21, 0] = np.nan
    return Panel(
        X=X,
        y=y,
        missing_mask=np.zeros(X.shape, bool),
        y_missing_mask=np.isnan(y),
        timestamps=np.arange(T, dtype=np.int64) * 7 * 86_400 * 10**9,
        assets=["A", "B", "C"],
        features=["z_a", "z_b"],
        sources={},
    )


def test_expanding_train_keeps_only_realized_labels() -> None:
    f = fold()
    # Horizon 1: at t = 20 rows 0..19; at t = 22 also the test weeks 20 and 21.
    assert expanding_train_idx(f, 0, 1).tolist() == list(range(20))
    assert expanding_train_idx(f, 2, 1).tolist() == list(range(22))
    # Horizon 2: the label of row 19 ends at week 21, after t = 20.
    assert expanding_train_idx(f, 0, 2).tolist() == list(range(19))
    assert expanding_train_idx(f, 3, 2).tolist() == list(range(22))


def test_weekly_pnl_is_equal_weight_return_minus_turnover_cost() -> None:
    panel = generated_panel()
    config = SimulationConfig.model_validate({"predictive": {"num_samples": 8}})
    costs = CostSpec(rate=np.full(A, 0.01), fixed=0.0)
    result = evaluate_outer_walk_forward(panel, fold(), config, stub_hooks(), costs)
    y = panel.y[20:24]
    np.testing.assert_allclose(result.pnl["gross"], np.nansum(y / 3, axis=1))
    np.testing.assert_allclose(result.pnl["cost"], [0.01, 0, 0, 0], atol=1e-15)
    np.testing.assert_allclose(result.pnl["net"], result.pnl["gross"] - result.pnl["cost"])
    assert result.pnl["missing"].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert list(result.pnl.index) == list(panel.index[20:24])
    assert len(set(result.seeds)) == 4
    assert result.kept == ["z_a", "z_b"]
    assert np.isfinite(result.score) and result.score < 0
    assert result.metrics()["total_net"] == pytest.approx(result.pnl["net"].sum())

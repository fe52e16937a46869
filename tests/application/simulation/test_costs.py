"""Transaction costs and the PnL of a rebalance, on hand-worked examples."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from algo_trader.application.simulation.costs import (
    MIN_TRADE,
    cost_rates,
    pnl,
    turnover_cost,
)
from algo_trader.domain.errors import ConfigError
from algo_trader.domain.simulation.config import CostConfig

ASSETS = ["AAA", "BBB", "CCC"]
COSTS = CostConfig(bps=10.0, per_asset_bps={"CCC": 20.0}, fixed_per_rebalance=0.001)


def test_pnl_by_hand_with_costs() -> None:
    w_prev = np.array([0.5, 0.5, 0.0])
    w = np.array([0.2, 0.3, 0.5])
    r_next = np.array([0.01, -0.02, 0.03])
    result = pnl(w, r_next, w_prev, COSTS, ASSETS)
    # turnover |[-0.3, -0.2, 0.5]| = 1.0
    # cost = 10 bps x (0.3 + 0.2) + 20 bps x 0.5 + 0.001 = 0.0005 + 0.001 + 0.001
    # gross = 0.2 x 0.01 - 0.3 x 0.02 + 0.5 x 0.03 = 0.002 - 0.006 + 0.015
    assert result["turnover"] == pytest.approx(1.0, abs=1e-15)
    assert result["cost"] == pytest.approx(0.0025, abs=1e-15)
    assert result["gross"] == pytest.approx(0.011, abs=1e-15)
    assert result["net"] == pytest.approx(0.0085, abs=1e-15)
    assert result["missing"] == 0.0


def test_zero_turnover_costs_nothing_not_even_the_fixed_fee() -> None:
    w = np.array([0.2, 0.3, 0.5])
    assert turnover_cost(w, w.copy(), COSTS, ASSETS) == 0.0
    result = pnl(w, np.array([0.01, 0.0, -0.01]), w.copy(), COSTS, ASSETS)
    assert result["cost"] == 0.0 and result["turnover"] == 0.0
    assert result["net"] == result["gross"] == pytest.approx(0.002 - 0.005)


def test_solver_noise_is_not_a_trade() -> None:
    w_prev = np.array([0.2, 0.3, 0.5])
    noisy = w_prev + np.array([1e-12, -1e-12, 0.0])
    assert turnover_cost(noisy, w_prev, COSTS, ASSETS) == 0.0
    traded = w_prev + np.array([2 * MIN_TRADE, 0.0, 0.0])
    assert turnover_cost(traded, w_prev, COSTS, ASSETS) == pytest.approx(
        0.001 + 10e-4 * 2 * MIN_TRADE
    )


def test_missing_return_earns_nothing_and_is_counted() -> None:
    result = pnl(
        np.array([0.5, 0.5, 0.0]),
        np.array([0.02, np.nan, np.nan]),
        np.array([0.5, 0.5, 0.0]),
        COSTS,
        ASSETS,
    )
    assert result["gross"] == pytest.approx(0.01)
    assert result["missing"] == 2.0


def test_per_asset_rates() -> None:
    np.testing.assert_allclose(cost_rates(COSTS, ASSETS), [1e-3, 1e-3, 2e-3])
    # Order follows the asset list, not the mapping.
    np.testing.assert_allclose(cost_rates(COSTS, ["CCC", "AAA"]), [2e-3, 1e-3])


def test_unknown_per_asset_name_is_a_config_error() -> None:
    cfg = CostConfig(per_asset_bps={"ZZZ": 3.0})
    with pytest.raises(ConfigError, match=r"cost.per_asset_bps: \['ZZZ'\].*valid: AAA, BBB, CCC"):
        turnover_cost(np.zeros(3), np.zeros(3), cfg, ASSETS)


weights = arrays(np.float64, 3, elements=st.floats(-2.0, 2.0))


@settings(max_examples=100, deadline=None)
@given(weights, weights, st.floats(0.0, 100.0), st.floats(0.0, 0.01))
def test_cost_is_rate_times_traded_turnover_plus_fee(
    w: np.ndarray, w_prev: np.ndarray, bps: float, fixed: float
) -> None:
    cfg = CostConfig(bps=bps, fixed_per_rebalance=fixed)
    move = np.abs(w - w_prev)
    move = np.where(move > MIN_TRADE, move, 0.0)
    expected = bps * 1e-4 * move.sum() + (fixed if move.any() else 0.0)
    assert turnover_cost(w, w_prev, cfg, ASSETS) == pytest.approx(expected, abs=1e-15)
    assert turnover_cost(w, w_prev, cfg, ASSETS) >= 0.0

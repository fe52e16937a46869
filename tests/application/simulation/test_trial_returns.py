"""Per-candidate inner returns: policy PnL per split, CPCV overlap collapse, CSV round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from algo_trader.application.simulation.cv_groups import InnerSplit
from algo_trader.application.simulation.hooks import allocation_spec, cost_spec, stub_hooks
from algo_trader.application.simulation.panel import Panel
from algo_trader.application.simulation.trial_returns import (
    TrialReturns,
    policy_returns,
    pooled_trials,
    read_trial_returns,
    write_trial_returns,
)
from algo_trader.domain.simulation.config import CostConfig, SimulationConfig

SCALE = 1e6
WEEK_NS = 7 * 86_400 * 10**9


def panel(y_returns: np.ndarray) -> Panel:
    T, A = y_returns.shape
    X = np.zeros((T, A, 1))
    return Panel(
        X=X,
        y=y_returns * SCALE,
        missing_mask=np.zeros(X.shape, bool),
        y_missing_mask=np.isnan(y_returns),
        timestamps=np.arange(T, dtype=np.int64) * WEEK_NS,
        assets=["A", "B"],
        features=["f"],
        sources={},
    )


def split(split_id: int, test: list[int]) -> InnerSplit:
    empty = np.array([], dtype=np.int64)
    return InnerSplit(split_id, (0,), empty, np.array(test, dtype=np.int64), empty, empty)


def test_policy_returns_by_hand_each_block_starts_from_cash() -> None:
    cfg = SimulationConfig()  # equal_weight, 5 bps
    y = np.array([[0.02, 0.0], [0.01, 0.03], [-0.02, 0.0]]) * SCALE
    draws = np.zeros((4, 3, 2))
    net = policy_returns(
        draws,
        y,
        np.array([3, 4, 9]),  # a gap before row 9: a new block
        stub_hooks(),
        allocation_spec(cfg, 2),
        cost_spec(CostConfig(bps=5.0), ["A", "B"], SCALE),
    )
    # 1/2 each; buying from cash (turnover 1) costs 5 bps at rows 3 and 9, not at row 4.
    np.testing.assert_allclose(net, [0.01 - 0.0005, 0.02, -0.01 - 0.0005], atol=1e-15)


def test_frame_averages_the_splits_testing_a_week() -> None:
    r = np.array([[0.01, 0.03], [0.02, 0.00], [0.04, 0.02], [0.0, 0.0]])
    p = panel(r)
    cfg = SimulationConfig.model_validate({"cost": {"bps": 0.0}})
    costs = cost_spec(cfg.cost, p.assets, SCALE)
    trials = TrialReturns(p, [split(0, [0, 1]), split(1, [1, 2])], cfg, stub_hooks(), costs)
    for sid, n in ((0, 2), (1, 2)):
        for cid in ("0001", "0000"):
            trials.record(sid, cid, torch.zeros(3, n, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="split 1, candidate 0002: 1 predictive draws"):
        bad = torch.zeros(3, 2, 2, dtype=torch.float64)
        bad[0, 0, 0] = float("nan")
        trials.record(1, "0002", bad)  # a diverged trial fails alone (on_trial_error)
    frame = trials.frame()
    assert list(frame.columns) == ["0001", "0000"]  # first-recorded order
    assert list(frame.index) == list(p.index[:3])
    # Equal weights, no costs: row 1 is tested by both splits with the same return.
    np.testing.assert_allclose(frame["0000"], [0.02, 0.01, 0.03], atol=1e-15)


def test_csv_round_trip_is_exact_and_pooling_averages_folds(tmp_path: Path) -> None:
    index = pd.DatetimeIndex(pd.to_datetime(np.arange(3) * WEEK_NS, utc=True), name="timestamp")
    awkward = np.array([[0.1 + 0.2, 1 / 3], [np.nextafter(0.5, 1), -2e-17], [np.pi, np.nan]])
    frame = pd.DataFrame(awkward, index=index, columns=["0000", "0001"])
    write_trial_returns(tmp_path, frame)
    back = read_trial_returns(tmp_path / "candidate_returns.csv")
    pd.testing.assert_frame_equal(back, frame, check_exact=True, check_freq=False)
    other = pd.DataFrame([[1.0, 2.0]], index=index[2:], columns=["0000", "0001"])
    pooled = pooled_trials({3: frame, 4: other})
    assert pooled.loc[index[2], "0000"] == (np.pi + 1.0) / 2
    assert pooled.loc[index[2], "0001"] == 2.0  # the NaN of fold 3 is skipped
    assert pooled.loc[index[0], "0001"] == 1 / 3

"""Outer artifacts: benchmark by hand, overfitting statistics, fold files, results payload."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from algo_trader.application.simulation.outer_report import (
    benchmark_returns,
    overfitting,
    performance,
    results_payload,
    write_fold,
    write_results,
)
from algo_trader.application.simulation.outer_walk_forward import OuterResult, predictive_summary
from algo_trader.application.simulation.performance import (
    performance_report,
    probability_of_backtest_overfitting,
    sharpe_ratio,
)
from algo_trader.domain.simulation.config import SimulationConfig

WEEK_NS = 7 * 86_400 * 10**9


def weeks(start: int, n: int) -> pd.DatetimeIndex:
    stamps = pd.to_datetime((start + np.arange(n)) * WEEK_NS, utc=True)
    return pd.DatetimeIndex(stamps, name="timestamp")


def outer_result(k: int, start: int, n: int, seed: int) -> OuterResult:
    """A fold result built from generated weekly numbers (no model involved)."""
    rng = np.random.default_rng(seed)
    index = weeks(start, n)
    returns = pd.DataFrame(rng.normal(0.002, 0.02, (n, 2)), index=index, columns=["A", "B"])
    w = rng.dirichlet([1.0, 1.0], size=n)
    gross = (w * returns.to_numpy()).sum(axis=1)
    turnover = np.abs(np.diff(w, axis=0, prepend=0.0)).sum(axis=1)
    pnl = pd.DataFrame(
        {"gross": gross, "cost": turnover * 1e-3, "net": gross - turnover * 1e-3,
         "turnover": turnover, "missing": 0.0},
        index=index,
    )  # fmt: skip
    draws = rng.normal(size=(n, 5, 2))
    return OuterResult(
        k=k,
        pnl=pnl,
        weights=pd.DataFrame(w, index=index, columns=["A", "B"]),
        returns=returns,
        predictive=predictive_summary(draws, returns.to_numpy(), index, ["A", "B"], [0.5]),
        score=-1.0,
        seeds=list(range(n)),
        kept=["f"],
        dropped={},
    )


def trials_frame(n_weeks: int, n_trials: int, seed: int) -> pd.DataFrame:
    values = np.random.default_rng(seed).normal(0.001, 0.02, (n_weeks, n_trials))
    return pd.DataFrame(
        values, index=weeks(0, n_weeks), columns=[f"{i:04d}" for i in range(n_trials)]
    )


def test_benchmark_buy_and_hold_by_hand() -> None:
    returns = pd.DataFrame([[0.1, 0.0], [0.0, 0.1], [np.nan, 0.0]], index=weeks(0, 3))
    # Week 1: (0.1 + 0) / 2. Week 2: holdings 0.55 and 0.5, B gains 0.05 on 1.05.
    # Week 3: A missing counts as 0.
    np.testing.assert_allclose(benchmark_returns(returns), [0.05, 0.05 / 1.05, 0.0])


def test_overfitting_matches_cscv_on_the_complete_trials() -> None:
    trials = trials_frame(40, 4, seed=1)
    trials.loc[trials.index[3], "0002"] = np.nan  # a failed trial is left out
    out = overfitting(trials)
    complete = trials.drop(columns="0002").to_numpy()
    expected = probability_of_backtest_overfitting(complete, 16)
    assert out["pbo"] == expected.pbo and out["pbo_n_splits"] == 16
    assert out["pbo_prob_oos_loss"] == expected.prob_oos_loss
    assert out["n_trials"] == 3 and out["dropped_trials"] == ["0002"]
    np.testing.assert_allclose(
        list(out["trial_sharpes"].values()), sharpe_ratio(complete, axis=0), rtol=1e-12
    )


def test_overfitting_says_why_it_is_unavailable() -> None:
    assert overfitting(None)["available"] is False
    same = trials_frame(20, 1, seed=2)
    identical = pd.concat([same, same.rename(columns={"0000": "0001"})], axis=1)
    out = overfitting(identical)
    assert np.isnan(out["pbo"]) and "same returns" in out["pbo_note"]
    assert "at least 2" in overfitting(same)["pbo_note"]


def test_performance_deflates_by_the_trials() -> None:
    result = outer_result(3, 100, 30, seed=4)
    trials = trials_frame(50, 4, seed=5)
    report = performance(result.pnl, result.weights, trials)
    assert report is not None
    expected = performance_report(
        result.pnl["net"].to_numpy(),
        result.pnl["gross"].to_numpy(),
        result.pnl["turnover"].to_numpy(),
        result.weights.to_numpy(),
        52,
        n_trials=4,
        trial_sharpes=sharpe_ratio(trials.to_numpy(), axis=0),
    ).to_dict()
    assert report == pytest.approx(expected, rel=1e-12, nan_ok=True)
    assert performance(result.pnl.iloc[:1], result.weights.iloc[:1], None) is None


def test_results_payload_and_fold_files(tmp_path: Path) -> None:
    results = {4: outer_result(4, 8, 6, seed=7), 3: outer_result(3, 0, 8, seed=6)}
    payload = results_payload(results, {3: "0001", 4: "0000"}, trials_frame(20, 3, seed=8))
    assert payload["n_weeks"] == 14 and list(payload["folds"]) == ["outer_3", "outer_4"]
    assert payload["folds"]["outer_4"]["candidate_id"] == "0000"
    assert payload["first_week"] == weeks(0, 1)[0].isoformat()
    net = pd.concat([results[3].pnl, results[4].pnl])["net"].to_numpy()
    assert payload["performance"]["total_return"] == pytest.approx(np.prod(1 + net) - 1)
    assert payload["benchmark"]["performance"]["mean_turnover"] == 0.0
    assert payload["overfitting"]["n_trials"] == 3
    path = write_results(tmp_path, payload)
    assert json.loads(path.read_text())["n_weeks"] == 14

    config = SimulationConfig.model_validate({"cost": {"bps": 7.0}})
    write_fold(tmp_path / "outer_3", results[3], "0001", config, None)
    names = sorted(p.name for p in (tmp_path / "outer_3").iterdir())
    assert names == ["config.json", "metrics.json", "pnl.csv", "predictive.csv", "weights.csv"]
    saved = json.loads((tmp_path / "outer_3" / "config.json").read_text())
    assert SimulationConfig.model_validate(saved["config"]) == config
    metrics = json.loads((tmp_path / "outer_3" / "metrics.json").read_text())
    assert metrics["candidate_id"] == "0001" and metrics["overfitting"]["available"] is False
    pnl = pd.read_csv(tmp_path / "outer_3" / "pnl.csv", index_col="timestamp")
    np.testing.assert_array_equal(pnl["net"].to_numpy(), results[3].pnl["net"].to_numpy())

"""The outer loop's artifacts: per-fold files and the run's ``outer/results.json``.

Per fold (``outer/outer_<k>/`` of a simulation, the same frames in a backtest):

- ``pnl.csv`` (``gross``, ``cost``, ``net``, ``turnover``, ``missing``), ``weights.csv``
  and ``predictive.csv`` (mean, sd, quantiles and realization per week and asset), all in
  return units and indexed by the decision week;
- ``metrics.json``: the fold's totals, its performance report and overfitting statistics
  against the fold's inner trials;
- ``config.json``: the candidate and the full configuration the fold ran, which is what
  ``algotrader backtest`` replays.

For the run, :func:`results_payload` gives the performance report of all folds' net returns
(``performance.performance_report``, 52 weeks a year) with the Deflated Sharpe Ratio against
the inner trials (:mod:`.trial_returns`), the PBO of those trials (CSCV with
:data:`PBO_MAX_SPLITS` blocks at most), and the same report for an equal-weight buy-and-hold
benchmark on the same weeks (bought at the first test week, never rebalanced, no costs).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from algo_trader.application.simulation.outer_walk_forward import OuterResult
from algo_trader.application.simulation.performance import (
    buy_and_hold_returns,
    performance_report,
    probability_of_backtest_overfitting,
    sharpe_ratio,
)
from algo_trader.domain.simulation.config import SimulationConfig
from algo_trader.infrastructure.data.atomic import write_csv, write_json

PERIODS_PER_YEAR = 52
PBO_MAX_SPLITS = 16
"""CSCV blocks (Bailey et al. use 16); fewer when there are fewer trial weeks."""
UNITS = "simple returns per week, as fractions of portfolio value"
BENCHMARK = "equal_weight_buy_and_hold"
RESULTS_FILE = "results.json"


def _json_safe(value: Any) -> Any:
    """``inf`` (a Sharpe ratio of a constant series) becomes None like NaN does."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


def _trial_matrix(trials: pd.DataFrame) -> tuple[np.ndarray, list[str], list[str]]:
    """``(weeks, trials)`` returns of the trials with a return on every week, their ids,
    and the ids dropped.

    The matrix is a fresh C-ordered array: numpy's reductions round differently on
    different memory layouts, and a frame built in memory (the simulation) and one read
    from CSV (the backtest) must give bit-identical statistics.
    """
    complete = trials.dropna(axis=1, how="any")
    matrix = np.ascontiguousarray(complete.to_numpy(dtype=np.float64))
    kept = [str(c) for c in complete.columns]
    return matrix, kept, [str(c) for c in trials.columns if str(c) not in kept]


def overfitting(trials: pd.DataFrame | None) -> dict[str, Any]:
    """PBO and the trials' Sharpe ratios, or why they are unavailable.

    Parameters
    ----------
    trials
        ``weeks x candidates`` inner net returns (:mod:`.trial_returns`); None when the run
        did not record them.
    """
    if trials is None:
        return {"available": False, "reason": "the run recorded no inner trial returns"}
    matrix, ids, dropped = _trial_matrix(trials)
    sharpes = sharpe_ratio(matrix, axis=0) if len(matrix) > 1 else np.array([])
    out: dict[str, Any] = {
        "available": True,
        "source": "inner CPCV test-week net returns of every candidate under the run's "
        "allocation and cost settings (mean over the splits and folds testing a week)",
        "n_trials": int(matrix.shape[1]),
        "n_weeks": int(matrix.shape[0]),
        "dropped_trials": dropped,
        "trial_sharpes": {c: float(s) for c, s in zip(ids, sharpes, strict=True)},
        "pbo": math.nan,
        "pbo_n_splits": None,
        "pbo_prob_oos_loss": math.nan,
        "pbo_note": None,
    }
    n_splits = min(PBO_MAX_SPLITS, matrix.shape[0] - matrix.shape[0] % 2)
    if matrix.shape[1] < 2 or n_splits < 2:
        out["pbo_note"] = "the PBO needs at least 2 complete trials and 2 weeks"
    elif bool((matrix == matrix[:, :1]).all()):
        out["pbo_note"] = (
            "every trial has the same returns (the allocation ignores the model, e.g. "
            "equal_weight): the selection had nothing to overfit"
        )
    else:
        pbo = probability_of_backtest_overfitting(matrix, n_splits)
        out.update(pbo=pbo.pbo, pbo_n_splits=n_splits, pbo_prob_oos_loss=pbo.prob_oos_loss)
    return out


def performance(
    pnl: pd.DataFrame, weights: pd.DataFrame, trials: pd.DataFrame | None
) -> dict[str, Any] | None:
    """``performance_report`` of a PnL frame (DSR against ``trials``); None under 2 weeks."""
    if len(pnl) < 2:
        return None
    sharpes, n_trials = None, 1
    if trials is not None:
        # Trials whose Sharpe ratio is undefined (under 2 weeks, constant returns) leave
        # the DSR undefined (NaN) rather than silently deflating by fewer trials.
        matrix, _, _ = _trial_matrix(trials)
        n_trials = max(int(matrix.shape[1]), 1)
        candidate = sharpe_ratio(matrix, axis=0) if len(matrix) > 1 else None
        if candidate is not None and candidate.size and np.isfinite(candidate).all():
            sharpes = candidate
    report = performance_report(
        pnl["net"].to_numpy(),
        pnl["gross"].to_numpy(),
        pnl["turnover"].to_numpy(),
        weights.to_numpy(),
        PERIODS_PER_YEAR,
        n_trials=n_trials,
        trial_sharpes=sharpes,
    )
    return _json_safe(report.to_dict())


def benchmark_performance(returns: pd.DataFrame) -> dict[str, Any] | None:
    """Report of the equal-weight buy-and-hold on the weeks (rows) of ``returns``."""
    bench = benchmark_returns(returns)
    frame = pd.DataFrame({"gross": bench, "net": bench, "turnover": 0.0})
    weights = pd.DataFrame(1.0 / returns.shape[1], index=returns.index, columns=returns.columns)
    return performance(frame, weights, None)


def benchmark_returns(returns: pd.DataFrame) -> pd.Series:
    """Equal-weight buy-and-hold returns: bought at the first week, positions drift."""
    n_assets = returns.shape[1]
    values = buy_and_hold_returns(returns.to_numpy(), np.full(n_assets, 1.0 / n_assets))
    return pd.Series(values, index=returns.index, name=BENCHMARK)


def fold_metrics(
    result: OuterResult, candidate_id: str | None, trials: pd.DataFrame | None
) -> dict[str, Any]:
    """``metrics.json`` of one fold."""
    return {
        **result.metrics(),
        "candidate_id": candidate_id,
        "units": UNITS,
        "performance": performance(result.pnl, result.weights, trials),
        "overfitting": overfitting(trials),
    }


def write_fold(
    folder: Path,
    result: OuterResult,
    candidate_id: str | None,
    config: SimulationConfig,
    trials: pd.DataFrame | None,
) -> None:
    """A fold's ``pnl.csv``, ``weights.csv``, ``predictive.csv``, ``metrics.json`` and
    ``config.json`` (see the module doc)."""
    write_csv(folder / "pnl.csv", result.pnl.rename_axis("timestamp"))
    write_csv(folder / "weights.csv", result.weights.rename_axis("timestamp"))
    write_csv(folder / "predictive.csv", result.predictive, index=False)
    write_json(folder / "metrics.json", fold_metrics(result, candidate_id, trials))
    write_json(
        folder / "config.json",
        {"candidate_id": candidate_id, "config": config.model_dump(mode="json")},
    )


def combined(results: Mapping[int, OuterResult]) -> dict[str, pd.DataFrame]:
    """All folds' ``pnl``, ``weights`` and ``returns`` in week order, with ``outer_fold``."""
    ordered = [results[k] for k in sorted(results)]
    return {
        name: pd.concat([getattr(r, name).assign(outer_fold=r.k) for r in ordered])
        for name in ("pnl", "weights", "returns")
    }


def results_payload(
    results: Mapping[int, OuterResult],
    candidate_ids: Mapping[int, str | None],
    trials: pd.DataFrame | None,
) -> dict[str, Any]:
    """``outer/results.json``: the run's performance, benchmark and overfitting statistics.

    Parameters
    ----------
    results
        Outer fold -> its walk-forward result.
    candidate_ids
        Outer fold -> the candidate it ran (None: a configuration given directly).
    trials
        The run's pooled inner trial returns (:func:`.trial_returns.pooled_trials`), or
        None when the run recorded none (then the DSR is null for more than one trial).
    """
    frames = combined(results)
    pnl, weights = frames["pnl"], frames["weights"].drop(columns="outer_fold")
    returns = frames["returns"].drop(columns="outer_fold")
    index = pnl.index
    return {
        "units": UNITS,
        "periods_per_year": PERIODS_PER_YEAR,
        "n_weeks": len(pnl),
        "first_week": index[0].isoformat() if len(index) else None,
        "last_week": index[-1].isoformat() if len(index) else None,
        "folds": {
            f"outer_{k}": {
                "candidate_id": candidate_ids.get(k),
                "n_weeks": len(r.pnl),
                "total_net": float(r.pnl["net"].sum()),
                "total_cost": float(r.pnl["cost"].sum()),
            }
            for k, r in sorted(results.items())
        },
        "performance": performance(pnl, weights, trials),
        "benchmark": {
            "name": BENCHMARK,
            "description": "equal weights bought at the first test week and held (positions "
            "drift with returns, never rebalanced, no costs); a missing return counts as 0",
            "performance": benchmark_performance(returns),
        },
        "overfitting": overfitting(trials),
    }


def write_results(out_dir: Path, payload: Mapping[str, Any]) -> Path:
    """``<out_dir>/outer/results.json``."""
    path = out_dir / "outer" / RESULTS_FILE
    write_json(path, dict(payload))
    return path

"""Outer walk-forward evaluation of one fold (nestedcv.md section 3, step 3).

Production-like weekly loop over the fold's test weeks with the fold's chosen candidate:

- the feature list is frozen once per fold (cleaning fitted on the outer training rows);
- at each test week ``t`` the scaler is refitted on the expanding training set, i.e. the
  fold's training rows plus the earlier test weeks, keeping only rows whose label is
  realized by ``t`` (``s + horizon <= t``);
- the model is refitted on that set (warm-started from the previous week's state), then
  predicts week ``t``; the weights are allocated and the PnL of holding them over the label
  week is computed against the previous week's weights (costs on turnover).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from algo_trader.application.simulation.cv_groups import OuterFold
from algo_trader.application.simulation.hooks import CostSpec, HookConfig, Hooks
from algo_trader.application.simulation.inner_objective import Stream, derive_seed
from algo_trader.application.simulation.panel import Panel
from algo_trader.application.simulation.preprocessing import fit_cleaning, fit_scaling, transform
from algo_trader.domain.simulation.config import SimulationConfig
from algo_trader.infrastructure.progress import Tracker

PNL_COLUMNS = ("gross", "cost", "net", "turnover", "missing")


@dataclass(frozen=True, eq=False)
class OuterResult:
    """One fold's weekly results.

    Attributes
    ----------
    pnl
        Index ``timestamp`` (the decision week ``t``; the PnL is earned over the label week
        ``t + target_shift``), columns :data:`PNL_COLUMNS`.
    weights
        Index ``timestamp``, one column per asset.
    score
        The ``score`` hook on all the fold's test weeks (NaN if no target is observed).
    seeds
        Seed of each test week's fit/predict, in week order.
    kept, dropped
        The fold's frozen feature list and the cleaning reasons of the others.
    """

    k: int
    pnl: pd.DataFrame
    weights: pd.DataFrame
    score: float
    seeds: list[int]
    kept: list[str]
    dropped: dict[str, str]

    def metrics(self) -> dict[str, Any]:
        """Fold summary for ``metrics.json`` / ``summary.json``."""
        net = self.pnl["net"].to_numpy()
        return {
            "k": self.k,
            "n_weeks": int(net.size),
            "score": self.score,
            "total_gross": float(self.pnl["gross"].sum()),
            "total_cost": float(self.pnl["cost"].sum()),
            "total_net": float(net.sum()),
            "mean_net": float(net.mean()) if net.size else float("nan"),
            "std_net": float(net.std()) if net.size else float("nan"),
            "mean_turnover": float(self.pnl["turnover"].mean()),
            "n_features": len(self.kept),
        }


def expanding_train_idx(fold: OuterFold, step: int, horizon: int) -> np.ndarray:
    """Training rows at test week ``fold.test_idx[step]``: realized labels only."""
    t = int(fold.test_idx[step])
    rows = np.concatenate([fold.train_idx, fold.test_idx[:step]])
    return rows[rows + horizon <= t]


def _tensor(values: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64))


def evaluate_outer_walk_forward(
    panel: Panel,
    fold: OuterFold,
    config: SimulationConfig,
    hooks: Hooks,
    costs: CostSpec,
    tracker: Tracker | None = None,
) -> OuterResult:
    """Run the weekly walk-forward of one outer fold with the fold's chosen config.

    Parameters
    ----------
    panel
        The simulation inputs.
    fold
        The outer fold.
    config
        The run config with the fold's best candidate applied.
    hooks
        The simulation mode's hooks.
    costs
        Transaction costs in target units.
    tracker
        Advanced once per test week (progress).
    """
    cfg = config.preprocessing
    y = np.where(panel.y_missing_mask, np.nan, panel.y)
    seed = derive_seed(config.cv.seed, Stream.OUTER_CLEANING, fold.k)
    cleaning = fit_cleaning(panel.X, panel.features, fold.train_idx, cfg, seed)
    kept = cleaning.select(panel.X)
    n_weeks, n_assets = len(fold.test_idx), len(panel.assets)
    pnl = np.zeros((n_weeks, len(PNL_COLUMNS)))
    weights = np.zeros((n_weeks, n_assets))
    samples: list[torch.Tensor] = []
    seeds: list[int] = []
    w_prev = torch.zeros(n_assets, dtype=torch.float64)
    state: Any = None
    # One iteration per test week: each week refits on a longer history, so the weeks are
    # inherently sequential (warm start, turnover against last week's weights).
    for step, t in enumerate(fold.test_idx):
        rows = expanding_train_idx(fold, step, config.cv.horizon)
        scaling = fit_scaling(kept, cleaning.kept, rows, cfg, panel.assets)
        seeds.append(derive_seed(config.cv.seed, Stream.OUTER_FIT, fold.k, step))
        hook_config = HookConfig(config=config, seed=seeds[-1])
        state = hooks.fit_model(
            _tensor(transform(kept[rows], scaling, cfg)[0]), _tensor(y[rows]), hook_config, state
        )
        X_t = _tensor(transform(kept[t : t + 1], scaling, cfg)[0])
        pred = hooks.predict(X_t, state, hook_config, config.predictive.num_samples)
        w = hooks.allocate(pred, config.allocation)
        result = hooks.compute_pnl(w, _tensor(y[t]), w_prev, costs)
        pnl[step] = [result[c] for c in PNL_COLUMNS]
        weights[step] = w.numpy()
        samples.append(pred["samples"])
        w_prev = w
        if tracker is not None:
            tracker.advance()
    index = panel.index[fold.test_idx]
    all_pred = {"samples": torch.cat(samples, dim=1)}
    return OuterResult(
        k=fold.k,
        pnl=pd.DataFrame(pnl, index=index, columns=list(PNL_COLUMNS)),
        weights=pd.DataFrame(weights, index=index, columns=panel.assets),
        score=float(hooks.score(_tensor(y[fold.test_idx]), all_pred, config.scoring.spec)),
        seeds=seeds,
        kept=list(cleaning.kept),
        dropped=dict(cleaning.dropped),
    )

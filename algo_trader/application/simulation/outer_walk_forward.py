"""Outer walk-forward evaluation of one fold (nestedcv.md section 3, step 3).

Production-like weekly loop over the fold's test weeks with the fold's chosen candidate:

- the feature list is frozen once per fold (cleaning fitted on the outer training rows);
- at each test week ``t`` the scaler is refitted on the expanding training set: the fold's
  training rows plus the earlier test weeks, keeping only rows ``s`` whose label is
  realized by ``t`` (``s + horizon <= t``, the label of row ``s`` being the return over
  the weeks up to ``s + target_shift``). Nothing realized after ``t`` enters the week;
- the model is fitted on that set: the first test week from scratch, every later week
  warm-started from the previous week's state with ``outer.warm_start_steps`` SVI steps
  (null = ``training.svi.num_steps``);
- the model draws ``predictive.num_samples`` samples of week ``t``'s label, the
  ``allocation`` policy turns them into weights (given last week's weights, for the
  turnover penalty), and the PnL of trading into them and holding them over the label week
  is charged the ``cost`` of the turnover. Each fold starts from cash (``w_prev = 0``), so
  that a fold's result depends on that fold alone.

PnL, weights, realized returns and predictive summaries are in return units (fractions of
portfolio value, ``y / target_scale``); rows are indexed by the decision week ``t``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from algo_trader.application.simulation.checkpoint import Checkpoint, restore_state
from algo_trader.application.simulation.cv_groups import OuterFold
from algo_trader.application.simulation.hooks import CostSpec, HookConfig, Hooks, allocation_spec
from algo_trader.application.simulation.inner_objective import Stream, derive_seed
from algo_trader.application.simulation.panel import Panel
from algo_trader.application.simulation.preprocessing import fit_cleaning, fit_scaling, transform
from algo_trader.domain.simulation.config import SimulationConfig, with_overrides
from algo_trader.infrastructure.progress import Tracker

PNL_COLUMNS = ("gross", "cost", "net", "turnover", "missing")


@dataclass(frozen=True, eq=False)
class OuterResult:
    """One fold's weekly results (return units; index ``timestamp`` = decision week ``t``).

    Attributes
    ----------
    pnl
        Columns :data:`PNL_COLUMNS`; the PnL is earned over the label week of ``t``.
    weights
        One column per asset: the weights chosen at ``t``.
    returns
        One column per asset: the realized label-week returns (NaN = missing).
    predictive
        Long frame, one row per week and asset: ``timestamp``, ``asset``, ``mean``, ``sd``,
        one ``q<level>`` column per ``diagnostics.fan_charts.quantiles`` level, and
        ``realized``.
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
    returns: pd.DataFrame
    predictive: pd.DataFrame
    score: float
    seeds: list[int]
    kept: list[str]
    dropped: dict[str, str]

    def metrics(self) -> dict[str, Any]:
        """Fold totals for ``metrics.json`` / ``summary.json`` (return units)."""
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


def fit_configs(config: SimulationConfig) -> tuple[SimulationConfig, SimulationConfig]:
    """``(first week, warm-started weeks)`` configs: the latter runs ``warm_start_steps``."""
    steps = config.outer.warm_start_steps
    if steps is None:
        return config, config
    return config, with_overrides(config, {"training.svi.num_steps": steps})


def predictive_summary(
    draws: np.ndarray,
    realized: np.ndarray,
    index: pd.DatetimeIndex,
    assets: Sequence[str],
    levels: Sequence[float],
) -> pd.DataFrame:
    """Per week and asset: mean, sd (``ddof=1``), quantiles of the draws and the realization.

    Parameters
    ----------
    draws
        ``(W, S, A)`` predictive samples.
    realized
        ``(W, A)`` realized values (NaN = missing).
    index
        The ``W`` weeks.
    assets
        The ``A`` asset names.
    levels
        Quantile levels in (0, 1).
    """
    n_weeks, n_samples, n_assets = draws.shape
    quantiles = np.quantile(draws, levels, axis=1)  # (L, W, A)
    sd = draws.std(axis=1, ddof=1) if n_samples > 1 else np.full((n_weeks, n_assets), np.nan)
    columns: dict[str, Any] = {
        "timestamp": np.repeat(index, n_assets),
        "asset": np.tile(np.asarray(assets, dtype=object), n_weeks),
        "mean": draws.mean(axis=1).ravel(),
        "sd": sd.ravel(),
    }
    columns.update({f"q{level:g}": q.ravel() for level, q in zip(levels, quantiles, strict=True)})
    columns["realized"] = realized.ravel()
    return pd.DataFrame(columns)


@dataclass(frozen=True, eq=False)
class _Features:
    """A fold's frozen features (cleaning fitted on the outer training rows)."""

    values: np.ndarray
    names: list[str]
    dropped: dict[str, str]


def _week_draws(
    features: _Features,
    panel: Panel,
    y: np.ndarray,
    rows: np.ndarray,
    t: int,
    hook_config: HookConfig,
    hooks: Hooks,
    state: Any,
) -> tuple[Any, np.ndarray]:
    """Refit the scaler and the model on ``rows``; ``(state, (S, A) draws of y[t])``."""
    config = hook_config.config
    cfg = config.preprocessing
    scaling = fit_scaling(
        features.values,
        features.names,
        rows,
        cfg,
        panel.assets,
        config.flags.use_feature_names_for_scaling,
    )
    X_train = transform(features.values[rows], scaling, cfg)[0]
    state = hooks.fit_model(_tensor(X_train), _tensor(y[rows]), hook_config, state)
    X_t = _tensor(transform(features.values[t : t + 1], scaling, cfg)[0])
    pred = hooks.predict(X_t, state, hook_config, config.predictive.num_samples)
    return state, pred["samples"][:, 0, :].detach().cpu().numpy().astype(np.float64)


def _tensor(values: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64))


def _frozen_features(panel: Panel, fold: OuterFold, config: SimulationConfig) -> _Features:
    seed = derive_seed(config.cv.seed, Stream.OUTER_CLEANING, fold.k)
    cleaning = fit_cleaning(panel.X, panel.features, fold.train_idx, config.preprocessing, seed)
    return _Features(cleaning.select(panel.X), list(cleaning.kept), dict(cleaning.dropped))


def evaluate_outer_walk_forward(
    panel: Panel,
    fold: OuterFold,
    config: SimulationConfig,
    hooks: Hooks,
    costs: CostSpec,
    tracker: Tracker | None = None,
    checkpoint: Checkpoint | None = None,
) -> OuterResult:
    """Run the weekly walk-forward of one outer fold with the fold's chosen config.

    Parameters
    ----------
    panel
        The simulation inputs.
    fold
        The outer fold.
    config
        The run config with the fold's candidate applied.
    hooks
        The simulation mode's hooks.
    costs
        The cost settings (``hooks.cost_spec``).
    tracker
        Advanced once per test week (progress).
    checkpoint
        Where each finished week is recorded (draws, weights, fitted state); weeks it
        already holds are read back instead of refitted, the last one's state
        warm-starting the next week, so a resumed fold equals an uninterrupted one.

    Raises
    ------
    ConfigError
        Allocation settings infeasible for the panel (checked before the first week).
    """
    alloc = allocation_spec(config, len(panel.assets))
    scale = float(config.data.dataset_params.target_scale)
    # The purge horizon covers the label (the runner checks horizon >= target_shift); the
    # max keeps a direct caller with a shorter horizon from training on unrealized labels.
    horizon = max(config.cv.horizon, config.data.dataset_params.target_shift)
    y = np.where(panel.y_missing_mask, np.nan, panel.y)
    features = _frozen_features(panel, fold, config)
    first, warm = fit_configs(config)
    n_weeks, n_assets = len(fold.test_idx), len(panel.assets)
    seeds = [derive_seed(config.cv.seed, Stream.OUTER_FIT, fold.k, s) for s in range(n_weeks)]
    pnl = np.zeros((n_weeks, len(PNL_COLUMNS)))
    weights = np.zeros((n_weeks, n_assets))
    draws: list[np.ndarray] = []
    w_prev = np.zeros(n_assets)
    state: Any = None
    done = 0 if checkpoint is None else checkpoint.weeks_done(fold.k, n_weeks)
    # One iteration per test week: each week refits on a longer history, warm-starts from
    # the previous week's state and trades against its weights, so weeks are sequential.
    for step, t in enumerate(fold.test_idx):
        hook_config = HookConfig(config=first if step == 0 else warm, seed=seeds[step])
        if step < done:  # recorded by a killed run: its draws, weights and fitted state
            assert checkpoint is not None
            week, w, saved = checkpoint.load_week(fold.k, step)
            if step == done - 1:  # only the last one warm-starts a week still to fit
                state = restore_state(saved, hook_config.config)
        else:
            rows = expanding_train_idx(fold, step, horizon)
            state, week = _week_draws(features, panel, y, rows, int(t), hook_config, hooks, state)
            w = np.asarray(hooks.allocate(week, w_prev, alloc), dtype=np.float64)
            if checkpoint is not None:
                checkpoint.save_week(fold.k, step, week, w, state)
        result = hooks.compute_pnl(w, y[t], w_prev, costs)
        pnl[step] = [result[c] for c in PNL_COLUMNS]
        weights[step] = w
        draws.append(week)
        w_prev = w
        if tracker is not None:
            tracker.advance()
    index = panel.index[fold.test_idx]
    stacked = np.stack(draws)  # (W, S, A), y units
    score = hooks.score(
        _tensor(y[fold.test_idx]),
        {"samples": _tensor(stacked.transpose(1, 0, 2)), "y_train": _tensor(y[fold.train_idx])},
        config.scoring.spec,
    )
    realized = y[fold.test_idx] / scale
    levels = config.diagnostics.fan_charts.quantiles
    return OuterResult(
        k=fold.k,
        pnl=pd.DataFrame(pnl, index=index, columns=list(PNL_COLUMNS)),
        weights=pd.DataFrame(weights, index=index, columns=panel.assets),
        returns=pd.DataFrame(realized, index=index, columns=panel.assets),
        predictive=predictive_summary(stacked / scale, realized, index, panel.assets, levels),
        score=float(score),
        seeds=seeds,
        kept=features.names,
        dropped=features.dropped,
    )

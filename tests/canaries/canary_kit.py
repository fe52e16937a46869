"""Shared parts of the leakage canaries: a feature-using test model, panels, a fold driver.

Imported by the canary tests (``conftest.py`` puts this folder on ``sys.path``).

The canaries run the REAL pipeline pieces (``runner.build_cv``, the inner objective's
``prepare_split``, ``outer_walk_forward.evaluate_outer_walk_forward`` with the real
preprocessing, allocation, costs and the registered ``energy_score``). Only the model is a
test double: the stub hooks ignore the features, so they could never exploit a leaked
feature; :func:`ridge_hooks` is a pooled ridge regression of ``y`` on the scaled features
with Gaussian residual draws, small and fast enough for weekly refits.

Statistics (all on the outer test weeks of every fold together, ``n`` weeks):

* energy score: per week, the model's ``ES_t`` minus that of the climatological forecast
  (the stub model: a Gaussian fitted to the training targets, features ignored, run
  through the same weekly walk-forward), both in units of the fold's training standard
  deviation per asset; ``z_es = mean(d) / (sd(d) / sqrt(n))`` (negative = the model is
  better). The canary passes when ``z_es > -ES_Z``.
* Sharpe: ``t_sr = mean(net) / sd(net) * sqrt(n)`` of the weekly net returns; the
  annualized Sharpe ``t_sr * sqrt(52 / n)`` has standard error ``~ sqrt(52 / n)`` under
  the null, so ``|t_sr| < 2`` is "|SR| < 2 standard errors".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from algo_trader.application.simulation import inner_objective, outer_walk_forward
from algo_trader.application.simulation.cv_groups import OuterFold
from algo_trader.application.simulation.hooks import (
    HookConfig,
    Hooks,
    cost_pnl,
    cost_spec,
    policy_allocate,
    stub_hooks,
)
from algo_trader.application.simulation.metrics import score as registered_score
from algo_trader.application.simulation.panel import Panel
from algo_trader.application.simulation.runner import build_cv
from algo_trader.application.simulation.scoring import energy_score_per_week
from algo_trader.domain.simulation.config import SimulationConfig
from algo_trader.infrastructure.data.bar_csv import read_bar_csvs

RIDGE = 1.0
"""Ridge penalty of the test model (the intercept is not shrunk)."""
ES_Z = 2.0
"""Standard errors by which the model may not beat climatology (z_es > -ES_Z)."""
SR_T = 2.0
"""Noise passes with ``|t_sr| < SR_T``, i.e. ``|SR| < 2`` standard errors."""


def ridge_fit(
    X_train: torch.Tensor, y_train: torch.Tensor, hc: HookConfig, init_state: Any
) -> dict[str, torch.Tensor]:
    """Pooled ridge of ``y`` on ``[X, 1]`` over all observed (week, asset) pairs."""
    n_rows, n_assets, n_features = X_train.shape
    X = torch.cat([X_train, torch.ones(n_rows, n_assets, 1, dtype=torch.float64)], dim=2)
    X = torch.nan_to_num(X).reshape(-1, n_features + 1)
    y = y_train.reshape(-1)
    observed = ~torch.isnan(y)
    X, y = X[observed], y[observed]
    penalty = RIDGE * torch.eye(n_features + 1, dtype=torch.float64)
    penalty[-1, -1] = 0.0  # the intercept is not shrunk
    beta = torch.linalg.solve(X.T @ X + penalty, X.T @ y)
    resid = y - X @ beta
    return {"beta": beta, "sd": resid.std().clamp(min=1e-9), "n_assets": torch.tensor(n_assets)}


def ridge_predict(
    X_pred: torch.Tensor, state: dict[str, torch.Tensor], hc: HookConfig, num_samples: int
) -> dict[str, torch.Tensor]:
    """Gaussian draws around the ridge mean (seeded by the unit of work)."""
    n_rows, n_assets, _ = X_pred.shape
    X = torch.cat([X_pred, torch.ones(n_rows, n_assets, 1, dtype=torch.float64)], dim=2)
    mean = torch.nan_to_num(X) @ state["beta"]
    generator = torch.Generator().manual_seed(hc.seed)
    z = torch.randn(num_samples, n_rows, n_assets, generator=generator, dtype=torch.float64)
    return {"samples": mean + state["sd"] * z, "mean": mean}


def ridge_hooks() -> Hooks:
    """Hooks whose model uses the features (real allocation, costs and score)."""
    return Hooks(
        name="ridge_test_model",
        fit_model=ridge_fit,
        predict=ridge_predict,
        score=registered_score,
        allocate=policy_allocate,
        compute_pnl=cost_pnl,
    )


def canary_config(n_rows: int, **cv: int) -> SimulationConfig:
    """A small config: warmup + 6 equal groups, the last 2 outer test groups."""
    warmup = cv.pop("warmup_len", 24)
    group = cv.pop("group_len", (n_rows - warmup) // 6)
    return SimulationConfig.model_validate(
        {
            "simulation_mode": "stub",
            "cv": {
                "warmup_len": warmup,
                "group_len": group,
                "horizon": 1,
                "embargo_len": 1,
                "q": 2,
                "seed": 11,
                "max_inner_combos": 3,
                **cv,
            },
            "outer": {"test_groups": "last_n", "last_n": 2},
            # The near-constant guard off and a scale floor in feature units: a planted
            # column that is zero on the training rows is kept out by the train/test
            # separation alone (cleaning drops it for zero training variance), so a leaky
            # scaler double lets it through (and the canary must then fail).
            "preprocessing": {
                "guard_abs_eps": 0.0,
                "guard_rel_eps": 0.0,
                "scale_floor": 0.01,
                "max_abs_fail": 1.0e6,
            },
            "scoring": {"spec": {"metric_name": "energy_score"}},
            "predictive": {"num_samples": 32},
            "allocation": {"policy": "sign_of_mean", "long_only": False, "net_exposure": None},
            "cost": {"bps": 0.0},
        }
    )


@dataclass(frozen=True)
class CanaryResult:
    """Outer-test statistics of one run (see the module doc)."""

    n_weeks: int
    es_model: float
    es_climate: float
    z_es: float
    t_sharpe: float
    inner_objective: float


def _recording(hooks: Hooks, recorded: list[torch.Tensor]) -> Hooks:
    """The same hooks, keeping each week's predictive draws."""

    def predict(X: torch.Tensor, state: Any, hc: HookConfig, n: int) -> dict[str, torch.Tensor]:
        pred = hooks.predict(X, state, hc, n)
        recorded.append(pred["samples"][:, :1, :])
        return pred

    return Hooks(
        hooks.name, hooks.fit_model, predict, hooks.score, hooks.allocate, hooks.compute_pnl
    )


def _walk_forward(
    panel: Panel, fold: OuterFold, config: SimulationConfig, hooks: Hooks
) -> tuple[np.ndarray, np.ndarray]:
    """The real outer walk-forward: ``((S, W, A) draws, (W,) net returns)``."""
    recorded: list[torch.Tensor] = []
    costs = cost_spec(config.cost, panel.assets, config.data.dataset_params.target_scale)
    result = outer_walk_forward.evaluate_outer_walk_forward(
        panel, fold, config, _recording(hooks, recorded), costs
    )
    return torch.cat(recorded, dim=1).numpy(), result.pnl["net"].to_numpy()


def outer_test_mask(panel: Panel, fold: OuterFold) -> np.ndarray:
    """``(T, A)`` bool: True on the fold's outer test weeks."""
    rows = np.zeros(panel.y.shape, dtype=bool)
    rows[fold.test_idx] = True
    return rows


def run_canary(
    panel: Panel,
    config: SimulationConfig,
    hooks: Hooks | None = None,
    per_fold: Callable[[Panel, OuterFold], Panel] | None = None,
) -> CanaryResult:
    """Inner objective and outer walk-forward of every fold; pooled test-week statistics.

    The climatological forecast is the stub model (a Gaussian fitted to the training
    targets, features ignored) run through the same weekly walk-forward.
    """
    hooks = hooks or ridge_hooks()
    cv = build_cv(config, panel.X.shape[0])
    y = np.where(panel.y_missing_mask, np.nan, panel.y)
    model_es, climate_es, nets, inner = [], [], [], []
    base = panel
    for fold in cv.folds:
        # per_fold plants a fold's own test-week column (a later fold trains on an earlier
        # fold's test weeks, where the planted values are legitimately realized)
        panel = per_fold(base, fold) if per_fold is not None else base
        prepared = [
            inner_objective.prepare_split(panel, s, config, fold.k) for s in cv.splits[fold.k]
        ]
        objective = inner_objective.make_inner_objective(fold.k, prepared, config, hooks)
        inner.append(objective(0, "ridge", {}).objective)
        draws, net = _walk_forward(panel, fold, config, hooks)
        climate, _ = _walk_forward(panel, fold, config, stub_hooks())
        sd = np.nanstd(y[fold.train_idx], axis=0)  # common units for the assets
        truth = torch.from_numpy(y[fold.test_idx] / sd)
        model_es.append(energy_score_per_week(torch.from_numpy(draws / sd), truth).numpy())
        climate_es.append(energy_score_per_week(torch.from_numpy(climate / sd), truth).numpy())
        nets.append(net)
    es_m, es_c = np.concatenate(model_es), np.concatenate(climate_es)
    keep = np.isfinite(es_m) & np.isfinite(es_c)
    d = es_m[keep] - es_c[keep]
    net = np.concatenate(nets)
    return CanaryResult(
        n_weeks=int(net.size),
        es_model=float(es_m[keep].mean()),
        es_climate=float(es_c[keep].mean()),
        z_es=float(d.mean() / (d.std(ddof=1) / np.sqrt(d.size))),
        t_sharpe=float(net.mean() / net.std(ddof=1) * np.sqrt(net.size)),
        inner_objective=float(np.mean(inner)),
    )


def generated_panel(
    n_rows: int = 168, n_assets: int = 4, seed: int = 0, start: str = "2015-01-02"
) -> Panel:
    """Generated (not market) data: i.i.d. Student-t weekly returns, causal features.

    Features of week ``t`` use returns up to ``t`` only (the return of week ``t`` is the
    label of row ``t - 1``): last return, 4-week momentum, 8-week volatility, and a pure
    noise column. ``y[t]`` = the return of week ``t + 1`` (x 100).
    """
    rng = np.random.default_rng(seed)
    ret = rng.standard_t(5, size=(n_rows + 1, n_assets)) * 0.02
    cum = np.cumsum(ret, axis=0)
    mom = cum - np.vstack([np.full((4, n_assets), np.nan), cum[:-4]])
    vol = pd.DataFrame(ret).rolling(8).std().to_numpy()
    X = np.stack([ret, mom, vol, rng.normal(size=ret.shape)], axis=2)[:-1]
    y = ret[1:] * 100.0
    weeks = pd.date_range(start, periods=n_rows, freq="7D", tz="UTC")
    return Panel(
        X=X,
        y=y,
        missing_mask=np.isnan(X),
        y_missing_mask=np.isnan(y),
        timestamps=weeks.as_unit("ns").asi8,
        assets=[f"GEN{i}" for i in range(n_assets)],
        features=["ret_1w", "mom_4w", "vol_8w", "noise"],
        sources={},
    )


def with_feature(panel: Panel, values: np.ndarray, name: str) -> Panel:
    """The panel with one more ``(T, A)`` feature column."""
    X = np.concatenate([panel.X, values[:, :, None]], axis=2)
    return Panel(
        X=X,
        y=panel.y,
        missing_mask=np.isnan(X),
        y_missing_mask=panel.y_missing_mask,
        timestamps=panel.timestamps,
        assets=panel.assets,
        features=[*panel.features, name],
        sources=panel.sources,
    )


def leaky(fit: Callable[..., Any]) -> Callable[..., Any]:
    """A deliberately LEAKY double of ``fit_cleaning`` / ``fit_scaling``: fits on ALL rows."""

    def fit_on_all_rows(
        X: np.ndarray, names: Any, train_idx: np.ndarray, *args: Any, **kw: Any
    ) -> Any:
        return fit(X, names, np.arange(X.shape[0]), *args, **kw)

    return fit_on_all_rows


SAMPLE_DIR = Path(__file__).parents[2] / "algo_trader/providers/historical/sample_data"


def panel_from_returns(ret: np.ndarray, weeks: pd.DatetimeIndex, assets: list[str]) -> Panel:
    """Causal features of a ``(T + 1, A)`` weekly return array; ``y[t]`` = return ``t + 1``.

    Features of week ``t`` use returns up to ``t`` only: last return, 4-week momentum,
    8-week volatility (NaN in the warm-up, marked missing).
    """
    cum = np.nancumsum(ret, axis=0)
    mom = cum - np.vstack([np.full((4, ret.shape[1]), np.nan), cum[:-4]])
    vol = pd.DataFrame(ret).rolling(8).std().to_numpy()
    X = np.stack([ret, mom, vol], axis=2)[:-1]
    y = ret[1:] * 100.0
    return Panel(
        X=X,
        y=y,
        missing_mask=np.isnan(X),
        y_missing_mask=np.isnan(y),
        timestamps=weeks[:-1].as_unit("ns").asi8,
        assets=list(assets),
        features=["ret_1w", "mom_4w", "vol_8w"],
        sources={},
    )


def sample_weekly_returns() -> pd.DataFrame:
    """Weekly close-to-close log returns of the bundled real sample (6 assets, 2004-2013)."""
    closes = {}
    for folder in sorted(p for p in SAMPLE_DIR.iterdir() if p.is_dir()):
        files = sorted(folder.glob("*/hist_data_*.csv"))
        closes[folder.name] = read_bar_csvs(files).frame["close"]  # the project's strict reader
    weekly = pd.DataFrame(closes).resample("W-FRI").last()
    logs = pd.DataFrame(np.log(weekly.to_numpy()), index=weekly.index, columns=weekly.columns)
    return logs.diff().iloc[1:].dropna(how="all")

"""The simulation's model hooks (nestedcv.md section 7) and their ``stub`` stand-ins.

The CV logic calls only these five functions, so a model plugs in without touching it:

- ``fit_model(X_train, y_train, config, init_state) -> state``
- ``predict(X_pred, state, config, num_samples) -> pred`` with ``pred["samples"]`` a
  ``(S, T, A)`` tensor of predictive draws of ``y``
- ``score(y_true, pred, score_spec) -> float`` (higher is better)
- ``allocate(pred, alloc_spec) -> weights`` ``(A,)``
- ``compute_pnl(w, y_t, w_prev, cost_spec) -> {"gross", "cost", "net"}``

``X`` is ``(T, A, F)`` and ``y`` ``(T, A)``, float64 tensors with NaN where missing. The
``stub`` hooks are honest stand-ins used only with ``simulation_mode: stub``: they ignore
the features and every model setting (a Gaussian fitted to the training targets), so a stub
run exercises the pipeline and its artifacts, not a forecasting model. ``full`` mode needs
the real hooks, which the modeling issue (#5) provides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from algo_trader.domain.errors import ConfigError, NotYetImplementedError
from algo_trader.domain.simulation.config import AllocationConfig, CostConfig, SimulationConfig

STUB_SHRINKAGE = 0.3
"""Weight of the diagonal in the stub's covariance: ``(1 - s) S + s diag(S)``."""
_JITTER_REL = 1e-6
_BPS = 1e-4


@dataclass(frozen=True)
class HookConfig:
    """What one fit or prediction is configured by.

    Attributes
    ----------
    config
        The simulation config with the candidate's parameters (and any prebuild defaults)
        applied.
    seed
        The seed of this unit of work (see ``inner_objective.derive_seed``); every random
        draw of the hook derives from it.
    """

    config: SimulationConfig
    seed: int


@dataclass(frozen=True, eq=False)
class CostSpec:
    """Transaction costs in the units of ``y`` (returns times ``target_scale``).

    Attributes
    ----------
    rate
        ``(A,)`` cost per unit of ``|w_a - w_prev_a|``.
    fixed
        Cost of any rebalance that trades at all.
    """

    rate: np.ndarray
    fixed: float


def cost_spec(cost: CostConfig, assets: Sequence[str], target_scale: float) -> CostSpec:
    """Turn the ``cost`` section (basis points of turnover) into a :class:`CostSpec`.

    Raises
    ------
    ConfigError
        ``cost.per_asset_bps`` names an asset that is not in the panel.
    """
    unknown = sorted(set(cost.per_asset_bps) - set(assets))
    if unknown:
        raise ConfigError(
            f"cost.per_asset_bps: {unknown} are not panel assets; valid: {', '.join(assets)}"
        )
    bps = np.array([cost.per_asset_bps.get(a, cost.bps) for a in assets], dtype=np.float64)
    return CostSpec(rate=bps * _BPS * target_scale, fixed=cost.fixed_per_rebalance * target_scale)


FitModel = Callable[[torch.Tensor, torch.Tensor, HookConfig, Any], Any]
Predict = Callable[[torch.Tensor, Any, HookConfig, int], dict[str, torch.Tensor]]
Score = Callable[[torch.Tensor, dict[str, torch.Tensor], Any], float]
Allocate = Callable[[dict[str, torch.Tensor], AllocationConfig], torch.Tensor]
ComputePnl = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, CostSpec], dict[str, float]]


@dataclass(frozen=True)
class Hooks:
    """The five hooks of one simulation mode; ``name`` is recorded in every artifact."""

    name: str
    fit_model: FitModel
    predict: Predict
    score: Score
    allocate: Allocate
    compute_pnl: ComputePnl


def stub_fit_model(
    X_train: torch.Tensor, y_train: torch.Tensor, config: HookConfig, init_state: Any
) -> dict[str, torch.Tensor]:
    """Stub: the training mean and a shrunk covariance of ``y``; ignores ``X`` and the config.

    Missing targets count as the mean (zero after centring), which keeps the covariance
    positive semi-definite; the diagonal shrinkage ``STUB_SHRINKAGE`` and a small jitter
    make it positive definite for the Cholesky factor.
    """
    y = y_train.to(torch.float64)
    observed = ~torch.isnan(y)
    count = observed.sum(dim=0)
    mean = torch.where(observed, y, 0.0).sum(dim=0) / count.clamp(min=1)
    centred = torch.where(observed, y - mean, 0.0)
    cov = centred.T @ centred / max(int(y.shape[0]) - 1, 1)
    cov = (1 - STUB_SHRINKAGE) * cov + STUB_SHRINKAGE * torch.diag(torch.diagonal(cov))
    level = float(torch.diagonal(cov).mean()) if cov.numel() else 0.0
    cov = cov + (_JITTER_REL * level + 1e-12) * torch.eye(cov.shape[0], dtype=torch.float64)
    return {"mean": mean, "cov": cov, "chol": torch.linalg.cholesky(cov), "n_obs": count}


def stub_predict(
    X_pred: torch.Tensor, state: dict[str, torch.Tensor], config: HookConfig, num_samples: int
) -> dict[str, torch.Tensor]:
    """Stub: ``num_samples`` Gaussian draws per row of ``X_pred`` from the fitted mean/cov.

    Draws come from a ``torch.Generator`` seeded with ``config.seed``, so a prediction is
    reproducible from its unit of work alone.
    """
    generator = torch.Generator().manual_seed(config.seed)
    n_rows, n_assets = int(X_pred.shape[0]), int(state["mean"].shape[0])
    z = torch.randn(num_samples, n_rows, n_assets, generator=generator, dtype=torch.float64)
    samples = state["mean"] + z @ state["chol"].T
    return {"samples": samples, "mean": state["mean"].expand(n_rows, n_assets)}


def stub_score(y_true: torch.Tensor, pred: dict[str, torch.Tensor], score_spec: Any) -> float:
    """Stub: negative mean squared error of the predictive sample mean on observed targets.

    ``scoring.spec.metric_name`` is ignored (the metric registry arrives with the scoring
    issue). NaN when no target is observed; the inner objective skips such splits.
    """
    observed = ~torch.isnan(y_true)
    if not bool(observed.any()):
        return float("nan")
    error = pred["samples"].mean(dim=0) - y_true
    return -float((error[observed] ** 2).mean())


def stub_allocate(pred: dict[str, torch.Tensor], alloc_spec: AllocationConfig) -> torch.Tensor:
    """Stub: equal weights summing to ``gross_leverage`` (``allocation.policy`` is ignored)."""
    n_assets = int(pred["samples"].shape[-1])
    return torch.full((n_assets,), alloc_spec.gross_leverage / n_assets, dtype=torch.float64)


def stub_compute_pnl(
    w: torch.Tensor, y_t: torch.Tensor, w_prev: torch.Tensor, cost_spec: CostSpec
) -> dict[str, float]:
    """Stub: ``gross = w . y_t``, ``cost = rate . |w - w_prev| (+ fixed)``, ``net = gross - cost``.

    A missing return counts as 0 (the position earns nothing known); ``missing`` says how
    many assets that was.
    """
    observed = ~torch.isnan(y_t)
    gross = float((w * torch.where(observed, y_t, 0.0)).sum())
    turnover = (w - w_prev).abs()
    rate = torch.from_numpy(cost_spec.rate)
    cost = float((rate * turnover).sum()) + (cost_spec.fixed if bool(turnover.any()) else 0.0)
    return {
        "gross": gross,
        "cost": cost,
        "net": gross - cost,
        "turnover": float(turnover.sum()),
        "missing": float((~observed).sum()),
    }


def stub_hooks() -> Hooks:
    """The stand-in hooks of ``simulation_mode: stub`` (no real model; see module doc)."""
    return Hooks(
        name="stub",
        fit_model=stub_fit_model,
        predict=stub_predict,
        score=stub_score,
        allocate=stub_allocate,
        compute_pnl=stub_compute_pnl,
    )


def full_hooks() -> Hooks:
    """The real model hooks of ``simulation_mode: full``.

    Raises
    ------
    NotYetImplementedError
        Always, until the modeling issue (#5) plugs the Pyro model in.
    """
    raise NotYetImplementedError(
        "simulation_mode: full needs the Pyro model hooks, which arrive with issue #5 "
        "(modeling); use simulation_mode: stub (stand-in hooks) or dry_run meanwhile"
    )

"""The simulation's model hooks (nestedcv.md section 7) and their ``stub`` stand-ins.

The CV logic calls only these five functions, so a model plugs in without touching it:

- ``fit_model(X_train, y_train, config, init_state) -> state``
- ``predict(X_pred, state, config, num_samples) -> pred`` with ``pred["samples"]`` a
  ``(S, T, A)`` tensor of predictive draws of ``y``
- ``score(y_true, pred, score_spec) -> float`` (higher is better)
- ``allocate(samples, w_prev, alloc_spec) -> weights`` ``(A,)``: ``samples`` are one week's
  ``(S, A)`` draws of ``y`` and ``w_prev`` the weights held going into the week (the
  turnover penalty needs them, hence the extra argument next to the spec's two)
- ``compute_pnl(w, y_t, w_prev, cost_spec) -> {"gross", "cost", "net", "turnover",
  "missing"}`` in return units (fractions of portfolio value)

``X`` is ``(T, A, F)`` and ``y`` ``(T, A)``, float64 with NaN where missing, in the panel's
units (returns times ``data.dataset_params.target_scale``); the two portfolio hooks take
numpy arrays and convert ``y`` to return units with the scale their spec carries.

Only the model is stubbed: ``stub_hooks`` fit a Gaussian to the training targets and
ignore the features and every model setting, so a stub run exercises the pipeline, not a
forecasting model. Allocation (``allocation`` config, :mod:`.allocation`) and costs
(``cost`` config, :mod:`.costs`) are the real ones in every mode. ``full`` mode needs the
real model hooks: Pyro models fitted by SVI (batched over splits where the model allows).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from algo_trader.application.simulation import allocation, costs
from algo_trader.application.simulation.metrics import score as registered_score
from algo_trader.domain.simulation.config import AllocationConfig, CostConfig, SimulationConfig
from algo_trader.pipeline.stages.modeling.batched import FitSpec, fit_batched, group_key
from algo_trader.pipeline.stages.modeling.contracts import ModelBatch, PyroGuide, PyroModel
from algo_trader.pipeline.stages.modeling.predictive import predict
from algo_trader.pipeline.stages.modeling.registry import build_pair
from algo_trader.pipeline.stages.modeling.trainer import FitState, fit

STUB_SHRINKAGE = 0.3
"""Weight of the diagonal in the stub's covariance: ``(1 - s) S + s diag(S)``."""
_JITTER_REL = 1e-6


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


@dataclass(frozen=True)
class AllocationSpec:
    """The ``allocation`` section and the scale of ``y`` (``y = return * target_scale``)."""

    config: AllocationConfig
    target_scale: float


@dataclass(frozen=True)
class CostSpec:
    """The ``cost`` section, the panel's assets (column order) and the scale of ``y``."""

    cost: CostConfig
    assets: tuple[str, ...]
    target_scale: float


def allocation_spec(config: SimulationConfig, n_assets: int) -> AllocationSpec:
    """The :class:`AllocationSpec` of a run, checked once against the panel.

    Raises
    ------
    ConfigError
        Unknown policy or settings infeasible for ``n_assets`` (``allocation.check_allocation``).
    """
    allocation.check_allocation(config.allocation, n_assets, config.predictive.num_samples)
    return AllocationSpec(config.allocation, float(config.data.dataset_params.target_scale))


def cost_spec(cost: CostConfig, assets: Sequence[str], target_scale: float) -> CostSpec:
    """The :class:`CostSpec` of a run.

    Raises
    ------
    ConfigError
        ``cost.per_asset_bps`` names an asset that is not in the panel.
    """
    costs.cost_rates(cost, assets)  # fails now, before any work, on an unknown asset
    return CostSpec(cost, tuple(assets), float(target_scale))


FitModel = Callable[[torch.Tensor, torch.Tensor, HookConfig, Any], Any]
Predict = Callable[[torch.Tensor, Any, HookConfig, int], dict[str, torch.Tensor]]
Score = Callable[[torch.Tensor, dict[str, torch.Tensor], Any], float]
Allocate = Callable[[np.ndarray, np.ndarray, AllocationSpec], np.ndarray]
ComputePnl = Callable[[np.ndarray, np.ndarray, np.ndarray, CostSpec], dict[str, float]]
FitMany = Callable[[Sequence[tuple[torch.Tensor, torch.Tensor, HookConfig]]], list[Any]]


@dataclass(frozen=True)
class Hooks:
    """The five hooks of one simulation mode; ``name`` is recorded in every artifact."""

    name: str
    fit_model: FitModel
    predict: Predict
    score: Score
    allocate: Allocate
    compute_pnl: ComputePnl
    fit_many: FitMany | None = None
    """Optional: fit several ``(X_train, y_train, config)`` at once (batched fitting)."""


def policy_allocate(samples: np.ndarray, w_prev: np.ndarray, spec: AllocationSpec) -> np.ndarray:
    """``allocate`` hook: the ``allocation.policy`` weights for one week.

    Parameters
    ----------
    samples
        ``(S, A)`` predictive draws of the week's ``y`` (panel units).
    w_prev
        ``(A,)`` weights held going into the week.
    spec
        Policy settings and the scale of ``y``.
    """
    return allocation.allocate(samples / spec.target_scale, w_prev, spec.config)


def cost_pnl(
    w: np.ndarray, y_t: np.ndarray, w_prev: np.ndarray, spec: CostSpec
) -> dict[str, float]:
    """``compute_pnl`` hook: trade from ``w_prev`` into ``w``, hold it over the label week.

    ``y_t`` is the week's realized ``y`` (panel units, NaN = missing: the position earns 0);
    the result is in return units (:func:`.costs.pnl`).
    """
    return costs.pnl(w, y_t / spec.target_scale, w_prev, spec.cost, spec.assets)


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


def stub_hooks() -> Hooks:
    """The hooks of ``simulation_mode: stub``: a stand-in model, real allocation and costs."""
    return Hooks(
        name="stub",
        fit_model=stub_fit_model,
        predict=stub_predict,
        score=registered_score,
        allocate=policy_allocate,
        compute_pnl=cost_pnl,
    )


@dataclass(frozen=True)
class PyroState:
    """A fitted Pyro model: the model/guide pair it was built as and the fit's parameters."""

    model: PyroModel
    guide: PyroGuide
    fit: FitState


def _device(hc: HookConfig) -> str | None:
    """``cuda`` when ``flags.use_gpu``; otherwise None, which reads ``TORCH_DEVICE``."""
    return "cuda" if hc.config.flags.use_gpu else None


def _fit_spec(X: torch.Tensor, y: torch.Tensor, hc: HookConfig, init: Any) -> FitSpec:
    warm = init.fit if isinstance(init, PyroState) else None
    return FitSpec(
        batch=ModelBatch.from_arrays(X, y),
        config=hc.config.training.svi,
        params=hc.config.model.params,
        guide_params=hc.config.model.guide_params,
        seed=hc.seed,
        init_state=warm,
    )


def pyro_fit_model(
    X_train: torch.Tensor, y_train: torch.Tensor, hc: HookConfig, init_state: Any
) -> PyroState:
    """``fit_model`` hook: SVI fit of ``model.model_name`` / ``model.guide_name``.

    ``init_state`` (the previous week's :class:`PyroState`, in the outer loop) warm-starts
    the guide's parameters.
    """
    m = hc.config.model
    model, guide = build_pair(m.model_name, m.guide_name, m.params, m.guide_params)
    spec = _fit_spec(X_train, y_train, hc, init_state)
    state = fit(
        model,
        guide,
        spec.batch,
        spec.config,
        seed=hc.seed,
        init_state=spec.init_state,
        device=_device(hc),
        validate=False,
    )
    return PyroState(model, guide, state)


def pyro_fit_many(
    items: Sequence[tuple[torch.Tensor, torch.Tensor, HookConfig]],
) -> list[PyroState]:
    """``fit_many`` hook: the fits that can share one program are fitted batched.

    Fits are grouped by :func:`group_key` (shapes and structural settings); a model that
    does not declare ``supports_batching`` is fitted one by one.
    """
    m = items[0][2].config.model
    model, _ = build_pair(m.model_name, m.guide_name, m.params, m.guide_params)
    specs = [_fit_spec(X, y, hc, None) for X, y, hc in items]
    if not model.supports_batching:
        return [pyro_fit_model(X, y, hc, None) for X, y, hc in items]
    groups: dict[Any, list[int]] = {}
    for i, spec in enumerate(specs):
        groups.setdefault(group_key(m.model_name, m.guide_name, spec), []).append(i)
    states: list[PyroState | None] = [None] * len(items)
    for members in groups.values():
        fitted = fit_batched(
            m.model_name,
            m.guide_name,
            [specs[i] for i in members],
            device=_device(items[0][2]),
            validate=False,
        )
        for i, fit_state in zip(members, fitted, strict=True):
            # One model/guide instance per fit: the batched program's are K-wide.
            cfg = items[i][2].config.model
            single_model, single_guide = build_pair(
                cfg.model_name, cfg.guide_name, cfg.params, cfg.guide_params
            )
            states[i] = PyroState(single_model, single_guide, fit_state)
    return [s for s in states if s is not None]


def pyro_predict(
    X_pred: torch.Tensor, state: PyroState, hc: HookConfig, num_samples: int
) -> dict[str, torch.Tensor]:
    """``predict`` hook: ``(S, T, A)`` posterior predictive draws of ``obs`` (float64)."""
    batch = ModelBatch.from_arrays(X_pred)
    samples = predict(
        state.model, state.guide, state.fit, batch, num_samples, hc.seed, device=_device(hc)
    )
    return {"samples": samples.to(torch.float64)}


def full_hooks() -> Hooks:
    """The hooks of ``simulation_mode: full``: Pyro fit/predict (batched where the model
    allows), the configured metric, real allocation and costs."""
    return Hooks(
        name="full",
        fit_model=pyro_fit_model,
        predict=pyro_predict,
        score=registered_score,
        allocate=policy_allocate,
        compute_pnl=cost_pnl,
        fit_many=pyro_fit_many,
    )

"""The metric registry (workflows.md, "Adding a new metric").

A metric is registered as a *builder*: ``build(score_spec) -> metric`` where
``metric(y_true, pred, score_spec) -> float``. ``y_true`` is ``(T, A)`` (NaN = missing) and
``pred`` the ``predict`` hook's dict, which must carry ``"samples"`` ``(S, T, A)`` and, for the
metrics that transform with training statistics, ``"y_train"`` (the split's training
targets ``(T_train, A)``).

Two scopes, one registry each:

- ``inner``: tuning objectives, **higher is better** (``neg_mse`` default, ``energy_score``);
  selected by ``scoring.spec.metric_name``. One module per metric in ``metrics/inner/``.
- ``outer``: evaluation losses in z-space, **lower is better** as in ``best_model.md``
  (``crps``, ``quantile_loss``). One module per metric in ``metrics/outer/``.

A scope's package is imported on first lookup, which runs its modules' decorators.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch

from algo_trader.domain.simulation.config import ScoreSpec
from algo_trader.infrastructure.registry import Registry

Scope = Literal["inner", "outer"]
Metric = Callable[[torch.Tensor, Mapping[str, Any], ScoreSpec], float]
MetricBuilder = Callable[[ScoreSpec], Metric]

_REGISTRIES: dict[str, Registry[MetricBuilder]] = {
    "inner": Registry("inner metric"),
    "outer": Registry("outer metric"),
}


def _registry(scope: str) -> Registry[MetricBuilder]:
    if scope not in _REGISTRIES:
        raise ValueError(f"unknown metric scope {scope!r}; valid: {', '.join(_REGISTRIES)}")
    return _REGISTRIES[scope]


def register_metric(name: str, scope: Scope = "inner") -> Callable[[MetricBuilder], MetricBuilder]:
    """Decorator registering a metric builder under ``name`` in ``scope``."""
    return _registry(scope).register(name)


def get_metric(name: str, scope: Scope = "inner") -> MetricBuilder:
    """The builder registered as ``name`` in ``scope``.

    Raises
    ------
    ConfigError
        No such metric; the message lists the valid names of the scope.
    """
    registry = _registry(scope)
    importlib.import_module(f"{__name__}.{scope}")  # runs the scope's registrations
    return registry.get(name)


def metric_names(scope: Scope = "inner") -> list[str]:
    """Registered metric names of ``scope``, sorted."""
    registry = _registry(scope)
    importlib.import_module(f"{__name__}.{scope}")
    return registry.names()


def score(y_true: torch.Tensor, pred: Mapping[str, Any], score_spec: ScoreSpec) -> float:
    """The ``score`` hook: the inner metric ``score_spec.metric_name`` (higher is better)."""
    return get_metric(score_spec.metric_name, "inner")(score_spec)(y_true, pred, score_spec)


def require(pred: Mapping[str, Any], key: str, metric: str) -> torch.Tensor:
    """``pred[key]`` as a tensor, or a ``KeyError`` naming the metric and the keys present."""
    value = pred.get(key)
    if not isinstance(value, torch.Tensor):
        raise KeyError(f"metric {metric!r} needs pred[{key!r}] (a tensor); pred has {sorted(pred)}")
    return value


__all__ = [
    "Metric",
    "MetricBuilder",
    "Scope",
    "get_metric",
    "metric_names",
    "register_metric",
    "require",
    "score",
]

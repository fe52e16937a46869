"""Prebuild hooks: train-only, data-driven defaults for ``model.params`` / ``model.guide_params``.

A hook is a function ``(PrebuildContext) -> PrebuildResult`` registered by name with
``@register_prebuild("<name>")`` and chosen with ``model.prebuild.name`` in
``simulation.yml`` (workflows.md, "Adding a prebuild hook"). The simulation runs it once,
before tuning, on the intersection of all outer-fold training indices, so what it learns
is available to every fold without having seen any fold's test data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from algo_trader.infrastructure.registry import Registry


@dataclass(frozen=True, eq=False)
class PrebuildContext:
    """The train-only data a prebuild hook may use.

    Attributes
    ----------
    X, missing_mask
        ``(T_train, A, F)`` raw panel features (float64, NaN where missing) and mask.
    y, y_missing_mask
        ``(T_train, A)`` scaled targets and mask.
    train_idx
        The panel rows these are (int64, sorted): the intersection of every outer fold's
        training indices.
    timestamps
        ``(T_train,)`` int64 ns UTC of those rows.
    assets, features
        Panel labels.
    params
        ``model.prebuild.params`` (hook-specific settings).
    model_params, guide_params
        The configured ``model.params`` / ``model.guide_params``.
    seed
        Seed for any randomness of the hook.
    """

    X: np.ndarray
    missing_mask: np.ndarray
    y: np.ndarray
    y_missing_mask: np.ndarray
    train_idx: np.ndarray
    timestamps: np.ndarray
    assets: list[str]
    features: list[str]
    params: Mapping[str, Any]
    model_params: Mapping[str, Any]
    guide_params: Mapping[str, Any]
    seed: int


@dataclass(frozen=True)
class PrebuildResult:
    """What a prebuild hook computed (JSON-serialisable values only).

    Attributes
    ----------
    model_params, guide_params
        Defaults merged under ``model.params`` / ``model.guide_params`` (keys the config
        sets explicitly keep the config's value).
    metadata
        Anything worth recording in ``prebuild.json``.
    """

    model_params: dict[str, Any] = field(default_factory=dict)
    guide_params: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


PrebuildHook = Callable[[PrebuildContext], PrebuildResult]

PREBUILD_HOOKS: Registry[PrebuildHook] = Registry("prebuild hook")


def register_prebuild(name: str) -> Callable[[PrebuildHook], PrebuildHook]:
    """Decorator registering a prebuild hook under ``name`` (``model.prebuild.name``)."""
    return PREBUILD_HOOKS.register(name)

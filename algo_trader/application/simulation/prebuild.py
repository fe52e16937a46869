"""Run the optional ``model.prebuild`` hook once, before tuning, on train-only rows.

The hook sees the intersection of every outer fold's training indices: rows that are
training data in *all* folds, so a default it derives leaks no fold's test data into any
fold. Its ``model_params`` / ``guide_params`` become defaults under ``model.params`` /
``model.guide_params`` (a key the config sets explicitly keeps the config's value;
candidates override both), and everything is recorded in
``artifacts/prebuild/prebuild.json``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from algo_trader.application.simulation.cv_groups import OuterFold, index_runs
from algo_trader.application.simulation.inner_objective import Stream, derive_seed
from algo_trader.application.simulation.panel import Panel
from algo_trader.domain.errors import ConfigError
from algo_trader.domain.simulation.config import SimulationConfig, with_overrides
from algo_trader.infrastructure.data.atomic import UTC_FORMAT, write_json
from algo_trader.pipeline.stages.modeling.prebuild import PrebuildContext, PrebuildResult
from algo_trader.pipeline.stages.modeling.registry import default_prebuild_registry

PREBUILD_FILE = Path("artifacts") / "prebuild" / "prebuild.json"


def common_train_idx(folds: Sequence[OuterFold]) -> np.ndarray:
    """Sorted rows that are in every outer fold's training set."""
    return functools.reduce(np.intersect1d, [f.train_idx for f in folds]).astype(np.int64)


def merge_defaults(defaults: Mapping[str, Any], explicit: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: ``explicit`` wins key by key; nested mappings merge recursively."""
    merged = dict(defaults)
    for key, value in explicit.items():
        base = merged.get(key)
        if isinstance(base, Mapping) and isinstance(value, Mapping):
            merged[key] = merge_defaults(base, value)
        else:
            merged[key] = value
    return merged


def _context(panel: Panel, idx: np.ndarray, config: SimulationConfig) -> PrebuildContext:
    return PrebuildContext(
        X=panel.X[idx],
        missing_mask=panel.missing_mask[idx],
        y=panel.y[idx],
        y_missing_mask=panel.y_missing_mask[idx],
        train_idx=idx,
        timestamps=panel.timestamps[idx],
        assets=list(panel.assets),
        features=list(panel.features),
        params=dict(config.model.prebuild.params),
        model_params=dict(config.model.params),
        guide_params=dict(config.model.guide_params),
        seed=derive_seed(config.cv.seed, Stream.PREBUILD),
    )


def _apply(config: SimulationConfig, result: PrebuildResult) -> SimulationConfig:
    model = merge_defaults(result.model_params, config.model.params)
    guide = merge_defaults(result.guide_params, config.model.guide_params)
    overrides = {f"model.params.{k}": v for k, v in model.items()}
    overrides.update({f"model.guide_params.{k}": v for k, v in guide.items()})
    return with_overrides(config, overrides)


def run_prebuild(
    config: SimulationConfig, panel: Panel, folds: Sequence[OuterFold], out_dir: Path
) -> SimulationConfig:
    """Run ``model.prebuild`` when enabled and return the config with its defaults merged.

    Parameters
    ----------
    config
        The run's config.
    panel
        The simulation inputs.
    folds
        The outer folds (their training sets are intersected).
    out_dir
        ``SIMULATION_SOURCE/<label>``; ``artifacts/prebuild/prebuild.json`` goes there.

    Returns
    -------
    SimulationConfig
        ``config`` unchanged when prebuild is disabled.

    Raises
    ------
    ConfigError
        Unknown hook name (lists the registered ones), no common training row, or a
        result whose parameters the config rejects.
    """
    spec = config.model.prebuild
    if not spec.enabled:
        return config
    assert spec.name is not None  # the config requires a name when enabled
    hook = default_prebuild_registry().get(spec.name)
    idx = common_train_idx(folds)
    if idx.size == 0:
        raise ConfigError(
            "model.prebuild: the outer folds share no training row; set "
            "cv.exclude_warmup: false or start the outer test groups later"
        )
    context = _context(panel, idx, config)
    result = hook(context)
    merged = _apply(config, result)
    stamps = panel.index[idx]
    write_json(
        out_dir / PREBUILD_FILE,
        {
            "name": spec.name,
            "params": dict(spec.params),
            "seed": context.seed,
            "train_rows": index_runs(idx),
            "n_train": int(idx.size),
            "train_start": stamps[0].strftime(UTC_FORMAT),
            "train_end": stamps[-1].strftime(UTC_FORMAT),
            "model_params": result.model_params,
            "guide_params": result.guide_params,
            "metadata": result.metadata,
            "merged_model_params": dict(merged.model.params),
            "merged_guide_params": dict(merged.model.guide_params),
        },
    )
    return merged

"""The simulation's plug-in registries (workflows.md, "Simulation extensions").

- :data:`DATASET_LOADERS`: name -> loader ``(settings, dataset_params, out_dir) -> PanelLoad``.
  The CLI always uses ``feature_store_panel`` (configuration.md: "Loader: fixed"); a new
  loader is registered here and selected in the runner.
- :data:`PREBUILD_HOOKS` / :func:`register_prebuild`: the prebuild hooks, whose public
  home is ``algo_trader.pipeline.stages.modeling`` (the spec's import path); listed here so
  every simulation registry is found in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from algo_trader.application.simulation.panel import PanelLoad, feature_store_panel
from algo_trader.domain.simulation.config import DatasetParams
from algo_trader.infrastructure.env import Settings
from algo_trader.infrastructure.registry import Registry
from algo_trader.pipeline.stages.modeling.prebuild import PREBUILD_HOOKS, register_prebuild

DatasetLoader = Callable[[Settings, DatasetParams, Path], PanelLoad]

FEATURE_STORE_PANEL = "feature_store_panel"

DATASET_LOADERS: Registry[DatasetLoader] = Registry("dataset loader")
DATASET_LOADERS.register(FEATURE_STORE_PANEL)(feature_store_panel)

__all__ = [
    "DATASET_LOADERS",
    "FEATURE_STORE_PANEL",
    "PREBUILD_HOOKS",
    "DatasetLoader",
    "register_prebuild",
]

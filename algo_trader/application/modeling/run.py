"""``algotrader modeling``: fit one registered model/guide on the latest prepared data.

Input: the feature store's latest groups and the data lake's latest return tensor, or a
``panel_tensor.pt`` given with ``--input`` (see :mod:`.inputs`).
Output: ``MODEL_STORE_SOURCE/<model>/<guide>/<pipeline>/<YYYY-WW>/`` (``YYYY-WW`` of the
data's last week) holding

- ``params.csv``: one row per element of every latent site of the guide, with the
  posterior mean, sd and 5/50/95% quantiles of ``num_samples`` guide draws;
- ``metadata.json``: the configuration, seed, input files and their SHA-256, the loss
  history (summary and a thinned copy), the model's complexity and package versions.

The folder is built beside its final name and swapped in whole, so a failed run leaves
the previous one intact. ``--render FILE`` also draws the model graph (graphviz is an
optional extra).

Unless ``params`` sets ``likelihood.sigma_scale`` (the unit every model of the project
states its priors in), the ``factor_prior_init`` prebuild hook sets it from the targets,
as the simulation does when prebuild is enabled.
"""

from __future__ import annotations

import importlib.metadata
import math
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyro
import torch

from algo_trader.application.modeling.inputs import ModelingData, load_panel, prepare
from algo_trader.application.modeling.render import render_graph
from algo_trader.application.modeling.summary import summary_frame
from algo_trader.application.simulation.prebuild import merge_defaults
from algo_trader.domain.errors import ConfigError
from algo_trader.domain.simulation.config import SVIConfig
from algo_trader.infrastructure.data.atomic import UTC_FORMAT, write_csv, write_json
from algo_trader.infrastructure.data.staging import staged_folder
from algo_trader.infrastructure.env import Settings
from algo_trader.pipeline.stages.modeling.factor_prior_init import factor_prior_init
from algo_trader.pipeline.stages.modeling.prebuild import PrebuildContext
from algo_trader.pipeline.stages.modeling.predictive import posterior_samples
from algo_trader.pipeline.stages.modeling.registry import (
    build_pair,
    default_guide_registry,
    default_model_registry,
)
from algo_trader.pipeline.stages.modeling.trainer import FitState, fit
from algo_trader.preprocessing.args import PIPELINE_PATTERN

PARAMS_FILE = "params.csv"
METADATA_FILE = "metadata.json"
SCALE_HOOK = "factor_prior_init"
DEFAULT_PIPELINE = "debug"
DEFAULT_NUM_SAMPLES = 1000
HISTORY_POINTS = 200
"""Loss values kept in ``metadata.json`` (the history thinned evenly to at most this)."""


@dataclass(frozen=True)
class ModelingResult:
    """Where a modeling run wrote, and what it fitted."""

    out_dir: Path
    model: str
    guide: str
    pipeline: str
    shape: tuple[int, int, int]
    num_parameters: int
    steps_run: int
    final_loss: float
    stopped_early: bool
    render: Path | None

    def summary_lines(self) -> list[str]:
        """Short human-readable lines for the CLI."""
        T, A, F = self.shape
        stop = ", stopped early" if self.stopped_early else ""
        lines = [
            f"{self.model} / {self.guide} (pipeline {self.pipeline}) on {T} weeks x "
            f"{A} assets x {F} features",
            f"SVI: {self.steps_run} steps, final loss {self.final_loss:.6g}{stop}",
            f"files: {PARAMS_FILE} ({self.num_parameters} parameter elements), {METADATA_FILE}",
        ]
        if self.render is not None:
            lines.append(f"model graph: {self.render}")
        return lines


def _check_names(model: str, guide: str, pipeline: str) -> None:
    """Fail before any data is read: unknown names list the registered ones."""
    default_model_registry().get(model)
    default_guide_registry().get(guide)
    if not PIPELINE_PATTERN.match(pipeline) or pipeline in (".", ".."):
        raise ConfigError(
            f"--pipeline {pipeline!r}: must be a non-empty name of A-Za-z0-9._- (not . or ..)"
        )


def _with_scale(
    data: ModelingData, params: Mapping[str, Any], guide_params: Mapping[str, Any], seed: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``params`` with ``likelihood.sigma_scale`` from the prebuild hook unless given."""
    likelihood = params.get("likelihood")
    if isinstance(likelihood, Mapping) and "sigma_scale" in likelihood:
        return dict(params), {"name": None, "reason": "likelihood.sigma_scale given"}
    panel = data.panel
    context = PrebuildContext(
        X=panel.X,
        missing_mask=panel.missing_mask,
        y=panel.y,
        y_missing_mask=panel.y_missing_mask,
        train_idx=np.arange(panel.X.shape[0], dtype=np.int64),
        timestamps=panel.timestamps,
        assets=list(panel.assets),
        features=list(panel.features),
        params={},
        model_params=dict(params),
        guide_params=dict(guide_params),
        seed=seed,
    )
    result = factor_prior_init(context)
    return merge_defaults(result.model_params, params), {
        "name": SCALE_HOOK,
        "model_params": result.model_params,
        "metadata": result.metadata,
    }


def _loss_summary(state: FitState) -> dict[str, Any]:
    history = state.loss_history.to(torch.float64).numpy()
    n = history.size
    tail = history[-max(1, n // 10) :] if n else history
    keep = np.unique(np.linspace(0, max(n - 1, 0), min(n, HISTORY_POINTS)).round().astype(int))
    return {
        "steps_run": int(state.metadata.get("steps_run", n)),
        "stopped_early": bool(state.metadata.get("stopped_early", False)),
        "first": float(history[0]) if n else math.nan,
        "last": float(history[-1]) if n else math.nan,
        "min": float(np.nanmin(history)) if n else math.nan,
        "mean_last_10pct": float(np.nanmean(tail)) if n else math.nan,
        "thinned": {"step": [int(i) + 1 for i in keep], "loss": [float(history[i]) for i in keep]},
    }


def _versions() -> dict[str, str]:
    return {
        "algo_trader": importlib.metadata.version("algo_trader"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }


def _data_summary(data: ModelingData) -> dict[str, Any]:
    stamps = pd.to_datetime(data.panel.timestamps[[0, -1]], utc=True)
    return {
        "rows": data.batch.num_rows,
        "assets": list(data.panel.assets),
        "features": data.features,
        "dropped_features": data.dropped,
        "first_week": stamps[0].strftime(UTC_FORMAT),
        "last_week": stamps[1].strftime(UTC_FORMAT),
        "observed_targets": int((~data.panel.y_missing_mask).sum()),
        "preprocessing": "simulation defaults (nestedcv section 6), fitted on all rows",
    }


def run_modeling(
    settings: Settings,
    model: str,
    guide: str,
    input_dir: Path | None,
    render: Path | None,
    params: dict[str, Any] | None,
    seed: int,
    *,
    pipeline: str = DEFAULT_PIPELINE,
    guide_params: dict[str, Any] | None = None,
    svi: SVIConfig | None = None,
    num_samples: int = DEFAULT_NUM_SAMPLES,
) -> ModelingResult:
    """Fit ``model`` / ``guide`` on the latest prepared data and write its parameter summary.

    Parameters
    ----------
    settings
        Env settings (``FEATURE_STORE_SOURCE``, ``DATA_LAKE_SOURCE``, ``MODEL_STORE_SOURCE``,
        ``TORCH_DEVICE``).
    model, guide
        Registered names (``--model`` / ``--guide``).
    input_dir
        A folder holding ``panel_tensor.pt`` (``--input``), or None for the stores.
    render
        Also draw the model graph to this file (``--render``; format from the suffix).
    params, guide_params
        ``model.params`` / ``model.guide_params``.
    seed
        Seeds preprocessing, the fit and the summary draws.
    pipeline
        Label of the output folder (``--pipeline``).
    svi
        ``training.svi`` settings (defaults of :class:`SVIConfig` when None).
    num_samples
        Guide draws behind ``params.csv``.

    Returns
    -------
    ModelingResult
        The output folder and what was fitted.

    Raises
    ------
    ConfigError
        Unknown model or guide (the message lists the registered names), a bad pipeline
        name, ``num_samples`` below 2, or ``--render`` without graphviz.
    DataError
        Missing or inconsistent input files (the message names the file).
    """
    if num_samples < 2:
        raise ConfigError(f"num_samples={num_samples}: a posterior summary needs at least 2 draws")
    _check_names(model, guide, pipeline)
    explicit, guide_params = dict(params or {}), dict(guide_params or {})
    config = svi or SVIConfig()
    panel, sources = load_panel(settings, input_dir)
    data = prepare(panel, sources, seed)
    merged, prebuild = _with_scale(data, explicit, guide_params, seed)
    pyro_model, pyro_guide = build_pair(model, guide, merged, guide_params)
    if render is not None:
        render_graph(pyro_model, data.batch, render)
    state = fit(pyro_model, pyro_guide, data.batch, config, seed=seed, device=settings.torch_device)
    draws = posterior_samples(pyro_model, pyro_guide, state, data.batch, num_samples, seed)
    table = summary_frame(draws)
    loss = _loss_summary(state)
    T, A, F = data.batch.num_rows, data.batch.num_assets, data.batch.num_features
    metadata = {
        "command": "modeling",
        "model": model,
        "guide": guide,
        "pipeline": pipeline,
        "params": merged,
        "explicit_params": explicit,
        "guide_params": guide_params,
        "prebuild": prebuild,
        "training": config.model_dump(mode="json"),
        "seed": seed,
        "num_samples": num_samples,
        "fit": dict(state.metadata),
        "data": _data_summary(data),
        "inputs": sources,
        "loss": loss,
        "complexity": pyro_model.complexity(A, F),
        "versions": _versions(),
        "files": [PARAMS_FILE, METADATA_FILE],
        "written_at": pd.Timestamp.now(tz="UTC").strftime(UTC_FORMAT),
    }
    out_dir = settings.model_store_source / model / guide / pipeline / data.week
    with staged_folder(out_dir) as staging:
        write_csv(staging / PARAMS_FILE, table, index=False)
        write_json(staging / METADATA_FILE, metadata)
    return ModelingResult(
        out_dir=out_dir,
        model=model,
        guide=guide,
        pipeline=pipeline,
        shape=(T, A, F),
        num_parameters=len(table),
        steps_run=loss["steps_run"],
        final_loss=loss["last"],
        stopped_early=loss["stopped_early"],
        render=render,
    )

"""The data ``algotrader modeling`` fits: a panel, cleaned and scaled, as a ModelBatch.

Source (configuration.md, Modeling/Inference):

- by default the latest prepared data: every group of the newest
  ``FEATURE_STORE_SOURCE/<YYYY-WW>/<group>/features_tensor.pt`` plus the newest
  ``DATA_LAKE_SOURCE/<YYYY-WW>/return_tensor.pt``, aligned as the simulation aligns them
  (``y[t]`` = return over week ``t + 1``, times ``target_scale``; the simulation's
  ``feature_store_panel`` loader with the default ``dataset_params``);
- with ``--input DIR``, the ``panel_tensor.pt`` in ``DIR`` (a simulation's
  ``SIMULATION_SOURCE/<label>/inputs`` folder, or any file of that contract).

The features then go through the simulation's cleaning and scaling (nestedcv.md section 6,
default ``preprocessing`` settings) fitted on every row: this command fits one model on all
the data there is, so every row is a training row. Missing features become 0 after
scaling; missing targets stay out of the likelihood (``ModelBatch.M``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from algo_trader.application.simulation.panel import (
    PANEL_FILE,
    RETURN_TENSOR,
    Panel,
    build_panel,
    feature_week_dir,
    panel_from_payload,
    sha256_file,
)
from algo_trader.application.simulation.preprocessing import fit_cleaning, fit_scaling, transform
from algo_trader.domain.errors import DataError
from algo_trader.domain.simulation.config import DatasetParams, PreprocessingConfig
from algo_trader.infrastructure.data.layout import latest_week_dir, week_folder_name
from algo_trader.infrastructure.data.show_tensor import read_payload
from algo_trader.infrastructure.env import Settings
from algo_trader.pipeline.stages.modeling.contracts import ModelBatch


@dataclass(frozen=True)
class ModelingData:
    """What a modeling run fits, and where it came from.

    Attributes
    ----------
    panel
        The raw panel (features unscaled, NaN where missing).
    batch
        Scaled, imputed features and the targets (``M`` marks the observed ones).
    features
        Names of ``batch.X``'s channels (the features that survived cleaning).
    dropped
        Feature -> why cleaning dropped it.
    sources
        ``{name: {"path", "sha256"}}`` of every input file.
    week
        ``YYYY-WW`` of the panel's last row (names the output folder).
    """

    panel: Panel
    batch: ModelBatch
    features: list[str]
    dropped: dict[str, str]
    sources: dict[str, dict[str, str]]
    week: str


def load_panel(
    settings: Settings, input_dir: Path | None
) -> tuple[Panel, dict[str, dict[str, str]]]:
    """The panel and the files it was read from (see module docstring).

    Raises
    ------
    DataError
        No ``panel_tensor.pt`` in ``input_dir``, no feature store or data lake output, or
        inputs that do not line up (the message names the file).
    """
    if input_dir is not None:
        path = input_dir / PANEL_FILE if input_dir.is_dir() else input_dir
        if not path.is_file():
            raise DataError(
                f"--input: no {PANEL_FILE} here; pass a folder holding one, e.g. "
                "SIMULATION_SOURCE/<label>/inputs",
                path=input_dir,
            )
        panel = panel_from_payload(read_payload(path), path)
        return panel, {**panel.sources, "panel": {"path": str(path), "sha256": sha256_file(path)}}
    params = DatasetParams()
    lake_dir = latest_week_dir(settings.data_lake_source, must_contain=RETURN_TENSOR)
    panel = build_panel(
        feature_week_dir(settings.feature_store_source),
        lake_dir / RETURN_TENSOR,
        params.groups,
        params.target_shift,
        params.target_scale,
        params.prefix_feature_names,
    )
    return panel, dict(panel.sources)


def prepare(
    panel: Panel,
    sources: dict[str, dict[str, str]],
    seed: int,
    dtype: torch.dtype = torch.float32,
) -> ModelingData:
    """Clean and scale ``panel``'s features on all its rows and build the batch.

    Raises
    ------
    DataError
        No feature survives cleaning, or no target is observed.
    """
    if panel.y_missing_mask.all():
        raise DataError(
            f"none of the {panel.y.size} targets is observed; the model has nothing to fit",
            path=sources.get("panel", sources.get("returns", {})).get("path"),
        )
    cfg = PreprocessingConfig()
    rows = np.arange(panel.X.shape[0])
    cleaning = fit_cleaning(panel.X, panel.features, rows, cfg, seed)
    if not cleaning.kept:
        reasons = "; ".join(f"{k}: {v}" for k, v in list(cleaning.dropped.items())[:5])
        raise DataError(f"cleaning dropped every feature ({reasons})")
    kept = cleaning.select(panel.X)
    scaling = fit_scaling(kept, cleaning.kept, rows, cfg, panel.assets)
    X, _ = transform(kept, scaling, cfg)
    y = np.where(panel.y_missing_mask, np.nan, panel.y)
    batch = ModelBatch.from_arrays(torch.from_numpy(X), torch.from_numpy(y), dtype=dtype)
    last = pd.Timestamp(int(panel.timestamps[-1]), tz="UTC")
    return ModelingData(
        panel=panel,
        batch=batch,
        features=list(scaling.output_names),
        dropped=dict(cleaning.dropped),
        sources=sources,
        week=week_folder_name(last),
    )

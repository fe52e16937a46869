"""``crps`` (outer): the per-asset CRPS in z-space, summarized as in best_model.md step 3.

Truth and draws are divided by the per-asset MAD scale of ``pred["y_train"]`` (no whitening);
the CRPS of each week and asset comes from the sorted draws; the value is the median over
assets of each asset's mean over its observed weeks. Lower is better. NaN when no entry is
observed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from algo_trader.application.simulation.metrics import Metric, register_metric, require
from algo_trader.application.simulation.scoring import crps_per_week, mad_scale
from algo_trader.domain.simulation.config import ScoreSpec

NAME = "crps"


def median_of_asset_means(per_entry: torch.Tensor) -> float:
    """``median_a(mean_t x[t, a])`` ignoring NaN entries and assets with no finite week."""
    per_asset = per_entry.nanmean(dim=0)
    per_asset = per_asset[~torch.isnan(per_asset)]
    if per_asset.numel() == 0:
        return float("nan")
    return float(per_asset.quantile(0.5))


def z_space(
    y_true: torch.Tensor, pred: Mapping[str, Any], score_spec: ScoreSpec, metric: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(samples / scale, y_true / scale)`` with the training-only MAD scale."""
    scale = mad_scale(require(pred, "y_train", metric), score_spec.mad_eps)
    samples = require(pred, "samples", metric).to(torch.float64)
    return samples / scale, y_true.to(torch.float64) / scale


def crps(y_true: torch.Tensor, pred: Mapping[str, Any], score_spec: ScoreSpec) -> float:
    """Median over assets of the mean weekly z-space CRPS; lower is better."""
    z_samples, z_true = z_space(y_true, pred, score_spec, NAME)
    return median_of_asset_means(crps_per_week(z_samples, z_true))


@register_metric(NAME, scope="outer")
def build(score_spec: ScoreSpec) -> Metric:
    """The metric; ``mad_eps`` is read from ``score_spec`` at each call."""
    return crps

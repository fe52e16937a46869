"""``quantile_loss`` (outer): the z-space pinball loss at ``alpha_tail`` (best_model.md step 4).

``q_hat`` is the ``alpha_tail`` sample quantile (linear interpolation) of the MAD-scaled
draws; the loss ``(alpha - 1{e < 0}) e`` with ``e = z_true - q_hat`` is summarized like
``crps``: median over assets of each asset's mean over observed weeks. Lower is better.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from algo_trader.application.simulation.metrics import Metric, register_metric
from algo_trader.application.simulation.metrics.outer.crps import median_of_asset_means, z_space
from algo_trader.application.simulation.scoring import quantile_loss_per_week
from algo_trader.domain.simulation.config import ScoreSpec

NAME = "quantile_loss"


def quantile_loss(y_true: torch.Tensor, pred: Mapping[str, Any], score_spec: ScoreSpec) -> float:
    """Median over assets of the mean weekly z-space tail quantile loss; lower is better."""
    z_samples, z_true = z_space(y_true, pred, score_spec, NAME)
    return median_of_asset_means(quantile_loss_per_week(z_samples, z_true, score_spec.alpha_tail))


@register_metric(NAME, scope="outer")
def build(score_spec: ScoreSpec) -> Metric:
    """The metric; ``mad_eps`` and ``alpha_tail`` are read from ``score_spec`` at each call."""
    return quantile_loss

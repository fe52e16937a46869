"""``neg_mse`` (the default inner metric): minus the mean squared error of the predictive mean.

The predictive mean is the mean of ``pred["samples"]`` over draws; the error is averaged over
the observed entries of ``y_true`` only. NaN when no entry is observed (the inner objective
then skips the split).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from algo_trader.application.simulation.metrics import Metric, register_metric, require
from algo_trader.domain.simulation.config import ScoreSpec

NAME = "neg_mse"


def neg_mse(y_true: torch.Tensor, pred: Mapping[str, Any], score_spec: ScoreSpec) -> float:
    """``-mean((mean_s samples - y)^2)`` over observed entries; higher is better."""
    samples = require(pred, "samples", NAME).to(torch.float64)
    observed = ~torch.isnan(y_true)
    if not bool(observed.any()):
        return float("nan")
    error = samples.mean(dim=0) - y_true.to(torch.float64)
    return -float((error[observed] ** 2).mean())


@register_metric(NAME, scope="inner")
def build(score_spec: ScoreSpec) -> Metric:
    """The metric; it has no settings."""
    return neg_mse

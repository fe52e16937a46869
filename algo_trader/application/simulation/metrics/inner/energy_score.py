"""``energy_score``: the negated mean weekly energy score in whitened space (best_model.md).

Per split: the whitener is fitted on ``pred["y_train"]`` only (MAD scaling with ``mad_eps``,
size-based shrinkage, ``var_floor``, ``eps``, inverse Cholesky); truth and draws are scaled
and whitened with it; ``ES_t`` is computed per test week and the metric is ``-mean_t ES_t``
(higher is better, as tuning maximizes).

A test week with a missing target has no energy score (see :mod:`..scoring`) and is left out
of the mean; NaN when no week is fully observed (the inner objective then skips the split).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from algo_trader.application.simulation.metrics import Metric, register_metric, require
from algo_trader.application.simulation.scoring import (
    energy_score_per_week,
    fit_whitener,
    to_z,
    whiten,
)
from algo_trader.domain.simulation.config import ScoreSpec

NAME = "energy_score"
_MIB = 1024**2


def energy_score(y_true: torch.Tensor, pred: Mapping[str, Any], score_spec: ScoreSpec) -> float:
    """``-mean_t ES_t`` over fully observed test weeks; higher is better."""
    samples = require(pred, "samples", NAME)
    w = fit_whitener(
        require(pred, "y_train", NAME),
        mad_eps=score_spec.mad_eps,
        eps=score_spec.eps,
        var_floor=score_spec.var_floor,
    )
    weekly = energy_score_per_week(
        whiten(to_z(samples, w), w),
        whiten(to_z(y_true, w), w),
        memory_budget_bytes=score_spec.memory_budget_mb * _MIB,
    )
    scored = weekly[~torch.isnan(weekly)]
    return -float(scored.mean()) if scored.numel() else float("nan")


@register_metric(NAME, scope="inner")
def build(score_spec: ScoreSpec) -> Metric:
    """The metric; its settings are read from ``score_spec`` at each call."""
    return energy_score

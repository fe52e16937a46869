"""The metric registry: lookup by scope, the score hook's dispatch, errors naming valid metrics."""

from __future__ import annotations

import pytest
import torch

from algo_trader.application.simulation.metrics import (
    get_metric,
    metric_names,
    register_metric,
    score,
)
from algo_trader.application.simulation.metrics.inner.neg_mse import neg_mse
from algo_trader.domain.errors import ConfigError
from algo_trader.domain.simulation.config import ScoreSpec


def test_built_in_metrics_per_scope() -> None:
    assert metric_names("inner") == ["energy_score", "neg_mse"]
    assert metric_names("outer") == ["crps", "quantile_loss"]
    assert get_metric("neg_mse")(ScoreSpec()) is neg_mse


def test_unknown_metric_lists_the_valid_names_of_its_scope() -> None:
    with pytest.raises(
        ConfigError, match="unknown inner metric 'crps'; valid: energy_score, neg_mse"
    ):
        get_metric("crps", "inner")
    with pytest.raises(ConfigError, match="valid: crps, quantile_loss"):
        get_metric("energy", "outer")
    with pytest.raises(ValueError, match="valid: inner, outer"):
        get_metric("neg_mse", "middle")  # type: ignore[arg-type]


def test_a_name_is_registered_once_per_scope() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_metric("neg_mse", scope="inner")(lambda spec: neg_mse)


def test_score_hook_dispatches_on_metric_name() -> None:
    y_true = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    pred = {"samples": torch.tensor([[[0.0, 2.0]], [[2.0, 4.0]]], dtype=torch.float64)}
    # predictive mean [1, 3]: errors 0 and 1
    assert score(y_true, pred, ScoreSpec()) == -0.5
    with pytest.raises(ConfigError, match="unknown inner metric 'nope'"):
        score(y_true, pred, ScoreSpec(metric_name="nope"))

"""``neg_mse``: minus the squared error of the predictive sample mean on observed entries."""

from __future__ import annotations

import math

import pytest
import torch

from algo_trader.application.simulation.metrics.inner.neg_mse import neg_mse
from algo_trader.domain.simulation.config import ScoreSpec


def test_exact_value_on_observed_entries() -> None:
    samples = torch.tensor(
        [[[1.0, 0.0], [2.0, 5.0]], [[3.0, 2.0], [4.0, 7.0]]], dtype=torch.float64
    )  # mean [[2, 1], [3, 6]]
    y_true = torch.tensor([[0.0, 1.0], [torch.nan, 3.0]], dtype=torch.float64)
    # errors 2, 0, 3 on the observed entries
    assert neg_mse(y_true, {"samples": samples}, ScoreSpec()) == pytest.approx(-13 / 3)


def test_nothing_observed_is_nan_and_missing_samples_is_named() -> None:
    y_true = torch.full((2, 2), torch.nan, dtype=torch.float64)
    assert math.isnan(neg_mse(y_true, {"samples": torch.zeros(3, 2, 2)}, ScoreSpec()))
    with pytest.raises(KeyError, match=r"needs pred\['samples'\].*has \['mean'\]"):
        neg_mse(y_true, {"mean": torch.zeros(2, 2)}, ScoreSpec())

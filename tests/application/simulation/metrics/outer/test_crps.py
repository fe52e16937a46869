"""``crps`` (outer): z-space CRPS, median over assets of the mean over observed weeks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scoringrules
import torch

from algo_trader.application.simulation.metrics.outer.crps import crps
from algo_trader.domain.simulation.config import ScoreSpec


def test_matches_numpy_and_scoringrules_reference() -> None:
    g = torch.Generator().manual_seed(0)
    y_train = torch.randn(50, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 5.0, 0.2])
    y_test = torch.randn(8, 3, generator=g, dtype=torch.float64)
    samples = torch.randn(40, 8, 3, generator=g, dtype=torch.float64)
    y_test[2, 1] = torch.nan
    spec = ScoreSpec(mad_eps=1e-3)
    y = y_train.numpy()
    scale = np.median(np.abs(y - np.median(y, axis=0)), axis=0) + 1e-3
    per_entry = scoringrules.crps_ensemble(
        y_test.numpy() / scale, (samples.numpy() / scale).transpose(1, 2, 0), estimator="nrg"
    )
    expected = np.median(np.nanmean(per_entry, axis=0))
    got = crps(y_test, {"samples": samples, "y_train": y_train}, spec)
    assert got == pytest.approx(expected, rel=1e-9)


def test_nothing_observed_is_nan() -> None:
    y_test = torch.full((2, 2), torch.nan, dtype=torch.float64)
    pred = {"samples": torch.zeros(3, 2, 2, dtype=torch.float64), "y_train": torch.randn(9, 2)}
    assert math.isnan(crps(y_test, pred, ScoreSpec()))

"""``energy_score`` end to end against an independent numpy + scoringrules pipeline."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scoringrules
import torch

from algo_trader.application.simulation.metrics.inner.energy_score import energy_score
from algo_trader.domain.errors import DataError
from algo_trader.domain.simulation.config import ScoreSpec


def generated_split(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(y_train (160, 4), y_test (6, 4), samples (80, 6, 4))``, correlated Gaussians."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.tensor(
        [[1.0, 0, 0, 0], [0.8, 0.6, 0, 0], [0.2, 0.1, 2.0, 0], [0, 0, 0.5, 0.1]],
        dtype=torch.float64,
    )
    y_train = torch.randn(160, 4, generator=g, dtype=torch.float64) @ mix.T
    y_test = torch.randn(6, 4, generator=g, dtype=torch.float64) @ mix.T
    samples = 1.1 * torch.randn(80, 6, 4, generator=g, dtype=torch.float64) @ mix.T
    return y_train, y_test, samples


def reference(
    y_train: np.ndarray, y_test: np.ndarray, samples: np.ndarray, spec: ScoreSpec
) -> np.ndarray:
    """best_model.md step by step with numpy, ES by scoringrules."""
    scale = np.median(np.abs(y_train - np.median(y_train, axis=0)), axis=0) + spec.mad_eps
    cov = np.cov((y_train / scale).T)
    lam = 0.15  # 160 fully observed rows
    shrunk = (1 - lam) * cov + lam * np.diag(np.diag(cov)) + (spec.var_floor + spec.eps) * np.eye(4)
    w = np.linalg.inv(np.linalg.cholesky(shrunk))
    u_true, u_samples = (y_test / scale) @ w.T, (samples / scale) @ w.T
    return np.asarray(scoringrules.es_ensemble(u_true, u_samples.transpose(1, 0, 2)))


@pytest.mark.parametrize("spec", [ScoreSpec(), ScoreSpec(var_floor=0.2, eps=1e-3, mad_eps=1e-6)])
def test_matches_independent_pipeline(spec: ScoreSpec) -> None:
    y_train, y_test, samples = generated_split(0)
    got = energy_score(y_test, {"samples": samples, "y_train": y_train}, spec)
    expected = reference(y_train.numpy(), y_test.numpy(), samples.numpy(), spec)
    assert got == pytest.approx(-expected.mean(), rel=1e-9)


def test_weeks_with_a_missing_target_are_left_out() -> None:
    y_train, y_test, samples = generated_split(1)
    y_test[[1, 4], [0, 3]] = torch.nan
    got = energy_score(y_test, {"samples": samples, "y_train": y_train}, ScoreSpec())
    keep = [0, 2, 3, 5]
    expected = reference(
        y_train.numpy(), y_test[keep].numpy(), samples[:, keep].numpy(), ScoreSpec()
    )
    assert got == pytest.approx(-expected.mean(), rel=1e-9)
    y_test[:, 2] = torch.nan
    assert math.isnan(energy_score(y_test, {"samples": samples, "y_train": y_train}, ScoreSpec()))


def test_a_perfect_forecast_scores_zero_and_training_problems_are_named() -> None:
    y_train, y_test, _ = generated_split(2)
    perfect = {"samples": y_test.expand(5, 6, 4), "y_train": y_train}
    assert energy_score(y_test, perfect, ScoreSpec()) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(KeyError, match=r"needs pred\['y_train'\]"):
        energy_score(y_test, {"samples": y_test.expand(5, 6, 4)}, ScoreSpec())
    with pytest.raises(DataError, match="1 fully observed training week"):
        energy_score(y_test, {**perfect, "y_train": y_train[:1]}, ScoreSpec())

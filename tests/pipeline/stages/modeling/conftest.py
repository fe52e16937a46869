"""Modeling tests: one torch thread (the fits are tiny; thread hand-offs on a busy
machine cost more than they compute), Pyro validation on, and generated data from
``factor_model_v1``'s own generative process (not market data)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace

import pyro
import pytest
import torch

from algo_trader.pipeline.stages.modeling.contracts import ModelBatch
from algo_trader.pipeline.stages.modeling.likelihoods import LowRankMultivariateStudentT


@pytest.fixture(autouse=True)
def _torch_single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pyro.validation_enabled(True):
        yield
    torch.set_num_threads(threads)


@dataclass(frozen=True)
class FactorTruth:
    beta: torch.Tensor
    alpha: torch.Tensor
    W: torch.Tensor
    sigma: torch.Tensor
    nu: float

    @property
    def cov_scale(self) -> torch.Tensor:
        return self.W @ self.W.T + torch.diag(self.sigma**2)


def generated_truth(A: int = 5, F: int = 3, k: int = 1, seed: int = 0) -> FactorTruth:
    g = torch.Generator().manual_seed(seed)
    return FactorTruth(
        beta=torch.linspace(0.3, -0.2, F),
        alpha=0.1 * torch.randn(A, generator=g),
        W=0.3 * torch.randn(A, k, generator=g).abs() + 0.1,
        sigma=0.2 + 0.2 * torch.rand(A, generator=g),
        nu=6.0,
    )


def generated_batch(truth: FactorTruth, T: int, seed: int) -> ModelBatch:
    """``T`` rows drawn from the model with ``likelihood.sigma_scale`` 1."""
    g = torch.Generator().manual_seed(seed)
    A, F = truth.alpha.shape[0], truth.beta.shape[0]
    X = torch.randn(T, A, F, generator=g)
    loc = truth.alpha + (X * truth.beta).sum(-1)
    torch.manual_seed(seed)
    y = LowRankMultivariateStudentT(torch.tensor(truth.nu), loc, truth.W, truth.sigma**2).sample()
    return ModelBatch.from_arrays(X, y)


@pytest.fixture(scope="session")
def factor_data() -> SimpleNamespace:
    """``generated_truth`` / ``generated_batch`` for the tests."""
    return SimpleNamespace(truth=generated_truth, batch=generated_batch)

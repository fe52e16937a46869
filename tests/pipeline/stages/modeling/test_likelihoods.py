from __future__ import annotations

import pyro.distributions as dist
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from algo_trader.pipeline.stages.modeling.likelihoods import (
    FixedDfStudentT,
    LowRankMultivariateStudentT,
    student_t_log_likelihood,
)


def _params(seed: int, A: int = 4, k: int = 2):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(A, k, generator=g, dtype=torch.float64)
    D = torch.rand(A, generator=g, dtype=torch.float64) + 0.3
    loc = torch.randn(6, A, generator=g, dtype=torch.float64)
    value = torch.randn(6, A, generator=g, dtype=torch.float64) * 2
    return W, D, loc, value


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), df=st.floats(1.5, 50.0))
def test_low_rank_density_equals_the_dense_multivariate_t(seed: int, df: float) -> None:
    W, D, loc, value = _params(seed)
    nu = torch.tensor(df, dtype=torch.float64)
    dense = dist.MultivariateStudentT(nu, loc, torch.linalg.cholesky(W @ W.T + torch.diag(D)))
    ours = LowRankMultivariateStudentT(nu, loc, W, D)
    torch.testing.assert_close(ours.log_prob(value), dense.log_prob(value))


def test_masked_rows_score_the_marginal_of_their_observed_entries() -> None:
    W, D, loc, value = _params(1)
    nu = torch.tensor(5.0, dtype=torch.float64)
    observed = torch.tensor([[True, False, True, True]] * 5 + [[False] * 4])
    got = LowRankMultivariateStudentT(nu, loc, W, D, observed=observed).log_prob(value)
    keep = torch.tensor([0, 2, 3])
    scale = (W @ W.T + torch.diag(D))[keep][:, keep]
    want = dist.MultivariateStudentT(nu, loc[:, keep], torch.linalg.cholesky(scale)).log_prob(
        value[:, keep]
    )
    torch.testing.assert_close(got[:5], want[:5])
    assert got[5] == 0.0  # nothing observed, nothing scored


def test_draws_have_the_factor_covariance() -> None:
    W, D, _, _ = _params(2)
    nu = torch.tensor(8.0, dtype=torch.float64)
    torch.manual_seed(0)
    draws = LowRankMultivariateStudentT(nu, torch.zeros(4, dtype=torch.float64), W, D).sample(
        (100_000,)
    )
    want = (W @ W.T + torch.diag(D)) * 8.0 / 6.0  # covariance of a t is scale * nu / (nu - 2)
    torch.testing.assert_close(torch.cov(draws.T), want, atol=0.12, rtol=0.05)


def test_univariate_density_equals_pyro_student_t_without_broadcasting_df() -> None:
    df = torch.tensor([[3.0], [7.0]])
    loc, scale = torch.randn(2, 5), torch.rand(1, 5) + 0.5
    value = torch.randn(2, 5) * 3
    ours = FixedDfStudentT(df, loc, scale)
    assert ours.df.shape == (2, 1) and ours.batch_shape == (2, 5)
    torch.testing.assert_close(ours.log_prob(value), dist.StudentT(df, loc, scale).log_prob(value))
    torch.manual_seed(0)
    assert ours.rsample((3,)).shape == (3, 2, 5)


def test_summed_log_likelihood_equals_the_sum_of_densities_with_and_without_mask() -> None:
    g = torch.Generator().manual_seed(0)
    df = torch.tensor([[[3.0]], [[9.0]]], dtype=torch.float64)  # (K, 1, 1)
    scale = torch.rand(2, 1, 4, generator=g, dtype=torch.float64) + 0.5
    loc = torch.randn(2, 6, 4, generator=g, dtype=torch.float64)
    value = torch.randn(6, 4, generator=g, dtype=torch.float64) * 2
    dense = dist.StudentT(df, loc, scale).log_prob(value)
    got = student_t_log_likelihood(value, loc, scale, df)
    assert got.shape == (2, 1, 1)
    torch.testing.assert_close(got.flatten(), dense.sum((-2, -1)))
    mask = torch.rand(2, 6, 4, generator=g) > 0.3
    masked = student_t_log_likelihood(value, loc, scale, df, mask)
    torch.testing.assert_close(masked.flatten(), torch.where(mask, dense, 0.0).sum((-2, -1)))

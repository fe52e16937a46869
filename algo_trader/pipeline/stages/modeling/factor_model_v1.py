"""``factor_model_v1``: next-week returns of all assets jointly, with a low-rank
Student-t factor covariance.

Generative process (all scales in units of ``s = likelihood.sigma_scale``, the typical
size of ``y``, which the ``factor_prior_init`` prebuild hook sets from training data)::

    tau        ~ HalfNormal(prior.coef_scale)                 shrinkage of the signal
    beta[f]    ~ Normal(0, tau)                               shared feature coefficients
    alpha[a]   ~ Normal(0, prior.intercept_scale)             per-asset intercepts
    W[a, j]    ~ Normal(0, prior.loading_scale)               loadings on num_factors factors
    sigma[a]   ~ LogNormal(0, prior.idio_log_sd)              idiosyncratic scales
    y[t, :]    ~ MultivariateStudentT(nu, s (alpha + X[t] beta), s^2 (W W^T + diag(sigma^2)))

The row ``y[t, :]`` is a factor model ``s (alpha + X beta + (W z_t + sigma e_t) / sqrt(w_t))``
with a Student-t mixing variable ``w_t ~ Gamma(nu/2, nu/2)`` shared by the row, so each
asset's idiosyncratic term is Student-t and the predictive draws carry the cross-asset
correlation ``W W^T`` that the energy score rewards. Missing targets are marginalised out
(the marginal of a multivariate t is a multivariate t), rows outside a fit's training set
or in a TBPTT burn-in are masked.

Params (``model.params``; every float may be a ``(K,)`` tensor in a batched fit):
``num_factors`` (2), ``nu`` (5.0), ``likelihood.sigma_scale`` (1.0),
``prior.coef_scale`` (0.1), ``prior.intercept_scale`` (0.1),
``prior.loading_scale`` (0.5), ``prior.idio_log_sd`` (1.0).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine

from algo_trader.pipeline.stages.modeling.contracts import (
    OBS_SITE,
    ModelBatch,
    PyroModel,
    linear_predictor,
)
from algo_trader.pipeline.stages.modeling.likelihoods import LowRankMultivariateStudentT
from algo_trader.pipeline.stages.modeling.registry import register_model

FITS_DIM = -2
"""Plates: fits (-2, batched fits only), then time or assets (-1)."""


@register_model("factor_model_v1")
class FactorModelV1(PyroModel):
    """Linear signal + low-rank Student-t factor covariance (see module docstring)."""

    supports_batching = True
    max_plate_nesting = 2

    @property
    def num_factors(self) -> int:
        return int(self.value("num_factors", 2))

    def __call__(self, batch: ModelBatch) -> None:
        F, A, k = batch.num_features, batch.num_assets, self.num_factors
        with batch.fit_plate(dim=FITS_DIM):
            tau = pyro.sample("tau", dist.HalfNormal(self.hyper(batch, "prior.coef_scale", 0.1, 1)))
            # tau is () or (K, 1); beta is (F,) or (K, 1, F).
            beta = pyro.sample(
                "beta", dist.Normal(batch.X.new_zeros(F), tau[..., None]).to_event(1)
            )
            with pyro.plate("assets", A, dim=-1):
                alpha = pyro.sample(
                    "alpha",
                    dist.Normal(
                        batch.X.new_zeros(()), self.hyper(batch, "prior.intercept_scale", 0.1, 1)
                    ),
                )
                loading_scale = self.hyper(batch, "prior.loading_scale", 0.5, 2)
                W = pyro.sample("W", dist.Normal(batch.X.new_zeros(k), loading_scale).to_event(1))
                sigma = pyro.sample(
                    "sigma",
                    dist.LogNormal(
                        batch.X.new_zeros(()), self.hyper(batch, "prior.idio_log_sd", 1.0, 1)
                    ),
                )
            self._observe(batch, alpha, beta, W, sigma)

    def _observe(
        self,
        batch: ModelBatch,
        alpha: torch.Tensor,
        beta: torch.Tensor,
        W: torch.Tensor,
        sigma: torch.Tensor,
    ) -> None:
        s_row = self.hyper(batch, "likelihood.sigma_scale", 1.0, 2)
        s_w = self.hyper(batch, "likelihood.sigma_scale", 1.0, 3)
        nu = self.hyper(batch, "nu", 5.0, 1)
        # alpha (A,) / (K, A) and beta (F,) / (K, 1, F) gain a time dim: loc (..., T, A).
        loc = s_row * (alpha[..., None, :] + linear_predictor(batch.X, beta[..., None, :]))
        likelihood = LowRankMultivariateStudentT(
            nu,
            loc,
            s_w * W[..., None, :, :],
            (s_row * sigma[..., None, :]) ** 2,
            observed=batch.M,
        )
        with (
            pyro.plate("time", batch.num_rows, dim=-1),
            poutine.mask(mask=batch.obs_mask(per_asset=False)),
            poutine.scale(scale=batch.scale_for(1)),
        ):
            pyro.sample(OBS_SITE, likelihood, obs=batch.y)

    def complexity(self, num_assets: int, num_features: int) -> float:
        k = self.num_factors
        # Loadings are identified only up to a k x k rotation.
        loadings = num_assets * k - k * (k - 1) / 2
        return float(num_features + 1 + 2 * num_assets + loadings)

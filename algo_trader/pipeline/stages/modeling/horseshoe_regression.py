"""``horseshoe_regression``: per-asset intercepts, a sparse linear signal shared across assets
(regularized horseshoe prior over features) and Student-t noise.

Generative process, in units of ``s = likelihood.sigma_scale`` (the typical size of ``y``,
which the ``factor_prior_init`` prebuild hook sets from training targets; the priors below
are then free of the target's units)::

    tau          ~ HalfCauchy(tau0)                           global shrinkage
    lambda[f]    ~ HalfCauchy(1)                              local shrinkage
    c2           ~ InverseGamma(slab_df / 2, slab_df * slab_scale^2 / 2)   slab width^2
    lt[f]^2      = c2 lambda[f]^2 / (c2 + tau^2 lambda[f]^2)  regularized local scale
    beta[f]      ~ Normal(0, tau lt[f])                       feature coefficients
    alpha[a]     ~ Normal(0, prior.intercept_scale)           per-asset intercepts
    sigma[a]     ~ HalfNormal(prior.noise_scale)              per-asset noise scales
    nu           ~ Gamma(2, 0.1)                              degrees of freedom
    y[t, a]      ~ StudentT(nu, s (alpha[a] + X[t, a] . beta), s sigma[a])

This is the regularized horseshoe of Piironen & Vehtari (2017, "Sparsity information and
regularization in the horseshoe and other shrinkage priors"): the slab ``c`` keeps large
coefficients from escaping all shrinkage, and the global scale follows their rule
``tau0 = p0 / (F - p0) / sqrt(n)`` (noise scale 1 in units of ``s``), which makes ``p0``
the prior guess of the number of relevant features. ``n`` is the number of observed
training targets the batch stands for (its count times ``obs_scale``).

Params (``model.params``; floats may be ``(K,)`` tensors in a batched fit):
``prior.expected_nonzero`` (p0, default ``min(max(F / 10, 1), F / 2)``),
``prior.global_scale`` (tau0; overrides the p0 rule), ``prior.slab_scale`` (1.0),
``prior.slab_df`` (4.0), ``prior.intercept_scale`` (0.5), ``prior.noise_scale`` (1.0),
``likelihood.sigma_scale`` (s, default 1.0).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine

from algo_trader.domain.errors import ConfigError
from algo_trader.pipeline.stages.modeling.contracts import (
    OBS_SITE,
    ModelBatch,
    ModelShapeError,
    PyroModel,
    per_fit,
)
from algo_trader.pipeline.stages.modeling.likelihoods import FixedDfStudentT
from algo_trader.pipeline.stages.modeling.registry import register_model

FITS_DIM = -3
"""Plates: fits (-3, batched fits only), time (-2), assets (-1)."""
DF_PRIOR = (2.0, 0.1)
"""Gamma(shape, rate) prior of the degrees of freedom (Juarez & Steel 2010)."""


def training_count(batch: ModelBatch) -> torch.Tensor:
    """Observed training targets per fit (``()`` or ``(K,)``), times ``obs_scale``.

    This is the ``n`` of the data the batch stands for: a TBPTT window counts as the
    whole series through its ``obs_scale``.
    """
    mask = _loss_entries(batch)
    count = mask.sum(dim=(-2, -1)).to(batch.X.dtype)
    return count * torch.as_tensor(batch.obs_scale, dtype=batch.X.dtype, device=batch.device)


def _loss_entries(batch: ModelBatch) -> torch.Tensor:
    """Bool ``(T, A)`` / ``(K, T, A)``: the targets that count in the loss."""
    lead = (batch.num_fits,) if batch.num_fits is not None else ()
    shape = (*lead, batch.num_rows, batch.num_assets)
    mask = batch.obs_mask()
    if isinstance(mask, bool):
        return torch.full(shape, mask, dtype=torch.bool, device=batch.device)
    return mask.broadcast_to(shape)


def regularized_local_scale(tau: torch.Tensor, lam: torch.Tensor, c2: torch.Tensor) -> torch.Tensor:
    """``tau * lambda_tilde``: the prior sd of each coefficient (Piironen & Vehtari eq. 2.8).

    ``tau^2 lambda_tilde^2 = c2 tau^2 lambda^2 / (c2 + tau^2 lambda^2)``, written as
    ``c2 / (1 + c2 / (tau lambda)^2)`` so that a heavy-tailed draw of ``lambda`` whose
    square overflows gives the slab ``c2`` instead of ``inf / inf``.
    """
    return torch.sqrt(c2 / (1.0 + c2 / (tau * lam) ** 2))


def shrinkage_factors(
    tau: torch.Tensor,
    lam: torch.Tensor,
    c2: torch.Tensor,
    sigma: torch.Tensor,
    n: torch.Tensor | float,
    feature_var: torch.Tensor | float = 1.0,
) -> torch.Tensor:
    """``kappa[f] = 1 / (1 + n s_f^2 (tau lambda_tilde_f)^2 / sigma^2)`` (P&V section 3.1).

    ``kappa`` near 1 means the coefficient is shrunk to zero, near 0 that it is left to
    the data. ``tau``, ``c2`` and ``sigma`` broadcast against ``lam`` ``(..., F)``.
    """
    local = regularized_local_scale(tau, lam, c2)
    return 1.0 / (1.0 + n * feature_var * local**2 / sigma**2)


def effective_nonzero(
    tau: torch.Tensor,
    lam: torch.Tensor,
    c2: torch.Tensor,
    sigma: torch.Tensor,
    n: torch.Tensor | float,
    feature_var: torch.Tensor | float = 1.0,
) -> torch.Tensor:
    """``m_eff = sum_f (1 - kappa_f)``: the effective number of nonzero coefficients."""
    kappa = shrinkage_factors(tau, lam, c2, sigma, n, feature_var)
    return (1.0 - kappa).sum(-1)


@register_model("horseshoe_regression")
class HorseshoeRegression(PyroModel):
    """Regularized-horseshoe linear regression with Student-t noise (module docstring)."""

    supports_batching = True
    max_plate_nesting = 3

    def expected_nonzero(self, num_features: int) -> torch.Tensor:
        """``prior.expected_nonzero`` (p0; ``(K,)`` in a batched fit), checked to lie in
        ``(0, F)``.

        Raises
        ------
        ConfigError
            p0 outside ``(0, F)``.
        """
        default = min(max(num_features / 10.0, 1.0), num_features / 2.0)
        p0 = torch.as_tensor(self.value("prior.expected_nonzero", default), dtype=torch.float64)
        if not bool(((p0 > 0.0) & (p0 < num_features)).all()):
            raise ConfigError(
                f"model.params.prior.expected_nonzero={p0.tolist()} must lie strictly between "
                f"0 and the number of features ({num_features})"
            )
        return p0

    def global_scale(self, batch: ModelBatch) -> torch.Tensor:
        """``tau0``: ``prior.global_scale`` or ``p0 / (F - p0) / sqrt(n)``, shaped ``(K,1,1)``."""
        given = self.value("prior.global_scale", None)
        if given is not None:
            tau0 = torch.as_tensor(given, dtype=batch.X.dtype, device=batch.device)
        else:
            F = batch.num_features
            p0 = self.expected_nonzero(F)
            tau0 = (
                p0.to(batch.X)
                / (F - p0.to(batch.X))
                / torch.sqrt(training_count(batch).clamp(min=1.0))
            )
        return torch.as_tensor(per_fit(tau0, 2))

    def __call__(self, batch: ModelBatch) -> None:
        self._check(batch)
        F, A = batch.num_features, batch.num_assets
        zero = batch.X.new_zeros(())
        slab_df = self.hyper(batch, "prior.slab_df", 4.0, 2)
        slab_scale = self.hyper(batch, "prior.slab_scale", 1.0, 2)
        assets = pyro.plate("assets", A, dim=-1)
        with batch.fit_plate(dim=FITS_DIM):
            tau = pyro.sample("tau", dist.HalfCauchy(self.global_scale(batch)))
            lam = pyro.sample("lambda", dist.HalfCauchy(batch.X.new_ones(F)).to_event(1))
            c2 = pyro.sample(
                "c2",
                dist.InverseGamma(slab_df / 2.0, slab_df * slab_scale**2 / 2.0),
            )
            # tau, c2: () or (K, 1, 1); lam, beta: (F,) or (K, 1, 1, F).
            local = regularized_local_scale(tau[..., None], lam, c2[..., None])
            beta = pyro.sample("beta", dist.Normal(zero, local).to_event(1))
            with assets:
                intercept_scale = self.hyper(batch, "prior.intercept_scale", 0.5, 2)
                alpha = pyro.sample("alpha", dist.Normal(zero, intercept_scale))
                noise_scale = self.hyper(batch, "prior.noise_scale", 1.0, 2)
                sigma = pyro.sample("sigma", dist.HalfNormal(noise_scale))
            shape, rate = DF_PRIOR
            nu = pyro.sample("nu", dist.Gamma(zero + shape, zero + rate))
            self._observe(batch, assets, alpha, beta, sigma, nu)

    def _observe(
        self,
        batch: ModelBatch,
        assets: pyro.plate,
        alpha: torch.Tensor,
        beta: torch.Tensor,
        sigma: torch.Tensor,
        nu: torch.Tensor,
    ) -> None:
        s = self.hyper(batch, "likelihood.sigma_scale", 1.0, 2)
        # (X * beta).sum(-1): (T, A) or (K, T, A); alpha, sigma: (A,) or (K, 1, A).
        loc = s * (alpha + (batch.X * beta).sum(-1))
        with (
            pyro.plate("time", batch.num_rows, dim=-2),
            assets,
            poutine.mask(mask=batch.obs_mask()),
            poutine.scale(scale=batch.scale_for(2)),
        ):
            pyro.sample(OBS_SITE, FixedDfStudentT(nu, loc, s * sigma), obs=batch.y)

    def _check(self, batch: ModelBatch) -> None:
        if batch.num_features < 2:
            raise ModelShapeError(
                f"model {self.name!r}, site 'beta': X {tuple(batch.X.shape)} has "
                f"{batch.num_features} feature(s); the horseshoe needs at least 2"
            )

    def complexity(self, num_assets: int, num_features: int) -> float:
        """Prior effective parameter count: ``p0`` coefficients (the horseshoe's prior
        ``E[m_eff]``), an intercept and a noise scale per asset, and the degrees of freedom.
        """
        return float(self.expected_nonzero(num_features).mean()) + 2.0 * num_assets + 1.0

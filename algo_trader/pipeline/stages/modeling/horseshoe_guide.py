"""``horseshoe_guide``: a guide for ``horseshoe_regression``.

The coefficients ``beta`` get a multivariate Normal with a full covariance (its Cholesky
factor is a param): features are correlated, and so are their coefficients a posteriori;
a diagonal guide would report intervals that are too narrow for collinear features
(``beta_covariance: diagonal`` gives the mean-field version). Every other latent gets an
independent Normal in its unconstrained space: ``alpha`` directly, the positive ``tau``,
``lambda``, ``c2``, ``sigma`` and ``nu`` as LogNormals. All sites are reparameterised, so
the trainer's vectorised Trace ELBO applies and ``K`` fits run as one program (params
carry the fit index first).

The initial values matter for the horseshoe: ``tau`` starts at ``init.tau`` (0.1, in the
model's units of ``s``, wide enough that real signals are not pinned at zero before the
data has spoken), coefficients at 0, noise scales at 1 (the size of the targets).

Params (``model.guide_params``): ``beta_covariance`` (``full`` or ``diagonal``),
``init_scale`` (0.05): initial sd of every factor in unconstrained space; ``init.tau``
(0.1); ``init.nu`` (10.0).
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints

from algo_trader.domain.errors import ConfigError
from algo_trader.pipeline.stages.modeling.contracts import ModelBatch, PyroGuide
from algo_trader.pipeline.stages.modeling.horseshoe_regression import FITS_DIM
from algo_trader.pipeline.stages.modeling.registry import register_guide

COVARIANCES = ("full", "diagonal")


@register_guide("horseshoe_guide")
class HorseshoeGuide(PyroGuide):
    """Normal / LogNormal guide of :class:`HorseshoeRegression` (see module docstring)."""

    def _coefficients(
        self, batch: ModelBatch, glob: tuple[int, ...], F: int
    ) -> dist.TorchDistribution:
        """The law of ``beta``: batch ``glob``, event ``(F,)``."""
        covariance = str(self.value("beta_covariance", "full"))
        if covariance not in COVARIANCES:
            raise ConfigError(
                f"model.guide_params.beta_covariance={covariance!r}; valid: "
                f"{', '.join(COVARIANCES)}"
            )
        if covariance == "diagonal":
            return dist.Normal(*self.mean_field_params(batch, "beta", (*glob, F), 0.0)).to_event(1)
        loc, scale = self.mean_field_params(batch, "beta", (*glob, F), 0.0)
        eye = torch.eye(F, dtype=batch.X.dtype, device=batch.device)
        # Row scales times a unit lower-triangular factor (as AutoMultivariateNormal does):
        # each off-diagonal entry is learnt relative to its row's scale, which keeps the
        # factor well conditioned where a free Cholesky factor drifts into a near-singular one.
        unit = pyro.param(
            "beta_unit_tril",
            lambda: eye.expand((*glob, F, F)).clone(),
            constraint=constraints.unit_lower_cholesky,
        )
        return dist.MultivariateNormal(loc, scale_tril=scale[..., None] * unit)

    def __call__(self, batch: ModelBatch) -> None:
        F, A = batch.num_features, batch.num_assets
        glob = batch.fit_shape(2)  # () or (K, 1, 1): a scalar per fit
        per_asset = (*batch.fit_shape(1), A)  # (A,) or (K, 1, A)
        log_tau = math.log(float(self.value("init.tau", 0.1)))
        log_nu = math.log(float(self.value("init.nu", 10.0)))
        with batch.fit_plate(dim=FITS_DIM):
            pyro.sample("tau", dist.LogNormal(*self.mean_field_params(batch, "tau", glob, log_tau)))
            lam = self.mean_field_params(batch, "lambda", (*glob, F), 0.0)
            pyro.sample("lambda", dist.LogNormal(*lam).to_event(1))
            pyro.sample("c2", dist.LogNormal(*self.mean_field_params(batch, "c2", glob, 0.0)))
            pyro.sample("beta", self._coefficients(batch, glob, F))
            with pyro.plate("assets", A, dim=-1):
                pyro.sample(
                    "alpha", dist.Normal(*self.mean_field_params(batch, "alpha", per_asset, 0.0))
                )
                pyro.sample(
                    "sigma", dist.LogNormal(*self.mean_field_params(batch, "sigma", per_asset, 0.0))
                )
            pyro.sample("nu", dist.LogNormal(*self.mean_field_params(batch, "nu", glob, log_nu)))

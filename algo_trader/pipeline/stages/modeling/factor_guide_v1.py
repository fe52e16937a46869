"""``factor_guide_v1``: mean-field guide of ``factor_model_v1``.

Each global gets its own Normal (``beta``, ``alpha``, ``W``) or LogNormal (``tau``,
``sigma``) with ``loc`` / positive ``scale`` params. Mean-field was chosen over a
low-rank multivariate normal because it vectorises over fits with no per-fit covariance
factor and the posterior of this model is close to Gaussian and weakly correlated with
hundreds of rows (posterior correlation between loadings is lost; the predictive
covariance comes from the likelihood, not the guide).

The loadings start at a small fixed pseudo-random matrix (``init_seed``) rather than 0:
``W = 0`` is a saddle point of ``W W^T``, where the gradient vanishes.

Params (``model.guide_params``): ``init_scale`` (0.05): initial posterior sd of every
site (log scale for LogNormal sites); ``init_loading`` (0.1): size of the initial
loadings; ``init_seed`` (0).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints

from algo_trader.pipeline.stages.modeling.contracts import ModelBatch, PyroGuide
from algo_trader.pipeline.stages.modeling.factor_model_v1 import FITS_DIM, FactorModelV1
from algo_trader.pipeline.stages.modeling.registry import register_guide


@register_guide("factor_guide_v1")
class FactorGuideV1(PyroGuide):
    """Mean-field Normal/LogNormal guide (see module docstring)."""

    def __call__(self, batch: ModelBatch) -> None:
        A, F = batch.num_assets, batch.num_features
        k = (self.model if isinstance(self.model, FactorModelV1) else FactorModelV1()).num_factors
        with batch.fit_plate(dim=FITS_DIM):
            lead = batch.fit_shape(1)
            pyro.sample("tau", dist.LogNormal(*self._loc_scale(batch, "tau", lead, math.log(0.1))))
            loc, scale = self._loc_scale(batch, "beta", (*lead, F), 0.0)
            pyro.sample("beta", dist.Normal(loc, scale).to_event(1))
            with pyro.plate("assets", A, dim=-1):
                per_asset = (*batch.fit_shape(0), A)
                pyro.sample("alpha", dist.Normal(*self._loc_scale(batch, "alpha", per_asset, 0.0)))
                loc, scale = self._loc_scale(
                    batch, "W", (*per_asset, k), lambda: self._init_loadings(batch, A, k)
                )
                pyro.sample("W", dist.Normal(loc, scale).to_event(1))
                pyro.sample(
                    "sigma", dist.LogNormal(*self._loc_scale(batch, "sigma", per_asset, 0.0))
                )

    def _init_loadings(self, batch: ModelBatch, A: int, k: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(int(self.value("init_seed", 0)))
        size = float(self.value("init_loading", 0.1))
        return (size * torch.randn(A, k, generator=generator, dtype=torch.float64)).to(batch.X)

    def _loc_scale(
        self,
        batch: ModelBatch,
        name: str,
        shape: tuple[int, ...],
        init: float | Callable[[], torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``{name}_loc`` (initialised to ``init``) and positive ``{name}_scale``."""
        init_scale = float(self.value("init_scale", 0.05))

        def initial_loc() -> torch.Tensor:
            start = init() if callable(init) else init
            return (batch.X.new_zeros(shape) + start).contiguous()

        loc = pyro.param(f"{name}_loc", initial_loc)
        scale = pyro.param(
            f"{name}_scale",
            lambda: batch.X.new_full(shape, init_scale),
            constraint=constraints.positive,
        )
        return loc, scale

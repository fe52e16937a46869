"""``test_guide``: a mean-field guide for ``test_model`` (an AutoNormal written out).

Each latent gets a Normal (``w``, ``b``) or LogNormal (``sigma``) with its own ``loc`` and
positive ``scale`` params, created with the fit index leading in a batched program.

Params: ``init_scale`` (float, default 0.1): initial posterior scale of every site.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints

from algo_trader.pipeline.stages.modeling.contracts import ModelBatch, PyroGuide
from algo_trader.pipeline.stages.modeling.registry import register_guide


@register_guide("test_guide")
class NormalMeanFieldGuide(PyroGuide):
    """Mean-field Normal guide of :class:`GaussianLinearModel`."""

    def __call__(self, batch: ModelBatch) -> None:
        init_scale = float(self.value("init_scale", 0.1))
        lead = batch.fit_shape(2)

        def loc_scale(name: str, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
            loc = pyro.param(f"{name}_loc", lambda: batch.X.new_zeros(lead + shape))
            scale = pyro.param(
                f"{name}_scale",
                lambda: batch.X.new_full(lead + shape, init_scale),
                constraint=constraints.positive,
            )
            return loc, scale

        with batch.fit_plate(dim=-3):
            loc, scale = loc_scale("w", (batch.num_features,))
            pyro.sample("w", dist.Normal(loc, scale).to_event(1))
            loc, scale = loc_scale("b", ())
            pyro.sample("b", dist.Normal(loc, scale))
            loc, scale = loc_scale("sigma", ())
            pyro.sample("sigma", dist.LogNormal(loc, scale))

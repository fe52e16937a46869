"""``test_model``: the smallest complete model, a Gaussian linear regression.

``y[t, a] ~ Normal(X[t, a] . w + b, sigma)`` with ``w ~ Normal(0, prior_scale)``,
``b ~ Normal(0, prior_scale)``, ``sigma ~ LogNormal(0, 1)``. It is the template for new
models (workflows.md): plates ``fits`` (dim -3, batched fits only), ``time`` (-2) and
``assets`` (-1); missing targets and non-training rows masked; the ``obs`` site.

Params: ``prior_scale`` (float, default 1.0; a ``(K,)`` tensor in a batched fit).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
from pyro import poutine

from algo_trader.pipeline.stages.modeling.contracts import OBS_SITE, ModelBatch, PyroModel, per_fit
from algo_trader.pipeline.stages.modeling.registry import register_model


@register_model("test_model")
class GaussianLinearModel(PyroModel):
    """Gaussian linear regression shared across assets (see module docstring)."""

    supports_batching = True
    max_plate_nesting = 3

    def __call__(self, batch: ModelBatch) -> None:
        prior_scale = per_fit(self.value("prior_scale", 1.0), 2)
        zeros = batch.X.new_zeros(batch.num_features)
        with batch.fit_plate(dim=-3):
            w = pyro.sample("w", dist.Normal(zeros, per_fit(prior_scale, 1)).to_event(1))
            b = pyro.sample("b", dist.Normal(batch.X.new_zeros(()), prior_scale))
            sigma = pyro.sample("sigma", dist.LogNormal(batch.X.new_zeros(()), 1.0))
            # w is (F,) or (K, 1, 1, F): the sum over features broadcasts to (T, A) / (K, T, A).
            mean = (batch.X * w).sum(-1) + b
            with (
                pyro.plate("time", batch.num_rows, dim=-2),
                pyro.plate("assets", batch.num_assets, dim=-1),
                poutine.mask(mask=batch.obs_mask()),
                poutine.scale(scale=batch.scale_for(2)),
            ):
                pyro.sample(OBS_SITE, dist.Normal(mean, sigma), obs=batch.y)

    def complexity(self, num_assets: int, num_features: int) -> float:
        return float(num_features + 2)

"""``regime_guide``: a mean-field guide over the continuous globals of ``regime_switching``.

The regimes themselves have no guide site: ``TraceEnum_ELBO`` sums them out of the model
(exactly), so the guide covers only ``transition`` (a Dirichlet per row), ``log_ratio``,
``sigma`` and ``nu`` (LogNormals) and ``alpha``, ``beta`` (Normals).

Initial values: transitions at the prior's mean stickiness (``init.stay``, 0.9), regime
scale steps at ``init.log_ratio`` (0.7, turbulent ~2x calm: a clearly separated start so
the regimes do not begin as copies of each other), noise scales at 1 (the size of the
targets in the model's units), coefficients at 0.

The structure (``num_regimes``, ``regime_signal``, ``likelihood.family``) is read from the
model the guide is built for.

Params (``model.guide_params``): ``init_scale`` (0.05), ``init.stay`` (0.9),
``init.log_ratio`` (0.7), ``init.concentration`` (50.0: total Dirichlet concentration
of each transition row at the start).
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints

from algo_trader.domain.errors import ConfigError
from algo_trader.pipeline.stages.modeling.contracts import ModelBatch, PyroGuide
from algo_trader.pipeline.stages.modeling.regime_switching import RegimeSwitching
from algo_trader.pipeline.stages.modeling.registry import register_guide


@register_guide("regime_guide")
class RegimeGuide(PyroGuide):
    """Mean-field guide of :class:`RegimeSwitching` (continuous globals only)."""

    def _transition_init(self, batch: ModelBatch, K: int) -> torch.Tensor:
        stay = float(self.value("init.stay", 0.9))
        total = float(self.value("init.concentration", 50.0))
        eye = torch.eye(K, dtype=batch.X.dtype, device=batch.device)
        probs = stay * eye + (1.0 - stay) / (K - 1) * (1.0 - eye)
        return total * probs

    @property
    def regime_model(self) -> RegimeSwitching:
        """The model this guide approximates (its structure sets the guide's shapes)."""
        if not isinstance(self.model, RegimeSwitching):
            raise ConfigError(
                f"guide {self.name!r} approximates model 'regime_switching'; it was built "
                f"for {getattr(self.model, 'name', None)!r}"
            )
        return self.model

    def __call__(self, batch: ModelBatch) -> None:
        model = self.regime_model
        K = model.num_regimes
        F, A = batch.num_features, batch.num_assets
        concentration = pyro.param(
            "transition_concentration",
            lambda: self._transition_init(batch, K),
            constraint=constraints.positive,
        )
        pyro.sample("transition", dist.Dirichlet(concentration).to_event(1))
        log_ratio = math.log(float(self.value("init.log_ratio", 0.7)))
        steps = self.mean_field_params(batch, "log_ratio", (K - 1,), log_ratio)
        pyro.sample("log_ratio", dist.LogNormal(*steps).to_event(1))
        pyro.sample(
            "alpha", dist.Normal(*self.mean_field_params(batch, "alpha", (A,), 0.0)).to_event(1)
        )
        sigma = self.mean_field_params(batch, "sigma", (A,), 0.0)
        pyro.sample("sigma", dist.LogNormal(*sigma).to_event(1))
        shape = (K, F) if model.regime_signal else (F,)
        beta = self.mean_field_params(batch, "beta", shape, 0.0)
        pyro.sample("beta", dist.Normal(*beta).to_event(len(shape)))
        if model.family == "student_t":
            nu = self.mean_field_params(batch, "nu", (), math.log(10.0))
            pyro.sample("nu", dist.LogNormal(*nu))

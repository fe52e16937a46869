"""``regime_switching``: weekly returns driven by a hidden market regime (a discrete Markov
chain shared by all assets), e.g. calm and turbulent volatility regimes.

Generative process, in units of ``s = likelihood.sigma_scale`` (see ``factor_prior_init``)::

    P[k, :]      ~ Dirichlet(prior.concentration + prior.stickiness * e_k)   transitions
    r[j]         ~ HalfNormal(prior.ratio_scale),  j = 1..K-1                 log scale steps
    m            = exp(cumsum([0, r]))                 regime multipliers, m[0]=1 < m[1] < ...
    alpha[a]     ~ Normal(0, prior.intercept_scale)                          intercepts
    sigma[a]     ~ HalfNormal(prior.noise_scale)                             calm-regime scales
    beta         ~ Normal(0, prior.coef_scale)         (F,), or (K, F) if regime_signal
    nu           ~ Gamma(2, 0.1)                       degrees of freedom (Student-t only)
    z[0]         ~ Categorical(pi(P))                  pi(P): the chain's stationary law
    z[t]         ~ Categorical(P[z[t-1], :])
    y[t, a]      ~ StudentT(nu, s (alpha[a] + X[t, a] . beta[z[t]]), s sigma[a] m[z[t]])
                   (or Normal with the same location and scale: likelihood.family)

The multipliers are increasing by construction, so regime 0 is always the calmest and
the labels cannot switch between fits. The chain starts from its stationary law, which is
also the right prior for a TBPTT window that starts mid-series.

The discrete regimes are summed out exactly, in one of two equivalent ways
(``marginalization``):

- ``"scan"`` (default): the ``obs`` site is a :class:`~pyro.distributions.DiscreteHMM`
  over the whole ``(T, A)`` block, whose forward algorithm runs as a parallel scan over
  time (``O(log T)`` depth). The trainer's ``TraceEnum_ELBO`` then has nothing left to
  enumerate.
- ``"enumerate"``: the spec's formulation (discrete_variables.md): one enumerated
  ``regime_{t}`` site per week under ``pyro.markov`` and one ``obs_{t}`` site per week,
  summed out by ``TraceEnum_ELBO`` (variable elimination), and decodable with
  ``infer_discrete``. Same ELBO as ``"scan"`` (a test checks it), but one Python step per
  week, and no single ``obs`` site, so it serves regime decoding and cross-checks rather
  than the trainer.

Prediction: :meth:`RegimeSwitching.forecast` filters each posterior draw's regime law to
the last observed week and samples the chain and the returns forward (the posterior
predictive for the weeks after the history). Drawing ``obs`` from the model with
``y`` unset (``predictive.predict``) has no history and starts the chain from its
stationary law.

TBPTT burn-in: rows with ``loss_mask`` False are context. The likelihood term is then the
conditional ``log p(y[loss] | y[context]) = log p(y[context + loss]) - log p(y[context])``:
the context informs the regime at the start of the trained rows without being scored.

Params (``model.params``): ``num_regimes`` (K, 2), ``regime_signal`` (false),
``likelihood.family`` (``student_t`` or ``normal``), ``marginalization`` (``scan``),
``prior.concentration`` (1.0), ``prior.stickiness`` (8.0: a regime lasts ~10 weeks a
priori), ``prior.ratio_scale`` (1.0), ``prior.intercept_scale`` (0.5),
``prior.noise_scale`` (1.0), ``prior.coef_scale`` (0.1), ``likelihood.sigma_scale``
(s, 1.0).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.ops.indexing import Vindex

from algo_trader.domain.errors import ConfigError
from algo_trader.pipeline.stages.modeling.contracts import (
    OBS_SITE,
    ModelBatch,
    ModelShapeError,
    PyroModel,
)
from algo_trader.pipeline.stages.modeling.likelihoods import FixedDfStudentT
from algo_trader.pipeline.stages.modeling.registry import register_model

DF_PRIOR = (2.0, 0.1)
"""Gamma(shape, rate) prior of the degrees of freedom."""
CONTEXT_SITE = "context"
"""Factor site subtracting ``log p(y[context])`` in a TBPTT window with burn-in."""
MARGINALIZATIONS = ("scan", "enumerate")
FAMILIES = ("student_t", "normal")


@dataclass(frozen=True)
class RegimeParams:
    """One draw of the global latents, in the model's units (targets divided by ``s``).

    Attributes
    ----------
    transition
        ``(K, K)`` row-stochastic matrix, ``[old, new]``.
    multipliers
        ``(K,)`` increasing regime scale multipliers, ``multipliers[0] == 1``.
    alpha, sigma
        ``(A,)`` intercepts and calm-regime noise scales.
    beta
        ``(1, F)`` shared or ``(K, F)`` regime-specific coefficients.
    nu
        Degrees of freedom (0-d), ``None`` for Normal emissions.
    """

    transition: torch.Tensor
    multipliers: torch.Tensor
    alpha: torch.Tensor
    sigma: torch.Tensor
    beta: torch.Tensor
    nu: torch.Tensor | None


def stationary_distribution(transition: torch.Tensor) -> torch.Tensor:
    """The ``pi`` with ``pi P = pi`` and ``sum(pi) = 1`` of a ``(..., K, K)`` chain.

    Solved as one linear system (``(I - P)^T pi = 0`` with its last equation replaced by
    the normalisation), differentiable in ``P``.
    """
    K = transition.shape[-1]
    eye = torch.eye(K, dtype=transition.dtype, device=transition.device)
    system = (eye - transition).transpose(-1, -2).clone()
    system[..., -1, :] = 1.0
    rhs = torch.zeros(transition.shape[:-1], dtype=transition.dtype, device=transition.device)
    rhs[..., -1] = 1.0
    pi = torch.linalg.solve(system, rhs.unsqueeze(-1)).squeeze(-1)
    # Round-off can leave tiny negatives; the chain's law is a probability vector.
    return pi.clamp(min=1e-12) / pi.clamp(min=1e-12).sum(-1, keepdim=True)


def emission(
    params: RegimeParams, X: torch.Tensor, scale: float | torch.Tensor
) -> FixedDfStudentT | dist.Normal:
    """Law of ``y[t, a]`` given regime ``k``: batch ``(..., T, K, A)``.

    ``...`` are the leading dims of the params (posterior draws when forecasting).
    """
    # X (T, A, F) x beta (..., K|1, F) -> (..., T, K|1, A)
    signal = torch.einsum("taf,...kf->...tka", X, params.beta)
    loc = scale * (params.alpha[..., None, None, :] + signal)
    nu = None if params.nu is None else params.nu[..., None, None, None]
    return _law(nu, loc, scale * regime_scales(params).unsqueeze(-3))


def regime_scales(params: RegimeParams) -> torch.Tensor:
    """``(..., K, A)`` noise scale of each asset in each regime (model units)."""
    return params.multipliers[..., :, None] * params.sigma[..., None, :]


def _law(
    nu: torch.Tensor | None, loc: torch.Tensor, scale: torch.Tensor
) -> FixedDfStudentT | dist.Normal:
    if nu is None:
        return dist.Normal(loc, scale)
    # FixedDfStudentT computes the normaliser on the (K, A) shape of df and scale, once.
    return FixedDfStudentT(nu, loc, scale)


def regime_hmm(
    params: RegimeParams,
    X: torch.Tensor,
    scale: float | torch.Tensor,
    mask: torch.Tensor | None,
    initial_probs: torch.Tensor | None = None,
) -> dist.DiscreteHMM:
    """The ``(T, A)`` law of the targets with the regimes summed out (batch ``...``).

    ``mask`` ``(T, A)`` (True = scored) leaves entries out of ``log_prob``: a masked entry
    contributes a factor of one, so its row still advances the chain.
    ``initial_probs`` ``(..., K)`` is the law of the regime one step *before* the first
    row: the stationary law when omitted, a filtered law when forecasting.
    """
    obs = emission(params, X, scale)
    if mask is not None:
        obs = obs.mask(mask.unsqueeze(-2))
    initial = stationary_distribution(params.transition) if initial_probs is None else initial_probs
    return dist.DiscreteHMM(
        initial.log(),
        # (..., 1, K, K): a time dim of one (the chain is homogeneous).
        params.transition.log().unsqueeze(-3),
        obs.to_event(1),
        duration=int(X.shape[-3]),
    )


def filter_regimes(
    params: RegimeParams,
    X: torch.Tensor,
    y: torch.Tensor,
    scale: float | torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(..., K)`` law of the regime at the last row given ``y`` (the forward filter)."""
    return regime_hmm(params, X, scale, mask).filter(y).probs


def forecast(
    params: RegimeParams,
    history: ModelBatch,
    X_future: torch.Tensor,
    scale: float | torch.Tensor,
) -> torch.Tensor:
    """Draws of ``y`` for the rows ``X_future`` that follow ``history``: ``(..., H, A)``.

    For each draw of the globals (leading dims of ``params``), the regime law is filtered
    to the last row of ``history`` and the chain and the returns are then sampled forward,
    so each draw carries its own regime path shared by all assets (the source of their
    co-movement in turbulent weeks). With ``history.y`` None the chain starts from its
    stationary law.
    """
    initial = None
    if history.y is not None and history.num_rows > 0:
        initial = filter_regimes(params, history.X, history.y, scale, history.M)
    return regime_hmm(params, X_future, scale, None, initial).sample()


def regime_params(draws: Mapping[str, torch.Tensor], regime_signal: bool) -> RegimeParams:
    """:class:`RegimeParams` from values of the latent sites (leading dims ``...`` kept).

    Used on the model's own samples and on a guide's posterior draws
    (``{site: (S, *shape)}``), so both go through the same transformation.
    """
    steps = draws["log_ratio"]
    zero = steps.new_zeros((*steps.shape[:-1], 1))
    multipliers = torch.exp(torch.cumsum(torch.cat([zero, steps], -1), -1))
    beta = draws["beta"] if regime_signal else draws["beta"].unsqueeze(-2)
    return RegimeParams(
        transition=draws["transition"],
        multipliers=multipliers,
        alpha=draws["alpha"],
        sigma=draws["sigma"],
        beta=beta,
        nu=draws.get("nu"),
    )


@register_model("regime_switching")
class RegimeSwitching(PyroModel):
    """Hidden Markov regime model with regime-dependent scale (see module docstring).

    Per-asset latents are vectors (event dims), not plated, so the model nests no plate:
    posterior draws then carry one leading dim whatever the site, which the vectorised
    filter and forecast rely on.
    """

    supports_batching = False
    elbo = "trace_enum"
    max_plate_nesting = 0

    @property
    def num_regimes(self) -> int:
        K = int(self.value("num_regimes", 2))
        if K < 2:
            raise ConfigError(f"model.params.num_regimes={K}; a regime model needs at least 2")
        return K

    @property
    def regime_signal(self) -> bool:
        return bool(self.value("regime_signal", False))

    @property
    def family(self) -> str:
        family = str(self.value("likelihood.family", "student_t"))
        if family not in FAMILIES:
            raise ConfigError(
                f"model.params.likelihood.family={family!r}; valid: {', '.join(FAMILIES)}"
            )
        return family

    @property
    def marginalization(self) -> Literal["scan", "enumerate"]:
        how = str(self.value("marginalization", "scan"))
        if how not in MARGINALIZATIONS:
            raise ConfigError(
                f"model.params.marginalization={how!r}; valid: {', '.join(MARGINALIZATIONS)}"
            )
        return how  # type: ignore[return-value]

    @property
    def sigma_scale(self) -> float:
        return float(self.value("likelihood.sigma_scale", 1.0))

    def __call__(self, batch: ModelBatch) -> None:
        self._check(batch)
        params = self.sample_globals(batch)
        if self.marginalization == "enumerate":
            self._enumerated(batch, params)
        else:
            self._scanned(batch, params)
        self._context(batch, params)

    def sample_globals(self, batch: ModelBatch) -> RegimeParams:
        """Sample the global latents (the sites the guide covers)."""
        K, F, A = self.num_regimes, batch.num_features, batch.num_assets
        x = batch.X
        concentration = float(self.value("prior.concentration", 1.0))
        stickiness = float(self.value("prior.stickiness", 8.0))
        prior = concentration + stickiness * torch.eye(K, dtype=x.dtype, device=x.device)
        sites = {"transition": pyro.sample("transition", dist.Dirichlet(prior).to_event(1))}
        self._expect("transition", sites["transition"], (K, K), "num_regimes")
        ratio_scale = float(self.value("prior.ratio_scale", 1.0))
        sites["log_ratio"] = pyro.sample(
            "log_ratio", dist.HalfNormal(x.new_full((K - 1,), ratio_scale)).to_event(1)
        )
        intercept = float(self.value("prior.intercept_scale", 0.5))
        sites["alpha"] = pyro.sample("alpha", dist.Normal(x.new_zeros(A), intercept).to_event(1))
        noise = float(self.value("prior.noise_scale", 1.0))
        sites["sigma"] = pyro.sample("sigma", dist.HalfNormal(x.new_full((A,), noise)).to_event(1))
        shape = (K, F) if self.regime_signal else (F,)
        coef = float(self.value("prior.coef_scale", 0.1))
        sites["beta"] = pyro.sample(
            "beta", dist.Normal(x.new_zeros(shape), coef).to_event(len(shape))
        )
        self._expect("beta", sites["beta"], shape, "regime_signal")
        if self.family == "student_t":
            shape_a, rate = DF_PRIOR
            sites["nu"] = pyro.sample("nu", dist.Gamma(x.new_tensor(shape_a), x.new_tensor(rate)))
        return regime_params(sites, self.regime_signal)

    def forecast(
        self, draws: Mapping[str, torch.Tensor], history: ModelBatch, future: ModelBatch
    ) -> torch.Tensor:
        """Posterior predictive draws ``(S, H, A)`` of ``y`` for the rows of ``future``.

        Parameters
        ----------
        draws
            Posterior draws of the latent sites, ``{site: (S, *shape)}`` (e.g.
            ``predictive.posterior_samples``).
        history
            The rows observed before ``future`` (e.g. the training rows); each draw's
            regime law is filtered to its last row. Without targets the chain starts
            from its stationary law.
        future
            The rows to forecast (``y`` ignored).
        """
        self._check(history)
        params = regime_params(draws, self.regime_signal)
        return forecast(params, history, future.X, self.sigma_scale)

    def _expect(self, site: str, value: torch.Tensor, shape: tuple[int, ...], key: str) -> None:
        """A guide built for another ``num_regimes`` / ``regime_signal`` is caught here."""
        if tuple(value.shape[-len(shape) :]) != shape:
            raise ModelShapeError(
                f"model {self.name!r}, site {site!r}: value shape {tuple(value.shape)}, "
                f"expected (..., {', '.join(map(str, shape))}) from {key}="
                f"{getattr(self, key)!r}; the guide was built for another {key}"
            )

    def _scanned(self, batch: ModelBatch, params: RegimeParams) -> None:
        # Entries masked by M contribute a factor of one; their rows still advance the chain.
        hmm = regime_hmm(params, batch.X, self.sigma_scale, batch.M)
        with poutine.scale(scale=batch.obs_scale):
            pyro.sample(OBS_SITE, hmm, obs=batch.y)

    def _enumerated(self, batch: ModelBatch, params: RegimeParams) -> None:
        if batch.y is None:
            raise ConfigError(
                f"model {self.name!r}: marginalization 'enumerate' scores observed weeks "
                "only (one obs_<t> site per week); predict with marginalization 'scan'"
            )
        obs = emission(params, batch.X, self.sigma_scale)
        # loc is (T, 1, A) with a shared signal; indexing by regime needs the K dim.
        locs = obs.loc.expand(batch.num_rows, self.num_regimes, batch.num_assets)
        sds = self.sigma_scale * regime_scales(params)
        initial = stationary_distribution(params.transition)
        regime: torch.Tensor | None = None
        # TraceEnum_ELBO needs one common scale on an enumerated chain: scale it whole.
        with poutine.scale(scale=batch.obs_scale):
            for t in pyro.markov(range(batch.num_rows)):
                probs = initial if regime is None else Vindex(params.transition)[..., regime, :]
                regime = pyro.sample(
                    f"regime_{t}", dist.Categorical(probs), infer={"enumerate": "parallel"}
                )
                law = _law(params.nu, Vindex(locs[t])[..., regime, :], Vindex(sds)[..., regime, :])
                if batch.M is not None:
                    law = law.mask(batch.M[t])
                pyro.sample(f"{OBS_SITE}_{t}", law.to_event(1), obs=batch.y[t])

    def _context(self, batch: ModelBatch, params: RegimeParams) -> None:
        """Subtract ``log p(y[context])`` so that burn-in rows are conditioned on, not scored."""
        if batch.y is None or batch.loss_mask is None or bool(batch.loss_mask.all()):
            return
        context = (~batch.loss_mask).unsqueeze(-1).expand(batch.num_rows, batch.num_assets)
        if batch.M is not None:
            context = context & batch.M
        last = int(torch.nonzero(~batch.loss_mask)[-1]) + 1
        hmm = regime_hmm(params, batch.X[:last], self.sigma_scale, context[:last])
        pyro.factor(CONTEXT_SITE, -batch.obs_scale * hmm.log_prob(batch.y[:last]))

    def _check(self, batch: ModelBatch) -> None:
        if batch.num_fits is not None:
            raise ModelShapeError(
                f"model {self.name!r} fits one series at a time (TraceEnum_ELBO); got a "
                f"batched program of {batch.num_fits} fits, X {tuple(batch.X.shape)}"
            )

    def complexity(self, num_assets: int, num_features: int) -> float:
        """Free parameters: ``K (K - 1)`` transitions, ``K - 1`` scale steps, an intercept
        and a scale per asset, the coefficients (per regime if regime-specific), ``nu``
        (Student-t)."""
        K = self.num_regimes
        coefs = num_features * (K if self.regime_signal else 1)
        df = 1 if self.family == "student_t" else 0
        return float(K * (K - 1) + (K - 1) + 2 * num_assets + coefs + df)

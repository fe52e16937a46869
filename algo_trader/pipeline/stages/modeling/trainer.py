"""SVI trainer: ClippedAdam, TBPTT windows, gradient accumulation, early stopping.

One engine fits either a single model (``batch.fit_mask is None``) or ``K`` fits at once
(a batched program, see :mod:`.batched`): every per-fit quantity (loss, learning rate,
step count, early-stopping state) is a tensor with the fit index leading, so nothing
loops over fits in Python.

Training schedule (nestedcv.md section 5). The series is cut into TBPTT windows of
``tbptt_window_len`` rows (``null``: one window). The first ``tbptt_burn_in_len`` rows of
each window are context only (``loss_mask`` False). Windows advance by
``window_len - burn_in`` so that the trained rows of consecutive windows tile the series
and every row after the first burn-in is trained exactly once per pass (a window's
burn-in re-reads the tail of the previous window as context). Each window's likelihood
is scaled by ``trained rows of the fit / trained rows in the window`` so that its ELBO
estimates the full-series ELBO. One optimizer step averages the ELBO of
``grad_accum_steps`` consecutive windows; ``num_steps`` counts optimizer steps.

The ELBO of ``elbo = "trace"`` models is a Trace ELBO (reparameterised guides) reduced
per fit over the ``fits`` plate; ``"trace_enum"`` models use Pyro's ``TraceEnum_ELBO``
and are fitted one at a time.

Parameters live in a private Pyro param store scope per fit, so fits never share state;
:class:`FitState` carries the unconstrained values out (plain tensors, loadable with
``weights_only=True``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, cast

import pyro
import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO
from pyro.infer.enum import get_importance_trace

from algo_trader.domain.errors import ConfigError
from algo_trader.domain.simulation.config import SVIConfig
from algo_trader.pipeline.stages.modeling.contracts import (
    FITS_PLATE,
    OBS_SITE,
    ModelBatch,
    ModelShapeError,
    PyroGuide,
    PyroModel,
)
from algo_trader.pipeline.stages.modeling.device import resolve_device

LOG = logging.getLogger(__name__)

_BETAS = (0.9, 0.999)
_EPS = 1e-8
_SHARED = ("tbptt_window_len", "tbptt_burn_in_len", "grad_accum_steps", "num_elbo_particles")


# --------------------------------------------------------------------------- state


@dataclass(frozen=True)
class FitState:
    """What one fit leaves behind.

    Attributes
    ----------
    params
        Unconstrained guide parameters by name (CPU tensors), the shapes of a single fit.
    loss_history
        ``(steps,)`` float64 loss (negative ELBO) after each optimizer step.
    metadata
        Model/guide names, seed, steps run, early stop flag, device, dtype...
    """

    params: dict[str, torch.Tensor]
    loss_history: torch.Tensor
    metadata: dict[str, Any]

    def to_payload(self) -> dict[str, Any]:
        """A plain dict of tensors and JSON-like values (``save_tensor`` writes it)."""
        return {
            "params": dict(self.params),
            "loss_history": self.loss_history,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> FitState:
        return cls(
            params=dict(payload["params"]),
            loss_history=payload["loss_history"],
            metadata=dict(payload["metadata"]),
        )


# ------------------------------------------------------------------------ settings


@dataclass(frozen=True)
class _Settings:
    """Per-fit settings as tensors shaped ``fit_shape`` (``()`` or ``(K,)``)."""

    lr: torch.Tensor
    lr_decay: torch.Tensor
    clip_norm: torch.Tensor
    num_steps: torch.Tensor
    stop_enabled: torch.Tensor
    patience: torch.Tensor
    min_delta: torch.Tensor
    smoothing: torch.Tensor
    shared: SVIConfig

    @classmethod
    def build(cls, configs: Sequence[SVIConfig], batched: bool, device: torch.device) -> _Settings:
        first = configs[0]
        for key in _SHARED:
            values = sorted({repr(getattr(c, key)) for c in configs})
            if len(values) > 1:
                raise ConfigError(
                    f"training.svi.{key} differs between the fits of one batched program "
                    f"({', '.join(values)}); fits with different {key} cannot share one "
                    "program: group them apart"
                )

        def col(get: Any, dtype: torch.dtype = torch.float64) -> torch.Tensor:
            values = torch.tensor([get(c) for c in configs], dtype=dtype, device=device)
            return values if batched else values[0]

        return cls(
            lr=col(lambda c: c.learning_rate),
            lr_decay=col(lambda c: c.lr_decay),
            clip_norm=col(lambda c: c.clip_norm),
            num_steps=col(lambda c: c.num_steps, torch.int64),
            stop_enabled=col(lambda c: c.early_stopping.enabled, torch.bool),
            patience=col(lambda c: c.early_stopping.patience, torch.int64),
            min_delta=col(lambda c: c.early_stopping.min_delta),
            smoothing=col(lambda c: c.early_stopping.smoothing),
            shared=first,
        )


def tbptt_windows(num_rows: int, window_len: int | None, burn_in: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of each TBPTT window (see module docstring for the layout)."""
    if window_len is None or window_len >= num_rows:
        return [(0, num_rows)]
    stride = window_len - burn_in
    return [(s, min(s + window_len, num_rows)) for s in range(0, num_rows - burn_in, stride)]


def window_batches(batch: ModelBatch, config: SVIConfig) -> list[tuple[ModelBatch, torch.Tensor]]:
    """Each window's batch (burn-in masked, likelihood scaled) and its trained-row count."""
    burn_in = config.tbptt_burn_in_len
    spans = tbptt_windows(batch.num_rows, config.tbptt_window_len, burn_in)
    device = batch.device
    counts = []
    for start, stop in spans:
        trained = slice(start + burn_in, stop)
        if batch.fit_mask is None:
            rows = torch.ones(batch.num_rows, dtype=torch.bool, device=device)[trained]
            counts.append(rows.sum().to(torch.float64))
        else:
            counts.append(batch.fit_mask[:, trained].sum(dim=1).to(torch.float64))
    total = torch.stack(counts).sum(dim=0)
    windows = []
    for (start, stop), count in zip(spans, counts, strict=True):
        loss_mask = torch.arange(stop - start, device=device) >= burn_in
        # A fit with no rows here is masked out and its loss weighted 0; scale 1 keeps
        # poutine.scale's positivity check.
        scale = torch.where(count > 0, total / count.clamp(min=1.0), 1.0)
        obs_scale: float | torch.Tensor = scale.to(batch.X.dtype)
        if batch.fit_mask is None:
            obs_scale = float(scale)
        window = replace(
            batch.rows(start, stop),
            loss_mask=None if burn_in == 0 else loss_mask,
            obs_scale=obs_scale,
        )
        windows.append((window, count))
    return windows


# ---------------------------------------------------------------------------- ELBO


def _per_fit(site: dict[str, Any], num_fits: int | None, role: str) -> torch.Tensor:
    """A site's (scaled, masked) log density summed over all dims but the fits dim."""
    log_prob = site["log_prob"]
    if num_fits is None:
        return log_prob.sum()
    frame = next((f for f in site["cond_indep_stack"] if f.name == FITS_PLATE), None)
    if frame is None:
        raise ModelShapeError(
            f"{role} site {site['name']!r} is outside the {FITS_PLATE!r} plate in a batched "
            f"fit of {num_fits}; wrap it in batch.fit_plate(...) so each fit has its own"
        )
    dim = log_prob.dim() + frame.dim if log_prob.dim() >= -frame.dim else None
    if dim is None:
        return log_prob.sum().expand(num_fits) / num_fits
    log_prob = log_prob.movedim(dim, 0)
    return log_prob.expand((num_fits, *log_prob.shape[1:])).reshape(num_fits, -1).sum(dim=1)


def _trace_elbo_losses(
    model: PyroModel, guide: PyroGuide, batch: ModelBatch, num_particles: int
) -> torch.Tensor:
    """Negative ELBO per fit: ``(K,)``, or ``()`` for a single fit."""
    K = batch.num_fits
    loss = batch.X.new_zeros(() if K is None else (K,))
    for _ in range(num_particles):
        model_trace, guide_trace = get_importance_trace(
            "flat", model.max_plate_nesting, model, guide, (batch,), {}
        )
        for site in model_trace.nodes.values():
            if site["type"] == "sample":
                loss = loss - _per_fit(site, K, "model")
        for site in guide_trace.nodes.values():
            if site["type"] == "sample":
                if not site["fn"].has_rsample:
                    raise ConfigError(
                        f"guide {guide.name!r}: site {site['name']!r} is not "
                        "reparameterisable; the model must declare elbo = 'trace_enum'"
                    )
                loss = loss + _per_fit(site, K, "guide")
    return loss / num_particles


def elbo_losses(
    model: PyroModel, guide: PyroGuide, config: SVIConfig
) -> Callable[[ModelBatch], torch.Tensor]:
    """The loss function of the trainer: batch -> negative ELBO, ``(K,)`` or ``()``."""
    particles = config.num_elbo_particles
    if model.elbo == "trace_enum":
        # strict_enumeration_warning off: a model may marginalize its discrete state itself
        # (the regime model's DiscreteHMM), leaving TraceEnum nothing to enumerate.
        elbo = TraceEnum_ELBO(
            max_plate_nesting=model.max_plate_nesting,
            num_particles=particles,
            strict_enumeration_warning=False,
        )

        def enum_losses(batch: ModelBatch) -> torch.Tensor:
            if batch.num_fits is not None:
                raise ConfigError(
                    f"model {model.name!r} uses TraceEnum_ELBO and cannot run as a batched "
                    "program; fit it one split at a time"
                )
            return elbo.differentiable_loss(model, guide, batch)

        return enum_losses
    return lambda batch: _trace_elbo_losses(model, guide, batch, particles)


# ----------------------------------------------------------------------- optimizer


class FitwiseClippedAdam:
    """Pyro's ``ClippedAdam`` update with per-fit learning rate, decay, clip and pause.

    The update is ``pyro.optim.ClippedAdam``'s (elementwise gradient clamp at
    ``clip_norm``, Adam with bias correction, ``lr *= lr_decay`` before each step), with
    every per-fit setting a tensor broadcast over each parameter's leading fit dim. Fits
    whose ``active`` flag is False in a step keep their parameters, moments, step count
    and learning rate, exactly as if that step had not happened for them.
    """

    def __init__(self, params: Sequence[torch.Tensor], settings: _Settings) -> None:
        self.params = list(params)
        self.lr = settings.lr.clone()
        self.lr_decay = settings.lr_decay
        self.clip = settings.clip_norm
        self.steps = torch.zeros_like(settings.lr)
        self.moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in self.params]

    @staticmethod
    def _fit(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        if value.dim() == 0:
            return value.to(like.dtype)
        return value.to(like.dtype).reshape((-1,) + (1,) * (like.dim() - 1))

    @torch.no_grad()
    def step(self, active: torch.Tensor) -> None:
        self.lr = torch.where(active, self.lr * self.lr_decay, self.lr)
        self.steps = self.steps + active.to(self.steps.dtype)
        beta1, beta2 = _BETAS
        t = self.steps.clamp(min=1.0)
        step_size = self.lr * torch.sqrt(1 - beta2**t) / (1 - beta1**t)
        for p, (m, v) in zip(self.params, self.moments, strict=True):
            if p.grad is None:
                continue
            clip = self._fit(self.clip, p)
            grad = torch.maximum(torch.minimum(p.grad, clip), -clip)
            on = self._fit(active, p).to(torch.bool)
            m.copy_(torch.where(on, beta1 * m + (1 - beta1) * grad, m))
            v.copy_(torch.where(on, beta2 * v + (1 - beta2) * grad * grad, v))
            update = self._fit(step_size, p) * m / (v.sqrt() + _EPS)
            p.sub_(torch.where(on, update, torch.zeros((), dtype=p.dtype, device=p.device)))


# ------------------------------------------------------------------ early stopping


class _Plateau:
    """Per-fit early stopping on the exponential moving average of the loss."""

    def __init__(self, settings: _Settings) -> None:
        self.s = settings
        self.ema = torch.full_like(settings.lr, math.nan)
        self.best = torch.full_like(settings.lr, math.inf)
        self.since = torch.zeros_like(settings.num_steps)

    def update(self, loss: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """Fold this step's loss in; True where a fit has now plateaued."""
        loss = loss.to(self.ema.dtype)
        smoothed = torch.where(
            torch.isnan(self.ema), loss, self.s.smoothing * self.ema + (1 - self.s.smoothing) * loss
        )
        self.ema = torch.where(active, smoothed, self.ema)
        improved = self.ema < self.best - self.s.min_delta
        self.best = torch.where(active & improved, self.ema, self.best)
        self.since = torch.where(active, torch.where(improved, 0, self.since + 1), self.since)
        return self.s.stop_enabled & (self.since >= self.s.patience)


# ---------------------------------------------------------------------- the engine


@dataclass(frozen=True)
class RunResult:
    """Raw result of one program (single or batched), in the program's shapes.

    ``losses`` is ``(iterations, K)`` (or ``(steps,)``), NaN where a fit did not step. A fit
    whose loss turns non-finite stops there (``diverged``) and keeps its last finite
    params, which are never updated with a non-finite gradient.
    """

    params: dict[str, torch.Tensor]
    losses: torch.Tensor
    steps_run: torch.Tensor
    stopped_early: torch.Tensor
    diverged: torch.Tensor


@contextmanager
def param_scope(validate: bool | None = None) -> Iterator[None]:
    """A private, empty Pyro param store for the duration of one fit or prediction.

    ``validate`` switches Pyro's distribution/shape validation for that time (production
    runs pass False: it costs a large share of a small step); ``None`` keeps the global
    setting (``pyro.enable_validation``, on by default).
    """
    with pyro.get_param_store().scope():
        if validate is None:
            yield
        else:
            with pyro.validation_enabled(validate):
                yield


def init_params(
    guide: PyroGuide, batch: ModelBatch, values: Mapping[str, torch.Tensor] | None
) -> dict[str, torch.Tensor]:
    """Create the guide's params in the current scope (and overwrite them with ``values``,
    a warm start); returns the unconstrained leaf tensors by name."""
    with poutine.block(), poutine.trace(param_only=True) as capture:
        guide(batch)
    store = pyro.get_param_store()
    # ParamStoreDict hands out constrained tensors that carry their unconstrained leaf.
    leaves = {name: cast(Any, store[name]).unconstrained() for name in capture.trace.nodes}
    for name, value in (values or {}).items():
        if name not in leaves:
            raise ModelShapeError(
                f"guide {guide.name!r}: warm-start param {name!r} is not a param of this "
                f"guide; its params: {sorted(leaves)}"
            )
        leaf = leaves[name]
        if tuple(value.shape) != tuple(leaf.shape):
            raise ModelShapeError(
                f"guide {guide.name!r}: warm-start param {name!r} has shape "
                f"{tuple(value.shape)}, the guide's is {tuple(leaf.shape)} (batch X "
                f"{tuple(batch.X.shape)})"
            )
        with torch.no_grad():
            leaf.copy_(value.to(leaf))
    return leaves


def check_obs(model: PyroModel, batch: ModelBatch) -> None:
    """One model trace: the ``obs`` site exists and draws values shaped like ``y``.

    Raises
    ------
    ModelShapeError
        Naming the model, the site and the shapes, whatever shape error the trace hits.
    """
    # Traced as when predicting (y unset): that is where ``obs`` must draw y; a model may
    # score training targets another way (e.g. one ``pyro.factor`` per fit).
    predicting = replace(batch, y=None, M=None)
    try:
        with poutine.block(), poutine.trace() as capture:
            model(predicting)
        trace = capture.trace
        trace.compute_log_prob()
    except (ValueError, RuntimeError) as err:
        raise ModelShapeError(
            f"model {model.name!r} on batch X {tuple(batch.X.shape)}, y "
            f"{None if batch.y is None else tuple(batch.y.shape)}: {err}"
        ) from err
    if OBS_SITE not in trace.nodes:
        raise ModelShapeError(
            f"model {model.name!r} has no {OBS_SITE!r} site; every model needs one"
        )
    value = trace.nodes[OBS_SITE]["value"]
    assert value is not None  # a sample site always has a value after the trace
    want = tuple(batch.y.shape[-2:]) if batch.y is not None else (batch.num_rows, batch.num_assets)
    if tuple(value.shape[-2:]) != want:
        raise ModelShapeError(
            f"model {model.name!r}: site {OBS_SITE!r} has shape {tuple(value.shape)}, "
            f"expected (..., {want[0]}, {want[1]}) for batch X {tuple(batch.X.shape)}"
        )


def run_svi(
    model: PyroModel,
    guide: PyroGuide,
    batch: ModelBatch,
    configs: Sequence[SVIConfig],
    *,
    seed: int,
    init: Mapping[str, torch.Tensor] | None = None,
) -> RunResult:
    """Train one program (single fit, or ``len(configs)`` fits in ``batch``) on ``batch.device``.

    Call inside :func:`param_scope`. ``init`` holds warm-start values in the program's
    param shapes.
    """
    batched = batch.num_fits is not None
    if batched and len(configs) != batch.num_fits:
        raise ConfigError(
            f"{len(configs)} SVI configs for a batched program of {batch.num_fits} fits"
        )
    settings = _Settings.build(configs, batched, batch.device)
    shared = settings.shared
    pyro.set_rng_seed(seed)
    check_obs(model, batch)
    leaves = init_params(guide, batch, init)
    _check_fit_dims(guide, leaves, batch)
    optimizer = FitwiseClippedAdam(list(leaves.values()), settings)
    plateau = _Plateau(settings)
    losses_fn = elbo_losses(model, guide, shared)
    windows = window_batches(batch, shared)
    accum = shared.grad_accum_steps
    # A fit with no training row in any window has nothing to learn from.
    has_rows = torch.stack([count for _, count in windows]).sum(dim=0) > 0
    history: list[torch.Tensor] = []
    stopped = torch.zeros_like(settings.stop_enabled)
    diverged = torch.zeros_like(stopped)
    steps_run = torch.zeros_like(settings.num_steps)
    window_index = 0
    while True:
        running = has_rows & ~stopped & ~diverged & (steps_run < settings.num_steps)
        if not bool(running.any()):
            break
        group = [windows[(window_index + j) % len(windows)] for j in range(accum)]
        window_index += accum
        # A fit steps only when one of this group's windows holds rows of it.
        seen = torch.stack([count > 0 for _, count in group]).sum(dim=0)
        total = torch.zeros_like(settings.lr)
        for window, count in group:
            weight = torch.where(count > 0, 1.0 / seen.clamp(min=1), 0.0).to(settings.lr)
            loss = losses_fn(window)
            (loss * weight.to(loss.dtype)).sum().backward()
            total = total + weight * loss.detach().to(total.dtype)
        finite = torch.isfinite(total)
        diverged = diverged | (running & (seen > 0) & ~finite)
        active = running & (seen > 0) & finite
        optimizer.step(active)
        for leaf in leaves.values():
            leaf.grad = None
        history.append(torch.where(active, total, math.nan).cpu())
        steps_run = steps_run + active.to(steps_run.dtype)
        stopped = stopped | (plateau.update(total, active) & active)
        _log(model, len(history) - 1, shared.log_every, total)
    if bool(diverged.any()):
        LOG.warning(
            "%s: the loss of %d fit(s) turned non-finite; they stopped with their last "
            "finite params (metadata diverged=True)",
            model.name,
            int(diverged.sum()),
        )
    return RunResult(
        params={name: leaf.detach().cpu().clone() for name, leaf in leaves.items()},
        losses=torch.stack(history)
        if history
        else torch.empty((0, *settings.lr.shape), dtype=torch.float64),
        steps_run=steps_run.cpu(),
        stopped_early=stopped.cpu(),
        diverged=diverged.cpu(),
    )


def _check_fit_dims(
    guide: PyroGuide, leaves: Mapping[str, torch.Tensor], batch: ModelBatch
) -> None:
    K = batch.num_fits
    if K is None:
        return
    for name, leaf in leaves.items():
        if leaf.dim() == 0 or leaf.shape[0] != K:
            raise ModelShapeError(
                f"guide {guide.name!r}: param {name!r} has shape {tuple(leaf.shape)} in a "
                f"batched program of {K} fits; its leading dim must be the fit index ({K})"
            )


def _log(model: PyroModel, step: int, every: int | None, loss: torch.Tensor) -> None:
    if every is None or (step + 1) % every:
        return
    if LOG.isEnabledFor(logging.INFO):
        shown = loss.mean() if loss.dim() else loss
        LOG.info("%s step %d loss %.4f", model.name, step + 1, float(shown))


def fit(
    model: PyroModel,
    guide: PyroGuide,
    batch: ModelBatch,
    config: SVIConfig,
    *,
    seed: int,
    init_state: FitState | None = None,
    device: str | torch.device | None = None,
    validate: bool | None = None,
) -> FitState:
    """Fit ``guide`` to ``model`` on a single-fit ``batch`` with SVI.

    Parameters
    ----------
    model, guide
        Registered model and guide instances.
    batch
        A single-fit batch (``fit_mask is None``).
    config
        ``training.svi``.
    seed
        Seeds Pyro/torch for this fit (derive it from the unit of work).
    init_state
        Warm start: the previous fit's params (the outer weekly loop). Adam moments start
        afresh.
    device
        ``cpu`` / ``cuda``; ``None`` reads ``TORCH_DEVICE``.
    validate
        Pyro validation during the fit (see :func:`param_scope`).

    Returns
    -------
    FitState
        Unconstrained params, the loss after each step, and metadata.
    """
    if batch.num_fits is not None:
        raise ConfigError("fit() takes a single-fit batch; use batched.fit_batched for K fits")
    target = resolve_device(device)
    with param_scope(validate):
        result = run_svi(
            model,
            guide,
            batch.to(target),
            [config],
            seed=seed,
            init=None if init_state is None else init_state.params,
        )
    return FitState(
        params=result.params,
        loss_history=result.losses,
        metadata=fit_metadata(model, guide, batch, seed, target)
        | {
            "steps_run": int(result.steps_run),
            "stopped_early": bool(result.stopped_early),
            "diverged": bool(result.diverged),
            "warm_start": init_state is not None,
        },
    )


def fit_metadata(
    model: PyroModel, guide: PyroGuide, batch: ModelBatch, seed: int, device: torch.device
) -> dict[str, Any]:
    """The metadata every :class:`FitState` records."""
    return {
        "model": model.name,
        "guide": guide.name,
        "seed": seed,
        "device": device.type,
        "dtype": str(batch.X.dtype).removeprefix("torch."),
        "num_rows": batch.num_rows,
        "num_assets": batch.num_assets,
        "num_features": batch.num_features,
    }

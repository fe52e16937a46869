"""Posterior predictive draws of ``obs`` for the rows of a batch.

The fitted guide is loaded into a private param store; the latents are drawn from the
guide and ``obs`` from the model with ``y`` unset, all draws in one vectorised pass.
Draws derive from ``seed`` only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, cast

import pyro
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from algo_trader.domain.errors import ConfigError
from algo_trader.pipeline.stages.modeling.batched import (
    load_rows,
    params_to,
    single_shapes,
    stack_batches,
    stack_params,
)
from algo_trader.pipeline.stages.modeling.contracts import (
    OBS_SITE,
    ModelBatch,
    PyroGuide,
    PyroModel,
)
from algo_trader.pipeline.stages.modeling.device import resolve_device
from algo_trader.pipeline.stages.modeling.registry import build_pair
from algo_trader.pipeline.stages.modeling.trainer import FitState, init_params, param_scope


def _unobserved(batch: ModelBatch) -> ModelBatch:
    return replace(batch, y=None, M=None, loss_mask=None, obs_scale=1.0)


def _draw(
    model: PyroModel,
    guide: PyroGuide,
    batch: ModelBatch,
    num_samples: int,
    seed: int,
) -> dict[str, torch.Tensor]:
    """Every sample site's value with ``num_samples`` draws in one vectorised pass.

    A plate over draws left of the model's plates (dim ``-max_plate_nesting - 1``) wraps
    the guide and the replayed model. ``pyro.infer.Predictive(parallel=True)`` is not used:
    it reshapes guide draws as if they had no event dims, which breaks sites like
    ``beta`` with event shape ``(F,)``.
    """
    if num_samples < 1:
        raise ConfigError(f"predictive.num_samples must be >= 1, got {num_samples}")
    pyro.set_rng_seed(seed)
    dim = -model.max_plate_nesting - 1
    with torch.no_grad(), pyro.plate("_draws", num_samples, dim=dim):
        guide_trace = poutine.trace(guide).get_trace(batch)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(batch)
    return {
        name: cast(torch.Tensor, site["value"])
        for name, site in model_trace.nodes.items()
        if site["type"] == "sample" and not site_is_subsample(site)
    }


def predict(
    model: PyroModel,
    guide: PyroGuide,
    state: FitState,
    batch: ModelBatch,
    num_samples: int,
    seed: int,
    *,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """``(num_samples, T, A)`` posterior predictive draws of ``y`` for ``batch``'s rows.

    Parameters
    ----------
    model, guide
        The pair that produced ``state`` (built with the same params).
    state
        A fit's :class:`FitState`.
    batch
        A single-fit batch; its ``y`` (if any) is ignored.
    num_samples
        Draws (``predictive.num_samples``).
    seed
        Seeds every draw.
    device
        ``cpu`` / ``cuda``; ``None`` reads ``TORCH_DEVICE``.
    """
    target = resolve_device(device)
    rows = _unobserved(batch).to(target)
    with param_scope():
        init_params(guide, rows, state.params)
        obs = _draw(model, guide, rows, num_samples, seed)[OBS_SITE]
    return obs.reshape(num_samples, rows.num_rows, rows.num_assets).cpu()


def posterior_samples(
    model: PyroModel,
    guide: PyroGuide,
    state: FitState,
    batch: ModelBatch,
    num_samples: int,
    seed: int,
) -> dict[str, torch.Tensor]:
    """Draws of every latent site from the fitted guide: ``{site: (num_samples, *shape)}``
    with the site's single-fit shape (for parameter summaries)."""
    rows = _unobserved(batch)
    with param_scope():
        init_params(guide, rows, state.params)
        with pyro.poutine.trace() as capture:
            guide(rows)
        shapes = {
            name: cast(torch.Tensor, site["value"]).shape
            for name, site in capture.trace.nodes.items()
            if site["type"] == "sample" and not site_is_subsample(site)
        }
        draws = _draw(model, guide, rows, num_samples, seed)
    return {name: draws[name].reshape((num_samples,) + shapes[name]) for name in shapes}


def predict_batched(
    model_name: str,
    guide_name: str,
    params: Sequence[Mapping[str, Any]],
    guide_params: Mapping[str, Any],
    states: Sequence[FitState],
    batches: Sequence[ModelBatch],
    num_samples: int,
    seed: int,
    *,
    device: str | torch.device | None = None,
) -> list[torch.Tensor]:
    """Predictive draws for ``K`` fits at once (one program); ``(S, T_k, A)`` per fit.

    ``params[k]``, ``states[k]`` and ``batches[k]`` describe fit ``k``, as in
    :func:`.batched.fit_batched`.
    """
    if not (len(params) == len(states) == len(batches)):
        raise ConfigError(
            f"predict_batched: {len(params)} params, {len(states)} states and "
            f"{len(batches)} batches; give one of each per fit"
        )
    target = resolve_device(device)
    model, guide = build_pair(
        model_name, guide_name, params_to(stack_params(params), target), guide_params
    )
    rows = [_unobserved(b) for b in batches]
    program = stack_batches(rows).to(target)
    single = single_shapes(model_name, guide_name, rows[0], params[0], guide_params)
    with param_scope():
        leaves = init_params(guide, program, None)
        load_rows(leaves, states, single)
        obs = _draw(model, guide, program, num_samples, seed)[OBS_SITE]
    K, T, A = len(batches), program.num_rows, program.num_assets
    obs = obs.reshape(num_samples, K, T, A).cpu()
    return [obs[:, k, : b.num_rows] for k, b in enumerate(batches)]

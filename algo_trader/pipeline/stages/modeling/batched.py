"""Batched fitting: ``K`` fits that share shapes as one vectorised SVI program.

design.md ("Simulation hooks and batched fitting"): the inner CPCV splits of one candidate,
or the candidates of one stratum, are fitted together instead of in a Python loop. Each
fit is described by a :class:`FitSpec` (its own single-fit batch, SVI settings, model
params, seed, warm start). :func:`fit_batched`

1. stacks the batches: one panel shared by all fits when every fit has the same tensors,
   else ``(K, T_max, A, F)`` with each fit's rows first and a ``fit_mask`` marking them;
2. stacks the model params: a float that differs between fits becomes a ``(K,)`` tensor
   (the model reads it per fit); anything else must be equal (:func:`group_key` says
   which fits can share a program);
3. runs the trainer's engine once, with per-fit learning rate, step budget and early
   stopping;
4. splits the params back into one :class:`FitState` per fit, in single-fit shapes, so
   prediction and warm starts treat them like separate fits.

A fit's result equals a separate fit's up to optimizer noise: the same rows, windows,
scales and initial values, but the Monte Carlo draws of the program differ.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from algo_trader.domain.errors import ConfigError
from algo_trader.domain.simulation.config import SVIConfig
from algo_trader.pipeline.stages.modeling.contracts import ModelBatch, ModelShapeError
from algo_trader.pipeline.stages.modeling.device import resolve_device
from algo_trader.pipeline.stages.modeling.registry import build_pair
from algo_trader.pipeline.stages.modeling.trainer import (
    FitState,
    fit_metadata,
    init_params,
    param_scope,
    run_svi,
)

_SHARED_SVI = ("tbptt_window_len", "tbptt_burn_in_len", "grad_accum_steps", "num_elbo_particles")


@dataclass(frozen=True)
class FitSpec:
    """One fit of a batched program.

    Attributes
    ----------
    batch
        The fit's single-fit batch (its training rows).
    config
        Its ``training.svi`` settings.
    params, guide_params
        Its ``model.params`` / ``model.guide_params``.
    seed
        Its seed (the program's seed derives from all fits' seeds).
    init_state
        Warm start, or ``None``.
    """

    batch: ModelBatch
    config: SVIConfig
    params: Mapping[str, Any]
    guide_params: Mapping[str, Any]
    seed: int
    init_state: FitState | None = None


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in params.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= _flatten(value, f"{path}.")
        else:
            flat[path] = value
    return flat


def _is_value(x: Any) -> bool:
    return isinstance(x, float)


def group_key(
    model_name: str,
    guide_name: str,
    spec: FitSpec,
) -> Hashable:
    """Fits with equal keys can share one batched program.

    Equal: model/guide names, the batch's asset and feature counts, dtype and presence
    of a mask, the TBPTT/accumulation/particle settings, ``guide_params``, and every
    model param that is not a float (ints such as ``num_factors`` set shapes). Floats,
    the learning rate, step budget, decay, clip and early stopping may differ per fit.
    """
    batch = spec.batch
    structural = tuple(
        sorted(
            (path, repr(value))
            for path, value in _flatten(spec.params).items()
            if not _is_value(value)
        )
    )
    floats = tuple(sorted(p for p, v in _flatten(spec.params).items() if _is_value(v)))
    return (
        model_name,
        guide_name,
        batch.num_assets,
        batch.num_features,
        str(batch.X.dtype),
        tuple(repr(getattr(spec.config, k)) for k in _SHARED_SVI),
        repr(sorted(_flatten(spec.guide_params).items())),
        structural,
        floats,
    )


class _MissingType:
    """Marks a param path that one fit's params lack."""


_Missing = _MissingType()


def stack_params(params: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One nested params dict for ``K`` fits: differing floats become ``(K,)`` float64.

    Raises
    ------
    ConfigError
        A non-float param differs between fits, or a param is missing in some.
    """
    flats = [_flatten(p) for p in params]
    keys = set().union(*flats)
    merged: dict[str, Any] = {}
    for path in sorted(keys):
        values = [f.get(path, _Missing) for f in flats]
        if any(v is _Missing for v in values):
            raise ConfigError(f"model.params.{path} is set for some fits of a batched program only")
        if all(repr(v) == repr(values[0]) for v in values):
            merged[path] = values[0]
        elif all(_is_value(v) for v in values):
            merged[path] = torch.tensor(values, dtype=torch.float64)
        else:
            raise ConfigError(
                f"model.params.{path} differs between fits ({sorted({repr(v) for v in values})}) "
                "and is not a float; such fits cannot share a batched program"
            )
    nested: dict[str, Any] = {}
    for path, value in merged.items():
        *parents, leaf = path.split(".")
        node = nested
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return nested


def stack_batches(batches: Sequence[ModelBatch]) -> ModelBatch:
    """One batched :class:`ModelBatch` from ``K`` single-fit batches.

    If every fit has the same ``X``, ``y`` and ``M`` (e.g. candidates on one split), they
    are shared, not copied; otherwise each fit's rows are placed first in a
    ``(K, T_max, ...)`` tensor padded with zeros, and ``fit_mask`` marks the real rows.
    """
    first = batches[0]
    if any(b.num_fits is not None for b in batches):
        raise ModelShapeError("stack_batches takes single-fit batches")
    if any(b.X.shape[-2:] != first.X.shape[-2:] for b in batches):
        shapes = sorted({tuple(b.X.shape) for b in batches})
        raise ModelShapeError(f"batched fits must share (A, F); got X shapes {shapes}")
    K = len(batches)
    if all(_same(b, first) for b in batches[1:]):
        mask = torch.ones(K, first.num_rows, dtype=torch.bool, device=first.device)
        return replace(first, fit_mask=mask, loss_mask=None, obs_scale=1.0)
    T = max(b.num_rows for b in batches)
    rows = torch.tensor([b.num_rows for b in batches], device=first.device)
    fit_mask = torch.arange(T, device=first.device) < rows[:, None]

    def pad(t: torch.Tensor) -> torch.Tensor:
        out = t.new_zeros((T, *t.shape[1:]))
        out[: t.shape[0]] = t
        return out

    has_y = [b.y is not None for b in batches]
    if any(has_y) and not all(has_y):
        raise ModelShapeError("batched fits must all have targets y, or none")
    y = torch.stack([pad(b.y) for b in batches if b.y is not None]) if all(has_y) else None
    masks = [b.M for b in batches]
    M = None
    if any(m is not None for m in masks) and y is not None:
        M = torch.stack(
            [
                pad(m if m is not None else torch.ones_like(b.y, dtype=torch.bool))
                for m, b in zip(masks, batches, strict=True)
                if b.y is not None
            ]
        )
    X = torch.stack([pad(b.X) for b in batches])
    return ModelBatch(X=X, y=y, M=M, fit_mask=fit_mask)


def _same(a: ModelBatch, b: ModelBatch) -> bool:
    def eq(x: torch.Tensor | None, y: torch.Tensor | None) -> bool:
        if x is None or y is None:
            return x is y
        return x is y or (x.shape == y.shape and bool(torch.equal(x, y)))

    return eq(a.X, b.X) and eq(a.y, b.y) and eq(a.M, b.M)


def program_seed(seeds: Sequence[int]) -> int:
    """The seed of a batched program, derived from its fits' seeds (order-sensitive)."""
    return int(np.random.SeedSequence([int(s) for s in seeds]).generate_state(1)[0])


def fit_batched(
    model_name: str,
    guide_name: str,
    specs: Sequence[FitSpec],
    *,
    device: str | torch.device | None = None,
    validate: bool | None = None,
) -> list[FitState]:
    """Fit every spec in one vectorised SVI program; one :class:`FitState` per spec.

    Parameters
    ----------
    model_name, guide_name
        Registered names; the model must declare ``supports_batching``.
    specs
        The fits, all with one :func:`group_key`.
    device
        ``cpu`` / ``cuda``; ``None`` reads ``TORCH_DEVICE``.
    validate
        Pyro validation during the fit (``trainer.param_scope``); production passes False.

    Raises
    ------
    ConfigError
        The model cannot batch, or the specs do not share a group key.
    """
    if not specs:
        return []
    keys = {group_key(model_name, guide_name, s) for s in specs}
    if len(keys) > 1:
        raise ConfigError(
            f"fit_batched: the {len(specs)} fits do not share shapes and structural "
            "settings (see batched.group_key); group them first"
        )
    target = resolve_device(device)
    model, guide = build_pair(
        model_name,
        guide_name,
        params_to(stack_params([s.params for s in specs]), target),
        specs[0].guide_params,
    )
    if not model.supports_batching:
        raise ConfigError(f"model {model_name!r} does not support batched fitting; fit one by one")
    program = stack_batches([s.batch for s in specs]).to(target)
    seed = program_seed([s.seed for s in specs])
    first = specs[0]
    single = single_shapes(model_name, guide_name, first.batch, first.params, first.guide_params)
    with param_scope(validate):
        leaves = init_params(guide, program, None)
        load_rows(leaves, [s.init_state for s in specs], single)
        result = run_svi(model, guide, program, [s.config for s in specs], seed=seed)
    states = []
    for k, spec in enumerate(specs):
        losses = result.losses[:, k]
        states.append(
            FitState(
                params={n: p[k].reshape(single[n]).clone() for n, p in result.params.items()},
                loss_history=losses[~torch.isnan(losses)],
                metadata=fit_metadata(model, guide, spec.batch, spec.seed, target)
                | {
                    "steps_run": int(result.steps_run[k]),
                    "stopped_early": bool(result.stopped_early[k]),
                    "diverged": bool(result.diverged[k]),
                    "warm_start": spec.init_state is not None,
                    "batched": {"num_fits": len(specs), "index": k, "program_seed": seed},
                },
            )
        )
    return states


def params_to(params: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """``params`` with every (per-fit) tensor moved to ``device``."""
    return {
        k: params_to(v, device)
        if isinstance(v, dict)
        else v.to(device)
        if isinstance(v, torch.Tensor)
        else v
        for k, v in params.items()
    }


def single_shapes(
    model_name: str,
    guide_name: str,
    batch: ModelBatch,
    params: Mapping[str, Any],
    guide_params: Mapping[str, Any],
) -> dict[str, torch.Size]:
    """Each guide param's shape in a separate fit on ``batch`` (one guide trace)."""
    _, guide = build_pair(model_name, guide_name, params, guide_params)
    with param_scope():
        leaves = init_params(guide, batch, None)
    return {name: leaf.shape for name, leaf in leaves.items()}


def load_rows(
    leaves: Mapping[str, torch.Tensor],
    states: Sequence[FitState | None],
    single: Mapping[str, torch.Size],
) -> None:
    """Copy each fit's params (single-fit shapes) into its row of the program's params;
    fits whose state is ``None`` keep the guide's initial values."""
    for k, state in enumerate(states):
        if state is None:
            continue
        for name, value in state.params.items():
            if name not in leaves or tuple(value.shape) != tuple(single[name]):
                want = None if name not in single else tuple(single[name])
                raise ModelShapeError(
                    f"fit {k}: param {name!r} has shape {tuple(value.shape)}; the guide's is {want}"
                )
            with torch.no_grad():
                leaves[name][k].copy_(value.reshape(leaves[name].shape[1:]).to(leaves[name]))

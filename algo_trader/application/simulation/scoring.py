"""Numeric kernels of the proper scoring rules (``simulation/best_model.md``).

Shapes: predictive ``samples`` are ``(S, T, A)`` (draws, weeks, assets) and the realized
``truth`` is ``(T, A)``, NaN where a target is missing. Everything is computed in float64.

- :func:`fit_whitener` builds the training-only transform of the energy score: per-asset
  MAD scaling (``z = y / scale``) and the inverse Cholesky factor ``W`` of the shrunk
  covariance of ``z``; :func:`to_z` and :func:`whiten` apply it (``u = z W^T``).
- :func:`energy_score_per_week` is ``ES_t = mean_s ||u_s - u|| - 0.5 mean_{s,s'} ||u_s - u_s'||``
  with the pairwise term from ``torch.cdist`` over blocks of weeks sized to a memory budget.
- :func:`sorted_summaries` sorts the samples once and returns the per-asset CRPS (the
  ``O(S log S)`` sorted form of the energy formula), sample quantiles and PIT values;
  :func:`crps_per_week`, :func:`quantile_loss_per_week`, :func:`pit_values` and
  :func:`central_coverage` are its single-purpose views.

Missing truth is never silently scored: a week whose truth has a missing asset gets a NaN
energy score (the whitened norm mixes every asset, so a partial week is not comparable with
a full one and is dropped by the callers' NaN-aware means); per-asset scores are NaN at the
missing entries, PIT is NaN there and coverage is False there. Non-finite *samples* are a
model failure and raise ``ValueError`` (not an :class:`~algo_trader.domain.errors.AlgoTraderError`,
so the inner loop's ``on_trial_error: skip`` can record the candidate as failed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from algo_trader.domain.errors import DataError

DEFAULT_MEMORY_BUDGET = 256 * 1024**2
"""Bytes the pairwise energy-score term may use at once (``scoring.spec.memory_budget_mb``)."""

SHRINKAGE_SCHEDULE = ((150, 0.30), (300, 0.15))
"""``(n_eff bound, lambda)``: ``lambda`` for ``n_eff`` below the bound; ``0.075`` beyond."""
SHRINKAGE_LARGE = 0.075

# cdist's matrix-product path needs the (B, S, S) output, a same-size product and row norms.
_PAIRWISE_COPIES = 3
# Larger blocks leave the cache: at T=52, S=500, A=100 one block of 52 weeks took 2.5x (16
# threads) and 2.3x (2 threads) the time of blocks of 16 (benchmarks/README.md).
_MAX_WEEKS_PER_BLOCK = 16
_DTYPE = torch.float64


@dataclass(frozen=True, eq=False)
class Whitener:
    """The training-only energy-score transform.

    Attributes
    ----------
    scale
        ``(A,)`` per-asset ``MAD + mad_eps`` of the training targets (``z = y / scale``).
    W
        ``(A, A)`` lower-triangular inverse Cholesky factor of the shrunk covariance of ``z``
        (``u = z W^T``).
    lam
        The diagonal shrinkage weight used (0.30 / 0.15 / 0.075 by ``n_eff``).
    n_eff
        Number of fully observed training weeks the covariance was estimated from.
    """

    scale: torch.Tensor
    W: torch.Tensor
    lam: float
    n_eff: int


def shrinkage(n_eff: int) -> float:
    """The size-based diagonal shrinkage weight: 0.30 below 150 rows, 0.15 below 300, else 0.075."""
    for bound, lam in SHRINKAGE_SCHEDULE:
        if n_eff < bound:
            return lam
    return SHRINKAGE_LARGE


def nan_median(x: torch.Tensor) -> torch.Tensor:
    """Column medians of ``(T, A)`` ignoring NaN; the mean of the two middle values for even
    counts (as ``numpy.nanmedian``; ``torch.nanmedian`` would return the lower one).
    All-NaN columns give NaN."""
    count = (~torch.isnan(x)).sum(dim=0)
    ordered = torch.sort(x, dim=0).values  # NaN sorts last
    lo = ((count - 1).clamp(min=0) // 2).unsqueeze(0)
    hi = (count // 2).clamp(max=max(int(x.shape[0]) - 1, 0)).unsqueeze(0)
    mid = 0.5 * (ordered.gather(0, lo) + ordered.gather(0, hi))[0]
    return torch.where(count > 0, mid, torch.nan)


def mad_scale(y_train: torch.Tensor, mad_eps: float = 1e-12) -> torch.Tensor:
    """``(A,)`` per-asset ``median |y - median(y)| + mad_eps`` over observed training rows
    (the z-space scale; unscaled MAD, no 1.4826). NaN for an asset with no observed row."""
    y = y_train.to(_DTYPE)
    return nan_median((y - nan_median(y)).abs()) + mad_eps


def fit_whitener(
    y_train: torch.Tensor, mad_eps: float = 1e-12, eps: float = 1e-5, var_floor: float = 0.0
) -> Whitener:
    """Fit the energy-score transform on one split's training targets.

    Parameters
    ----------
    y_train
        ``(T, A)`` training targets, NaN where missing.
    mad_eps
        Added to each asset's MAD (``scale = MAD + mad_eps``); the MAD uses all observed
        training rows of the asset: ``median |y - median(y)|`` (unscaled, no 1.4826).
    eps
        Jitter added to the covariance diagonal before the Cholesky factorization.
    var_floor
        Diagonal add before ``eps``.

    Returns
    -------
    Whitener
        ``cov`` is the sample covariance (``ddof=1``) of ``z`` on the ``n_eff`` fully
        observed rows, ``(1 - lam) cov + lam diag(cov) + (var_floor + eps) I = L L^T`` and
        ``W = L^{-1}``.

    Raises
    ------
    DataError
        An asset has no observed training target, or fewer than 2 training weeks are fully
        observed (the covariance is undefined).
    """
    y = y_train.to(_DTYPE)
    observed = ~torch.isnan(y)
    empty = torch.nonzero(~observed.any(dim=0)).flatten().tolist()
    if empty:
        raise DataError(
            "energy score: no observed training target for asset column(s) "
            f"{empty}; every asset needs training history"
        )
    scale = mad_scale(y, mad_eps)
    full_rows = observed.all(dim=1)
    n_eff = int(full_rows.sum())
    if n_eff < 2:
        raise DataError(
            f"energy score: {n_eff} fully observed training week(s); the covariance of the "
            "whitener needs at least 2"
        )
    cov = torch.cov((y[full_rows] / scale).T).reshape(y.shape[1], y.shape[1])
    lam = shrinkage(n_eff)
    shrunk = (1.0 - lam) * cov + lam * torch.diag(torch.diagonal(cov))
    shrunk = shrunk + (var_floor + eps) * torch.eye(y.shape[1], dtype=_DTYPE)
    chol = torch.linalg.cholesky(shrunk)
    identity = torch.eye(y.shape[1], dtype=_DTYPE)
    W = torch.linalg.solve_triangular(chol, identity, upper=False)
    return Whitener(scale=scale, W=W, lam=lam, n_eff=n_eff)


def to_z(x: torch.Tensor, w: Whitener) -> torch.Tensor:
    """MAD-scaled ``(..., A)``: ``x / scale`` (NaN stays NaN)."""
    return x.to(_DTYPE) / w.scale


def whiten(z: torch.Tensor, w: Whitener) -> torch.Tensor:
    """Whitened ``(..., A)``: ``z W^T`` (a NaN in a row spreads to that row's later entries)."""
    return z.to(_DTYPE) @ w.W.T


def _check_inputs(samples: torch.Tensor, truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if samples.ndim != 3 or truth.ndim != 2 or tuple(samples.shape[1:]) != tuple(truth.shape):
        raise ValueError(
            f"samples must be (S, T, A) and truth (T, A); got {tuple(samples.shape)} and "
            f"{tuple(truth.shape)}"
        )
    if samples.shape[0] < 1:
        raise ValueError("samples: need at least one draw (S >= 1)")
    x = samples.to(_DTYPE)
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise ValueError(f"samples: {bad} non-finite predictive draw value(s)")
    return x, truth.to(_DTYPE)


def _weeks_per_block(n_samples: int, n_weeks: int, budget: int) -> int:
    per_week = _PAIRWISE_COPIES * n_samples * n_samples * torch.finfo(_DTYPE).bits // 8
    return max(1, min(n_weeks, _MAX_WEEKS_PER_BLOCK, budget // max(per_week, 1)))


def _distance_sum(block: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """``sum_{s in [start, stop), s'} ||x_s - x_s'||`` per week of a ``(B, S, A)`` block."""
    dist = torch.cdist(block[:, start:stop], block)
    # The fast path leaves ~sqrt(machine eps)|x| instead of 0 on the self-distances: drop them.
    return dist.sum(dim=(1, 2)) - dist.diagonal(offset=start, dim1=1, dim2=2).sum(dim=-1)


def _pairwise_sum(block: torch.Tensor, budget: int) -> torch.Tensor:
    """``sum_{s,s'} ||x_s - x_s'||`` per week of a ``(B, S, A)`` block, rows chunked if one
    week's ``S x S`` matrices exceed the budget."""
    n_samples = int(block.shape[1])
    # cdist's fast path expands ||x - x'||^2 = |x|^2 + |x'|^2 - 2 x.x'; centring each week
    # (distances are shift-invariant) keeps |x|^2 small and the cancellation error with it.
    block = block - block.mean(dim=1, keepdim=True)
    rows = max(1, budget // (_PAIRWISE_COPIES * n_samples * 8))
    if rows >= n_samples:
        return _distance_sum(block, 0, n_samples)
    total = torch.zeros(block.shape[0], dtype=_DTYPE)
    for start in range(0, n_samples, rows):  # only for S too large for one S x S matrix
        total += _distance_sum(block, start, start + rows)
    return total


def energy_score_per_week(
    samples: torch.Tensor, truth: torch.Tensor, memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET
) -> torch.Tensor:
    """Energy score of each week (already whitened inputs); lower is better.

    Parameters
    ----------
    samples
        ``(S, T, A)`` predictive draws ``u_s``.
    truth
        ``(T, A)`` realized ``u``, NaN where missing.
    memory_budget_bytes
        Bound on the pairwise term's working memory: weeks are processed in blocks whose
        ``S x S`` distance matrices fit it (no ``S x S x A`` tensor is ever built).

    Returns
    -------
    torch.Tensor
        ``(T,)`` float64 ``ES_t = mean_s ||u_s - u|| - 1/(2 S^2) sum_{s,s'} ||u_s - u_s'||``;
        NaN for a week with any missing truth entry.
    """
    x, y = _check_inputs(samples, truth)
    n_samples, n_weeks = int(x.shape[0]), int(x.shape[1])
    step = _weeks_per_block(n_samples, n_weeks, memory_budget_bytes)
    out = torch.empty(n_weeks, dtype=_DTYPE)
    for start in range(0, n_weeks, step):  # blocks of weeks, not single weeks
        block = x[:, start : start + step].transpose(0, 1)  # (B, S, A)
        truth_block = y[start : start + step].unsqueeze(1)  # (B, 1, A)
        term1 = torch.linalg.vector_norm(block - truth_block, dim=-1).mean(dim=1)
        term2 = _pairwise_sum(block, memory_budget_bytes) / (2.0 * n_samples * n_samples)
        out[start : start + step] = term1 - term2
    # explicit: a partial week is dropped whether or not the caller whitened the NaN through
    return torch.where(torch.isnan(y).any(dim=1), torch.nan, out)


@dataclass(frozen=True, eq=False)
class SortedSummaries:
    """Per-asset summaries from one sort of the samples.

    Attributes
    ----------
    crps
        ``(T, A)`` CRPS (energy form with ``1/(2 S^2)``), NaN where truth is missing.
    levels
        The quantile levels asked for.
    quantiles
        ``(len(levels), T, A)`` sample quantiles, linear interpolation (``numpy`` default).
    pit
        ``(T, A)`` fraction of draws ``<= truth``, NaN where truth is missing.
    """

    crps: torch.Tensor
    levels: tuple[float, ...]
    quantiles: torch.Tensor
    pit: torch.Tensor


def _sorted_draws(samples: torch.Tensor) -> torch.Tensor:
    """``(T, A, S)`` draws sorted along the last axis (contiguous for ``searchsorted``)."""
    return torch.sort(samples.permute(1, 2, 0).contiguous(), dim=-1).values


def _check_levels(levels: Sequence[float], name: str) -> tuple[float, ...]:
    values = tuple(float(q) for q in levels)
    bad = [q for q in values if not 0.0 <= q <= 1.0]
    if bad:
        raise ValueError(f"{name}: {bad} outside [0, 1]")
    return values


def _quantiles(ordered: torch.Tensor, levels: tuple[float, ...]) -> torch.Tensor:
    n_samples = int(ordered.shape[-1])
    pos = torch.tensor(levels, dtype=_DTYPE) * (n_samples - 1)
    lo = pos.floor().long()
    hi = pos.ceil().long()
    frac = (pos - lo).view(-1, 1, 1)
    low, high = ordered[..., lo], ordered[..., hi]  # (T, A, Q)
    return (low + (high - low) * frac.permute(1, 2, 0)).permute(2, 0, 1)


def _crps_sorted(ordered: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    n_samples = int(ordered.shape[-1])
    term1 = (ordered - truth.unsqueeze(-1)).abs().mean(dim=-1)
    # sum_{s,s'} |x_s - x_s'| = 2 sum_i (2i - S - 1) x_(i) for sorted x, i = 1..S
    weights = 2.0 * torch.arange(1, n_samples + 1, dtype=_DTYPE) - n_samples - 1
    term2 = (ordered * weights).sum(dim=-1) / (n_samples * n_samples)
    return term1 - term2


def _pit_sorted(
    ordered: torch.Tensor, truth: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    missing = torch.isnan(truth)
    values = torch.where(missing, 0.0, truth).unsqueeze(-1).contiguous()
    n_leq = torch.searchsorted(ordered, values, right=True)[..., 0].to(_DTYPE)
    if generator is not None:
        n_lt = torch.searchsorted(ordered, values, right=False)[..., 0].to(_DTYPE)
        u = torch.rand(truth.shape, generator=generator, dtype=_DTYPE)
        n_leq = n_lt + u * (n_leq - n_lt)
    return torch.where(missing, torch.nan, n_leq / ordered.shape[-1])


def sorted_summaries(
    samples: torch.Tensor,
    truth: torch.Tensor,
    quantiles: Sequence[float] = (),
    generator: torch.Generator | None = None,
) -> SortedSummaries:
    """CRPS, sample quantiles and PIT values from one sort of the draws.

    Parameters
    ----------
    samples
        ``(S, T, A)`` predictive draws.
    truth
        ``(T, A)`` realized values, NaN where missing.
    quantiles
        Levels in ``[0, 1]``.
    generator
        If given, PIT values are randomized within ties (uniform between the fraction of
        draws ``< truth`` and ``<= truth``); otherwise PIT is the fraction ``<= truth``.
    """
    x, y = _check_inputs(samples, truth)
    levels = _check_levels(quantiles, "quantiles")
    ordered = _sorted_draws(x)
    return SortedSummaries(
        crps=_crps_sorted(ordered, y),
        levels=levels,
        quantiles=_quantiles(ordered, levels),
        pit=_pit_sorted(ordered, y, generator),
    )


def crps_per_week(samples: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """``(T, A)`` CRPS ``mean_s |x_s - y| - 1/(2 S^2) sum_{s,s'} |x_s - x_s'|`` per entry;
    ``O(S log S)`` via the sorted draws; NaN where truth is missing."""
    x, y = _check_inputs(samples, truth)
    return _crps_sorted(_sorted_draws(x), y)


def pinball(truth: torch.Tensor, q_hat: torch.Tensor, alpha: float) -> torch.Tensor:
    """Quantile (pinball) loss ``(alpha - 1{e < 0}) e`` with ``e = truth - q_hat``."""
    e = truth - q_hat
    return (alpha - (e < 0).to(_DTYPE)) * e


def quantile_loss_per_week(
    samples: torch.Tensor, truth: torch.Tensor, alpha: float
) -> torch.Tensor:
    """``(T, A)`` pinball loss of the ``alpha`` sample quantile; NaN where truth is missing."""
    x, y = _check_inputs(samples, truth)
    (level,) = _check_levels([alpha], "alpha")
    q_hat = _quantiles(_sorted_draws(x), (level,))[0]
    return pinball(y, q_hat, level)


def pit_values(
    samples: torch.Tensor, truth: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``(T, A)`` fraction of draws ``<= truth`` (randomized within ties if ``generator``);
    NaN where truth is missing."""
    x, y = _check_inputs(samples, truth)
    return _pit_sorted(_sorted_draws(x), y, generator)


def central_coverage(
    samples: torch.Tensor, truth: torch.Tensor, levels: Sequence[float]
) -> torch.Tensor:
    """``(len(levels), T, A)``: truth inside the central interval of each nominal level.

    The interval of level ``c`` spans the sample quantiles ``(1 - c)/2`` and ``(1 + c)/2``
    (closed). Entries with missing truth are False: mask them with ``~isnan(truth)``.
    """
    x, y = _check_inputs(samples, truth)
    nominal = _check_levels(levels, "levels")
    bounds = [(1.0 - c) / 2.0 for c in nominal] + [(1.0 + c) / 2.0 for c in nominal]
    q = _quantiles(_sorted_draws(x), tuple(bounds))
    lower, upper = q[: len(nominal)], q[len(nominal) :]
    return (lower <= y) & (y <= upper)

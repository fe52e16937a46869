"""Post-tune model selection (``simulation/best_model.md``, nestedcv.md section 10).

With ``model_selection.enable`` the inner loop records every candidate's predictive draws on
every inner split as a *split payload* (``inner/outer_<k>/candidates/
candidate_<id>_split_<id>.pt``: MAD-scaled ``z_true`` ``(T, A)`` and ``z_samples``
``(S, T, A)``, the split's ``scale`` and whitener ``W``, the test rows, their group ids and
timestamps). After the fold's inner loop the candidate for the outer walk-forward is chosen
from those payloads instead of by the inner objective:

1. energy score (ES) per test week in whitened space (``u = z W^T``) -> mean per
   ``(split, group)`` occurrence -> mean over the splits that tested the group (this
   collapses the CPCV overlap) -> median over groups; its standard error is the standard
   deviation (ddof 1) of that median over ``bootstrap.num_samples`` resamples of the groups;
2. the ES band: every candidate within ``es_band.c`` standard errors of the best ES, topped
   up to ``min_keep`` and cut to ``max_keep`` by ES;
3. CRPS and the tail quantile loss at ``scoring.spec.alpha_tail`` (z-space, aggregated like
   ES, then the median over assets of the mean over groups), for the band's survivors only;
   the smallest sum of their two ranks wins; a tie goes to the simplest model (the model's
   declared ``complexity``), then to the best ES, then to a seeded random draw. When a tied
   candidate declares no complexity, the seeded random draw stands in for it (the spec's
   stub) and the choice is recorded as ``random``.

The global selection runs the same band, ranks and tie-break once on each candidate's median
over outer folds (ES, its SE, CRPS, QL, complexity; folds where a value is NaN are skipped,
so CRPS/QL stay NaN only for a candidate that never survived a band).

Every score here is lower-is-better. Artifacts: ``inner/outer_<k>/postprocessing/
{metadata,metrics,selection}.json`` per fold and ``outer/{metrics,selection,best_config}.json``.
Randomness (design.md): the bootstrap and the tie-break draws derive from ``cv.seed``, the
fold and ``model_selection.bootstrap.seed`` / ``model_selection.complexity.seed``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from algo_trader.application.simulation.inner_objective import (
    OnPrediction,
    PreparedSplit,
    Stream,
    derive_seed,
)
from algo_trader.application.simulation.scoring import (
    Whitener,
    energy_score_per_week,
    fit_whitener,
    nan_median,
    pinball,
    sorted_summaries,
    to_z,
)
from algo_trader.domain.errors import DataError
from algo_trader.domain.simulation.config import (
    ESBandConfig,
    SimulationConfig,
    with_overrides,
)
from algo_trader.infrastructure.data.atomic import load_tensor, save_tensor, write_json

PAYLOAD_FOLDER = "candidates"
POSTPROCESSING_FOLDER = "postprocessing"
SE_DDOF = 1
"""Delta degrees of freedom of the bootstrap standard error."""
_NAN = float("nan")


def payload_path(fold_dir: Path, candidate_id: str, split_id: int) -> Path:
    """``<fold_dir>/candidates/candidate_<id>_split_<id>.pt``."""
    return fold_dir / PAYLOAD_FOLDER / f"candidate_{candidate_id}_split_{split_id}.pt"


# ------------------------------------------------------------------- split payloads


@dataclass(frozen=True, eq=False)
class SplitTarget:
    """The truth side of one inner split, shared by every candidate.

    Attributes
    ----------
    whitener
        Fitted on the split's training targets only.
    z_true
        ``(T, A)`` MAD-scaled test targets, NaN where missing.
    test_idx, test_groups, timestamps
        ``(T,)`` panel rows, their group ids and their timestamps (int64 ns UTC).
    """

    split_id: int
    whitener: Whitener
    z_true: torch.Tensor
    test_idx: np.ndarray
    test_groups: np.ndarray
    timestamps: np.ndarray


def split_targets(
    prepared: Sequence[PreparedSplit],
    group_labels: np.ndarray,
    timestamps: np.ndarray,
    config: SimulationConfig,
    fold_k: int,
) -> dict[int, SplitTarget]:
    """Fit each split's whitener on its training targets and scale its test targets.

    Raises
    ------
    DataError
        A split's training targets cannot define the whitener (an asset never observed,
        fewer than two fully observed weeks); the message names the fold and split.
    """
    spec = config.scoring.spec
    out: dict[int, SplitTarget] = {}
    for item in prepared:  # one small (A x A) factorization per split
        sid = item.split.split_id
        try:
            whitener = fit_whitener(item.y_train, spec.mad_eps, spec.eps, spec.var_floor)
        except DataError as err:
            raise DataError(
                f"model selection, outer fold {fold_k}, inner split {sid}: {err}"
            ) from err
        idx = item.split.test_idx
        out[sid] = SplitTarget(
            split_id=sid,
            whitener=whitener,
            z_true=to_z(item.y_test, whitener),
            test_idx=np.array(idx, dtype=np.int64),
            test_groups=np.array(group_labels[idx], dtype=np.int64),
            timestamps=np.array(timestamps[idx], dtype=np.int64),
        )
    return out


def payload_recorder(fold_dir: Path, targets: Mapping[int, SplitTarget]) -> OnPrediction:
    """The inner objective's ``on_prediction``: write one candidate's split payload.

    Non-finite draws raise ``ValueError``, which the inner loop treats as the trial's
    failure (``tuning.on_trial_error``), so a payload always holds finite draws.
    """

    def record(split_id: int, candidate_id: str, samples: torch.Tensor) -> None:
        target = targets[split_id]
        if samples.ndim != 3 or tuple(samples.shape[1:]) != tuple(target.z_true.shape):
            raise ValueError(
                f"split {split_id}: predictive samples {tuple(samples.shape)}, expected "
                f"(S, {', '.join(map(str, target.z_true.shape))})"
            )
        z = to_z(samples, target.whitener)
        bad = int((~torch.isfinite(z)).sum())
        if bad:
            raise ValueError(f"split {split_id}: {bad} non-finite predictive draw value(s)")
        payload = {
            "candidate_id": candidate_id,
            "split_id": split_id,
            "z_true": target.z_true,
            "z_samples": z.contiguous(),
            "scale": target.whitener.scale,
            "W": target.whitener.W,
            "test_idx": torch.from_numpy(target.test_idx),
            "test_groups": torch.from_numpy(target.test_groups),
            "timestamps": torch.from_numpy(target.timestamps),
        }
        save_tensor(payload_path(fold_dir, candidate_id, split_id), payload)

    return record


@dataclass(frozen=True, eq=False)
class FoldPayloads:
    """One fold's split payloads stacked along the concatenated test weeks ``N``.

    Attributes
    ----------
    z_true
        ``(N, A)``.
    z_samples
        ``(M, S, N, A)``; zero where ``present`` is False.
    present
        ``(M, N)``: the candidate has a payload for that week's split (False: its trial
        failed there).
    W
        ``(K, A, A)`` whitener of each loaded split.
    week_split
        ``(N,)`` position of each week's split in ``split_ids``.
    week_group
        ``(N,)`` group id of each week.
    """

    candidate_ids: list[str]
    split_ids: list[int]
    z_true: torch.Tensor
    z_samples: torch.Tensor
    present: torch.Tensor
    W: torch.Tensor
    week_split: np.ndarray
    week_group: np.ndarray


def load_fold_payloads(
    fold_dir: Path, candidate_ids: Sequence[str], split_ids: Sequence[int]
) -> FoldPayloads:
    """Stack the payloads of ``fold_dir`` (splits no candidate has a payload for are left out).

    Raises
    ------
    DataError
        No payload at all, or payloads with different numbers of draws.
    """
    per_split: list[dict[str, dict[str, Any]]] = []
    kept: list[int] = []
    for sid in split_ids:  # files: one read per (split, candidate)
        paths = {cid: payload_path(fold_dir, cid, sid) for cid in candidate_ids}
        loaded = {cid: load_tensor(p) for cid, p in paths.items() if p.exists()}
        if loaded:
            per_split.append(loaded)
            kept.append(sid)
    if not per_split:
        raise DataError("no split payload: every trial failed", path=fold_dir / PAYLOAD_FOLDER)
    draws = {int(p["z_samples"].shape[0]) for split in per_split for p in split.values()}
    if len(draws) != 1:
        raise DataError(
            f"split payloads hold different numbers of draws {sorted(draws)}",
            path=fold_dir / PAYLOAD_FOLDER,
        )
    firsts = [next(iter(split.values())) for split in per_split]
    lengths = [int(p["z_true"].shape[0]) for p in firsts]
    n_weeks, n_assets = sum(lengths), int(firsts[0]["z_true"].shape[1])
    samples = torch.zeros(len(candidate_ids), draws.pop(), n_weeks, n_assets, dtype=torch.float64)
    present = torch.zeros(len(candidate_ids), n_weeks, dtype=torch.bool)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    for pos, split in enumerate(per_split):
        block = slice(int(starts[pos]), int(starts[pos + 1]))
        for m, cid in enumerate(candidate_ids):
            if cid in split:
                samples[m, :, block] = split[cid]["z_samples"]
                present[m, block] = True
    return FoldPayloads(
        candidate_ids=list(candidate_ids),
        split_ids=kept,
        z_true=torch.cat([p["z_true"] for p in firsts]),
        z_samples=samples,
        present=present,
        W=torch.stack([p["W"] for p in firsts]),
        week_split=np.repeat(np.arange(len(kept)), lengths),
        week_group=torch.cat([p["test_groups"] for p in firsts]).numpy(),
    )


# ------------------------------------------------------------------- aggregation


@dataclass(frozen=True, eq=False)
class Occurrences:
    """Which ``(split, group)`` occurrence each test week belongs to.

    Attributes
    ----------
    week_occ
        ``(N,)`` occurrence position of each week.
    occ_split, occ_group
        ``(O,)`` split position and group position of each occurrence.
    groups
        ``(G,)`` the distinct group ids, increasing.
    """

    week_occ: torch.Tensor
    occ_split: np.ndarray
    occ_group: torch.Tensor
    groups: np.ndarray


def occurrences(week_split: np.ndarray, week_group: np.ndarray) -> Occurrences:
    """Index the ``(split, group)`` pairs of the test weeks."""
    pairs = np.stack([np.asarray(week_split), np.asarray(week_group)], axis=1)
    unique, week_occ = np.unique(pairs, axis=0, return_inverse=True)
    groups, occ_group = np.unique(unique[:, 1], return_inverse=True)
    return Occurrences(
        week_occ=torch.from_numpy(week_occ.reshape(-1)),
        occ_split=unique[:, 0],
        occ_group=torch.from_numpy(occ_group.reshape(-1)),
        groups=groups,
    )


def group_means(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """NaN-aware mean of ``values`` ``(..., N)`` over the entries sharing ``index`` ``(N,)``.

    Returns ``(..., size)``; NaN where an index has no finite entry.
    """
    finite = ~torch.isnan(values)
    shape = (*values.shape[:-1], size)
    sums = values.new_zeros(shape).index_add_(-1, index, torch.where(finite, values, 0.0))
    counts = values.new_zeros(shape).index_add_(-1, index, finite.to(values.dtype))
    return torch.where(counts > 0, sums / counts.clamp(min=1), _NAN)


def nan_mean_last(values: torch.Tensor) -> torch.Tensor:
    """NaN-aware mean over the last axis (NaN where no value is finite)."""
    index = torch.zeros(int(values.shape[-1]), dtype=torch.long)
    return group_means(values, index, 1)[..., 0]


def collapse_to_groups(week_values: torch.Tensor, occ: Occurrences) -> torch.Tensor:
    """``(..., N)`` per-week values -> ``(..., G)`` per group.

    Mean over each occurrence's weeks (best_model.md step 1.3), then over the splits that
    tested the group (step 1.4: collapses the CPCV overlap, so a group tested by many
    splits weighs as much as one tested once).
    """
    per_occ = group_means(week_values, occ.week_occ, len(occ.occ_split))
    return group_means(per_occ, occ.occ_group, len(occ.groups))


def median_last(values: torch.Tensor) -> torch.Tensor:
    """NaN-aware median over the last axis (mean of the two middle values)."""
    flat = values.reshape(-1, values.shape[-1]).T
    return nan_median(flat).reshape(values.shape[:-1])


def nan_std(values: torch.Tensor, ddof: int) -> torch.Tensor:
    """NaN-aware standard deviation over the last axis; NaN with ``ddof`` or fewer values."""
    finite = ~torch.isnan(values)
    count = finite.sum(dim=-1)
    mean = torch.where(finite, values, 0.0).sum(dim=-1) / count.clamp(min=1)
    dev = torch.where(finite, values - mean.unsqueeze(-1), 0.0)
    var = (dev**2).sum(dim=-1) / (count - ddof).clamp(min=1)
    return torch.where(count > ddof, var.sqrt(), _NAN)


def bootstrap_se(es_group: torch.Tensor, num_samples: int, seed: int) -> torch.Tensor:
    """Group-bootstrap standard error of ``median_g es_group[m, g]``.

    All candidates share the same ``num_samples`` resamples of the ``G`` groups (drawn with
    replacement by ``numpy.random.default_rng(seed)``), so their SEs are comparable.
    """
    n_groups = int(es_group.shape[-1])
    rng = np.random.default_rng(seed)
    idx = torch.from_numpy(rng.integers(0, n_groups, size=(num_samples, n_groups)))
    medians = median_last(es_group[:, idx])  # (M, B, G) -> (M, B)
    return nan_std(medians, SE_DDOF)


def energy_scores(payloads: FoldPayloads, memory_budget_bytes: int) -> torch.Tensor:
    """``(M, N)`` weekly ES in each split's whitened space; NaN where not scorable.

    All candidates and weeks go through one call of the kernel (weeks of every candidate
    side by side); NaN where the candidate has no payload or the week misses a target.
    """
    W_week = payloads.W[torch.from_numpy(payloads.week_split)]  # (N, A, A)
    u_true = torch.einsum("na,nba->nb", payloads.z_true, W_week)
    u_samples = torch.einsum("msna,nba->smnb", payloads.z_samples, W_week)
    n_cand, n_draws, n_weeks, n_assets = payloads.z_samples.shape
    flat = u_samples.reshape(n_draws, n_cand * n_weeks, n_assets)
    es = energy_score_per_week(flat, u_true.repeat(n_cand, 1), memory_budget_bytes)
    return torch.where(payloads.present, es.reshape(n_cand, n_weeks), _NAN)


def tail_metrics(
    payloads: FoldPayloads, occ: Occurrences, survivors: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(M,)`` CRPS and tail quantile loss (z-space) of the ``survivors``; NaN for the rest.

    Per model: ``median_a mean_g`` of the per-group values, each aggregated from weeks like
    ES. One sort of the survivors' draws serves both.
    """
    crps = np.full(len(payloads.candidate_ids), _NAN)
    ql = crps.copy()
    chosen = torch.from_numpy(np.flatnonzero(survivors))
    if chosen.numel() == 0:
        return crps, ql
    samples = payloads.z_samples[chosen]
    n_cand, n_draws, n_weeks, n_assets = samples.shape
    truth = payloads.z_true.repeat(n_cand, 1)
    flat = samples.permute(1, 0, 2, 3).reshape(n_draws, n_cand * n_weeks, n_assets)
    summary = sorted_summaries(flat, truth, quantiles=(alpha,))
    loss = pinball(truth, summary.quantiles[0], alpha)
    present = payloads.present[chosen].reshape(-1, 1)
    for out, values in ((crps, summary.crps), (ql, loss)):
        weekly = torch.where(present, values, _NAN).reshape(n_cand, n_weeks, n_assets)
        per_group = collapse_to_groups(weekly.transpose(1, 2), occ)  # (M_s, A, G)
        out[chosen.numpy()] = median_last(nan_mean_last(per_group)).numpy()
    return crps, ql


# ------------------------------------------------------------------ selection rule

TailMetrics = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""``survivors (M,) bool -> (crps, ql)`` ``(M,)`` each, NaN outside the survivors."""


@dataclass(frozen=True, eq=False)
class Band:
    """The ES band's survivor set.

    Attributes
    ----------
    survivors
        ``(M,)`` bool.
    best
        Position of the best (lowest) ES.
    threshold
        ``ES_best + c * SE_best``.
    rule
        ``band`` (the band as is), ``min_keep`` (topped up to ``min_keep`` by ES) or
        ``max_keep`` (cut to the ``max_keep`` best ES).
    """

    survivors: np.ndarray
    best: int
    threshold: float
    rule: str


def es_band(es: np.ndarray, se: np.ndarray, band: ESBandConfig) -> Band:
    """``{m : ES[m] <= ES_best + c SE_best}`` with the ``min_keep`` / ``max_keep`` guardrails.

    ``min_keep`` tops the set up with the next best ES (the spec's "empty" case is the set
    being smaller than ``min_keep``; the band always holds the best unless its SE is NaN);
    ``max_keep`` keeps the best ES. Candidates with a NaN ES never survive. Ties in ES keep
    candidate order.

    Raises
    ------
    ValueError
        No candidate has a finite ES.
    """
    finite = np.isfinite(es)
    if not finite.any():
        raise ValueError("no candidate has a finite energy score")
    order = np.argsort(np.where(finite, es, np.inf), kind="stable")
    best = int(order[0])
    threshold = float(es[best] + band.c * se[best])
    inside = finite & (es <= threshold)
    n_inside, n_finite = int(inside.sum()), int(finite.sum())
    survivors = np.zeros(es.shape, dtype=bool)
    if n_inside < band.min_keep:
        survivors[order[: min(band.min_keep, n_finite)]] = True
        return Band(survivors, best, threshold, "min_keep")
    if n_inside > band.max_keep:
        survivors[order[: band.max_keep]] = True
        return Band(survivors, best, threshold, "max_keep")
    return Band(inside, best, threshold, "band")


def min_ranks(values: np.ndarray) -> np.ndarray:
    """Competition ranks, 1 = smallest; ties share the best rank; NaN ranks after numbers."""
    filled = np.where(np.isnan(values), np.inf, values)
    return (np.searchsorted(np.sort(filled), filled, side="left") + 1).astype(np.float64)


@dataclass(frozen=True, eq=False)
class Pick:
    """The secondary ranking and the tie-break among the band's survivors.

    Attributes
    ----------
    rank_crps, rank_ql, secondary
        ``(M,)`` ranks among the survivors and their sum; NaN for non-survivors.
    finalists
        ``(M,)`` bool: survivors with the smallest rank sum.
    tie_rule
        ``complexity`` (every finalist declares one: key complexity, ES, random draw) or
        ``random`` (key: the seeded random draw, then ES).
    order
        Finalist positions sorted by the tie-break key; ``order[0]`` wins.
    """

    rank_crps: np.ndarray
    rank_ql: np.ndarray
    secondary: np.ndarray
    finalists: np.ndarray
    tie_rule: str
    order: list[int]

    @property
    def winner(self) -> int:
        """Position of the selected candidate."""
        return self.order[0]


def final_pick(
    es: np.ndarray,
    crps: np.ndarray,
    ql: np.ndarray,
    survivors: np.ndarray,
    complexity: np.ndarray,
    draws: np.ndarray,
) -> Pick:
    """Rank-sum of CRPS and QL among ``survivors``, then the complexity tie-break.

    Parameters
    ----------
    es, crps, ql
        ``(M,)`` lower-is-better scores (CRPS/QL only read at the survivors).
    survivors
        ``(M,)`` bool, at least one True.
    complexity
        ``(M,)`` declared complexity; NaN = the model declares none.
    draws
        ``(M,)`` seeded uniform draws, one per candidate.
    """
    idx = np.flatnonzero(survivors)
    rank_crps = np.full(es.shape, _NAN)
    rank_ql = rank_crps.copy()
    rank_crps[idx] = min_ranks(crps[idx])
    rank_ql[idx] = min_ranks(ql[idx])
    secondary = rank_crps + rank_ql
    finalists = survivors & (secondary == np.nanmin(secondary))
    tied = np.flatnonzero(finalists)
    if np.isfinite(complexity[tied]).all():
        # np.lexsort sorts by its last key first: complexity, then ES, then the draw.
        order, rule = tied[np.lexsort((draws[tied], es[tied], complexity[tied]))], "complexity"
    else:
        order, rule = tied[np.lexsort((es[tied], draws[tied]))], "random"
    return Pick(rank_crps, rank_ql, secondary, finalists, rule, [int(i) for i in order])


@dataclass(frozen=True, eq=False)
class SelectionTable:
    """One selection (an outer fold, or the global one): per-candidate metrics and choice."""

    candidate_ids: list[str]
    es: np.ndarray
    es_se: np.ndarray
    crps: np.ndarray
    ql: np.ndarray
    complexity: np.ndarray
    draws: np.ndarray
    band: Band
    pick: Pick

    @property
    def winner(self) -> str:
        """The selected candidate id."""
        return self.candidate_ids[self.pick.winner]

    def _ids(self, mask: np.ndarray) -> list[str]:
        return [self.candidate_ids[i] for i in np.flatnonzero(mask)]

    def metrics_payload(self) -> dict[str, Any]:
        """Per candidate: ES, SE, CRPS, QL (NaN/null outside the band), complexity, draw."""
        rows = {
            cid: {
                "es": float(self.es[m]),
                "es_se": float(self.es_se[m]),
                "crps": float(self.crps[m]),
                "ql": float(self.ql[m]),
                "complexity": float(self.complexity[m]),
                "tie_break_draw": float(self.draws[m]),
                "survivor_es": bool(self.band.survivors[m]),
            }
            for m, cid in enumerate(self.candidate_ids)
        }
        return {"lower_is_better": True, "candidates": rows}

    def selection_payload(self) -> dict[str, Any]:
        """The band, the ranks, the finalists, the tie-break and the pick."""
        best, pick = self.band.best, self.pick
        ranks = {
            self.candidate_ids[m]: {
                "crps": float(pick.rank_crps[m]),
                "ql": float(pick.rank_ql[m]),
                "sum": float(pick.secondary[m]),
            }
            for m in np.flatnonzero(self.band.survivors)
        }
        return {
            "es_best": {
                "candidate_id": self.candidate_ids[best],
                "es": float(self.es[best]),
                "es_se": float(self.es_se[best]),
            },
            "es_threshold": self.band.threshold,
            "survivors_es": self._ids(self.band.survivors),
            "band_rule": self.band.rule,
            "ranks": ranks,
            "finalists": self._ids(pick.finalists),
            "tie_break": {
                "rule": pick.tie_rule,
                "order": [self.candidate_ids[i] for i in pick.order],
            },
            "selected": self.winner,
        }


def select(
    candidate_ids: Sequence[str],
    es: np.ndarray,
    es_se: np.ndarray,
    tail: TailMetrics,
    complexity: np.ndarray,
    draws: np.ndarray,
    band_config: ESBandConfig,
) -> SelectionTable:
    """Band, then ``tail(survivors) -> (crps, ql)``, then the rank-sum pick.

    ``tail`` computes CRPS and QL for the survivors only (NaN elsewhere), so the expensive
    per-asset scores are never computed for candidates the band drops.
    """
    band = es_band(es, es_se, band_config)
    crps, ql = tail(band.survivors)
    pick = final_pick(es, crps, ql, band.survivors, complexity, draws)
    return SelectionTable(list(candidate_ids), es, es_se, crps, ql, complexity, draws, band, pick)


# ------------------------------------------------------------------ fold and global


def tie_break_draws(n_candidates: int, seed: int) -> np.ndarray:
    """One seeded uniform draw per candidate, in candidate order."""
    return np.random.default_rng(seed).random(n_candidates)


@dataclass(frozen=True, eq=False)
class FoldSelection:
    """One outer fold's post-tune selection: its table, the per-group ES ``(M, G)`` of the
    ``groups`` and the seeds of the bootstrap and the tie-break draws."""

    k: int
    table: SelectionTable
    es_group: np.ndarray
    groups: np.ndarray
    seeds: dict[str, int]


def select_fold(
    fold_dir: Path,
    fold_k: int,
    candidate_ids: Sequence[str],
    targets: Mapping[int, SplitTarget],
    complexity: Mapping[str, float | None],
    config: SimulationConfig,
    complexity_source: str,
) -> FoldSelection:
    """Select the fold's candidate from its split payloads and write ``postprocessing/``.

    Parameters
    ----------
    fold_dir
        ``inner/outer_<k>`` (the payloads are in its ``candidates/``).
    fold_k
        The outer fold.
    candidate_ids
        Every candidate, in candidate order.
    targets
        The fold's split targets (their ids are the splits read).
    complexity
        Declared complexity per candidate; absent or None = none declared.
    config
        The run's config.
    complexity_source
        Where ``complexity`` comes from (recorded in ``metadata.json``).

    Raises
    ------
    DataError
        No payload, or no candidate with a finite ES (every test week misses a target).
    """
    cfg = config.model_selection
    spec = config.scoring.spec
    payloads = load_fold_payloads(fold_dir, candidate_ids, sorted(targets))
    occ = occurrences(payloads.week_split, payloads.week_group)
    es_week = energy_scores(payloads, spec.memory_budget_mb * 1024**2)
    es_group = collapse_to_groups(es_week, occ)
    boot_seed = derive_seed(config.cv.seed, Stream.SELECTION_BOOTSTRAP, fold_k, cfg.bootstrap.seed)
    tie_seed = derive_seed(config.cv.seed, Stream.SELECTION_TIE_BREAK, fold_k, cfg.complexity.seed)
    declared = np.array([_as_float(complexity.get(c)) for c in candidate_ids])
    try:
        table = select(
            candidate_ids,
            median_last(es_group).numpy(),
            bootstrap_se(es_group, cfg.bootstrap.num_samples, boot_seed).numpy(),
            lambda keep: tail_metrics(payloads, occ, keep, spec.alpha_tail),
            declared,
            tie_break_draws(len(candidate_ids), tie_seed),
            cfg.es_band,
        )
    except ValueError as err:
        raise DataError(
            f"model selection, outer fold {fold_k}: {err} (every scored test week misses "
            "a target, or every trial failed)",
            path=fold_dir / PAYLOAD_FOLDER,
        ) from err
    out = fold_dir / POSTPROCESSING_FOLDER
    metadata = _fold_metadata(payloads, occ, targets, config, boot_seed, tie_seed)
    metadata["complexity_source"] = complexity_source
    write_json(out / "metadata.json", {"outer_fold": fold_k, **metadata})
    metrics = table.metrics_payload()
    for m, cid in enumerate(candidate_ids):
        metrics["candidates"][cid]["es_group"] = {
            str(g): float(v) for g, v in zip(occ.groups, es_group[m].tolist(), strict=True)
        }
    write_json(out / "metrics.json", {"outer_fold": fold_k, **metrics})
    write_json(out / "selection.json", {"outer_fold": fold_k, **table.selection_payload()})
    seeds = {"bootstrap": boot_seed, "tie_break": tie_seed}
    return FoldSelection(fold_k, table, es_group.numpy(), occ.groups, seeds)


def _as_float(value: float | None) -> float:
    return _NAN if value is None else float(value)


def _fold_metadata(
    payloads: FoldPayloads,
    occ: Occurrences,
    targets: Mapping[int, SplitTarget],
    config: SimulationConfig,
    boot_seed: int,
    tie_seed: int,
) -> dict[str, Any]:
    cfg = config.model_selection
    counts = np.bincount(occ.week_occ.numpy(), minlength=len(occ.occ_split))
    present = payloads.present.numpy()
    week_split = payloads.week_split
    return {
        "candidate_ids": payloads.candidate_ids,
        "split_ids": payloads.split_ids,
        "groups": [int(g) for g in occ.groups],
        "occurrences": [
            {
                "split_id": payloads.split_ids[int(s)],
                "group": int(occ.groups[int(g)]),
                "n_weeks": int(n),
            }
            for s, g, n in zip(occ.occ_split, occ.occ_group.tolist(), counts, strict=True)
        ],
        "splits": {
            str(sid): {
                "n_weeks": len(t.test_idx),
                "shrinkage": t.whitener.lam,
                "n_eff": t.whitener.n_eff,
            }
            for sid, t in targets.items()
        },
        "missing_payloads": {
            cid: [
                payloads.split_ids[k]
                for k in range(len(payloads.split_ids))
                if not present[m, week_split == k].any()
            ]
            for m, cid in enumerate(payloads.candidate_ids)
        },
        "num_draws": int(payloads.z_samples.shape[1]),
        "num_assets": int(payloads.z_true.shape[1]),
        "space": "z = y / (MAD(y_train) + mad_eps) per split; ES on u = z W^T",
        "alpha_tail": config.scoring.spec.alpha_tail,
        "es_band": cfg.es_band.model_dump(),
        "bootstrap": {
            "num_samples": cfg.bootstrap.num_samples,
            "seed": boot_seed,
            "std_ddof": SE_DDOF,
            "resampled": "groups, with replacement",
        },
        "tie_break_seed": tie_seed,
    }


def select_global(
    out_dir: Path,
    folds: Sequence[FoldSelection],
    candidates: Mapping[str, Mapping[str, Any]],
    config: SimulationConfig,
) -> SelectionTable:
    """The global selection on the median over folds; writes ``outer/{metrics,selection,
    best_config}.json``.

    Each candidate's ES, SE, CRPS, QL and complexity are medians over the folds where they
    are finite; a NaN CRPS/QL (never in a band) ranks after every number.
    """
    ids = list(candidates)
    fields = ("es", "es_se", "crps", "ql", "complexity")
    stacked = {
        name: torch.from_numpy(np.stack([getattr(f.table, name) for f in folds])) for name in fields
    }
    median = {name: nan_median(values).numpy() for name, values in stacked.items()}
    cfg = config.model_selection
    tie_seed = derive_seed(config.cv.seed, Stream.SELECTION_TIE_BREAK, cfg.complexity.seed)
    table = select(
        ids,
        median["es"],
        median["es_se"],
        lambda keep: (np.where(keep, median["crps"], _NAN), np.where(keep, median["ql"], _NAN)),
        median["complexity"],
        tie_break_draws(len(ids), tie_seed),
        cfg.es_band,
    )
    metrics = table.metrics_payload()
    for m, cid in enumerate(ids):
        metrics["candidates"][cid]["per_fold"] = {
            f"outer_{f.k}": {name: float(getattr(f.table, name)[m]) for name in fields}
            | {"survivor_es": bool(f.table.band.survivors[m])}
            for f in folds
        }
    aggregate = {"aggregate": "median over outer folds (NaN folds skipped)"}
    write_json(out_dir / "outer" / "metrics.json", {**aggregate, **metrics})
    fold_picks = {f"outer_{f.k}": f.table.winner for f in folds}
    selection = {
        **table.selection_payload(),
        "fold_selected": fold_picks,
        "tie_break_seed": tie_seed,
    }
    write_json(out_dir / "outer" / "selection.json", {**aggregate, **selection})
    params = dict(candidates[table.winner])
    write_json(
        out_dir / "outer" / "best_config.json",
        {
            "candidate_id": table.winner,
            "params": params,
            "config": with_overrides(config, params).model_dump(mode="json"),
        },
    )
    return table


def declared_complexity(
    config: SimulationConfig, num_assets: int, num_features: int
) -> float | None:
    """The configured model's ``complexity(num_assets, num_features)``; None if it declares none.

    The model is built from ``config.model.params`` through the model registry (issue 5's
    Pyro models declare their effective number of parameters).
    """
    # Imported here: the Pyro modeling package is only needed when a real model is selected.
    from algo_trader.pipeline.stages.modeling.registry import default_model_registry

    model = default_model_registry().get(config.model.model_name)(config.model.params)
    value = model.complexity(num_assets, num_features)
    return None if value is None else float(value)

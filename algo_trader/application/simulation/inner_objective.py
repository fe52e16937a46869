"""The inner objective: a candidate's score on the inner CPCV splits of one outer fold.

For every inner split, cleaning and scaling are fitted on the split's training rows only
(after purge and embargo) and applied to its test rows; then the hooks fit the model on the
training rows, predict the test rows and score the prediction. A candidate's objective is
the ``tuning.aggregate`` (mean or median) of its split scores; higher is better.

Preprocessing cannot be tuned (``tuning.space`` reaches only ``model`` and ``training``),
so each split is preprocessed once per fold and shared by every candidate.

Seeds come from :func:`derive_seed` (``shared/design.md``, "Randomness"): one config seed
(``cv.seed``) and the unit of work, so reordering or distributing the work never changes a
result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np
import torch

from algo_trader.application.simulation.cv_groups import InnerSplit
from algo_trader.application.simulation.hooks import HookConfig, Hooks
from algo_trader.application.simulation.panel import Panel
from algo_trader.application.simulation.preprocessing import (
    fit_cleaning,
    fit_scaling,
    transform,
)
from algo_trader.domain.errors import AlgoTraderError
from algo_trader.domain.simulation.config import SimulationConfig, with_overrides


class Stream(IntEnum):
    """Which kind of work a seed is for (first key of :func:`derive_seed`)."""

    INNER_FIT = 0
    INNER_CLEANING = 1
    OUTER_FIT = 2
    OUTER_CLEANING = 3
    PREBUILD = 4
    SELECTION_BOOTSTRAP = 5
    SELECTION_TIE_BREAK = 6
    DIAGNOSTICS = 7


def derive_seed(base: int, stream: Stream, *units: int) -> int:
    """The seed of one unit of work: a pure function of the config seed and the unit.

    Parameters
    ----------
    base
        The config seed (``cv.seed``).
    stream
        The kind of work.
    units
        Its coordinates, e.g. ``(outer fold k, split id, candidate index)``.

    Returns
    -------
    int
        A 32-bit seed from ``numpy.random.SeedSequence``: ``pyro.set_rng_seed`` seeds
        numpy's legacy generator too, which takes nothing wider.
    """
    sequence = np.random.SeedSequence(entropy=base, spawn_key=(int(stream), *units))
    return int(sequence.generate_state(1, dtype=np.uint32)[0])


@dataclass(frozen=True, eq=False)
class PreparedSplit:
    """One inner split's preprocessed tensors (fitted on its training rows only)."""

    split: InnerSplit
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    kept: list[str]
    dropped: dict[str, str]


def _targets(panel: Panel, idx: np.ndarray) -> torch.Tensor:
    y = np.where(panel.y_missing_mask[idx], np.nan, panel.y[idx])
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float64))


def preprocess_rows(
    panel: Panel,
    fit_idx: np.ndarray,
    apply_idx: Sequence[np.ndarray],
    config: SimulationConfig,
    seed: int,
) -> tuple[list[torch.Tensor], list[str], dict[str, str]]:
    """Fit cleaning and scaling on ``fit_idx`` and transform each index set of ``apply_idx``.

    Returns
    -------
    tuple
        The transformed ``(len(idx), A, F_out)`` tensors, the kept feature names and the
        dropped ones with their reasons.
    """
    cfg = config.preprocessing
    X = panel.X  # NaN exactly where missing (Panel invariant)
    cleaning = fit_cleaning(X, panel.features, fit_idx, cfg, seed)
    kept = cleaning.select(X)
    scaling = fit_scaling(
        kept,
        cleaning.kept,
        fit_idx,
        cfg,
        panel.assets,
        config.flags.use_feature_names_for_scaling,
    )
    out = [
        torch.from_numpy(np.ascontiguousarray(transform(kept[idx], scaling, cfg)[0]))
        for idx in apply_idx
    ]
    return out, list(scaling.output_names), dict(cleaning.dropped)


def prepare_split(
    panel: Panel, split: InnerSplit, config: SimulationConfig, fold_k: int
) -> PreparedSplit:
    """Preprocess one inner split: fitted on ``split.train_idx``, applied to train and test."""
    seed = derive_seed(config.cv.seed, Stream.INNER_CLEANING, fold_k, split.split_id)
    (X_train, X_test), kept, dropped = preprocess_rows(
        panel, split.train_idx, (split.train_idx, split.test_idx), config, seed
    )
    return PreparedSplit(
        split=split,
        X_train=X_train,
        y_train=_targets(panel, split.train_idx),
        X_test=X_test,
        y_test=_targets(panel, split.test_idx),
        kept=kept,
        dropped=dropped,
    )


@dataclass(frozen=True)
class CandidateScore:
    """A candidate's inner result in one outer fold.

    Attributes
    ----------
    objective
        ``tuning.aggregate`` of the finite split scores; NaN when there is none.
    mean, std
        Mean and standard deviation (ddof 0) of the finite split scores.
    scores
        Split id -> score (NaN: the split had no observed test target, or the trial failed
        under ``on_trial_error: skip``).
    seeds
        Split id -> the fit/predict seed used.
    error
        The failure message under ``on_trial_error: skip``, else None.
    """

    candidate_id: str
    params: dict[str, Any]
    objective: float
    mean: float
    std: float
    scores: dict[int, float]
    seeds: dict[int, int]
    error: str | None = None

    def payload(self) -> dict[str, Any]:
        """JSON-ready dict (NaN becomes null when written)."""
        return {
            "candidate_id": self.candidate_id,
            "params": self.params,
            "objective": self.objective,
            "mean": self.mean,
            "std": self.std,
            "n_finite": int(np.isfinite(list(self.scores.values())).sum()),
            "scores": {str(k): v for k, v in self.scores.items()},
            "seeds": {str(k): v for k, v in self.seeds.items()},
            "error": self.error,
        }


def _summary(scores: np.ndarray, aggregate: str) -> tuple[float, float, float]:
    finite = scores[np.isfinite(scores)]
    if finite.size == 0:
        return float("nan"), float("nan"), float("nan")
    center = float(np.median(finite)) if aggregate == "median" else float(finite.mean())
    return center, float(finite.mean()), float(finite.std())


Objective = Callable[[int, str, Mapping[str, Any]], CandidateScore]
OnPrediction = Callable[[int, str, torch.Tensor], None]
"""``(split_id, candidate_id, samples)``: called with each split's ``(S, T, A)`` predictive
draws (post-tune model selection records them); an exception it raises counts as the
trial's failure."""


def make_inner_objective(
    fold_k: int,
    prepared: Sequence[PreparedSplit],
    config: SimulationConfig,
    hooks: Hooks,
    on_split: Callable[[], None] | None = None,
    on_prediction: OnPrediction | None = None,
) -> Objective:
    """The objective of one outer fold: ``(index, candidate_id, params) -> CandidateScore``.

    Parameters
    ----------
    fold_k
        The outer test group (a seed coordinate).
    prepared
        The fold's inner splits, from :func:`prepare_split`.
    config
        The run's config; each candidate's ``params`` are applied on top of it.
    hooks
        ``fit_model`` / ``predict`` / ``score`` of the simulation mode.
    on_split
        Called after each split (progress).
    on_prediction
        Called with each split's predictive draws before they are scored.
    """

    def objective(index: int, candidate_id: str, params: Mapping[str, Any]) -> CandidateScore:
        resolved = with_overrides(config, params)
        seeds = {
            item.split.split_id: derive_seed(
                config.cv.seed, Stream.INNER_FIT, fold_k, item.split.split_id, index
            )
            for item in prepared
        }
        states = fit_splits(prepared, resolved, hooks, seeds)
        scores: dict[int, float] = {}
        error = None
        for item in prepared:
            sid = item.split.split_id
            try:
                pred = _predict(item, resolved, hooks, seeds[sid], states[sid])
                if on_prediction is not None:
                    on_prediction(sid, candidate_id, pred["samples"])
                scores[sid] = float(hooks.score(item.y_test, pred, resolved.scoring.spec))
            except AlgoTraderError:
                raise
            except Exception as err:
                # on_trial_error: skip records a failing candidate instead of stopping the run.
                if config.tuning.on_trial_error == "raise":
                    raise
                scores[sid], error = float("nan"), f"split {sid}: {type(err).__name__}: {err}"
            if on_split is not None:
                on_split()
        values = np.array(list(scores.values()), dtype=np.float64)
        objective_value, mean, std = _summary(values, config.tuning.aggregate)
        return CandidateScore(
            candidate_id, dict(params), objective_value, mean, std, scores, seeds, error
        )

    return objective


def fit_splits(
    prepared: Sequence[PreparedSplit],
    config: SimulationConfig,
    hooks: Hooks,
    seeds: Mapping[int, int],
) -> dict[int, Any]:
    """Fit one candidate on every split: split id -> state, or the exception its fit raised.

    With a ``fit_many`` hook (design.md, batched fitting) all splits go to the trainer as
    one vectorized program; if that program fails, the splits are refitted one by one so
    that a failure is charged to the split that caused it.
    """
    configs = {sid: HookConfig(config=config, seed=seed) for sid, seed in seeds.items()}
    if hooks.fit_many is not None:
        try:
            items = [(p.X_train, p.y_train, configs[p.split.split_id]) for p in prepared]
            states = hooks.fit_many(items)
            return {p.split.split_id: s for p, s in zip(prepared, states, strict=True)}
        except AlgoTraderError:
            raise
        except Exception:
            pass
    out: dict[int, Any] = {}
    for item in prepared:
        sid = item.split.split_id
        try:
            out[sid] = hooks.fit_model(item.X_train, item.y_train, configs[sid], None)
        except AlgoTraderError:
            raise
        except Exception as err:
            out[sid] = err
    return out


def _predict(
    item: PreparedSplit, config: SimulationConfig, hooks: Hooks, seed: int, state: Any
) -> dict[str, torch.Tensor]:
    if isinstance(state, Exception):
        raise state
    hook_config = HookConfig(config=config, seed=seed)
    pred = hooks.predict(item.X_test, state, hook_config, config.predictive.num_samples)
    # Scores that whiten (energy_score) fit their transform on this split's training targets.
    return {**pred, "y_train": item.y_train}


def best_candidate(results: Sequence[CandidateScore]) -> CandidateScore | None:
    """The candidate with the highest finite objective (ties: the first); None if none."""
    finite = [r for r in results if np.isfinite(r.objective)]
    if not finite:
        return None
    return max(finite, key=lambda r: r.objective)

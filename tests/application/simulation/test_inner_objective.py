"""The inner objective: seeds, train-only preprocessing, per-candidate aggregation."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from algo_trader.application.simulation.cv_groups import (
    build_equal_groups,
    make_cpcv_splits,
    make_outer_folds,
)
from algo_trader.application.simulation.hooks import HookConfig, stub_hooks
from algo_trader.application.simulation.inner_objective import (
    CandidateScore,
    Stream,
    best_candidate,
    derive_seed,
    make_inner_objective,
    prepare_split,
)
from algo_trader.application.simulation.panel import Panel
from algo_trader.domain.simulation.config import SimulationConfig

T, A = 40, 2
NAMES = ["z_a", "z_b", "brk_up_4w"]


def generated_panel(seed: int = 0) -> Panel:
    """Generated data: seeded normal features/targets, one binary breakout feature."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(T, A, 3))
    X[..., 2] = rng.random((T, A)) < 0.4
    y = rng.normal(size=(T, A))
    return Panel(
        X=X,
        y=y,
        missing_mask=np.zeros(X.shape, bool),
        y_missing_mask=np.zeros(y.shape, bool),
        timestamps=np.arange(T, dtype=np.int64) * 7 * 86_400 * 10**9,
        assets=["A", "B"],
        features=list(NAMES),
        sources={},
    )


def splits_of_last_fold(config: SimulationConfig) -> tuple[int, list[Any]]:
    cv = config.cv
    groups = build_equal_groups(T, cv.warmup_len, cv.group_len)
    fold = make_outer_folds(T, groups, cv.warmup_len, cv.exclude_warmup, [len(groups) - 1])[0]
    splits = make_cpcv_splits(
        fold, groups, cv.warmup_len, False, cv.q, cv.horizon, cv.embargo_len, None
    )
    return fold.k, splits


CONFIG = SimulationConfig.model_validate(
    {
        "cv": {"warmup_len": 8, "group_len": 8, "horizon": 1, "embargo_len": 1, "q": 1},
        "predictive": {"num_samples": 16},
    }
)


def test_derive_seed_is_a_pure_function_of_its_unit() -> None:
    a = derive_seed(123, Stream.INNER_FIT, 3, 1, 0)
    assert a == derive_seed(123, Stream.INNER_FIT, 3, 1, 0)
    others = {
        derive_seed(124, Stream.INNER_FIT, 3, 1, 0),
        derive_seed(123, Stream.OUTER_FIT, 3, 1, 0),
        derive_seed(123, Stream.INNER_FIT, 3, 0, 1),
        derive_seed(123, Stream.INNER_FIT, 1, 3, 0),
    }
    assert a not in others and len(others) == 4
    assert 0 <= a < 2**63


@given(st.integers(0, 2**32), st.integers(0, 50), st.integers(0, 50), st.integers(0, 50))
def test_derive_seed_fits_torch_numpy_and_pyro(base: int, k: int, s: int, c: int) -> None:
    seed = derive_seed(base, Stream.INNER_FIT, k, s, c)
    torch.Generator().manual_seed(seed)
    np.random.default_rng(seed)
    np.random.RandomState(seed)  # what pyro.set_rng_seed seeds: 32 bits at most


def test_prepared_split_ignores_test_and_later_rows() -> None:
    panel = generated_panel()
    k, splits = splits_of_last_fold(CONFIG)
    split = splits[0]
    before = prepare_split(panel, split, CONFIG, k)
    outside = np.setdiff1d(np.arange(T), split.train_idx)
    X = panel.X.copy()
    X[outside] = 1e9  # everything but the training rows changes
    after = prepare_split(dataclasses.replace(panel, X=X), split, CONFIG, k)
    assert torch.equal(before.X_train, after.X_train)
    assert before.kept == after.kept
    assert before.X_train.shape == (split.train_idx.size, A, 3)
    assert before.X_test.shape == (split.test_idx.size, A, 3)


def test_objective_aggregates_split_scores() -> None:
    panel = generated_panel()
    k, splits = splits_of_last_fold(CONFIG)
    prepared = [prepare_split(panel, s, CONFIG, k) for s in splits]
    calls: list[int] = []
    objective = make_inner_objective(k, prepared, CONFIG, stub_hooks(), lambda: calls.append(1))
    result = objective(0, "0000", {"training.svi.learning_rate": 0.05})
    assert len(calls) == len(splits) == len(result.scores)
    scores = np.array(list(result.scores.values()))
    assert result.mean == pytest.approx(scores.mean()) and result.objective == result.mean
    assert result.std == pytest.approx(scores.std())
    # Each split score is exactly the stub pipeline run with its derived seed.
    item = prepared[1]
    seed = derive_seed(CONFIG.cv.seed, Stream.INNER_FIT, k, 1, 0)
    assert result.seeds[1] == seed
    hooks = stub_hooks()
    cfg = HookConfig(CONFIG, seed)
    state = hooks.fit_model(item.X_train, item.y_train, cfg, None)
    pred = hooks.predict(item.X_test, state, cfg, 16)
    assert result.scores[1] == hooks.score(item.y_test, pred, CONFIG.scoring.spec)


def test_objective_does_not_depend_on_evaluation_order() -> None:
    panel = generated_panel()
    k, splits = splits_of_last_fold(CONFIG)
    prepared = [prepare_split(panel, s, CONFIG, k) for s in splits]
    objective = make_inner_objective(k, prepared, CONFIG, stub_hooks())
    first = [objective(i, f"{i:04d}", {}) for i in range(3)]
    backwards = [objective(i, f"{i:04d}", {}) for i in reversed(range(3))][::-1]
    assert [r.scores for r in first] == [r.scores for r in backwards]


def test_median_aggregate() -> None:
    config = CONFIG.model_copy(
        update={"tuning": CONFIG.tuning.model_copy(update={"aggregate": "median"})}
    )
    panel = generated_panel()
    k, splits = splits_of_last_fold(config)
    prepared = [prepare_split(panel, s, config, k) for s in splits]
    result = make_inner_objective(k, prepared, config, stub_hooks())(0, "0000", {})
    assert result.objective == pytest.approx(np.median(list(result.scores.values())))


def _failing_fit(*args: Any) -> Any:
    raise FloatingPointError("generated failure")


@pytest.mark.parametrize("policy", ["raise", "skip"])
def test_on_trial_error(policy: str) -> None:
    config = CONFIG.model_copy(
        update={"tuning": CONFIG.tuning.model_copy(update={"on_trial_error": policy})}
    )
    panel = generated_panel()
    k, splits = splits_of_last_fold(config)
    prepared = [prepare_split(panel, s, config, k) for s in splits]
    hooks = dataclasses.replace(stub_hooks(), fit_model=_failing_fit)
    objective = make_inner_objective(k, prepared, config, hooks)
    if policy == "raise":
        with pytest.raises(FloatingPointError):
            objective(0, "0000", {})
        return
    result = objective(0, "0000", {})
    assert np.isnan(result.objective) and "FloatingPointError" in (result.error or "")


def _score(cid: str, objective: float) -> CandidateScore:
    return CandidateScore(cid, {}, objective, objective, 0.0, {0: objective}, {0: 1})


def test_best_candidate_prefers_highest_then_first() -> None:
    results = [_score("a", -2.0), _score("b", -1.0), _score("c", -1.0), _score("d", np.nan)]
    best = best_candidate(results)
    assert best is not None and best.candidate_id == "b"
    assert best_candidate([_score("d", np.nan)]) is None

"""Prebuild: train-only rows (intersection of outer training sets), merge, prebuild.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from algo_trader.application.simulation.cv_groups import build_equal_groups, make_outer_folds
from algo_trader.application.simulation.panel import Panel
from algo_trader.application.simulation.prebuild import (
    PREBUILD_FILE,
    common_train_idx,
    merge_defaults,
    run_prebuild,
)
from algo_trader.application.simulation.registry import DATASET_LOADERS, PREBUILD_HOOKS
from algo_trader.domain.errors import ConfigError
from algo_trader.domain.simulation.config import SimulationConfig
from algo_trader.pipeline.stages.modeling import (
    PrebuildContext,
    PrebuildResult,
    register_prebuild,
)

T = 30
SEEN: list[PrebuildContext] = []


@register_prebuild("test_record_context")
def record_context(context: PrebuildContext) -> PrebuildResult:
    """Test hook: records what it was given, returns fixed generated defaults."""
    SEEN.append(context)
    return PrebuildResult(
        model_params={"likelihood": {"sigma_scale": 0.08, "df": 5}, "rank": 2},
        guide_params={"init_scale": 0.1},
        metadata={"note": "train-only init"},
    )


def generated_panel() -> Panel:
    X = np.arange(T * 2 * 1, dtype=np.float64).reshape(T, 2, 1)
    y = np.arange(T * 2, dtype=np.float64).reshape(T, 2)
    return Panel(
        X=X,
        y=y,
        missing_mask=np.zeros(X.shape, bool),
        y_missing_mask=np.zeros(y.shape, bool),
        timestamps=np.arange(T, dtype=np.int64) * 7 * 86_400 * 10**9,
        assets=["A", "B"],
        features=["f"],
        sources={},
    )


def config(exclude_warmup: bool = False, **model: object) -> SimulationConfig:
    return SimulationConfig.model_validate(
        {
            "cv": {"warmup_len": 6, "group_len": 6, "exclude_warmup": exclude_warmup},
            "model": {
                "prebuild": {"enabled": True, "name": "test_record_context", "params": {"a": 1}},
                **model,
            },
        }
    )


def folds(cfg: SimulationConfig) -> list:
    groups = build_equal_groups(T, 6, 6)  # 4 groups: rows 6-11, 12-17, 18-23, 24-29
    return make_outer_folds(T, groups, 6, cfg.cv.exclude_warmup, [1, 2, 3])


def test_hook_sees_only_rows_common_to_every_outer_training_set(tmp_path: Path) -> None:
    SEEN.clear()
    cfg = config()
    run_prebuild(cfg, generated_panel(), folds(cfg), tmp_path)
    (context,) = SEEN
    # Fold k=1 trains on warmup + group 0 (rows 0-11); the later folds on supersets.
    np.testing.assert_array_equal(context.train_idx, np.arange(12))
    np.testing.assert_array_equal(context.X, generated_panel().X[:12])
    np.testing.assert_array_equal(context.y, generated_panel().y[:12])
    assert context.params == {"a": 1}


def test_excluded_warmup_leaves_only_group_zero(tmp_path: Path) -> None:
    SEEN.clear()
    cfg = config(exclude_warmup=True)
    run_prebuild(cfg, generated_panel(), folds(cfg), tmp_path)
    np.testing.assert_array_equal(SEEN[0].train_idx, np.arange(6, 12))


def test_common_train_idx_is_the_intersection() -> None:
    cfg = config()
    expected = set(range(30))
    for fold in folds(cfg):
        expected &= set(fold.train_idx.tolist())
    assert common_train_idx(folds(cfg)).tolist() == sorted(expected)


def test_defaults_merge_under_explicit_config_and_are_recorded(tmp_path: Path) -> None:
    cfg = config(params={"likelihood": {"df": 7}})
    merged = run_prebuild(cfg, generated_panel(), folds(cfg), tmp_path)
    assert merged.model.params == {"likelihood": {"sigma_scale": 0.08, "df": 7}, "rank": 2}
    assert merged.model.guide_params == {"init_scale": 0.1}
    written = json.loads((tmp_path / PREBUILD_FILE).read_text())
    assert written["train_rows"] == [[0, 12]] and written["n_train"] == 12
    assert written["metadata"] == {"note": "train-only init"}
    assert written["merged_model_params"]["likelihood"]["df"] == 7


def test_merge_defaults_is_deep_and_explicit_wins() -> None:
    defaults = {"a": {"b": 1, "c": 2}, "d": 3}
    assert merge_defaults(defaults, {"a": {"b": 9}, "e": 4}) == {
        "a": {"b": 9, "c": 2},
        "d": 3,
        "e": 4,
    }


def test_disabled_prebuild_changes_nothing(tmp_path: Path) -> None:
    cfg = SimulationConfig()
    assert run_prebuild(cfg, generated_panel(), [], tmp_path) is cfg
    assert not (tmp_path / PREBUILD_FILE).exists()


def test_unknown_hook_lists_registered_ones(tmp_path: Path) -> None:
    cfg = SimulationConfig.model_validate(
        {"model": {"prebuild": {"enabled": True, "name": "nope"}}}
    )
    with pytest.raises(ConfigError, match=r"unknown prebuild hook 'nope'.*test_record_context"):
        run_prebuild(cfg, generated_panel(), folds(cfg), tmp_path)


def test_registries() -> None:
    assert "feature_store_panel" in DATASET_LOADERS
    assert "test_record_context" in PREBUILD_HOOKS

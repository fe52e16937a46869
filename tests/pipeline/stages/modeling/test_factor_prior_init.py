from __future__ import annotations

import numpy as np
import pytest

from algo_trader.domain.errors import DataError
from algo_trader.pipeline.stages.modeling.factor_prior_init import factor_prior_init
from algo_trader.pipeline.stages.modeling.prebuild import PREBUILD_HOOKS, PrebuildContext


def _context(y: np.ndarray, missing: np.ndarray) -> PrebuildContext:
    T, A = y.shape
    return PrebuildContext(
        X=np.zeros((T, A, 1)),
        missing_mask=np.zeros((T, A, 1), dtype=bool),
        y=y,
        y_missing_mask=missing,
        train_idx=np.arange(T),
        timestamps=np.arange(T, dtype=np.int64),
        assets=[f"a{i}" for i in range(A)],
        features=["f"],
        params={},
        model_params={},
        guide_params={},
        seed=0,
    )


def test_sigma_scale_is_the_pooled_mad_of_training_targets() -> None:
    # Per-asset medians 2 and 20; absolute deviations {1, 0, 1} and {10, 0, 10}.
    y = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [999.0, np.nan]])
    missing = np.array([[False, False]] * 3 + [[True, True]])
    result = factor_prior_init(_context(y, missing))
    assert result.model_params == {"likelihood": {"sigma_scale": pytest.approx(1.4826 * 1.0)}}
    assert result.metadata["n_observed"] == 6
    assert result.metadata["per_asset_scale"] == {
        "a0": pytest.approx(1.4826),
        "a1": pytest.approx(14.826),
    }
    assert PREBUILD_HOOKS.get("factor_prior_init") is factor_prior_init


def test_no_observed_target_is_an_error() -> None:
    y = np.full((2, 2), np.nan)
    with pytest.raises(DataError, match="none of the 4 training targets"):
        factor_prior_init(_context(y, np.ones((2, 2), dtype=bool)))

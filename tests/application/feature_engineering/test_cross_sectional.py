"""Cross-sectional ranks against a plain per-week count, plus single-asset and late-start cases."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from algo_trader.application.feature_engineering import (
    cross_sectional,
    mean_reversion,
    momentum,
)
from algo_trader.application.feature_engineering.inputs import FeatureInputs

BASE = ["z_mom_4w", "z_mom_12w", "z_price_ema_26w", "z_price_med_26w", "rev_1w", "shock_4w"]


def plain_rank(row: list[float]) -> list[float]:
    valid = [v for v in row if not math.isnan(v)]
    out = []
    for v in row:
        if math.isnan(v):
            out.append(math.nan)
            continue
        below = sum(1 for u in valid if u < v)
        ties = sum(1 for u in valid if u == v)
        out.append((below + (ties + 1) / 2 - 0.5) / len(valid))
    return out


def test_names_and_ranks_match_plain_count(panel: FeatureInputs) -> None:
    result = cross_sectional.compute(panel, ["cs_rank"])
    assert result.names == [f"cs_rank_{b}" for b in BASE]
    mom = momentum.compute(panel, list(momentum.GROUP.keys))
    rev = mean_reversion.compute(panel, list(mean_reversion.GROUP.keys))
    for f, name in enumerate(BASE):
        source = mom if name in mom.names else rev
        base = source.values[:, :, source.names.index(name)]
        want = np.array([plain_rank(list(row)) for row in base])
        np.testing.assert_allclose(result.values[:, :, f], want, rtol=1e-15)
        np.testing.assert_array_equal(
            result.goodness[:, :, f], source.goodness[:, :, source.names.index(name)]
        )


def test_late_asset_is_left_out_until_it_has_the_base(generated_inputs: FeatureInputs) -> None:
    result = cross_sectional.compute(generated_inputs, ["cs_rank"])
    start = int(np.argmax(~np.isnan(generated_inputs.weekly["close"][:, 3])))
    rev = result.values[:, :, BASE.index("rev_1w")]
    t = start + 1  # GEN3 has no rev_1w yet: the other 4 assets rank among themselves
    assert math.isnan(rev[t, 3])
    np.testing.assert_allclose(np.sort(rev[t, [0, 1, 2, 4]]), [0.125, 0.375, 0.625, 0.875])


def test_single_asset_ranks_at_midpoint(arrays_to_inputs: Callable[..., FeatureInputs]) -> None:
    close = np.exp(np.cumsum(np.random.default_rng(5).normal(0, 0.02, (40, 1)), axis=0))
    result = cross_sectional.compute(
        arrays_to_inputs(close, close * 1.01, close * 0.99), ["cs_rank"]
    )
    done = result.goodness == 0
    np.testing.assert_array_equal(result.values[done], 0.5)
    assert np.isnan(result.values[~done]).all()


def test_ties_share_average_rank(arrays_to_inputs: Callable[..., FeatureInputs]) -> None:
    # three identical assets and one constant: every base feature ties among the three
    walk = np.exp(np.cumsum(np.random.default_rng(6).normal(0, 0.02, 40)))
    close = np.column_stack([walk, walk, walk, np.full(40, 9.0)])
    result = cross_sectional.compute(arrays_to_inputs(close), ["cs_rank"])
    rev = result.values[30, :, BASE.index("rev_1w")]
    own = -math.log(walk[29] / walk[28])
    three = 5 / 8 if own > 0 else 3 / 8  # the constant's 0 is rank 1 or 4
    np.testing.assert_allclose(rev, [three, three, three, 1 / 8 if own > 0 else 7 / 8])

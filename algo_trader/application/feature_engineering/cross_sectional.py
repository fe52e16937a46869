"""Cross-sectional group: percentile ranks across assets of six base features (weekly).

For week t, ``U_t`` is the set of assets whose base feature is present and ``N_eff(t)``
its size; ``cs_rank_<base> = (average rank - 0.5) / N_eff(t)``, ties sharing their average
rank. Key ``cs_rank`` -> ``cs_rank_z_mom_4w``, ``cs_rank_z_mom_12w``,
``cs_rank_z_price_ema_26w``, ``cs_rank_z_price_med_26w``, ``cs_rank_rev_1w``,
``cs_rank_shock_4w``.

The base features are computed here with the momentum and mean-reversion code (no files
from those groups are needed), so the ranks use exactly their definitions and warm-up.

Degenerate cases
    * A single asset (or a week where one asset has the base feature): ``N_eff = 1`` and the
      rank is 0.5, the neutral midpoint; the normaliser zeroes such constant columns.
    * An asset without the base feature at t (warm-up, not trading) is left out of ``U_t``
      and gets NaN; the others are ranked among themselves.
    * Goodness is the base feature's (``missing / horizon`` over its lookback).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from algo_trader.application.feature_engineering import mean_reversion, momentum
from algo_trader.application.feature_engineering.inputs import FeatureInputs, GroupResult
from algo_trader.application.feature_engineering.kernels import cs_percentile_rank
from algo_trader.application.feature_engineering.registry import FeatureGroup, register_group

BASES = (
    (momentum, "vol_scaled_momentum", ("z_mom_4w", "z_mom_12w")),
    (mean_reversion, "z_price_ema", ("z_price_ema_26w",)),
    (mean_reversion, "z_price_med", ("z_price_med_26w",)),
    (mean_reversion, "rev", ("rev_1w",)),
    (mean_reversion, "shock", ("shock_4w",)),
)


def base_features(inputs: FeatureInputs) -> GroupResult:
    """The six base features, in output order, with their goodness."""
    names: list[str] = []
    values: list[np.ndarray] = []
    goodness: list[np.ndarray] = []
    for module, key, wanted in BASES:
        result = module.compute(inputs, [key])
        for name in wanted:
            i = result.names.index(name)
            names.append(name)
            values.append(result.values[:, :, i])
            goodness.append(result.goodness[:, :, i])
    return GroupResult(names, np.stack(values, axis=2), np.stack(goodness, axis=2))


def compute(inputs: FeatureInputs, keys: Sequence[str]) -> GroupResult:
    """``cs_rank_*`` of every base feature (the group's only key is ``cs_rank``)."""
    base = base_features(inputs)
    t, a, f = base.values.shape
    # Rank each (week, feature) slice across assets in one call: move assets last.
    flat = base.values.transpose(0, 2, 1).reshape(t * f, a)
    ranks = cs_percentile_rank(flat).reshape(t, f, a).transpose(0, 2, 1)
    names = [f"cs_rank_{n}" for n in base.names]
    return GroupResult(names, np.ascontiguousarray(ranks), base.goodness)


GROUP = register_group(FeatureGroup("cross_sectional", ("cs_rank",), compute, uses_daily=False))

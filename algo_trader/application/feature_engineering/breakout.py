"""Breakout group: did this week's close clear the prior h-week channel? (weekly, 0/1).

Outputs (spec names, key -> columns)
    ``brk_up`` -> ``brk_up_4w``, ``brk_up_26w``: 1 if ``C_t > max(H_{t-h..t-1})`` else 0.
    ``brk_dn`` -> ``brk_dn_4w``, ``brk_dn_26w``: 1 if ``C_t < min(L_{t-h..t-1})`` else 0.

Choices the spec leaves open
    * Strict inequalities, as written: touching the prior high/low is not a breakout.
    * A value needs the h prior weekly bars and week t all present (lookback h + 1). A
      window with a missing week (warm-up, an asset starting later) gives NaN rather than a
      breakout judged against a shorter channel, which would fire too often.
    * Values are float 0.0 / 1.0 (NaN = missing) like every other feature.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from algo_trader.application.feature_engineering.inputs import (
    FeatureInputs,
    GroupResult,
    WeeklyColumn,
    weekly_result,
)
from algo_trader.application.feature_engineering.kernels import lag, rolling_max, rolling_min
from algo_trader.application.feature_engineering.registry import FeatureGroup, register_group

HORIZONS = (4, 26)

Weekly = dict[str, np.ndarray]


def brk_up(weekly: Weekly) -> list[WeeklyColumn]:
    """``brk_up_4w``, ``brk_up_26w``."""
    return [
        WeeklyColumn(
            f"brk_up_{h}w",
            (weekly["close"] > lag(rolling_max(weekly["high"], h), 1)).astype(np.float64),
            h + 1,
        )
        for h in HORIZONS
    ]


def brk_dn(weekly: Weekly) -> list[WeeklyColumn]:
    """``brk_dn_4w``, ``brk_dn_26w``."""
    return [
        WeeklyColumn(
            f"brk_dn_{h}w",
            (weekly["close"] < lag(rolling_min(weekly["low"], h), 1)).astype(np.float64),
            h + 1,
        )
        for h in HORIZONS
    ]


BUILDERS = {"brk_up": brk_up, "brk_dn": brk_dn}


def compute(inputs: FeatureInputs, keys: Sequence[str]) -> GroupResult:
    """The selected breakout keys on the weekly index."""
    columns = [col for key in keys for col in BUILDERS[key](inputs.weekly)]
    return weekly_result(columns, inputs.weekly["close"])


GROUP = register_group(FeatureGroup("breakout", tuple(BUILDERS), compute, uses_daily=False))

"""Momentum group: volatility-scaled log momentum and ATR-normalised EMA spreads (weekly).

Outputs (spec names)
    ``vol_scaled_momentum`` -> ``z_mom_4w``, ``z_mom_12w``, ``z_mom_26w``:
    ``(log C_t - log C_{t-H}) / (sigma_ref_t * sqrt(H) + eps)``, with ``sigma_ref_t`` the
    sample std (ddof 1) of the 26 weekly log returns ``r_{t-25..t}``.
    ``ema_spread`` -> ``ema_spread_4w_26w``, ``ema_spread_12w_26w``:
    ``(EMA_s(C) - EMA_l(C)) / (ATR_l + eps)`` on weekly closes and bars.

Choices the spec leaves open
    * EMAs of the spread use ``span`` (``alpha = 2 / (span + 1)``), the trading convention
      for EMA crossovers; the mean-reversion z-scores use ``halflife`` as the spec says.
    * ``ATR_l`` is Wilder's ATR with ``n = l`` (26) weekly bars, seeded by the mean of the
      first 26 true ranges.
    * ``eps = 1e-8``: it only guards an exactly-zero scale (a constant price gives 0, not
      NaN); against a weekly log-return std of ~1e-2 it is negligible.
    * Warm-up: a value needs every weekly bar of its lookback present: 27 rows for
      ``z_mom_*`` (26 returns) and ``ema_spread_*`` (26 true ranges plus the seed bar).
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
from algo_trader.application.feature_engineering.kernels import (
    atr,
    ema,
    lag,
    log_returns,
    rolling_std,
)
from algo_trader.application.feature_engineering.registry import FeatureGroup, register_group

EPS = 1e-8
MOMENTUM_HORIZONS = (4, 12, 26)
SIGMA_WINDOW = 26
EMA_PAIRS = ((4, 26), (12, 26))


def vol_scaled_momentum(weekly: dict[str, np.ndarray]) -> list[WeeklyColumn]:
    """``z_mom_<H>w`` for H in 4, 12, 26."""
    logc = np.log(weekly["close"])
    sigma = rolling_std(log_returns(weekly["close"]), SIGMA_WINDOW)
    lookback = max(*MOMENTUM_HORIZONS, SIGMA_WINDOW) + 1
    return [
        WeeklyColumn(f"z_mom_{h}w", (logc - lag(logc, h)) / (sigma * np.sqrt(h) + EPS), lookback)
        for h in MOMENTUM_HORIZONS
    ]


def ema_spread(weekly: dict[str, np.ndarray]) -> list[WeeklyColumn]:
    """``ema_spread_<s>w_<l>w`` for the (4, 26) and (12, 26) pairs."""
    close = weekly["close"]
    columns = []
    for short, long in EMA_PAIRS:
        spread = ema(close, span=short, min_periods=short) - ema(close, span=long, min_periods=long)
        scale = atr(weekly["high"], weekly["low"], close, long)
        columns.append(
            WeeklyColumn(f"ema_spread_{short}w_{long}w", spread / (scale + EPS), long + 1)
        )
    return columns


BUILDERS = {"vol_scaled_momentum": vol_scaled_momentum, "ema_spread": ema_spread}


def compute(inputs: FeatureInputs, keys: Sequence[str]) -> GroupResult:
    """The selected momentum keys on the weekly index."""
    columns = [col for key in keys for col in BUILDERS[key](inputs.weekly)]
    return weekly_result(columns, inputs.weekly["close"])


GROUP = register_group(FeatureGroup("momentum", tuple(BUILDERS), compute, uses_daily=False))

"""Mean-reversion group: price z-scores, channel and range positions, reversal and shock.

All on weekly bars per asset; ``p_t = log C_t``, ``r_t = p_t - p_{t-1}``.

Outputs (spec names, key -> columns)
    ``z_price_ema`` -> ``z_price_ema_12w``, ``z_price_ema_26w``:
    ``(p_t - EWM_mean_h(p)) / (EWM_std_h(p) + eps)``, both with ``halflife = h``; the EWM std
    is the bias-corrected one (pandas ``ewm(halflife=h).std()``).
    ``z_price_med`` -> ``z_price_med_26w``: ``(p_t - med_26) / (1.4826 * MAD_26 + eps)`` over
    ``p_{t-25..t}``.
    ``donch_pos`` -> ``donch_pos_4w``: ``(C_t - min L_{t-3..t}) / (max H_{t-3..t} -
    min L_{t-3..t} + eps)``; the window includes week t, so the value lies in [0, 1].
    ``rsi_centered`` -> ``rsi_centered_4w``: Wilder RSI(4) of weekly closes minus 50.
    ``rev`` -> ``rev_1w``: ``-(p_{t-1} - p_{t-2})``.
    ``shock`` -> ``shock_4w``: ``r_{t-1} / (std(r_{t-4..t-1}) + eps)`` (sample std, ddof 1).
    ``range_pos`` -> ``range_pos_1w``: ``(C_t - (H_t + L_t)/2) / (0.5 (H_t - L_t) + eps)``.
    ``range_z`` -> ``range_z_12w``: z-score of ``H_t - L_t`` against the mean and sample std
    of ``range_{t-11..t}``.

Choices the spec leaves open
    * ``eps = 1e-8`` everywhere (it only keeps an exactly-zero scale from dividing by zero:
      a constant price gives 0; RSI of a flat window is 50, so ``rsi_centered`` is 0).
    * EWM warm-up: ``h`` observations (12 or 26 weeks) before ``z_price_ema_h`` is given.
    * Every value needs its whole lookback of weekly bars present (see ``weekly_result``):
      12/26 rows (EWM), 26 (median), 4 (Donchian), 5 (RSI: 4 changes), 3 (rev), 6 (shock),
      1 (range_pos), 12 (range_z). The lookback includes week t, so a feature is missing
      in a week the asset does not trade, even when its formula reads only earlier weeks.
    * Ranges are in price units, so ``donch_pos``/``range_pos``/``range_z`` are scale free
      except through ``eps``, which matters only for prices below ~1e-4.
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
    MAD_SCALE,
    ema,
    ewm_std,
    lag,
    log_returns,
    rolling_max,
    rolling_mean,
    rolling_median_mad,
    rolling_min,
    rolling_std,
    rsi,
)
from algo_trader.application.feature_engineering.registry import FeatureGroup, register_group

EPS = 1e-8
EMA_HALFLIVES = (12, 26)
MEDIAN_WINDOW = 26
DONCHIAN_WINDOW = 4
RSI_WINDOW = 4
SHOCK_WINDOW = 4
RANGE_Z_WINDOW = 12

Weekly = dict[str, np.ndarray]


def z_price_ema(weekly: Weekly) -> list[WeeklyColumn]:
    """``z_price_ema_12w``, ``z_price_ema_26w``."""
    p = np.log(weekly["close"])
    return [
        WeeklyColumn(
            f"z_price_ema_{h}w",
            (p - ema(p, halflife=h, min_periods=h)) / (ewm_std(p, halflife=h, min_periods=h) + EPS),
            h,
        )
        for h in EMA_HALFLIVES
    ]


def z_price_med(weekly: Weekly) -> list[WeeklyColumn]:
    """``z_price_med_26w``."""
    p = np.log(weekly["close"])
    med, mad = rolling_median_mad(p, MEDIAN_WINDOW)
    z = (p - med) / (MAD_SCALE * mad + EPS)
    return [WeeklyColumn(f"z_price_med_{MEDIAN_WINDOW}w", z, MEDIAN_WINDOW)]


def donch_pos(weekly: Weekly) -> list[WeeklyColumn]:
    """``donch_pos_4w``."""
    high = rolling_max(weekly["high"], DONCHIAN_WINDOW)
    low = rolling_min(weekly["low"], DONCHIAN_WINDOW)
    pos = (weekly["close"] - low) / (high - low + EPS)
    return [WeeklyColumn(f"donch_pos_{DONCHIAN_WINDOW}w", pos, DONCHIAN_WINDOW)]


def rsi_centered(weekly: Weekly) -> list[WeeklyColumn]:
    """``rsi_centered_4w``."""
    value = rsi(weekly["close"], RSI_WINDOW) - 50.0
    return [WeeklyColumn(f"rsi_centered_{RSI_WINDOW}w", value, RSI_WINDOW + 1)]


def rev(weekly: Weekly) -> list[WeeklyColumn]:
    """``rev_1w``."""
    return [WeeklyColumn("rev_1w", -lag(log_returns(weekly["close"]), 1), 3)]


def shock(weekly: Weekly) -> list[WeeklyColumn]:
    """``shock_4w``."""
    r = log_returns(weekly["close"])
    scale = lag(rolling_std(r, SHOCK_WINDOW), 1)
    value = lag(r, 1) / (scale + EPS)
    return [WeeklyColumn(f"shock_{SHOCK_WINDOW}w", value, SHOCK_WINDOW + 2)]


def range_pos(weekly: Weekly) -> list[WeeklyColumn]:
    """``range_pos_1w``."""
    high, low = weekly["high"], weekly["low"]
    value = (weekly["close"] - 0.5 * (high + low)) / (0.5 * (high - low) + EPS)
    return [WeeklyColumn("range_pos_1w", value, 1)]


def range_z(weekly: Weekly) -> list[WeeklyColumn]:
    """``range_z_12w``."""
    rng = weekly["high"] - weekly["low"]
    z = (rng - rolling_mean(rng, RANGE_Z_WINDOW)) / (rolling_std(rng, RANGE_Z_WINDOW) + EPS)
    return [WeeklyColumn(f"range_z_{RANGE_Z_WINDOW}w", z, RANGE_Z_WINDOW)]


BUILDERS = {
    "z_price_ema": z_price_ema,
    "z_price_med": z_price_med,
    "donch_pos": donch_pos,
    "rsi_centered": rsi_centered,
    "rev": rev,
    "shock": shock,
    "range_pos": range_pos,
    "range_z": range_z,
}


def compute(inputs: FeatureInputs, keys: Sequence[str]) -> GroupResult:
    """The selected mean-reversion keys on the weekly index."""
    columns = [col for key in keys for col in BUILDERS[key](inputs.weekly)]
    return weekly_result(columns, inputs.weekly["close"])


GROUP = register_group(FeatureGroup("mean_reversion", tuple(BUILDERS), compute, uses_daily=False))

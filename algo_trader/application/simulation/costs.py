"""Transaction costs and the PnL of one rebalance (``cost`` config).

Everything is in return units (fractions of portfolio value, i.e. ``y / target_scale``):
moving from ``w_prev`` to ``w`` costs ``sum_a bps_a 1e-4 |w_a - w_prev_a|`` plus
``fixed_per_rebalance`` when the portfolio trades at all. Holding ``w`` over the week then
earns ``w . r_next``.

A weight change of at most :data:`MIN_TRADE` is not a trade: optimizers that keep a
position return it to within solver precision (1e-10), and charging the fixed fee for
that would bill a rebalance nobody sends. So zero (or solver-noise) turnover costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from algo_trader.domain.errors import ConfigError
from algo_trader.domain.simulation.config import CostConfig

BPS = 1e-4
MIN_TRADE = 1e-9
"""Largest ``|w_a - w_prev_a|`` that is not traded (and so costs nothing)."""


def cost_rates(cfg: CostConfig, assets: Sequence[str]) -> np.ndarray:
    """``(A,)`` proportional cost per unit of turnover of each asset (``bps * 1e-4``).

    Raises
    ------
    ConfigError
        ``cost.per_asset_bps`` names an asset that is not in ``assets``.
    """
    unknown = sorted(set(cfg.per_asset_bps) - set(assets))
    if unknown:
        raise ConfigError(
            f"cost.per_asset_bps: {unknown} are not panel assets; valid: {', '.join(assets)}"
        )
    bps = pd.Series(cfg.per_asset_bps, dtype=np.float64).reindex(list(assets))
    return bps.fillna(cfg.bps).to_numpy(dtype=np.float64, copy=True) * BPS


def traded(w: np.ndarray, w_prev: np.ndarray) -> np.ndarray:
    """``(A,)`` ``|w - w_prev|``, with changes of at most :data:`MIN_TRADE` set to 0."""
    move = np.abs(np.asarray(w, dtype=np.float64) - np.asarray(w_prev, dtype=np.float64))
    return np.where(move > MIN_TRADE, move, 0.0)


def turnover_cost(
    w: np.ndarray, w_prev: np.ndarray, cfg: CostConfig, assets: Sequence[str]
) -> float:
    """Cost of rebalancing from ``w_prev`` to ``w``, in return units.

    ``sum_a rate_a |w_a - w_prev_a| + fixed_per_rebalance`` where the fixed part is charged
    only when some asset trades (see :data:`MIN_TRADE`).

    Raises
    ------
    ConfigError
        See :func:`cost_rates`.
    """
    move = traded(w, w_prev)
    fixed = cfg.fixed_per_rebalance if move.any() else 0.0
    return float(cost_rates(cfg, assets) @ move) + fixed


def pnl(
    w: np.ndarray,
    r_next: np.ndarray,
    w_prev: np.ndarray,
    cfg: CostConfig,
    assets: Sequence[str],
) -> dict[str, float]:
    """PnL of trading into ``w`` and holding it over the next week, in return units.

    Parameters
    ----------
    w, w_prev
        ``(A,)`` new and previous weights.
    r_next
        ``(A,)`` realized simple returns of the week (``y / target_scale``); NaN = missing.
    cfg
        The ``cost`` section.
    assets
        Asset names in column order (for ``per_asset_bps``).

    Returns
    -------
    dict
        ``gross = w . r_next``, ``cost`` (:func:`turnover_cost`), ``net = gross - cost``,
        ``turnover = sum |w - w_prev|`` (traded changes only) and ``missing``, the number of
        assets whose return is missing: such a position earns 0 (nothing known about it),
        and the count says how often that happened.
    """
    r_next = np.asarray(r_next, dtype=np.float64)
    observed = ~np.isnan(r_next)
    gross = float(np.asarray(w, dtype=np.float64) @ np.where(observed, r_next, 0.0))
    cost = turnover_cost(w, w_prev, cfg, assets)
    return {
        "gross": gross,
        "cost": cost,
        "net": gross - cost,
        "turnover": float(traded(w, w_prev).sum()),
        "missing": float((~observed).sum()),
    }

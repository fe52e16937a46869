"""Benchmark the simulation's leakage-safe preprocessing on a GENERATED panel (not real data).

Generates a ``--weeks`` x ``--assets`` x 45 feature panel named like the spec's features
(35 robust, 4 breakout, 6 cross-sectional ranks): heavy-tailed robust features (Student t,
3 d.o.f.) with a few near-duplicate pairs, binary breakouts (p = 0.1), uniform ranks, 2 %
of entries missing at random and a tenth of the assets starting late. Then times, on the
first ``--train-share`` of the weeks as training rows,

* ``fit_cleaning`` (usable ratio, variance, pairwise-complete correlation, greedy filter),
* ``fit_scaling`` (pooled winsor quantiles, pooled median/MAD/IQR, per-asset guard and
  breakout p, fail-fast check) on the kept features,
* ``transform`` of all weeks,

each the median of ``--repeats`` runs, and as a reference the robust features' fitted
statistics (winsor bounds, pooled median and scale, per-asset guard spread) computed the
obvious way with ``numpy.nanquantile`` / ``numpy.nanmedian``: its timing and the largest
difference to the fitted state.

Run::

    uv run python benchmarks/bench_sim_preprocessing.py                 # 1040 x 100 x 45
    uv run python benchmarks/bench_sim_preprocessing.py --weeks 200 --assets 10   # quick
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from algo_trader.application.simulation.preprocessing import (
    ROBUST,
    fit_cleaning,
    fit_scaling,
    transform,
)
from algo_trader.domain.simulation.config import PreprocessingConfig

BREAKOUT_NAMES = ["brk_up_4w", "brk_up_26w", "brk_dn_4w", "brk_dn_26w"]
RANK_NAMES = [
    "cs_rank_z_mom_4w",
    "cs_rank_z_mom_12w",
    "cs_rank_z_price_ema_26w",
    "cs_rank_z_price_med_26w",
    "cs_rank_rev_1w",
    "cs_rank_shock_4w",
]
ROBUST_NAMES = [
    "z_mom_4w",
    "z_mom_12w",
    "z_mom_26w",
    "ema_spread_4w_26w",
    "ema_spread_12w_26w",
    "z_price_ema_12w",
    "z_price_ema_26w",
    "z_price_med_26w",
    "donch_pos_4w",
    "rsi_centered_4w",
    "rev_1w",
    "shock_4w",
    "range_pos_1w",
    "range_z_12w",
    "vol_cc_d_4w",
    "vol_cc_d_26w",
    "atrp_d_4w",
    "vol_regime_cc_4w_26w",
    "vov_norm_12w",
    "vol_ts_cc_1w_4w",
    "vol_ts_cc_4w_26w",
    "down_up_vol_ratio_4w",
    "realized_skew_d_12w",
    "tail_5p_sigma_ratio_12w",
    "jump_freq_4w",
    "dow_alpha_Mon_26w",
    "dow_alpha_Fri_26w",
    "dow_spread_26w",
    "glob_vol_cc_d_4w",
    "glob_vol_regime_cc_4w_26w",
    "glob_corr_mean_12w",
    "glob_pc1_share_12w",
    "glob_disp_ret_1w",
    "glob_disp_mom_12w",
    "glob_disp_vol_4w",
]
NAMES = ROBUST_NAMES + BREAKOUT_NAMES + RANK_NAMES


def generated_panel(weeks: int, assets: int, seed: int = 0) -> np.ndarray:
    """GENERATED (weeks, assets, 45) feature panel; NaN = missing."""
    rng = np.random.default_rng(seed)
    robust = rng.standard_t(3, size=(weeks, assets, len(ROBUST_NAMES)))
    # Near-duplicates (like vol_cc_d_4w vs atrp_d_4w): the cleaning's correlation filter
    # has real work to do.
    for copy, source in ((16, 14), (15, 14), (1, 0)):
        robust[..., copy] = robust[..., source] + 0.05 * rng.normal(size=(weeks, assets))
    breakout = (rng.random((weeks, assets, len(BREAKOUT_NAMES))) < 0.1).astype(np.float64)
    ranks = rng.random((weeks, assets, len(RANK_NAMES)))
    X = np.concatenate([robust, breakout, ranks], axis=2)
    X[rng.random(X.shape) < 0.02] = np.nan
    late = rng.choice(assets, size=max(assets // 10, 1), replace=False)
    X[: weeks // 5, late] = np.nan
    return X


def timed(repeats: int, func: Callable[[], Any]) -> tuple[float, Any]:
    """Median wall time of ``repeats`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def reference_stats(
    block: np.ndarray, robust: np.ndarray, cfg: PreprocessingConfig
) -> dict[str, np.ndarray]:
    """The robust features' fitted statistics the obvious way (nanquantile / nanmedian)."""
    n_rows, n_assets, _ = block.shape
    values = block[..., robust]
    pooled = values.reshape(n_rows * n_assets, -1)
    low, high = np.nanquantile(pooled, [cfg.winsor_low_q, cfg.winsor_high_q], axis=0)
    winsor = np.clip(values, low, high)
    flat = winsor.reshape(n_rows * n_assets, -1)
    median = np.nanmedian(flat, axis=0)
    mad = np.nanmedian(np.abs(flat - median), axis=0)
    q25, q75 = np.nanquantile(flat, [0.25, 0.75], axis=0)
    scale = np.maximum.reduce(
        [1.4826 * (mad + cfg.mad_eps), (q75 - q25) / 1.349, np.full_like(mad, cfg.scale_floor)]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN (late-starter) columns
        asset_median = np.nanmedian(winsor, axis=0)
        asset_mad = np.nanmedian(np.abs(winsor - asset_median), axis=0)
        a25, a75 = np.nanquantile(winsor, [0.25, 0.75], axis=0)
    guard = np.maximum(1.4826 * asset_mad, (a75 - a25) / 1.349)
    return {
        "winsor_low": low,
        "winsor_high": high,
        "median": median,
        "scale": scale,
        "guard_spread": guard,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weeks", type=int, default=1040)
    parser.add_argument("--assets", type=int, default=100)
    parser.add_argument("--train-share", type=float, default=0.8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    X = generated_panel(args.weeks, args.assets)
    cfg = PreprocessingConfig()
    train_idx = np.arange(int(args.weeks * args.train_share))
    print(
        f"GENERATED panel {X.shape} (weeks, assets, features), {len(train_idx)} training "
        f"weeks, {np.isnan(X).mean():.1%} missing, repeats={args.repeats}"
    )

    t_clean, cleaning = timed(args.repeats, lambda: fit_cleaning(X, NAMES, train_idx, cfg, 0))
    kept = cleaning.select(X)
    t_scale, state = timed(args.repeats, lambda: fit_scaling(kept, cleaning.kept, train_idx, cfg))
    t_apply, (scaled, _) = timed(args.repeats, lambda: transform(kept, state, cfg))
    print(f"fit_cleaning  {t_clean * 1e3:8.1f} ms  kept {len(cleaning.kept)} of {len(NAMES)}")
    for name, reason in cleaning.dropped.items():
        print(f"    dropped {name}: {reason}")
    print(f"fit_scaling   {t_scale * 1e3:8.1f} ms  zeroed columns {int(state.zeroed.sum())}")
    print(f"transform     {t_apply * 1e3:8.1f} ms  output {scaled.shape}")
    print(f"total         {(t_clean + t_scale + t_apply) * 1e3:8.1f} ms")

    robust = state.kinds == ROBUST
    block = kept[train_idx]
    t_ref, ref = timed(args.repeats, lambda: reference_stats(block, robust, cfg))
    gaps = {
        key: np.nanmax(np.abs(value - getattr(state, key)[..., robust]))
        for key, value in ref.items()
    }
    print(
        f"reference: the robust statistics with numpy nanquantile/nanmedian "
        f"{t_ref * 1e3:8.1f} ms; max |difference| "
        + ", ".join(f"{key} {gap:.3g}" for key, gap in gaps.items())
    )


if __name__ == "__main__":
    main()

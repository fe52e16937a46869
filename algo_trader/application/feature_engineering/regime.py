"""Regime group: market-wide volatility, correlation, one-factor-ness and dispersion.

Each value is one number per weekly label ``t``, broadcast to every asset. Daily parts use
each asset's daily log returns over its valid bars and the calendar windows of
:mod:`.sampling` (the last ``h`` weeks ending at ``t``); weekly parts use weekly closes.

Outputs (key -> columns)
    ``glob_vol_cc_d`` -> ``glob_vol_cc_d_4w``: mean over assets of ``vol_cc_d_4w`` (daily,
    not annualized; assets without a value are left out).
    ``glob_vol_regime_cc`` -> ``glob_vol_regime_cc_4w_26w``:
    ``log((G_t + eps) / (median(G_{t-26..t-1}) + eps))``, ``G = glob_vol_cc_d_4w``,
    ``eps = 1e-6``.
    ``glob_corr_mean`` -> ``glob_corr_mean_12w``: mean pairwise correlation of the 12-week
    daily returns.
    ``glob_pc1_share`` -> ``glob_pc1_share_12w``: largest eigenvalue / trace of their
    covariance matrix.
    ``glob_disp_ret`` -> ``glob_disp_ret_1w``, ``glob_disp_mom`` -> ``glob_disp_mom_12w``,
    ``glob_disp_vol`` -> ``glob_disp_vol_4w``: ``1.4826 * MAD`` across assets of the weekly
    log return ``log C_t - log C_{t-1}``, of the 12-week log momentum
    ``log C_t - log C_{t-12}`` (weekly closes, previous weekly rows) and of ``vol_cc_d_4w``.

Choices the spec leaves open
    * Correlation with missing days (:func:`.daily_kernels.corr_and_pc1_share`): assets with
      at least 30 of the window's 60 nominal returns take part, and each one's missing days
      are filled with its own window mean. This keeps one Gram matrix per window (PSD, no
      per-pair loop) and equals the plain sample correlation when nothing is missing; with
      missing days it shrinks correlations towards 0 by roughly the missing share.
      Assets with zero variance (a flat price) have no correlation and are left out.
    * Few assets: ``glob_corr_mean`` needs two assets with variance (NaN otherwise: there is
      no pair); ``glob_pc1_share`` is 1.0 with one asset (its covariance matrix is 1x1) and
      NaN when no asset varies; MAD dispersions of one asset are 0 and of none NaN;
      ``glob_vol_cc_d`` is that asset's vol. Undefined values are NaN (missing), defined but
      trivial ones are kept.
    * Goodness (``valid / horizon``): for daily parts, the mean over all assets of each
      asset's ``valid / (5 h)`` in the window (an asset not trading counts 0); for weekly
      dispersions, the share of assets with a value; for the regime ratio, the smaller of
      that and (valid prior values / 26).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property

import numpy as np

from algo_trader.application.feature_engineering.daily_kernels import (
    DailyReturns,
    corr_and_pc1_share,
    mad_dispersion,
    prior_median,
)
from algo_trader.application.feature_engineering.inputs import FeatureInputs, GroupResult
from algo_trader.application.feature_engineering.kernels import MAD_SCALE, lag
from algo_trader.application.feature_engineering.registry import FeatureGroup, register_group
from algo_trader.application.feature_engineering.sampling import (
    MIN_COVERAGE,
    DailyColumn,
    daily_result,
)

EPS = 1e-6
VOL_WEEKS = 4
CORR_WEEKS = 12
MOM_WEEKS = 12
HISTORY_WEEKS = 26
HISTORY_MIN = int(np.ceil(MIN_COVERAGE * HISTORY_WEEKS))


class _Regime:
    """The shared parts of one regime run, each computed on first use."""

    def __init__(self, inputs: FeatureInputs) -> None:
        self.inputs = inputs
        self.daily = DailyReturns(inputs)

    @cached_property
    def vol4(self) -> np.ndarray:
        """Per-asset ``vol_cc_d_4w``, ``(T_w, A)``."""
        return self.daily.stats(VOL_WEEKS).std()

    @cached_property
    def glob_vol(self) -> tuple[np.ndarray, np.ndarray]:
        """``glob_vol_cc_d_4w`` and its goodness, ``(T_w,)`` each."""
        valid = ~np.isnan(self.vol4)
        count = valid.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(valid, self.vol4, 0.0).sum(axis=1) / count
        return np.where(count > 0, mean, np.nan), self.daily.stats(VOL_WEEKS).coverage.mean(1)

    @cached_property
    def corr_pc1(self) -> tuple[np.ndarray, np.ndarray]:
        """``(corr_mean, pc1_share)`` over 12-week windows, ``(T_w,)`` each."""
        return corr_and_pc1_share(self.daily.returns, self.daily.windows(CORR_WEEKS))

    def broadcast(self, name: str, value: np.ndarray, goodness: np.ndarray) -> DailyColumn:
        """One ``(T_w,)`` series repeated for every asset."""
        shape = (value.shape[0], len(self.inputs.assets))
        return DailyColumn(
            name,
            np.broadcast_to(value[:, None], shape).copy(),
            np.broadcast_to(goodness[:, None], shape).copy(),
        )

    def dispersion(self, name: str, x: np.ndarray, goodness: np.ndarray) -> DailyColumn:
        """``1.4826 * MAD`` across assets of ``x`` (``(T_w, A)``)."""
        return self.broadcast(name, mad_dispersion(x, MAD_SCALE), goodness)


def glob_vol_cc_d(regime: _Regime) -> list[DailyColumn]:
    """``glob_vol_cc_d_4w``."""
    return [regime.broadcast(f"glob_vol_cc_d_{VOL_WEEKS}w", *regime.glob_vol)]


def glob_vol_regime_cc(regime: _Regime) -> list[DailyColumn]:
    """``glob_vol_regime_cc_4w_26w``."""
    vol, goodness = regime.glob_vol
    median, count = prior_median(vol[:, None], HISTORY_WEEKS, HISTORY_MIN)
    with np.errstate(invalid="ignore"):
        value = np.log((vol + EPS) / (median[:, 0] + EPS))
    history = count[:, 0] / HISTORY_WEEKS
    return [
        regime.broadcast(
            f"glob_vol_regime_cc_{VOL_WEEKS}w_{HISTORY_WEEKS}w",
            value,
            np.minimum(goodness, history),
        )
    ]


def glob_corr_mean(regime: _Regime) -> list[DailyColumn]:
    """``glob_corr_mean_12w``."""
    goodness = regime.daily.stats(CORR_WEEKS).coverage.mean(axis=1)
    return [regime.broadcast(f"glob_corr_mean_{CORR_WEEKS}w", regime.corr_pc1[0], goodness)]


def glob_pc1_share(regime: _Regime) -> list[DailyColumn]:
    """``glob_pc1_share_12w``."""
    goodness = regime.daily.stats(CORR_WEEKS).coverage.mean(axis=1)
    return [regime.broadcast(f"glob_pc1_share_{CORR_WEEKS}w", regime.corr_pc1[1], goodness)]


def _weekly_log_change(regime: _Regime, weeks: int) -> tuple[np.ndarray, np.ndarray]:
    """``log C_t - log C_{t-weeks}`` on weekly closes, and the share of assets with one."""
    log_close = np.log(regime.inputs.weekly["close"])
    change = log_close - lag(log_close, weeks)
    return change, np.mean(~np.isnan(change), axis=1)


def glob_disp_ret(regime: _Regime) -> list[DailyColumn]:
    """``glob_disp_ret_1w``."""
    return [regime.dispersion("glob_disp_ret_1w", *_weekly_log_change(regime, 1))]


def glob_disp_mom(regime: _Regime) -> list[DailyColumn]:
    """``glob_disp_mom_12w``."""
    change, goodness = _weekly_log_change(regime, MOM_WEEKS)
    return [regime.dispersion(f"glob_disp_mom_{MOM_WEEKS}w", change, goodness)]


def glob_disp_vol(regime: _Regime) -> list[DailyColumn]:
    """``glob_disp_vol_4w``."""
    goodness = regime.daily.stats(VOL_WEEKS).coverage.mean(axis=1)
    return [regime.dispersion(f"glob_disp_vol_{VOL_WEEKS}w", regime.vol4, goodness)]


BUILDERS: dict[str, Callable[[_Regime], list[DailyColumn]]] = {
    "glob_vol_cc_d": glob_vol_cc_d,
    "glob_vol_regime_cc": glob_vol_regime_cc,
    "glob_corr_mean": glob_corr_mean,
    "glob_pc1_share": glob_pc1_share,
    "glob_disp_ret": glob_disp_ret,
    "glob_disp_mom": glob_disp_mom,
    "glob_disp_vol": glob_disp_vol,
}


def compute(inputs: FeatureInputs, keys: Sequence[str]) -> GroupResult:
    """The selected regime keys, broadcast to every asset (``valid / horizon`` goodness)."""
    regime = _Regime(inputs)
    return daily_result([col for key in keys for col in BUILDERS[key](regime)])


GROUP = register_group(FeatureGroup("regime", tuple(BUILDERS), compute, uses_daily=True))

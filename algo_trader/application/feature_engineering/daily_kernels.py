"""Array kernels for the daily-input groups (volatility, seasonal, regime).

Everything is evaluated at weekly ends only: a statistic over a horizon is taken over the
daily rows of :class:`~.sampling.DailyWindows` (one ``[start, end)`` range per weekly label),
for all assets at once.

Missing days
    A daily bar counts only when its open, high, low and close are all present
    (:func:`valid_bars`); other rows are dropped per asset. The daily log return of a valid
    bar is taken against the asset's previous *valid* close, so a holiday makes the next
    return span two days instead of losing it, and no value is ever filled in.

Two ways to reduce a window, both exact under truncation (row ``t`` never reads a row
after ``t``):
    * sums, counts and moments through prefix sums (:func:`prefix_sums`, :func:`window_sums`):
      ``O(T_d * A)`` once, then ``O(T_w * A)`` per horizon; NaN enters as 0 with a count.
    * order statistics and matrices on gathered windows (:func:`gather_windows`): a
      ``(T_w, L, A)`` array padded with NaN, sorted or multiplied in whole-array calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from algo_trader.application.feature_engineering.inputs import FeatureInputs
from algo_trader.application.feature_engineering.sampling import (
    DailyWindows,
    daily_windows,
    last_valid_rows,
)
from algo_trader.domain.errors import DataError

# A variance at or below this share of the mean squared value is rounding noise of the
# prefix sums (e.g. a price growing at an exactly constant rate): it is treated as 0, so a
# flat or constant-growth window gets vol 0 and skew 0 instead of amplified noise.
VAR_REL_FLOOR = 1e-12


def valid_bars(daily: dict[str, np.ndarray]) -> np.ndarray:
    """``(T_d, A)`` True where the asset has a complete daily OHLC bar."""
    present = ~np.isnan(daily["close"])
    for field in ("open", "high", "low"):
        present &= ~np.isnan(daily[field])
    return present


def daily_log_returns(close: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``log C_d - log C_prev`` per asset over its valid bars (NaN elsewhere).

    ``C_prev`` is the asset's previous valid close, so missing rows are dropped rather than
    turned into missing returns; an asset's first valid bar has no return.
    """
    log_close = np.where(valid, np.log(np.where(valid, close, 1.0)), np.nan)
    latest = last_valid_rows(valid)
    prev = np.vstack([np.full((1, close.shape[1]), -1), latest[:-1]])[: close.shape[0]]
    prev_log = np.take_along_axis(log_close, np.maximum(prev, 0), axis=0)
    ok = valid & (prev >= 0)
    return np.where(ok, log_close - np.where(ok, prev_log, 0.0), np.nan)


def prefix_sums(x: np.ndarray) -> np.ndarray:
    """Cumulative sums along axis 0 with a leading zero row (``x`` must be NaN-free).

    ``prefix[end] - prefix[start]`` is the sum over rows ``[start, end)``. Adding 0.0 leaves
    a float unchanged, so a window of zeros sums to exactly 0.
    """
    zero = np.zeros((1, *x.shape[1:]))
    return np.concatenate([zero, np.cumsum(x, axis=0, dtype=np.float64)])


def window_sums(prefix: np.ndarray, windows: DailyWindows) -> np.ndarray:
    """Per weekly label, the sum over its window's rows: ``(T_w, ...)``."""
    out: np.ndarray = prefix[windows.end] - prefix[windows.start]
    return out


def central_moments(
    n: np.ndarray, s1: np.ndarray, s2: np.ndarray, s3: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Mean, biased variance ``m2`` and third central moment ``m3`` from power sums.

    ``m2`` at or below ``VAR_REL_FLOOR * s2 / n`` is set to 0 (see the constant). Entries
    with ``n == 0`` are NaN.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        raw2 = s2 / n
        m2 = raw2 - mean * mean
        m2 = np.where(m2 <= VAR_REL_FLOOR * raw2, 0.0, m2)
        m3 = None if s3 is None else s3 / n - 3.0 * mean * raw2 + 2.0 * mean**3
    return mean, m2, m3


def gather_windows(x: np.ndarray, windows: DailyWindows, fill: float | bool = np.nan) -> np.ndarray:
    """``(T_w, L, A)``: row ``j`` of window ``i`` is ``x[start_i + j]``, ``fill`` past its end.

    ``L`` is :attr:`DailyWindows.length`, the same for full and truncated inputs. One
    fancy-index take from ``x`` with a ``fill`` row appended (rows past a window's end
    point at it).
    """
    padded = np.concatenate([x, np.full((1, x.shape[1]), fill, dtype=x.dtype)])
    rows = windows.start[:, None] + np.arange(windows.length)[None, :]
    rows = np.where(rows < windows.end[:, None], rows, x.shape[0])
    out: np.ndarray = padded[rows]
    return out


def nan_median(x: np.ndarray, min_count: int = 1) -> np.ndarray:
    """Median along the last axis ignoring NaN; NaN with fewer than ``min_count`` values."""
    ordered = np.sort(x, axis=-1)  # NaN sorts last
    count = np.sum(~np.isnan(x), axis=-1, keepdims=True)
    lo = np.maximum((count - 1) // 2, 0)
    hi = np.minimum(count // 2, x.shape[-1] - 1)
    med = 0.5 * (np.take_along_axis(ordered, lo, -1) + np.take_along_axis(ordered, hi, -1))
    return np.where(count >= max(min_count, 1), med, np.nan)[..., 0]


def sorted_quantile(ordered: np.ndarray, count: np.ndarray, q: float) -> np.ndarray:
    """Quantile ``q`` along axis 1 of NaN-last sorted windows with ``count`` values each.

    Linear interpolation between order statistics at position ``q * (count - 1)`` (numpy's
    default ``method="linear"``). ``ordered`` is ``(T, L, A)``, ``count`` ``(T, A)``.
    """
    pos = q * np.maximum(count - 1, 0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(count - 1, 0))
    low = np.take_along_axis(ordered, lo[:, None, :], axis=1)[:, 0, :]
    high = np.take_along_axis(ordered, hi[:, None, :], axis=1)[:, 0, :]
    return np.where(count > 0, low + (pos - lo) * (high - low), np.nan)


def prior_median(x: np.ndarray, rows: int, min_count: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row ``t``, the median of ``x[t - rows .. t - 1]`` (NaN skipped) and its count.

    Parameters
    ----------
    x
        ``(T, A)`` weekly values.
    rows
        How many earlier rows (row ``t`` itself excluded).
    min_count
        Fewest non-NaN values for a median (NaN otherwise).

    Returns
    -------
    tuple of numpy.ndarray
        ``(median, count)``, each ``(T, A)``.
    """
    padded = np.vstack([np.full((rows, x.shape[1]), np.nan), x])
    windows = sliding_window_view(padded, rows, axis=0)[: x.shape[0]]  # (T, A, rows)
    return nan_median(windows, min_count), np.sum(~np.isnan(windows), axis=-1)


def mad_dispersion(x: np.ndarray, scale: float) -> np.ndarray:
    """Per row, ``scale * median(|x - median(x)|)`` across the non-NaN columns, ``(T,)``."""
    med = nan_median(x)
    return scale * nan_median(np.abs(x - med[:, None]))


# --- per-window return statistics ----------------------------------------------------

# Power sums accumulated per window: valid bars, returns (count, sum of r, r^2, r^3, |r|)
# and the realized semivariance parts (r^2 of the down days, of the up days).
_PARTS = ("bars", "count", "sum", "sum2", "sum3", "sum_abs", "down2", "up2")


@dataclass(frozen=True)
class WindowStats:
    """Power sums of each asset's daily log returns over one horizon's windows.

    Attributes
    ----------
    windows
        The horizon's daily row ranges.
    sums
        ``(T_w, A, 8)`` in the order of ``_PARTS``.
    """

    windows: DailyWindows
    sums: np.ndarray

    def part(self, name: str) -> np.ndarray:
        """One power sum, ``(T_w, A)``."""
        return self.sums[:, :, _PARTS.index(name)]

    @property
    def count(self) -> np.ndarray:
        """Valid daily returns in the window."""
        return self.part("count")

    @property
    def coverage(self) -> np.ndarray:
        """``valid / horizon`` in [0, 1]: the daily groups' goodness."""
        return np.minimum(self.count / self.windows.horizon_days, 1.0)

    @property
    def enough(self) -> np.ndarray:
        """Whether the window holds ``windows.min_count`` returns (else features are NaN)."""
        return self.count >= self.windows.min_count

    def std(self, first: str = "sum", second: str = "sum2") -> np.ndarray:
        """Sample std (ddof 1) from a sum and a sum of squares; NaN without enough data."""
        n = self.count
        _, m2, _ = central_moments(n, self.part(first), self.part(second))
        with np.errstate(invalid="ignore", divide="ignore"):
            var = m2 * n / (n - 1.0)
        return np.where(self.enough, np.sqrt(np.where(self.enough, var, 0.0)), np.nan)


class DailyReturns:
    """Each asset's daily log returns over its valid bars, and their window statistics.

    Built once per group run; :meth:`stats` caches each horizon's power sums.

    Raises
    ------
    DataError
        When a complete daily bar has a close that is not a positive price.
    """

    def __init__(self, inputs: FeatureInputs) -> None:
        self.inputs = inputs
        self.valid = valid_bars(inputs.daily)
        close = inputs.daily["close"]
        bad = self.valid & ~(np.isfinite(close) & (close > 0.0))
        if bad.any():
            t, a = np.argwhere(bad)[0]
            raise DataError(
                f"daily close at {inputs.daily_index[t]} must be > 0 (log returns)",
                column=f"{inputs.assets[a]}/close",
                value=float(close[t, a]),
            )
        self.returns = daily_log_returns(close, self.valid)
        r = np.nan_to_num(self.returns, nan=0.0)
        r2 = r * r
        parts = (
            self.valid,
            ~np.isnan(self.returns),
            r,
            r2,
            r2 * r,
            np.abs(r),
            np.where(r < 0.0, r2, 0.0),
            np.where(r > 0.0, r2, 0.0),
        )
        self._prefix = prefix_sums(np.stack(parts, axis=2, dtype=np.float64))
        self._stats: dict[int, WindowStats] = {}

    def windows(self, weeks: int) -> DailyWindows:
        """The calendar windows of ``weeks`` weeks ending at each weekly label."""
        return self.stats(weeks).windows

    def stats(self, weeks: int) -> WindowStats:
        """Power sums over the ``weeks``-week windows (computed once per horizon)."""
        if weeks not in self._stats:
            windows = daily_windows(self.inputs.daily_index, self.inputs.weekly_index, weeks)
            self._stats[weeks] = WindowStats(windows, window_sums(self._prefix, windows))
        return self._stats[weeks]


# --- rolling correlation and one-factor-ness -------------------------------------------


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norm > 0.0, norm, 1.0)


def top_eigenvalue(
    gram: np.ndarray,
    start: np.ndarray,
    *,
    tol: float = 1e-9,
    max_iter: int = 60,
    check_every: int = 10,
) -> np.ndarray:
    """Largest eigenvalue of each symmetric PSD matrix in a ``(B, m, m)`` batch.

    Power iteration on the whole batch with a per-matrix convergence check: a matrix is
    done once its residual ``||G v - lambda v|| <= tol * lambda``, which bounds the error of
    ``lambda`` by ``tol * lambda`` (and typically by its square). Every ``check_every``
    steps, a matrix whose residual shrinks too slowly to converge within ``max_iter`` steps
    (a small eigen-gap: no dominant factor) is given up at once; those, and any whose start
    vector lay in the null space (``lambda == 0`` with a positive trace), are solved by one
    batched ``eigvalsh``. Finished matrices leave the batch once a quarter of it is done
    (copying is not free). Each matrix follows its own iterations, so its result does not
    depend on the rest of the batch.

    Parameters
    ----------
    gram
        ``(B, m, m)`` symmetric positive semi-definite.
    start
        ``(B, m)`` start vectors (e.g. the market direction); zero rows are allowed.
    tol, max_iter, check_every
        Residual tolerance (relative to ``lambda``), the most power steps, and how often
        the convergence rate is checked.
    """
    lam = np.full(gram.shape[0], np.nan)
    ids = np.arange(gram.shape[0])  # batch row -> matrix
    active = np.ones(gram.shape[0], dtype=bool)
    g, v = gram, _unit(start)
    checked = np.ones(gram.shape[0])  # residual at the last rate check
    for step in range(1, max_iter + 1):
        w = np.einsum("bij,bj->bi", g, v)
        rq = np.einsum("bi,bi->b", w, v)
        residual = np.linalg.norm(w - rq[:, None] * v, axis=1)
        done = active & (residual <= tol * rq)
        lam[ids[done]] = rq[done]
        active &= ~done
        if step % check_every == 0:
            # residual ~ rate^step: the projected residual at max_iter must reach tol.
            with np.errstate(invalid="ignore", divide="ignore"):
                rate = (residual / checked) ** (1.0 / check_every)
                projected = residual * rate ** (max_iter - step)
            if step > check_every:
                active &= ~(projected > tol * rq)
            checked = residual
        if not active.any():
            break
        if active.sum() < 0.75 * active.size:
            g, ids, w, active, checked = (
                g[active],
                ids[active],
                w[active],
                active[active],
                checked[active],
            )
        v = _unit(w)
    trace = np.einsum("bii->b", gram)
    stuck = np.flatnonzero(np.isnan(lam) | ((lam <= 0.0) & (trace > 0.0)))
    if stuck.size:
        lam[stuck] = np.linalg.eigvalsh(gram[stuck])[:, -1]
    return lam


def corr_and_pc1_share(returns: np.ndarray, windows: DailyWindows) -> tuple[np.ndarray, np.ndarray]:
    """Mean pairwise correlation and PC1 variance share of each window's daily returns.

    Missing values: an asset takes part in a window when it has at least
    ``windows.min_count`` returns there; its missing days are filled with its own window
    mean (they add nothing to any cross product), so the covariance stays a Gram matrix
    (positive semi-definite) and both features come from whole-array products. With no
    missing days this is exactly the sample correlation/covariance.

    * ``corr_mean = (1' R 1 - k) / (k (k - 1))`` over the ``k`` taking part with a nonzero
      variance, from the standardized columns ``Z`` (``1' R 1 = ||Z 1||^2``); NaN when
      ``k < 2`` (no pair).
    * ``pc1_share = lambda_1(C) / trace(C)`` of the covariance ``C``; ``lambda_1`` comes
      from the smaller side of the Gram matrix (``L x L`` days or ``A x A`` assets, same
      nonzero spectrum) by :func:`top_eigenvalue`. One asset gives 1.0; NaN when the
      trace is 0 (no asset, or all flat).

    Returns
    -------
    tuple of numpy.ndarray
        ``(corr_mean, pc1_share)``, each ``(T_w,)``.
    """
    valid = ~np.isnan(returns)
    x = gather_windows(np.where(valid, returns, 0.0), windows, fill=0.0)  # (T_w, L, A)
    present = gather_windows(valid, windows, fill=False)
    count = present.sum(axis=1)  # (T_w, A)
    takes_part = count >= windows.min_count
    mean = x.sum(axis=1) / np.maximum(count, 1)
    x -= mean[:, None, :]
    x *= present & takes_part[:, None, :]  # centred; a missing day = the asset's own mean
    ss = np.einsum("tla,tla->ta", x, x)
    raw = ss + count * mean**2
    has_var = takes_part & (ss > VAR_REL_FLOOR * raw)
    trace = np.where(has_var, ss, 0.0).sum(axis=1)
    x *= has_var[:, None, :]  # flat assets: no variance, no correlation
    k = has_var.sum(axis=1)

    weights = 1.0 + 1e-3 * np.sin(np.arange(x.shape[2]) + 1.0)  # market direction, generic
    if x.shape[1] <= x.shape[2]:
        gram = np.matmul(x, x.transpose(0, 2, 1))  # (T_w, L, L)
        start = x @ weights
    else:
        gram = np.matmul(x.transpose(0, 2, 1), x)  # (T_w, A, A)
        start = np.broadcast_to(weights, (x.shape[0], x.shape[2])).copy()
    lam = top_eigenvalue(gram, start)

    with np.errstate(invalid="ignore", divide="ignore"):
        x /= np.sqrt(np.where(has_var, ss, 1.0))[:, None, :]
        total = np.square(x.sum(axis=2)).sum(axis=1)  # 1' R 1
        corr = np.where(k >= 2, (total - k) / (k * (k - 1.0)), np.nan)
        share = np.where(trace > 0.0, lam / trace, np.nan)
    return corr, np.where(k == 1, 1.0, share)

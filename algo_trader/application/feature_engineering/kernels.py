"""Array kernels shared by the feature groups: ``(T, A)`` float64 in, ``(T, A)`` out.

Every kernel works on all assets at once (time on axis 0, NaN = missing) and is *causal*:
row ``t`` of the output depends only on rows ``<= t`` of the input, so truncating the input
at ``t`` reproduces row ``t`` bit for bit (the look-ahead tests rely on this).

Conventions
    * EWM kernels follow pandas ``ewm(adjust=True, ignore_na=False)``: the weight of an
      observation decays with its distance in rows, missing rows included; ``alpha`` comes
      from ``halflife`` (``1 - exp(-ln 2 / halflife)``), ``span`` (``2 / (span + 1)``) or is
      given. The EWM std is the bias-corrected one (pandas ``ewm().std()``).
      The decayed sums run in one compiled loop on values centred on each asset's first
      observation (shift invariance keeps a constant series exactly at zero spread).
    * Rolling kernels use the last ``window`` *rows*; NaNs inside are skipped and a value is
      produced when at least ``min_periods`` (default: the full window) are present.
    * Wilder kernels (RSI, ATR) drop missing rows (state carries across them, the output
      there is NaN) and are seeded with the simple mean of the first ``n`` changes / true
      ranges, as in Wilder (1978) and TA-Lib: the first value needs ``n + 1`` bars.
"""

from __future__ import annotations

import math

import numba
import numpy as np

MAD_SCALE = 1.4826  # 1 / Phi^-1(3/4): MAD of a normal sample -> its sigma


def _alpha(halflife: float | None, span: float | None, alpha: float | None) -> float:
    given = [v is not None for v in (halflife, span, alpha)]
    if sum(given) != 1:
        raise ValueError("give exactly one of halflife, span, alpha")
    if halflife is not None:
        if halflife <= 0:
            raise ValueError(f"halflife must be > 0, got {halflife}")
        return 1.0 - math.exp(-math.log(2.0) / halflife)
    if span is not None:
        if span < 1:
            raise ValueError(f"span must be >= 1, got {span}")
        return 2.0 / (span + 1.0)
    assert alpha is not None
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    return alpha


def first_valid(x: np.ndarray) -> np.ndarray:
    """Per column, the first non-NaN value (NaN for an all-NaN column)."""
    valid = ~np.isnan(x)
    idx = valid.argmax(axis=0)
    out = x[idx, np.arange(x.shape[1])]
    return np.where(valid.any(axis=0), out, np.nan)


@numba.njit(cache=True)
def _decayed_sum_kernel(x, decay):
    out = np.empty_like(x)
    out[0] = x[0]
    for t in range(1, x.shape[0]):
        out[t] = x[t] + decay * out[t - 1]
    return out


def _decayed_sum(x: np.ndarray, decay: float) -> np.ndarray:
    """``y_t = x_t + decay * y_{t-1}`` along axis 0, all columns per step."""
    if x.shape[0] == 0:
        return x.copy()
    out: np.ndarray = _decayed_sum_kernel(np.ascontiguousarray(x, dtype=np.float64), decay)
    return out


def _ewm_parts(
    x: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validity, centred values, their weight sum and weighted sum, reference, valid count."""
    valid = ~np.isnan(x)
    ref = first_valid(x)
    centred = np.where(valid, x - ref, 0.0)
    s_w = _decayed_sum(valid.astype(np.float64), 1.0 - alpha)
    s_x = _decayed_sum(centred, 1.0 - alpha)
    return valid, centred, s_w, s_x, ref, np.cumsum(valid, axis=0)


def ema(
    x: np.ndarray,
    *,
    halflife: float | None = None,
    span: float | None = None,
    alpha: float | None = None,
    min_periods: int = 1,
) -> np.ndarray:
    """Exponentially weighted mean (pandas ``ewm(...).mean()``, ``adjust=True``).

    Parameters
    ----------
    x
        ``(T, A)`` values, NaN = missing.
    halflife, span, alpha
        Exactly one: the decay.
    min_periods
        Observations needed (so far) before a value is produced.
    """
    a = _alpha(halflife, span, alpha)
    _, _, s_w, s_x, ref, count = _ewm_parts(x, a)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = ref + s_x / s_w
    return np.where(count >= max(min_periods, 1), mean, np.nan)


def ewm_std(
    x: np.ndarray,
    *,
    halflife: float | None = None,
    span: float | None = None,
    alpha: float | None = None,
    min_periods: int = 2,
) -> np.ndarray:
    """Bias-corrected exponentially weighted std (pandas ``ewm(...).std()``)."""
    a = _alpha(halflife, span, alpha)
    valid, centred, s_w, s_x, _, count = _ewm_parts(x, a)
    s_xx = _decayed_sum(centred * centred, 1.0 - a)
    s_ww = _decayed_sum(valid.astype(np.float64), (1.0 - a) ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s_x / s_w
        biased = np.maximum(s_xx / s_w - mean * mean, 0.0)
        correction = s_w * s_w / (s_w * s_w - s_ww)
        var = biased * correction
    ok = (count >= max(min_periods, 2)) & np.isfinite(var)
    return np.where(ok, np.sqrt(np.where(ok, var, 0.0)), np.nan)


def lag(x: np.ndarray, k: int = 1) -> np.ndarray:
    """``x`` shifted down ``k`` rows (row ``t`` holds ``x[t-k]``), NaN-filled on top."""
    out = np.full_like(x, np.nan)
    if k < x.shape[0]:
        out[k:] = x[: x.shape[0] - k]
    return out


def log_returns(close: np.ndarray) -> np.ndarray:
    """Row-to-row log returns ``log c_t - log c_{t-1}``; the first row is NaN."""
    logc = np.log(close)
    return logc - lag(logc, 1)


def window_missing_ratio(valid: np.ndarray, lookback: int) -> np.ndarray:
    """Share of the last ``lookback`` rows where ``valid`` is False (rows before 0 count).

    This is the weekly groups' goodness: ``missing / horizon``.
    """
    counts = np.cumsum(np.vstack([np.zeros((1, valid.shape[1])), valid]), axis=0)
    upper = np.arange(1, valid.shape[0] + 1)
    lower = np.maximum(upper - lookback, 0)
    present = counts[upper] - counts[lower]
    return (lookback - present) / lookback


# --- rolling window kernels (numba) ---------------------------------------------------


@numba.njit(cache=True)
def _rolling_mean_std(x, window, min_periods, ddof, want_std):
    n_rows, n_cols = x.shape
    out = np.full((n_rows, n_cols), np.nan)
    for a in range(n_cols):
        for t in range(n_rows):
            lo = max(0, t - window + 1)
            # Sum deviations from the window's first value: a constant window then has a
            # mean equal to it and a std of exactly 0 (no 1e-17 residue).
            ref = np.nan
            total = 0.0
            count = 0
            for i in range(lo, t + 1):
                v = x[i, a]
                if not np.isnan(v):
                    if count == 0:
                        ref = v
                    total += v - ref
                    count += 1
            if count < min_periods or count == 0:
                continue
            mean = ref + total / count
            if not want_std:
                out[t, a] = mean
                continue
            if count - ddof <= 0:
                continue
            ss = 0.0
            for i in range(lo, t + 1):
                v = x[i, a]
                if not np.isnan(v):
                    ss += (v - mean) * (v - mean)
            out[t, a] = math.sqrt(ss / (count - ddof))
    return out


@numba.njit(cache=True)
def _rolling_extreme(x, window, min_periods, want_max):
    n_rows, n_cols = x.shape
    out = np.full((n_rows, n_cols), np.nan)
    for a in range(n_cols):
        for t in range(n_rows):
            best = np.nan
            count = 0
            for i in range(max(0, t - window + 1), t + 1):
                v = x[i, a]
                if np.isnan(v):
                    continue
                count += 1
                if np.isnan(best) or (v > best if want_max else v < best):
                    best = v
            if count >= min_periods and count > 0:
                out[t, a] = best
    return out


def _periods(window: int, min_periods: int | None) -> int:
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    return window if min_periods is None else max(1, min_periods)


def rolling_mean(x: np.ndarray, window: int, min_periods: int | None = None) -> np.ndarray:
    """Mean of the non-NaN values among the last ``window`` rows."""
    out: np.ndarray = _rolling_mean_std(
        np.ascontiguousarray(x, dtype=np.float64), window, _periods(window, min_periods), 0, False
    )
    return out


def rolling_std(
    x: np.ndarray, window: int, min_periods: int | None = None, ddof: int = 1
) -> np.ndarray:
    """Sample std (``ddof``) of the non-NaN values among the last ``window`` rows (two-pass)."""
    out: np.ndarray = _rolling_mean_std(
        np.ascontiguousarray(x, dtype=np.float64), window, _periods(window, min_periods), ddof, True
    )
    return out


def rolling_max(x: np.ndarray, window: int, min_periods: int | None = None) -> np.ndarray:
    """Max of the non-NaN values among the last ``window`` rows."""
    out: np.ndarray = _rolling_extreme(
        np.ascontiguousarray(x, dtype=np.float64), window, _periods(window, min_periods), True
    )
    return out


def rolling_min(x: np.ndarray, window: int, min_periods: int | None = None) -> np.ndarray:
    """Min of the non-NaN values among the last ``window`` rows."""
    out: np.ndarray = _rolling_extreme(
        np.ascontiguousarray(x, dtype=np.float64), window, _periods(window, min_periods), False
    )
    return out


@numba.njit(cache=True)
def _insert_sorted(buf, n, v):
    pos = np.searchsorted(buf[:n], v)
    for i in range(n, pos, -1):
        buf[i] = buf[i - 1]
    buf[pos] = v


@numba.njit(cache=True)
def _remove_sorted(buf, n, v):
    pos = np.searchsorted(buf[:n], v)
    for i in range(pos, n - 1):
        buf[i] = buf[i + 1]


@numba.njit(cache=True)
def _median_and_mad(buf, n):
    lo = (n - 1) // 2
    hi = n // 2
    med = 0.5 * (buf[lo] + buf[hi])
    # Deviations from the median are two sorted runs: buf[lo], buf[lo-1]... going left and
    # buf[lo+1], buf[lo+2]... going right; merge them up to rank `hi` (O(window), no sort).
    i = lo
    j = lo + 1
    dev_lo = 0.0
    dev = 0.0
    for k in range(hi + 1):
        take_left = j >= n or (i >= 0 and med - buf[i] <= buf[j] - med)
        if take_left:
            dev = med - buf[i]
            i -= 1
        else:
            dev = buf[j] - med
            j += 1
        if k == lo:
            dev_lo = dev
    return med, 0.5 * (dev_lo + dev)


@numba.njit(cache=True)
def _rolling_median_mad(x, window, min_periods):
    n_rows, n_cols = x.shape
    med = np.full((n_rows, n_cols), np.nan)
    mad = np.full((n_rows, n_cols), np.nan)
    buf = np.empty(window)
    for a in range(n_cols):
        n = 0
        for t in range(n_rows):
            if t >= window:
                old = x[t - window, a]
                if not np.isnan(old):
                    _remove_sorted(buf, n, old)
                    n -= 1
            v = x[t, a]
            if not np.isnan(v):
                _insert_sorted(buf, n, v)
                n += 1
            if n >= min_periods and n > 0:
                med[t, a], mad[t, a] = _median_and_mad(buf, n)
    return med, mad


def rolling_median_mad(
    x: np.ndarray, window: int, min_periods: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rolling median and (unscaled) median absolute deviation from it.

    A sorted window per asset is updated by one insert and one delete per row (O(window)),
    and the MAD is read off it by merging the two sorted deviation runs, so no window is
    ever sorted from scratch. Multiply the MAD by :data:`MAD_SCALE` for a sigma estimate.

    Returns
    -------
    tuple of numpy.ndarray
        ``(median, mad)``, each ``(T, A)``.
    """
    med, mad = _rolling_median_mad(
        np.ascontiguousarray(x, dtype=np.float64), window, _periods(window, min_periods)
    )
    return med, mad


# --- Wilder indicators ------------------------------------------------------------------


@numba.njit(cache=True)
def _wilder_rsi(close, n):
    n_rows, n_cols = close.shape
    out = np.full((n_rows, n_cols), np.nan)
    for a in range(n_cols):
        prev = np.nan
        k = 0
        gain = 0.0
        loss = 0.0
        for t in range(n_rows):
            c = close[t, a]
            if np.isnan(c):
                continue
            if np.isnan(prev):
                prev = c
                continue
            d = c - prev
            prev = c
            g = d if d > 0 else 0.0
            lo = -d if d < 0 else 0.0
            k += 1
            if k <= n:
                gain += g / n
                loss += lo / n
                if k < n:
                    continue
            else:
                gain = (gain * (n - 1) + g) / n
                loss = (loss * (n - 1) + lo) / n
            total = gain + loss
            # A flat window has no up or down moves: neutral 50 rather than 0/0.
            out[t, a] = 50.0 if total == 0.0 else 100.0 * gain / total
    return out


def rsi(close: np.ndarray, n: int) -> np.ndarray:
    """Wilder's RSI in [0, 100]; 50 where the averaged gains and losses are both zero."""
    out: np.ndarray = _wilder_rsi(np.ascontiguousarray(close, dtype=np.float64), n)
    return out


@numba.njit(cache=True)
def _wilder_atr(high, low, close, n):
    n_rows, n_cols = close.shape
    out = np.full((n_rows, n_cols), np.nan)
    for a in range(n_cols):
        prev = np.nan
        k = 0
        atr_value = 0.0
        for t in range(n_rows):
            h = high[t, a]
            lo = low[t, a]
            c = close[t, a]
            if np.isnan(h) or np.isnan(lo) or np.isnan(c):
                continue
            if np.isnan(prev):
                prev = c
                continue
            tr = max(h - lo, abs(h - prev), abs(lo - prev))
            prev = c
            k += 1
            if k <= n:
                atr_value += tr / n
                if k < n:
                    continue
            else:
                atr_value = (atr_value * (n - 1) + tr) / n
            out[t, a] = atr_value
    return out


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int) -> np.ndarray:
    """Wilder's average true range over ``n`` bars (price units).

    The true range needs the previous close, so the first bar only seeds it; the first
    ATR is the mean of the next ``n`` true ranges, then ``ATR_t = (ATR_{t-1}(n-1) + TR_t)/n``.
    """

    def arr(v: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(v, dtype=np.float64)

    out: np.ndarray = _wilder_atr(arr(high), arr(low), arr(close), n)
    return out


# --- cross-sectional --------------------------------------------------------------------


@numba.njit(cache=True)
def _cs_percentile_rank(x):
    n_rows, n_cols = x.shape
    out = np.full((n_rows, n_cols), np.nan)
    for r in range(n_rows):
        order = np.argsort(x[r])  # NaNs sort last
        n_eff = 0
        while n_eff < n_cols and not np.isnan(x[r, order[n_eff]]):
            n_eff += 1
        i = 0
        while i < n_eff:
            j = i
            while j + 1 < n_eff and x[r, order[j + 1]] == x[r, order[i]]:
                j += 1
            # positions i..j tie: they share the average of ranks i+1..j+1
            pct = (0.5 * (i + j + 2) - 0.5) / n_eff
            for m in range(i, j + 1):
                out[r, order[m]] = pct
            i = j + 1
    return out


def cs_percentile_rank(x: np.ndarray) -> np.ndarray:
    """Per row, ``(average rank - 0.5) / N_eff`` among the non-NaN values; NaN stays NaN.

    ``N_eff`` is the row's count of non-NaN values; tied values share their average rank;
    a row with one value gets 0.5.
    """
    out: np.ndarray = _cs_percentile_rank(np.ascontiguousarray(x, dtype=np.float64))
    return out

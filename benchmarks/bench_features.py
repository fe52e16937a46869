"""Benchmark the feature groups on GENERATED daily bars (not real prices).

Generates ``--assets`` assets x ``--years`` years of Mon-Fri daily bars (a geometric random
walk with consistent OHLC; a tenth of the assets start two years late), aggregates them to
weekly bars as the data lake does, and in the same run times

* every registered feature group (``compute`` in this process, one after the other) against
  a naive per-asset pandas implementation of the same features (``Series.rolling``,
  ``ewm``, ``rolling.apply``, per-window loops), with peak traced memory of each side;
* the kernels that matter: rolling median + MAD (numba sorted window vs pandas
  ``rolling.apply``), Wilder RSI / ATR on daily bars (numba vs per-column pandas ``ewm``),
  and the 12-week correlation / PC1 share at weekly ends (the regime group's batched kernel
  vs a per-window ``corrcoef`` + ``eigvalsh`` loop).

For momentum, mean_reversion, breakout and cross_sectional the naive side implements the
same definitions and the run checks both sides agree (max abs difference and equal missing
masks). For the daily groups (volatility, seasonal, regime) the naive side uses the same
windows and statistics written the obvious pandas way; it is a timing reference and its
values are compared only for information (e.g. pandas time windows vs calendar weeks).

Run::

    uv run python benchmarks/bench_features.py                 # 100 assets x 20 years
    uv run python benchmarks/bench_features.py --assets 10 --years 3   # quick check
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from algo_trader.application.feature_engineering import kernels
from algo_trader.application.feature_engineering.inputs import FeatureInputs, GroupResult
from algo_trader.application.feature_engineering.registry import (
    compute_group,
    default_group_registry,
)

EPS = 1e-8
DAILY_EPS = 1e-6
Frames = dict[str, pd.DataFrame]
NaiveResult = dict[str, pd.DataFrame]  # feature name -> (T_w, A) frame


# --- generated data ---------------------------------------------------------------------


def generated_inputs(n_assets: int, years: int, seed: int = 0) -> FeatureInputs:
    """GENERATED daily and weekly bars (full Mon-Fri calendar, late starters)."""
    rng = np.random.default_rng(seed)
    n_weeks = 52 * years
    days = pd.bdate_range("2000-01-03", periods=n_weeks * 5, tz="UTC", name="timestamp")
    sigma = rng.uniform(0.005, 0.03, n_assets)
    ret = rng.standard_t(4, size=(len(days), n_assets)) * sigma * 0.7
    close = 100.0 * np.exp(np.cumsum(ret, axis=0))
    open_ = np.vstack([close[:1], close[:-1]]) * np.exp(rng.normal(0, 0.3, close.shape) * sigma)
    wick = np.abs(rng.normal(0, 0.5, (2, *close.shape))) * sigma
    daily = {
        "open": open_,
        "high": np.maximum(open_, close) * np.exp(wick[0]),
        "low": np.minimum(open_, close) * np.exp(-wick[1]),
        "close": close,
        "volume": rng.integers(1_000, 100_000, close.shape).astype(float),
    }
    late = np.arange(n_assets) % 10 == 9
    for values in daily.values():
        values[: min(len(days), 520), late] = np.nan
    by_week = {k: v.reshape(n_weeks, 5, n_assets) for k, v in daily.items()}
    weekly = {
        "open": by_week["open"][:, 0],
        "high": np.nanmax(by_week["high"], axis=1),
        "low": np.nanmin(by_week["low"], axis=1),
        "close": by_week["close"][:, -1],
        "volume": by_week["volume"].sum(axis=1),
    }
    weekly_index = pd.DatetimeIndex(days[4::5], name="timestamp")
    return FeatureInputs(
        [f"GEN{i:03d}" for i in range(n_assets)], weekly_index, weekly, days, daily
    )


# --- naive per-asset pandas: weekly groups ----------------------------------------------


def _frames(arrays: dict[str, np.ndarray], index: pd.DatetimeIndex, assets: list[str]) -> Frames:
    return {k: pd.DataFrame(v, index=index, columns=assets) for k, v in arrays.items()}


def _wilder(series: pd.Series, n: int) -> pd.Series:
    """Wilder smoothing seeded by the mean of the first ``n`` values (pandas ewm)."""
    valid = series.dropna()
    if len(valid) < n:
        return pd.Series(np.nan, index=series.index)
    seeded = pd.concat(
        [pd.Series([valid.iloc[:n].mean()], index=valid.index[n - 1 : n]), valid.iloc[n:]]
    )
    return seeded.ewm(alpha=1.0 / n, adjust=False).mean().reindex(series.index)


def _naive_rsi(c: pd.Series, n: int) -> pd.Series:
    d = c.diff()
    gain, loss = _wilder(d.clip(lower=0), n), _wilder((-d).clip(lower=0), n)
    return (100 * gain / (gain + loss)).where(gain + loss != 0, 50.0).where(gain.notna())


def _naive_atr(h: pd.Series, lo: pd.Series, c: pd.Series, n: int) -> pd.Series:
    prev = c.shift(1)
    tr = pd.concat([h - lo, (h - prev).abs(), (lo - prev).abs()], axis=1).max(axis=1)
    return _wilder(tr.where(prev.notna()), n)


def _complete(close: pd.Series, lookback: int) -> pd.Series:
    return close.notna().astype(float).rolling(lookback, min_periods=1).sum().eq(lookback) & (
        np.arange(len(close)) >= lookback - 1
    )


def naive_weekly_asset(
    o: pd.Series, h: pd.Series, lo: pd.Series, c: pd.Series
) -> dict[str, pd.Series]:
    """Every weekly feature of one asset, the obvious pandas way."""
    p = np.log(c)
    r = p.diff()
    sigma = r.rolling(26).std()
    out: dict[str, tuple[pd.Series, int]] = {}
    for hz in (4, 12, 26):
        out[f"z_mom_{hz}w"] = ((p - p.shift(hz)) / (sigma * np.sqrt(hz) + EPS), 27)
    atr26 = _naive_atr(h, lo, c, 26)
    for s in (4, 12):
        spread = c.ewm(span=s, min_periods=s).mean() - c.ewm(span=26, min_periods=26).mean()
        out[f"ema_spread_{s}w_26w"] = (spread / (atr26 + EPS), 27)
    for hl in (12, 26):
        z = (p - p.ewm(halflife=hl, min_periods=hl).mean()) / (
            p.ewm(halflife=hl, min_periods=hl).std() + EPS
        )
        out[f"z_price_ema_{hl}w"] = (z, hl)
    med = p.rolling(26).median()
    mad = p.rolling(26).apply(lambda w: np.median(np.abs(w - np.median(w))), raw=True)
    out["z_price_med_26w"] = ((p - med) / (1.4826 * mad + EPS), 26)
    hi4, lo4 = h.rolling(4).max(), lo.rolling(4).min()
    out["donch_pos_4w"] = ((c - lo4) / (hi4 - lo4 + EPS), 4)
    rsi = _naive_rsi(c, 4)
    out["rsi_centered_4w"] = (rsi - 50, 5)
    out["rev_1w"] = (-r.shift(1), 3)
    out["shock_4w"] = (r.shift(1) / (r.rolling(4).std().shift(1) + EPS), 6)
    out["range_pos_1w"] = ((c - (h + lo) / 2) / (0.5 * (h - lo) + EPS), 1)
    rng = h - lo
    out["range_z_12w"] = ((rng - rng.rolling(12).mean()) / (rng.rolling(12).std() + EPS), 12)
    for hz in (4, 26):
        out[f"brk_up_{hz}w"] = ((c > h.rolling(hz).max().shift(1)).astype(float), hz + 1)
        out[f"brk_dn_{hz}w"] = ((c < lo.rolling(hz).min().shift(1)).astype(float), hz + 1)
    return {k: v.where(_complete(c, lb)) for k, (v, lb) in out.items()}


def naive_weekly(inputs: FeatureInputs) -> NaiveResult:
    """The weekly groups per asset, then the cross-sectional ranks per week."""
    w = _frames(inputs.weekly, inputs.weekly_index, inputs.assets)
    per_asset = {
        a: naive_weekly_asset(w["open"][a], w["high"][a], w["low"][a], w["close"][a])
        for a in inputs.assets
    }
    names = next(iter(per_asset.values())).keys()
    out = {n: pd.DataFrame({a: per_asset[a][n] for a in inputs.assets}) for n in names}
    for base in (
        "z_mom_4w",
        "z_mom_12w",
        "z_price_ema_26w",
        "z_price_med_26w",
        "rev_1w",
        "shock_4w",
    ):
        frame = out[base]
        out[f"cs_rank_{base}"] = (frame.rank(axis=1, method="average") - 0.5).div(
            frame.count(axis=1), axis=0
        )
    return out


# --- naive per-asset pandas: daily groups (timing reference) ----------------------------


def _log(x: Any) -> Any:
    """``np.log`` keeping the pandas type (the stubs type ``np.log(Series)`` as ndarray)."""
    return x.pipe(np.log)


def _at_weeks(series: pd.Series, weekly_index: pd.DatetimeIndex) -> pd.Series:
    return series.reindex(weekly_index)


def naive_daily(inputs: FeatureInputs) -> NaiveResult:
    """Volatility, seasonal and regime features per asset with pandas time windows."""
    d = _frames(inputs.daily, inputs.daily_index, inputs.assets)
    widx = inputs.weekly_index
    cols: dict[str, dict[str, pd.Series]] = {}
    returns = {}
    for a in inputs.assets:
        c = d["close"][a].dropna()
        r = _log(c).diff().dropna()
        returns[a] = r
        f: dict[str, pd.Series] = {}
        vol = {
            h: _at_weeks(r.rolling(f"{7 * h}D", min_periods=max(2, 5 * h // 2)).std(), widx)
            for h in (1, 4, 12, 26)
        }
        f["vol_cc_d_4w"], f["vol_cc_d_26w"] = vol[4], vol[26]
        prev = c.shift(1)
        hh, ll = d["high"][a].dropna(), d["low"][a].dropna()
        tr = pd.concat([hh - ll, (hh - prev).abs(), (ll - prev).abs()], axis=1).max(axis=1)
        f["atrp_d_4w"] = _at_weeks(_wilder(tr.where(prev.notna()), 20) / c, widx)
        prior = vol[4].shift(1).rolling(26, min_periods=13).median()
        f["vol_regime_cc_4w_26w"] = _log((vol[4] + DAILY_EPS) / (prior + DAILY_EPS))
        a12 = _at_weeks(r.abs().rolling("84D", min_periods=30).std(), widx)
        f["vov_norm_12w"] = _log(
            (a12 + DAILY_EPS) / (a12.shift(1).rolling(26, min_periods=13).median() + DAILY_EPS)
        )
        for s, lg in ((1, 4), (4, 26)):
            f[f"vol_ts_cc_{s}w_{lg}w"] = _log(
                (vol[s].clip(lower=DAILY_EPS) + DAILY_EPS)
                / (vol[lg].clip(lower=DAILY_EPS) + DAILY_EPS)
            )
        n4 = r.rolling("28D", min_periods=10).count()
        down = np.sqrt((r.clip(upper=0) ** 2).rolling("28D").sum() / n4)
        up = np.sqrt((r.clip(lower=0) ** 2).rolling("28D").sum() / n4)
        f["down_up_vol_ratio_4w"] = _at_weeks(
            _log((down.clip(lower=DAILY_EPS) + DAILY_EPS) / (up.clip(lower=DAILY_EPS) + DAILY_EPS)),
            widx,
        )
        skew = r.rolling("84D", min_periods=30).apply(
            lambda w: (
                ((w - w.mean()) ** 3).mean() / max(((w - w.mean()) ** 2).mean(), 1e-300) ** 1.5
            ),
            raw=True,
        )
        f["realized_skew_d_12w"] = _at_weeks(skew.clip(-5, 5), widx)
        q05 = _at_weeks(r.rolling("84D", min_periods=30).quantile(0.05), widx)
        f["tail_5p_sigma_ratio_12w"] = _log(
            (np.maximum(-q05, 0) + DAILY_EPS) / (1.645 * vol[12] + DAILY_EPS)
        )
        jumps = []
        for t, sig in zip(widx, vol[12], strict=True):  # naive: one slice per week
            window = r[t - pd.Timedelta(days=28) : t]
            jumps.append((window.abs() > 2 * sig).mean() if len(window) >= 10 else np.nan)
        f["jump_freq_4w"] = pd.Series(jumps, index=widx)
        dow = [
            _at_weeks(
                r[r.index.day_of_week == k]
                .rolling("182D", min_periods=13)
                .mean()
                .reindex(r.index)
                .ffill(),
                widx,
            )
            for k in range(5)
        ]
        f["dow_alpha_Mon_26w"], f["dow_alpha_Fri_26w"] = dow[0], dow[4]
        f["dow_spread_26w"] = pd.concat(dow, axis=1).max(axis=1) - pd.concat(dow, axis=1).min(
            axis=1
        )
        cols[a] = f
    out = {
        n: pd.DataFrame({a: cols[a][n] for a in inputs.assets}) for n in next(iter(cols.values()))
    }
    out.update(_naive_regime(inputs, out, returns))
    return out


def _naive_regime(
    inputs: FeatureInputs, per_asset: NaiveResult, returns: dict[str, pd.Series]
) -> NaiveResult:
    widx = inputs.weekly_index
    r = pd.DataFrame(returns).reindex(inputs.daily_index)
    glob_vol = per_asset["vol_cc_d_4w"].mean(axis=1)
    regime = _log(
        (glob_vol + DAILY_EPS)
        / (glob_vol.shift(1).rolling(26, min_periods=13).median() + DAILY_EPS)
    )
    corr, share = [], []
    for t in widx:  # naive: one correlation matrix and eigen-decomposition per week
        window = r[t - pd.Timedelta(days=84) : t].dropna(axis=1, thresh=30)
        if window.shape[1] < 2:
            corr.append(np.nan)
            share.append(np.nan)
            continue
        cm = window.corr().to_numpy()
        k = cm.shape[0]
        corr.append((cm.sum() - k) / (k * (k - 1)))
        ev = np.linalg.eigvalsh(window.cov().to_numpy())
        share.append(ev[-1] / ev.sum())
    close = pd.DataFrame(inputs.weekly["close"], index=widx, columns=inputs.assets)

    def mad(frame: pd.DataFrame) -> pd.Series:
        return frame.apply(lambda row: 1.4826 * (row - row.median()).abs().median(), axis=1)

    series = {
        "glob_vol_cc_d_4w": glob_vol,
        "glob_vol_regime_cc_4w_26w": regime,
        "glob_corr_mean_12w": pd.Series(corr, index=widx),
        "glob_pc1_share_12w": pd.Series(share, index=widx),
        "glob_disp_ret_1w": mad(_log(close).diff()),
        "glob_disp_mom_12w": mad(_log(close) - _log(close).shift(12)),
        "glob_disp_vol_4w": mad(per_asset["vol_cc_d_4w"]),
    }
    return {n: pd.DataFrame({a: s for a in inputs.assets}) for n, s in series.items()}


# --- measuring --------------------------------------------------------------------------


def timed(fn: Callable[[], Any], memory: bool) -> tuple[Any, float, float]:
    """Result, wall seconds, and peak traced MiB (0 when ``memory`` is off)."""
    if memory:
        tracemalloc.start()
    start = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - start
    peak = 0.0
    if memory:
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return out, wall, peak


def best_of(fn: Callable[[], Any], repeats: int = 5) -> float:
    """Fastest of ``repeats`` wall times (the machine is shared: the minimum is the signal)."""
    return min(timed(fn, False)[1] for _ in range(repeats))


def compare(results: dict[str, GroupResult], naive: NaiveResult) -> list[str]:
    lines = []
    for group, result in results.items():
        diffs, masks = [], True
        for f, name in enumerate(result.names):
            if name not in naive:
                continue
            ours = result.values[:, :, f]
            theirs = naive[name].to_numpy(dtype=float)
            masks &= bool(np.array_equal(np.isnan(ours), np.isnan(theirs)))
            both = ~np.isnan(ours) & ~np.isnan(theirs)
            diffs.append(float(np.max(np.abs(ours[both] - theirs[both]), initial=0.0)))
        lines.append(
            f"  {group:16s} max|diff| {max(diffs, default=np.nan):.2e}  same missing mask: {masks}"
        )
    return lines


def bench_kernels(inputs: FeatureInputs) -> list[str]:
    lines = []
    logc = np.log(inputs.weekly["close"])
    frame = pd.DataFrame(logc)
    kernels.rolling_median_mad(logc[:30], 26)  # compile outside the timing
    fast = best_of(lambda: kernels.rolling_median_mad(logc, 26))
    _, slow, _ = timed(
        lambda: (
            frame.rolling(26).median(),
            frame.rolling(26).apply(lambda w: np.median(np.abs(w - np.median(w))), raw=True),
        ),
        False,
    )
    lines.append(
        f"  rolling median+MAD weekly (26w, {logc.shape}): numba {fast * 1e3:.1f} ms"
        f" vs pandas rolling.apply {slow * 1e3:.0f} ms ({slow / fast:.0f}x)"
    )
    d = inputs.daily
    dc = pd.DataFrame(d["close"])
    fast = best_of(lambda: kernels.rsi(d["close"], 14))
    _, slow, _ = timed(lambda: {a: _naive_rsi(dc[a], 14) for a in dc}, False)
    lines.append(
        f"  RSI(14) daily {d['close'].shape}: numba {fast * 1e3:.1f} ms vs "
        f"per-column pandas ewm {slow * 1e3:.0f} ms"
    )
    fast = best_of(lambda: kernels.atr(d["high"], d["low"], d["close"], 14))
    dh, dl = pd.DataFrame(d["high"]), pd.DataFrame(d["low"])
    _, slow, _ = timed(lambda: {a: _naive_atr(dh[a], dl[a], dc[a], 14) for a in dc}, False)
    lines.append(
        f"  ATR(14) daily: numba {fast * 1e3:.1f} ms vs per-column pandas ewm {slow * 1e3:.0f} ms"
    )
    try:
        from algo_trader.application.feature_engineering.daily_kernels import (
            DailyReturns,
            corr_and_pc1_share,
        )
    except ImportError:
        return lines
    daily = DailyReturns(inputs)
    windows = daily.windows(12)
    fast = best_of(lambda: corr_and_pc1_share(daily.returns, windows), 3)
    r = daily.returns

    def loop() -> None:
        for s, e in zip(windows.start, windows.end, strict=True):
            x = r[s:e][:, ~np.isnan(r[s:e]).any(axis=0)]
            if x.shape[1] >= 2 and x.shape[0] >= 2:
                np.corrcoef(x, rowvar=False)
                np.linalg.eigvalsh(np.cov(x, rowvar=False))

    _, slow, _ = timed(loop, False)
    lines.append(
        f"  12w corr + PC1 share at {len(windows.end)} weekly ends: batched "
        f"{fast * 1e3:.0f} ms vs per-window corrcoef+eigvalsh loop {slow * 1e3:.0f} ms"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=100)
    parser.add_argument("--years", type=int, default=20)
    parser.add_argument("--no-memory", action="store_true", help="skip the traced-memory pass")
    args = parser.parse_args()
    inputs = generated_inputs(args.assets, args.years)
    print(
        f"GENERATED bars: {args.assets} assets x {args.years} years "
        f"({len(inputs.daily_index)} days, {len(inputs.weekly_index)} weeks)"
    )
    registry = default_group_registry()
    small = generated_inputs(3, 2)
    for name in registry.names():  # compile numba kernels before timing
        compute_group(name, list(registry.get(name).keys), small)

    def vectorized() -> dict[str, GroupResult]:
        return {n: compute_group(n, list(registry.get(n).keys), inputs) for n in registry.names()}

    per_group = {}
    for name in registry.names():
        _, per_group[name], _ = timed(
            partial(compute_group, name, list(registry.get(name).keys), inputs), False
        )
    results, fast, _ = timed(vectorized, False)
    naive_w, slow_w, _ = timed(lambda: naive_weekly(inputs), False)
    naive_d, slow_d, _ = timed(lambda: naive_daily(inputs), False)
    print("per group (vectorized): " + ", ".join(f"{n} {s:.2f}s" for n, s in per_group.items()))
    print(
        f"all groups: vectorized {fast:.2f} s | naive pandas weekly {slow_w:.1f} s + daily "
        f"{slow_d:.1f} s = {slow_w + slow_d:.1f} s ({(slow_w + slow_d) / fast:.1f}x)"
    )
    if not args.no_memory:
        _, _, peak_fast = timed(vectorized, True)
        _, _, peak_w = timed(lambda: naive_weekly(inputs), True)
        _, _, peak_d = timed(lambda: naive_daily(inputs), True)
        print(
            f"peak traced memory: vectorized {peak_fast:.0f} MiB | naive weekly "
            f"{peak_w:.0f} MiB, daily {peak_d:.0f} MiB"
        )
    print("agreement with the naive side (weekly groups: same definitions; daily: reference):")
    print("\n".join(compare(results, {**naive_w, **naive_d})))
    print("kernels:")
    print("\n".join(bench_kernels(inputs)))


if __name__ == "__main__":
    main()

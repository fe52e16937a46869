"""Mean-reversion features against plain one-asset loops on generated bars, plus edge cases."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

import numpy as np
import pytest

from algo_trader.application.feature_engineering import mean_reversion
from algo_trader.application.feature_engineering.inputs import FeatureInputs

EPS = 1e-8
NAN = math.nan


def _complete(values: list[float], t: int, lookback: int) -> bool:
    return t >= lookback - 1 and not any(math.isnan(v) for v in values[t - lookback + 1 : t + 1])


def plain_z_price_ema(close: list[float], h: int) -> list[float]:
    alpha = 1.0 - 0.5 ** (1.0 / h)
    p = [math.log(c) for c in close]
    out = []
    for t in range(len(p)):
        if not _complete(p, t, h):
            out.append(NAN)
            continue
        obs = [(1.0 - alpha) ** (t - i) for i in range(t + 1) if not math.isnan(p[i])]
        xs = [v for v in p[: t + 1] if not math.isnan(v)]
        sw, sw2 = sum(obs), sum(w * w for w in obs)
        mean = sum(w * x for w, x in zip(obs, xs, strict=True)) / sw
        ss = sum(w * (x - mean) ** 2 for w, x in zip(obs, xs, strict=True))
        std = math.sqrt(ss / (sw - sw2 / sw))
        out.append((p[t] - mean) / (std + EPS))
    return out


def plain_z_price_med(close: list[float]) -> list[float]:
    p = [math.log(c) for c in close]
    out = []
    for t in range(len(p)):
        if not _complete(p, t, 26):
            out.append(NAN)
            continue
        window = p[t - 25 : t + 1]
        med = statistics.median(window)
        mad = statistics.median([abs(v - med) for v in window])
        out.append((p[t] - med) / (1.4826 * mad + EPS))
    return out


def plain_rsi(close: list[float], n: int) -> list[float]:
    out = [NAN] * len(close)
    changes: list[float] = []
    gain = loss = 0.0
    for t in range(1, len(close)):
        if math.isnan(close[t - 1]) or math.isnan(close[t]):
            continue
        d = close[t] - close[t - 1]
        changes.append(d)
        if len(changes) == n:
            gain = sum(max(c, 0.0) for c in changes) / n
            loss = sum(max(-c, 0.0) for c in changes) / n
        elif len(changes) > n:
            gain = (gain * (n - 1) + max(d, 0.0)) / n
            loss = (loss * (n - 1) + max(-d, 0.0)) / n
        else:
            continue
        if gain + loss == 0:
            out[t] = 50.0
        elif loss == 0:
            out[t] = 100.0
        else:
            out[t] = 100.0 - 100.0 / (1.0 + gain / loss)  # the textbook form
    return out


def plain_all(h: list, lo: list, c: list) -> dict[str, list[float]]:
    """Every mean-reversion column for one asset, written out plainly."""
    n = len(c)
    r = [NAN] + [math.log(c[t] / c[t - 1]) for t in range(1, n)]
    rsi = plain_rsi(c, 4)
    cols: dict[str, list[float]] = {
        "z_price_ema_12w": plain_z_price_ema(c, 12),
        "z_price_ema_26w": plain_z_price_ema(c, 26),
        "z_price_med_26w": plain_z_price_med(c),
    }
    donch, rsi_c, rev, shock, rpos, rz = ([] for _ in range(6))
    for t in range(n):
        ok4 = _complete(c, t, 4)
        hi, low = (max(h[t - 3 : t + 1]), min(lo[t - 3 : t + 1])) if ok4 else (NAN, NAN)
        donch.append((c[t] - low) / (hi - low + EPS) if ok4 else NAN)
        rsi_c.append(rsi[t] - 50.0 if _complete(c, t, 5) else NAN)
        rev.append(-r[t - 1] if _complete(c, t, 3) else NAN)
        shock.append(
            r[t - 1] / (statistics.stdev(r[t - 4 : t]) + EPS) if _complete(c, t, 6) else NAN
        )
        rpos.append(
            (c[t] - (h[t] + lo[t]) / 2) / (0.5 * (h[t] - lo[t]) + EPS)
            if not math.isnan(c[t])
            else NAN
        )
        if _complete(c, t, 12):
            rng = [h[i] - lo[i] for i in range(t - 11, t + 1)]
            rz.append((rng[-1] - statistics.mean(rng)) / (statistics.stdev(rng) + EPS))
        else:
            rz.append(NAN)
    cols.update(
        donch_pos_4w=donch,
        rsi_centered_4w=rsi_c,
        rev_1w=rev,
        shock_4w=shock,
        range_pos_1w=rpos,
        range_z_12w=rz,
    )
    return cols


def test_every_column_matches_plain_loop(panel: FeatureInputs) -> None:
    result = mean_reversion.compute(panel, list(mean_reversion.GROUP.keys))
    w = panel.weekly
    for a in range(len(panel.assets)):
        want = plain_all(list(w["high"][:, a]), list(w["low"][:, a]), list(w["close"][:, a]))
        assert set(want) == set(result.names)
        for name, values in want.items():
            np.testing.assert_allclose(
                result.values[:, a, result.names.index(name)],
                values,
                rtol=1e-9,
                atol=1e-12,
                err_msg=f"{name} asset {a}",
            )


def test_donchian_position_hand_computed(arrays_to_inputs: Callable[..., FeatureInputs]) -> None:
    high = np.array([[10.0], [12], [11], [13], [12]])
    low = np.array([[8.0], [9], [9], [10], [11]])
    close = np.array([[9.0], [11], [10], [12], [11.5]])
    result = mean_reversion.compute(arrays_to_inputs(close, high, low), ["donch_pos"])
    # t=3: (12 - 8) / (13 - 8); t=4: (11.5 - 9) / (13 - 9)
    np.testing.assert_allclose(
        result.values[3:, 0, 0], [4 / (5 + EPS), 2.5 / (4 + EPS)], rtol=1e-15
    )
    assert np.isnan(result.values[:3]).all()


def test_rev_and_range_pos_hand_computed(arrays_to_inputs: Callable[..., FeatureInputs]) -> None:
    close = np.array([[100.0], [110.0], [99.0]])
    result = mean_reversion.compute(
        arrays_to_inputs(close, close + 2.0, close - 2.0), ["rev", "range_pos"]
    )
    assert result.values[2, 0, 0] == pytest.approx(-math.log(1.1), rel=1e-15)
    np.testing.assert_array_equal(result.values[:, 0, 1], 0.0)  # close at mid-range


def test_constant_price(arrays_to_inputs: Callable[..., FeatureInputs]) -> None:
    result = mean_reversion.compute(
        arrays_to_inputs(np.full((40, 3), 7.0)), list(mean_reversion.GROUP.keys)
    )
    done = result.goodness == 0
    np.testing.assert_array_equal(result.values[done], 0.0)  # z 0, RSI 50 -> 0, pos 0
    assert np.isnan(result.values[~done]).all()


def test_asset_starting_later_and_holiday_week(generated_inputs: FeatureInputs) -> None:
    result = mean_reversion.compute(generated_inputs, list(mean_reversion.GROUP.keys))
    start = int(np.argmax(~np.isnan(generated_inputs.weekly["close"][:, 3])))
    range_pos = result.values[:, 3, result.names.index("range_pos_1w")]
    assert np.isnan(range_pos[:start]).all() and np.isfinite(range_pos[start:]).all()
    # the holiday-shortened week is a normal week: every feature present after warm-up
    assert np.isfinite(result.values[26:, [0, 1, 2, 4], :]).all()


def test_nan_only_where_goodness_says_so(generated_inputs: FeatureInputs) -> None:
    result = mean_reversion.compute(generated_inputs, list(mean_reversion.GROUP.keys))
    assert not np.isinf(result.values).any()
    np.testing.assert_array_equal(np.isnan(result.values), result.goodness > 0)

"""Breakout flags against a plain one-asset loop on generated bars, plus edge cases."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from algo_trader.application.feature_engineering import breakout
from algo_trader.application.feature_engineering.inputs import FeatureInputs


def plain_breakouts(high: list, low: list, close: list, h: int) -> tuple[list, list]:
    up, dn = [], []
    for t in range(len(close)):
        window = close[t - h : t + 1] if t >= h else []
        if not window or any(math.isnan(c) for c in window):
            up.append(math.nan)
            dn.append(math.nan)
            continue
        up.append(1.0 if close[t] > max(high[t - h : t]) else 0.0)
        dn.append(1.0 if close[t] < min(low[t - h : t]) else 0.0)
    return up, dn


def test_matches_plain_loop(panel: FeatureInputs) -> None:
    result = breakout.compute(panel, list(breakout.GROUP.keys))
    assert result.names == ["brk_up_4w", "brk_up_26w", "brk_dn_4w", "brk_dn_26w"]
    w = panel.weekly
    for a in range(len(panel.assets)):
        for h in (4, 26):
            up, dn = plain_breakouts(
                list(w["high"][:, a]), list(w["low"][:, a]), list(w["close"][:, a]), h
            )
            np.testing.assert_array_equal(
                result.values[:, a, result.names.index(f"brk_up_{h}w")], up
            )
            np.testing.assert_array_equal(
                result.values[:, a, result.names.index(f"brk_dn_{h}w")], dn
            )
    assert np.nansum(result.values) > 0  # the generated walk does break out sometimes


def test_hand_computed_strict_inequality(arrays_to_inputs: Callable[..., FeatureInputs]) -> None:
    close = np.array([[10.0], [11], [12], [11], [12], [13], [7]])
    high = close + 0.5
    low = close - 0.5
    result = breakout.compute(arrays_to_inputs(close, high, low), ["brk_up", "brk_dn"])
    up4 = result.values[:, 0, result.names.index("brk_up_4w")]
    dn4 = result.values[:, 0, result.names.index("brk_dn_4w")]
    # t=4: 12 vs max high(10.5..12.5)=12.5 -> 0; t=5: 13 > 12.5 -> 1; t=6: 7 < 10.5 -> 1
    np.testing.assert_array_equal(up4, [np.nan] * 4 + [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(dn4, [np.nan] * 4 + [0.0, 0.0, 1.0])


def test_constant_price_never_breaks_out(arrays_to_inputs: Callable[..., FeatureInputs]) -> None:
    result = breakout.compute(arrays_to_inputs(np.full((30, 2), 3.0)), ["brk_up", "brk_dn"])
    done = result.goodness == 0
    np.testing.assert_array_equal(result.values[done], 0.0)
    assert np.isnan(result.values[~done]).all()


def test_window_with_a_missing_week_is_missing(generated_inputs: FeatureInputs) -> None:
    result = breakout.compute(generated_inputs, ["brk_up"])
    start = int(np.argmax(~np.isnan(generated_inputs.weekly["close"][:, 3])))
    up4 = result.values[:, 3, 0]
    assert np.isnan(up4[: start + 4]).all() and not np.isnan(up4[start + 4 :]).any()
    np.testing.assert_array_equal(np.isnan(result.values), result.goodness > 0)

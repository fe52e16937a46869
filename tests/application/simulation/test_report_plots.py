"""Backtest plots: the curves behind them by hand, PNGs written beside their CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from algo_trader.application.simulation.report_plots import (
    CURVES_CSV,
    EQUITY_PNG,
    WEIGHTS_PNG,
    curves_frame,
    write_report_plots,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def weeks(n: int) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.date_range("2021-01-01", periods=n, freq="7D", tz="UTC"))


def test_curves_by_hand() -> None:
    index = weeks(3)
    curves = curves_frame(
        pd.Series([0.10, -0.20, 0.05], index=index), pd.Series([-0.1, 0.0, 0.0], index=index)
    )
    np.testing.assert_allclose(curves["strategy_equity"], [1.1, 0.88, 0.924])
    np.testing.assert_allclose(curves["strategy_drawdown"], [0.0, -0.2, 0.924 / 1.1 - 1])
    # The running peak starts at the initial 1: a first-week loss is a drawdown.
    np.testing.assert_allclose(curves["benchmark_drawdown"], [-0.1, -0.1, -0.1])
    with pytest.raises(ValueError, match="share their weeks"):
        curves_frame(pd.Series([0.1], index=index[:1]), pd.Series([0.1], index=index[1:2]))


@pytest.mark.parametrize("short", [False, True], ids=["long_only", "long_short"])
def test_plots_are_pngs_and_the_csv_holds_their_numbers(tmp_path: Path, short: bool) -> None:
    rng = np.random.default_rng(0)
    index = weeks(30)
    net = pd.Series(rng.normal(0.002, 0.02, 30), index=index)
    bench = pd.Series(rng.normal(0.001, 0.01, 30), index=index)
    w = rng.dirichlet([1.0, 1.0, 1.0], size=30) - (0.3 if short else 0.0)
    weights = pd.DataFrame(w, index=index, columns=["AAA", "BBB", "CCC"])
    paths = write_report_plots(tmp_path, net, bench, weights, [index[0], index[15]])
    assert [p.name for p in paths] == [EQUITY_PNG, WEIGHTS_PNG]
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 20_000
    back = pd.read_csv(tmp_path / CURVES_CSV, index_col="timestamp", parse_dates=True)
    expected = curves_frame(net, bench)
    np.testing.assert_array_equal(back.to_numpy(), expected.to_numpy())
    assert list(back.columns) == list(expected.columns)
    assert not list(tmp_path.glob(".*"))  # no temp file left behind


def test_a_single_week_still_draws(tmp_path: Path) -> None:
    index = weeks(1)
    one = pd.Series([0.01], index=index)
    weights = pd.DataFrame([[1.0]], index=index, columns=["AAA"])
    paths = write_report_plots(tmp_path, one, one, weights)
    assert all(p.stat().st_size > 0 for p in paths)

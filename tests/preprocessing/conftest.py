"""A hand-made returns frame small enough to check every statistic on paper.

The numbers are made up for the tests (they are not market data). With the fit window
ending 2024-01-26 (rows 1-3): A = 1, 2, 3 -> mean 2, std 1 (ddof=1); B = 4, 0, 2 ->
mean 2, std 2. Rows 4-5 lie outside the window.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

NAN = np.nan


def hand_returns() -> pd.DataFrame:
    index = pd.DatetimeIndex(
        pd.date_range("2024-01-05 21:00", periods=6, freq="7D", tz="UTC"), name="timestamp"
    )
    values = [[NAN, NAN], [1.0, 4.0], [2.0, 0.0], [3.0, 2.0], [5.0, 8.0], [NAN, 6.0]]
    return pd.DataFrame(values, index=index, columns=["A", "B"])


def generated_returns(rows: int = 40, assets: int = 5, seed: int = 7) -> pd.DataFrame:
    """Generated (random normal, correlated) weekly returns with a missing first row."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(assets, assets))
    values = rng.normal(0.0, 0.02, size=(rows, assets)) @ mix
    values[0] = NAN
    index = pd.DatetimeIndex(
        pd.date_range("2020-01-03 21:00", periods=rows, freq="7D", tz="UTC"), name="timestamp"
    )
    return pd.DataFrame(values, index=index, columns=[f"G{i}" for i in range(assets)])


@pytest.fixture
def returns() -> pd.DataFrame:
    return hand_returns()


@pytest.fixture
def generated() -> pd.DataFrame:
    return generated_returns()

"""Helpers shared by the data cleaning tests: small generated bar frames."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import pytest


def make_bars(stamps: Sequence[str], closes: Sequence[float]) -> pd.DataFrame:
    """Generated bars: open = close - 0.5, high = close + 1, low = open - 1, volume = 10."""
    close = np.asarray(closes, dtype=np.float64)
    index = pd.DatetimeIndex(pd.to_datetime(list(stamps), utc=True), name="timestamp")
    return pd.DataFrame(
        {
            "open": close - 0.5,
            "high": close + 1.0,
            "low": close - 1.5,
            "close": close,
            "volume": np.full(len(close), 10.0),
        },
        index=index,
    )


@pytest.fixture
def bars_factory() -> Callable[[Sequence[str], Sequence[float]], pd.DataFrame]:
    return make_bars

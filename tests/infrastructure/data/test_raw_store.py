from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from algo_trader.infrastructure.data.raw_store import Month, RawBarStore


def test_month_arithmetic() -> None:
    assert Month(2024, 1).prev() == Month(2023, 12)
    assert Month(2023, 12).next() == Month(2024, 1)
    assert Month.parse("2024-03").end() == pd.Timestamp("2024-04-01", tz="UTC")
    assert Month(2023, 12) < Month(2024, 1)
    with pytest.raises(ValueError, match="use YYYY-MM"):
        Month.parse("2024-13")


def bars(index: pd.DatetimeIndex) -> pd.DataFrame:
    n = len(index)
    return pd.DataFrame(
        {"open": np.full(n, 1.0), "high": 2.0, "low": 0.5, "close": 1.5, "volume": 10.0},
        index=index,
    )


def test_write_month_layout(tmp_path: Path) -> None:
    store = RawBarStore(tmp_path)
    idx = pd.date_range("2024-02-01", periods=3, freq="D", tz="UTC")
    path = store.write_month("AAPL", Month(2024, 2), bars(idx))
    assert path == tmp_path / "AAPL" / "2024" / "hist_data_2024-02.csv"
    lines = path.read_text().splitlines()
    assert lines[0] == "timestamp,open,high,low,close,volume"
    assert lines[1] == "2024-02-01T00:00:00+00:00,1.0,2.0,0.5,1.5,10.0"
    assert store.assets() == ["AAPL"]
    assert store.months("AAPL") == [(Month(2024, 2), path)]


def test_write_month_rejects_other_month(tmp_path: Path) -> None:
    idx = pd.date_range("2024-02-28", periods=3, freq="D", tz="UTC")
    with pytest.raises(ValueError, match="bars outside the month"):
        RawBarStore(tmp_path).write_month("AAPL", Month(2024, 2), bars(idx))

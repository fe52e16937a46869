"""The data lake files of one run: names, JSON keys, quarantine only when bars were dropped."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from algo_trader.application.data_cleaning.daily import daily_bars
from algo_trader.application.data_cleaning.outputs import CleanedData, write_outputs
from algo_trader.application.data_cleaning.periods import stack_bars
from algo_trader.application.data_cleaning.weekly import weekly_bars, weekly_returns
from algo_trader.domain.market_data.bars import BadBar

Factory = Callable[..., pd.DataFrame]


def _data(bars_factory: Factory, quarantine: list[BadBar]) -> CleanedData:
    stacked = stack_bars(
        {
            "A": bars_factory(["2024-03-04T10:00:00Z", "2024-03-11T10:00:00Z"], [1.0, 2.0]),
        }
    )
    weekly = weekly_bars(stacked)
    return CleanedData(
        weekly=weekly,
        returns=weekly_returns(weekly, "simple"),
        daily=daily_bars(stacked),
        return_type="simple",
        start="2024-03",
        end="2024-03",
        sources={"A": {"files": 1, "sha256": "0" * 64}},
        quarantine=quarantine,
    )


def test_files_and_json_keys(isolated_env: Path, bars_factory: Factory) -> None:
    tmp_path = isolated_env  # an empty folder
    written = write_outputs(tmp_path, _data(bars_factory, []))
    assert (
        sorted(p.name for p in tmp_path.iterdir())
        == sorted(p.name for p in written)
        == [
            "daily_ohlc.csv",
            "daily_ohlc_meta.json",
            "return_tensor.pt",
            "returns.csv",
            "weekly_ohlc.csv",
            "weekly_ohlc_meta.json",
        ]
    )
    weekly = json.loads((tmp_path / "weekly_ohlc_meta.json").read_text())
    assert sorted(weekly) == [
        "assets",
        "end",
        "label_rule",
        "missing_weeks",
        "return_type",
        "source",
        "start",
        "weeks",
    ]
    daily = json.loads((tmp_path / "daily_ohlc_meta.json").read_text())
    assert sorted(daily) == [
        "assets",
        "days",
        "first_day",
        "last_day",
        "missing_by_month",
        "missing_days",
    ]
    assert (tmp_path / "returns.csv").read_text().splitlines() == [
        "timestamp,A",
        "2024-03-04T10:00:00+00:00,",
        "2024-03-11T10:00:00+00:00,1.0",
    ]


def test_quarantine_is_written_when_bars_were_dropped(
    tmp_path: Path, bars_factory: Factory
) -> None:
    bad = BadBar("raw/A/2024/hist_data_2024-03.csv", 5, "high", "high is below low", "1.0 < low")
    write_outputs(tmp_path, _data(bars_factory, [bad]))
    assert (tmp_path / "quarantine.csv").read_text().splitlines() == [
        "file,line,column,rule,value",
        "raw/A/2024/hist_data_2024-03.csv,5,high,high is below low,1.0 < low",
    ]

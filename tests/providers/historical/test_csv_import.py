"""The ``csv`` provider end to end: user files -> download_history -> the raw layout.

All bars here are generated for the tests (small made-up prices), not real market data.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from algo_trader.application.historical.download import download_history
from algo_trader.application.historical.run import HistoricalRequest, run_historical
from algo_trader.domain.errors import ConfigError, DataError
from algo_trader.domain.market_data.assets import AssetSpec
from algo_trader.infrastructure.data.raw_reader import load_asset, read_raw_month
from algo_trader.infrastructure.data.raw_store import Month, RawBarStore
from algo_trader.infrastructure.env import load_settings
from algo_trader.providers.historical.csv_import import QUARANTINE_FILE, CsvProvider

START, NOW = Month(1900, 1), Month(2024, 12)


def user_file(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def download(provider: CsvProvider, root: Path) -> RawBarStore:
    store = RawBarStore(root)
    download_history(provider, store, provider.assets(), START, current=NOW, max_parallel=2)
    return store


def test_daily_date_only_file(tmp_path: Path) -> None:
    user_file(
        tmp_path / "in",
        "AAPL.csv",
        (
            "Date,Open,High,Low,Close,Adj Close,Volume\n"
            "2024-01-30,10,11,9,10.5,10.4,1000\n"
            "2024-01-31,10.5,11,10,10.8,10.7,1100\n"
            "2024-02-01,10.8,11.2,10.6,11,10.9,900\n"
        ),
    )
    store = download(CsvProvider(tmp_path / "in"), tmp_path / "raw")
    assert [str(m) for m, _ in store.months("AAPL")] == ["2024-01", "2024-02"]
    jan = store.month_path("AAPL", Month(2024, 1)).read_text(encoding="utf-8").splitlines()
    assert jan == [
        "timestamp,open,high,low,close,volume",
        "2024-01-30T00:00:00+00:00,10.0,11.0,9.0,10.5,1000.0",
        "2024-01-31T00:00:00+00:00,10.5,11.0,10.0,10.8,1100.0",
    ]
    meta = store.read_meta("AAPL")
    assert meta["provider"] == "csv" and meta["bar_size"] == "1 day"
    assert meta["contract"]["name"] == "AAPL" and meta["dropped_bars"] == 0


def test_offset_timestamps_are_converted_to_utc_and_split_by_utc_month(tmp_path: Path) -> None:
    user_file(
        tmp_path / "in",
        "EUR.USD.csv",
        (
            "timestamp,open,high,low,close\n"
            "2024-01-31T18:00:00-05:00,1.08,1.09,1.07,1.085\n"
            "2024-01-31T19:00:00-05:00,1.085,1.09,1.08,1.088\n"  # 00:00 UTC on 1 February
        ),
    )
    provider = CsvProvider(tmp_path / "in")
    assert provider.assets() == [AssetSpec.from_ticker("EUR.USD")]
    store = download(provider, tmp_path / "raw")
    jan, _ = read_raw_month(store.month_path("EUR.USD", Month(2024, 1)))
    feb, _ = read_raw_month(store.month_path("EUR.USD", Month(2024, 2)))
    assert jan.index.tolist() == [pd.Timestamp("2024-01-31T23:00:00Z")]
    assert feb.index.tolist() == [pd.Timestamp("2024-02-01T00:00:00Z")]
    assert np.isnan(feb["volume"].iloc[0])  # no volume column: NaN, written blank


def test_naive_file_with_timezone_across_dst(tmp_path: Path) -> None:
    hours = ["2024-03-09 23:00", "2024-03-10 00:00", "2024-03-10 01:00", "2024-03-10 03:00"]
    user_file(
        tmp_path / "in",
        "SPY.csv",
        "timestamp,open,high,low,close,volume\n"
        + "".join(f"{h},100,101,99,100.5,10\n" for h in hours),
    )
    store = download(CsvProvider(tmp_path / "in", timezone="America/New_York"), tmp_path / "raw")
    bars = load_asset(store, "SPY", None, None).bars
    # EST (-05:00) before 02:00 on 10 March, EDT (-04:00) after: UTC steps are 1h, 1h, 1h.
    assert bars.index.tolist() == [
        pd.Timestamp(t)
        for t in (
            "2024-03-10T04:00Z",
            "2024-03-10T05:00Z",
            "2024-03-10T06:00Z",
            "2024-03-10T07:00Z",
        )
    ]
    assert store.read_meta("SPY")["timezone"] == "America/New_York"
    assert store.read_meta("SPY")["bar_size"] == "1 hour"


def test_naive_file_without_timezone_is_an_error(tmp_path: Path) -> None:
    path = user_file(
        tmp_path / "in", "SPY.csv", "timestamp,open,high,low,close\n2024-03-08 09:00,1,1,1,1\n"
    )
    with pytest.raises(DataError) as info:
        download(CsvProvider(tmp_path / "in"), tmp_path / "raw")
    err = info.value
    assert (err.path, err.line, err.column, err.value) == (
        str(path),
        2,
        "timestamp",
        "2024-03-08 09:00",
    )
    assert "--timezone" in str(err)
    assert not (tmp_path / "raw" / "SPY").exists()


BAD_FILE = (
    "date,open,high,low,close,volume\n"
    "2024-01-30,10,11,9,10.5,1000\n"
    "2024-01-31,10,9,11,10,1000\n"  # high below low
    "2024-02-01,10.8,11.2,10.6,11,900\n"
    "2024-02-02,10.8,11.2,10.6,0,900\n"  # close not > 0
)


def test_drop_mode_writes_the_quarantine_report_and_clean_files(tmp_path: Path) -> None:
    path = user_file(tmp_path / "in", "ABC.csv", BAD_FILE)
    user_file(tmp_path / "in", "GOOD.csv", "date,open,high,low,close\n2024-01-30,1,1,1,1\n")
    provider = CsvProvider(tmp_path / "in", invalid_bars="drop", quarantine_dir=tmp_path / "q")
    store = download(provider, tmp_path / "raw")
    report = pd.read_csv(tmp_path / "q" / QUARANTINE_FILE)
    assert report.to_dict("records") == [
        {
            "file": str(path),
            "line": 3,
            "column": "high",
            "rule": "high is below low",
            "value": "9.0 < low",
        },
        {
            "file": str(path),
            "line": 5,
            "column": "close",
            "rule": "price must be > 0",
            "value": "0.0",
        },
    ]
    bars = load_asset(store, "ABC", None, None).bars
    assert pd.DatetimeIndex(bars.index).strftime("%Y-%m-%d").tolist() == [
        "2024-01-30",
        "2024-02-01",
    ]
    assert store.read_meta("ABC")["dropped_bars"] == 2
    assert len(load_asset(store, "GOOD", None, None).bars) == 1


def test_raise_mode_writes_nothing_for_that_asset(tmp_path: Path) -> None:
    path = user_file(tmp_path / "in", "ABC.csv", BAD_FILE)
    with pytest.raises(DataError) as info:
        download(CsvProvider(tmp_path / "in"), tmp_path / "raw")
    err = info.value
    assert (err.path, err.line, err.column, err.value) == (str(path), 3, "high", "9.0 < low")
    assert "2 bad bar(s)" in str(err) and "--invalid-bars drop" in str(err)
    assert not (tmp_path / "raw" / "ABC").exists()
    assert not (tmp_path / "in" / QUARANTINE_FILE).exists()


def test_run_historical_with_the_csv_provider(tmp_path: Path) -> None:
    user_file(tmp_path / "in", "ABC.csv", BAD_FILE)
    settings = load_settings(None)
    request = HistoricalRequest(
        provider="csv",
        tickers_path=tmp_path / "none.yml",
        csv_dir=tmp_path / "in",
        invalid_bars="drop",
    )
    report = run_historical(request, settings)
    assert report.written["ABC"] == ["2024-02", "2024-01"]
    assert (settings.data_source / QUARANTINE_FILE).is_file()
    assert RawBarStore(settings.data_source).assets() == ["ABC"]


def test_each_file_is_parsed_once(tmp_path: Path) -> None:
    path = user_file(tmp_path / "in", "ABC.csv", "date,open,high,low,close\n2024-01-30,1,1,1,1\n")
    provider = CsvProvider(tmp_path / "in")
    spec = provider.assets()[0]
    assert asyncio.run(provider.first_month(spec)) == Month(2024, 1)
    path.unlink()  # later calls must not read the file again
    assert asyncio.run(provider.last_month(spec)) == Month(2024, 1)
    assert len(asyncio.run(provider.fetch_month(spec, Month(2024, 1)))) == 1
    assert asyncio.run(provider.fetch_month(spec, Month(2024, 2))).empty


def test_folder_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        CsvProvider(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no <ASSET>\.csv files"):
        CsvProvider(tmp_path / "empty")
    user_file(tmp_path / "in", "ABC.csv", "date,open,high,low,close\n2024-01-30,1,1,1,1\n")
    with pytest.raises(ConfigError, match="not an IANA time zone"):
        CsvProvider(tmp_path / "in", timezone="Mars/Olympus")
    with pytest.raises(ConfigError, match="valid: raise, drop"):
        CsvProvider(tmp_path / "in", invalid_bars="skip")


def test_invalid_asset_file_name(tmp_path: Path) -> None:
    path = user_file(tmp_path / "in", "my prices.csv", "date,open,high,low,close\n")
    with pytest.raises(DataError) as info:
        CsvProvider(tmp_path / "in").assets()
    assert (info.value.path, info.value.value) == (str(path), "my prices")


def test_header_problems_name_the_file(tmp_path: Path) -> None:
    path = user_file(tmp_path / "in", "ABC.csv", "day,open,high,low,close\n2024-01-30,1,1,1,1\n")
    provider = CsvProvider(tmp_path / "in")
    with pytest.raises(DataError) as info:
        asyncio.run(provider.first_month(provider.assets()[0]))
    assert (info.value.path, info.value.line) == (str(path), 1)
    assert "need exactly one of timestamp, date" in str(info.value)
    assert "found: day, open, high, low, close" in str(info.value)


def test_drop_mode_with_every_bar_bad(tmp_path: Path) -> None:
    path = user_file(tmp_path / "in", "ABC.csv", "date,open,high,low,close\n2024-01-30,1,1,2,1\n")
    provider = CsvProvider(tmp_path / "in", invalid_bars="drop")
    with pytest.raises(DataError, match="every bar was invalid") as info:
        download(provider, tmp_path / "raw")
    assert info.value.path == str(path)
    assert len(pd.read_csv(tmp_path / "in" / QUARANTINE_FILE)) == 1

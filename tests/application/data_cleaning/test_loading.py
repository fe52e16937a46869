"""Selecting and loading assets from a real raw layout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from algo_trader.application.data_cleaning.loading import load_assets, select_assets, worker_count
from algo_trader.domain.errors import ConfigError, DataError
from algo_trader.infrastructure.data.raw_store import Month, RawBarStore

HEADER = "timestamp,open,high,low,close,volume\n"


def _raw(root: Path, asset: str, month: str, lines: list[str]) -> None:
    path = root / asset / month[:4] / f"hist_data_{month}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "".join(line + "\n" for line in lines))


@pytest.mark.parametrize(
    ("assets", "cpus", "expected"), [(100, 2, 1), (3, 16, 3), (100, 16, 15), (5, 1, 1), (0, 8, 1)]
)
def test_worker_count(assets: int, cpus: int, expected: int) -> None:
    assert worker_count(assets, cpus) == expected


def test_worker_count_defaults_to_the_machine() -> None:
    assert worker_count(1000) == max(1, (os.cpu_count() or 1) - 1)


def test_select_assets(tmp_path: Path) -> None:
    store = RawBarStore(tmp_path)
    with pytest.raises(DataError, match="no raw bars found; run `algotrader historical`"):
        select_assets(store, None)
    for asset in ("B", "A"):
        _raw(tmp_path, asset, "2024-03", ["2024-03-04T00:00:00+00:00,1,1,1,1,1"])
    assert select_assets(store, None) == ["A", "B"]
    assert select_assets(store, ["B", "A", "B"]) == ["A", "B"]
    with pytest.raises(ConfigError, match=r"unknown asset\(s\) C, D under .*; available: A, B"):
        select_assets(store, ["A", "C", "D"])


def test_load_assets_keeps_order_and_range(tmp_path: Path) -> None:
    for asset in ("A", "B", "C"):
        _raw(tmp_path, asset, "2024-02", ["2024-02-05T00:00:00+00:00,1,2,1,2,1"])
        _raw(tmp_path, asset, "2024-03", ["2024-03-04T00:00:00+00:00,2,3,1,3,1"])
    loaded = load_assets(RawBarStore(tmp_path), ["C", "A", "B"], Month(2024, 3), None, "raise")
    assert [a.asset for a in loaded] == ["C", "A", "B"]
    assert all(len(a.files) == 1 and a.bars["close"].tolist() == [3.0] for a in loaded)


def test_a_bad_asset_stops_the_load(tmp_path: Path) -> None:
    _raw(tmp_path, "A", "2024-03", ["2024-03-04T00:00:00+00:00,2,3,1,3,1"])
    _raw(tmp_path, "B", "2024-03", ["2024-03-04T00:00:00+00:00,2,1,3,2,1"])  # high < low
    store = RawBarStore(tmp_path)
    with pytest.raises(DataError, match=r"B/2024/hist_data_2024-03.csv, line 2"):
        load_assets(store, ["A", "B"], Month(2024, 3), None, "raise")
    with pytest.raises(ConfigError, match="--invalid-bars 'skip' is not one of raise, drop"):
        load_assets(store, ["A"], Month(2024, 3), None, "skip")

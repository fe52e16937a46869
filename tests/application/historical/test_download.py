"""The month loop, driven by a small in-memory provider (the providers have their own tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from algo_trader.application.historical.download import download_history, months_between
from algo_trader.application.historical.run import start_from_duration
from algo_trader.domain.market_data.assets import AssetSpec
from algo_trader.infrastructure.data.raw_store import Month, RawBarStore


class MemoryProvider:
    """Serves daily bars for Jan-Jun 2024 with an empty March (a quiet month, not the end)."""

    name = "memory"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        idx = pd.date_range("2024-01-01", "2024-06-30", freq="B", tz="UTC", name="timestamp")
        idx = idx[idx.month != 3]
        px = np.linspace(100, 120, len(idx))
        self.frame = pd.DataFrame(
            {"open": px, "high": px + 1, "low": px - 1, "close": px, "volume": 1.0}, index=idx
        )

    async def first_month(self, asset: AssetSpec) -> Month | None:
        return Month(2024, 1)

    async def last_month(self, asset: AssetSpec) -> Month | None:
        return None

    async def fetch_month(self, asset: AssetSpec, month: Month) -> pd.DataFrame:
        self.calls.append((asset.name, str(month)))
        idx = self.frame.index
        return self.frame[(idx >= month.start()) & (idx < month.end())]

    def metadata(self, asset: AssetSpec) -> dict[str, Any]:
        return {"provider": self.name}


def test_months_between_newest_first() -> None:
    assert months_between(Month(2023, 11), Month(2024, 2)) == [
        Month(2024, 2),
        Month(2024, 1),
        Month(2023, 12),
        Month(2023, 11),
    ]


def test_empty_month_does_not_stop_paging_and_first_month_does(tmp_path: Path) -> None:
    provider, store = MemoryProvider(), RawBarStore(tmp_path)
    report = download_history(
        provider,
        store,
        [AssetSpec.from_ticker("AAA")],
        start=Month(2020, 1),
        current=Month(2024, 6),
    )
    assert report.written["AAA"] == ["2024-06", "2024-05", "2024-04", "2024-02", "2024-01"]
    assert report.empty["AAA"] == ["2024-03"]
    assert [str(m) for m, _ in store.months("AAA")] == [
        "2024-01",
        "2024-02",
        "2024-04",
        "2024-05",
        "2024-06",
    ]
    meta = store.read_meta("AAA")
    assert meta == {
        "empty_months": ["2024-03"],
        "first_month": "2024-01",
        "last_complete_month": "2024-05",
        "provider": "memory",
    }


def test_rerun_skips_complete_months_and_refreshes_current(tmp_path: Path) -> None:
    provider, store = MemoryProvider(), RawBarStore(tmp_path)
    asset = [AssetSpec.from_ticker("AAA")]
    download_history(provider, store, asset, start=Month(2024, 1), current=Month(2024, 6))
    provider.calls.clear()
    report = download_history(provider, store, asset, start=Month(2024, 1), current=Month(2024, 6))
    # Only the current month is asked again; the known-empty March is not.
    assert provider.calls == [("AAA", "2024-06")]
    assert report.skipped["AAA"] == ["2024-05", "2024-04", "2024-03", "2024-02", "2024-01"]


def test_missing_file_is_refetched(tmp_path: Path) -> None:
    provider, store = MemoryProvider(), RawBarStore(tmp_path)
    asset = [AssetSpec.from_ticker("AAA")]
    download_history(provider, store, asset, start=Month(2024, 1), current=Month(2024, 6))
    store.month_path("AAA", Month(2024, 2)).unlink()
    provider.calls.clear()
    download_history(provider, store, asset, start=Month(2024, 1), current=Month(2024, 6))
    assert ("AAA", "2024-02") in provider.calls


@pytest.mark.parametrize(
    ("duration", "expected"), [("2 Y", "2022-11"), ("6 M", "2024-05"), ("10 D", "2024-11")]
)
def test_start_from_duration(duration: str, expected: str) -> None:
    now = pd.Timestamp("2024-11-15", tz="UTC")
    assert str(start_from_duration(duration, now)) == expected

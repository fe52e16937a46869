"""The raw bar layout: ``DATA_SOURCE/<asset>/<YYYY>/hist_data_YYYY-MM.csv`` plus ``_meta.json``.

Each monthly file holds only that month's bars (UTC), sorted and unique, with header
``timestamp,open,high,low,close,volume``. ``<asset>/_meta.json`` records the provider,
contract, bar size, ``what_to_show``, feed and the last complete month, which is what lets
a re-run skip finished months.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from algo_trader.domain.market_data.bars import BAR_COLUMNS
from algo_trader.infrastructure.data.atomic import write_csv, write_json

MONTH_FILE = re.compile(r"^hist_data_(\d{4})-(\d{2})\.csv$")
META_FILE = "_meta.json"


@dataclass(frozen=True)
class Month:
    """A calendar month; ordered, hashable."""

    year: int
    month: int

    def __lt__(self, other: Month) -> bool:
        return (self.year, self.month) < (other.year, other.month)

    def __le__(self, other: Month) -> bool:
        return (self.year, self.month) <= (other.year, other.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @classmethod
    def parse(cls, text: str) -> Month:
        match = re.fullmatch(r"(\d{4})-(\d{2})", text.strip())
        if not match or not 1 <= int(match.group(2)) <= 12:
            raise ValueError(f"{text!r} is not a month; use YYYY-MM, e.g. 2024-03")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of(cls, ts: pd.Timestamp) -> Month:
        return cls(ts.year, ts.month)

    def start(self) -> pd.Timestamp:
        return pd.Timestamp(year=self.year, month=self.month, day=1, tz="UTC")

    def end(self) -> pd.Timestamp:
        """Exclusive end: the first instant of the next month."""
        return self.next().start()

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def prev(self) -> Month:
        return Month(self.year - (self.month == 1), (self.month - 2) % 12 + 1)


class RawBarStore:
    """Reads and writes the raw monthly files of every asset under one root."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def month_path(self, asset: str, month: Month) -> Path:
        return self.root / asset / f"{month.year:04d}" / f"hist_data_{month}.csv"

    def assets(self) -> list[str]:
        """Assets with at least one monthly file, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self.months(p.name))

    def months(self, asset: str) -> list[tuple[Month, Path]]:
        """All monthly files of ``asset`` as ``(month, path)``, sorted by month."""
        base = self.root / asset
        found = []
        for path in base.glob("*/hist_data_*.csv"):
            match = MONTH_FILE.match(path.name)
            if match:
                found.append((Month(int(match.group(1)), int(match.group(2))), path))
        return sorted(found, key=lambda item: (item[0].year, item[0].month))

    def write_month(self, asset: str, month: Month, bars: pd.DataFrame) -> Path:
        """Write one month's bars (UTC index, :data:`BAR_COLUMNS` first) atomically."""
        in_month = (bars.index >= month.start()) & (bars.index < month.end())
        if not in_month.all():
            raise ValueError(f"{asset} {month}: bars outside the month were passed to write_month")
        extra = [c for c in bars.columns if c not in BAR_COLUMNS]
        frame = bars.loc[:, [*BAR_COLUMNS, *extra]].sort_index()
        frame.index.name = "timestamp"
        path = self.month_path(asset, month)
        write_csv(path, frame)
        return path

    def read_meta(self, asset: str) -> dict[str, Any]:
        path = self.root / asset / META_FILE
        if not path.is_file():
            return {}
        return dict(json.loads(path.read_text(encoding="utf-8")))

    def write_meta(self, asset: str, meta: dict[str, Any]) -> None:
        write_json(self.root / asset / META_FILE, meta)

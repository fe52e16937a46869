"""The ``csv`` provider: import a folder of the user's own OHLCV files into the raw layout.

One file per asset, named ``<ASSET>.csv`` (the asset name follows the usual rules: letters,
digits, ``. _ -``; ``EUR.USD.csv`` is an FX pair). The header holds ``date`` or ``timestamp``
and ``open, high, low, close``, optionally ``volume``, in any order and case; other columns
are ignored. Date-only values (``2024-03-04``) are daily bars, stamped 00:00 UTC of the date.
Timestamps carry a UTC offset, or the zone of naive timestamps is given with ``--timezone``.

Each file is parsed once (on first use) by the same strict parser as every other input.
With ``invalid_bars='drop'`` bad bars are dropped and listed in
``<quarantine_dir>/csv_import_quarantine.csv`` (file, line, column, rule, value).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
from pydantic import ValidationError

from algo_trader.domain.errors import ConfigError, DataError
from algo_trader.domain.market_data.assets import AssetSpec
from algo_trader.domain.market_data.bars import BAR_COLUMNS, BadBar
from algo_trader.infrastructure.data.atomic import write_csv
from algo_trader.infrastructure.data.bar_csv import (
    IMPORT_RULES,
    InvalidBars,
    apply_invalid_bars,
    read_bar_csv,
)
from algo_trader.infrastructure.data.raw_store import Month

logger = logging.getLogger(__name__)

QUARANTINE_FILE = "csv_import_quarantine.csv"
QUARANTINE_COLUMNS = ("file", "line", "column", "rule", "value")
_BAR_SIZES = {
    60: "1 min",
    300: "5 mins",
    900: "15 mins",
    1800: "30 mins",
    3600: "1 hour",
    86400: "1 day",
    604800: "1 week",
}


@dataclass(frozen=True)
class _Imported:
    """One parsed file: its checked bars and what describes it in ``_meta.json``."""

    bars: pd.DataFrame
    dropped: list[BadBar]
    sha256: str


class CsvProvider:
    """Serves ``<folder>/<ASSET>.csv`` files to the download loop.

    Parameters
    ----------
    folder
        Folder holding one ``<ASSET>.csv`` per asset (``--csv-dir`` or ``CSV_IMPORT_DIR``).
    timezone
        IANA zone (e.g. ``America/New_York``) of timestamps written without an offset
        (``--timezone``). Without it such timestamps are an error.
    invalid_bars
        ``'raise'`` (default): a bad bar stops the import of its file before anything of
        that asset is written. ``'drop'``: bad bars are dropped and reported.
    quarantine_dir
        Where ``csv_import_quarantine.csv`` goes under ``'drop'`` (default: ``folder``).

    Raises
    ------
    ConfigError
        If the folder does not exist, the zone is unknown or ``invalid_bars`` is invalid.
    """

    name = "csv"

    def __init__(
        self,
        folder: Path,
        timezone: str | None = None,
        invalid_bars: str = "raise",
        quarantine_dir: Path | None = None,
    ) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ConfigError(
                f"csv import folder {str(self.folder)!r} does not exist "
                "(--csv-dir or CSV_IMPORT_DIR)"
            )
        if timezone is not None:
            try:
                ZoneInfo(timezone)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ConfigError(
                    f"--timezone {timezone!r} is not an IANA time zone; valid "
                    "are e.g. UTC, America/New_York, Europe/London"
                ) from exc
        if invalid_bars not in ("raise", "drop"):
            raise ConfigError(f"--invalid-bars {invalid_bars!r} is invalid; valid: raise, drop")
        self.policy: InvalidBars = "drop" if invalid_bars == "drop" else "raise"
        self.rules = replace(IMPORT_RULES, timezone=timezone)
        self.quarantine_path = (quarantine_dir or self.folder) / QUARANTINE_FILE
        self._files = self._find_files()
        self._cache: dict[str, _Imported] = {}

    def _find_files(self) -> dict[str, Path]:
        files: dict[str, Path] = {}
        for path in sorted(self.folder.iterdir()):
            if not (path.is_file() and path.suffix.lower() == ".csv"):
                continue
            if path.name == QUARANTINE_FILE:
                continue
            if path.stem in files:
                raise DataError(
                    f"two files for asset {path.stem!r}: {files[path.stem].name} "
                    f"and {path.name}; keep one",
                    path=path,
                )
            files[path.stem] = path
        if not files:
            raise DataError(
                "no <ASSET>.csv files in the csv import folder; expected e.g. "
                "AAPL.csv with a header date,open,high,low,close,volume",
                path=self.folder,
            )
        return files

    def assets(self) -> list[AssetSpec]:
        """One asset per ``<ASSET>.csv`` file, sorted by name."""
        specs = []
        for stem, path in self._files.items():
            try:
                specs.append(AssetSpec.from_ticker(stem))
            except ValidationError as exc:
                raise DataError(
                    "the file name is not a valid asset name: start with a letter or digit "
                    "and use only A-Z a-z 0-9 . _ -",
                    path=path,
                    value=stem,
                ) from exc
        return specs

    def _path(self, asset: AssetSpec) -> Path:
        path = self._files.get(asset.name)
        if path is None:
            raise DataError(
                f"no file {asset.name}.csv in the csv import folder; assets there: "
                f"{', '.join(self._files)}",
                path=self.folder,
                value=asset.name,
            )
        return path

    def _load(self, asset: AssetSpec) -> _Imported:
        """Parse and check the asset's file once; later calls use the cached result."""
        if asset.name in self._cache:
            return self._cache[asset.name]
        path = self._path(asset)
        table, dropped = apply_invalid_bars(read_bar_csv(path, self.rules), self.policy)
        loaded = _Imported(
            bars=table.frame.loc[:, list(BAR_COLUMNS)], dropped=dropped, sha256=table.sha256
        )
        self._cache[asset.name] = loaded
        if self.policy == "drop":
            self._write_quarantine(path, loaded)
        return loaded

    def _bars(self, asset: AssetSpec) -> pd.DataFrame:
        bars = self._load(asset).bars
        if bars.empty:
            raise DataError(
                f"every bar was invalid; the broken rules are listed in {self.quarantine_path}",
                path=self._path(asset),
            )
        return bars

    def _write_quarantine(self, path: Path, loaded: _Imported) -> None:
        # Rewritten after each file so that it always lists every file read so far.
        rows = [b.as_dict() for item in self._cache.values() for b in item.dropped]
        write_csv(self.quarantine_path, pd.DataFrame(rows, columns=QUARANTINE_COLUMNS), index=False)
        bars = len({b.line for b in loaded.dropped})
        if bars:
            logger.warning(
                "csv import: dropped %d bad bar(s) from %s; listed in %s",
                bars,
                path,
                self.quarantine_path,
            )

    async def first_month(self, asset: AssetSpec) -> Month | None:
        """Month of the file's first bar."""
        return Month.of(self._bars(asset).index[0])

    async def last_month(self, asset: AssetSpec) -> Month | None:
        """Month of the file's last bar."""
        return Month.of(self._bars(asset).index[-1])

    async def fetch_month(self, asset: AssetSpec, month: Month) -> pd.DataFrame:
        """The file's bars in ``month`` (empty if none)."""
        bars = self._bars(asset)
        lo, hi = bars.index.searchsorted([month.start(), month.end()])
        return bars.iloc[lo:hi]

    def metadata(self, asset: AssetSpec) -> dict[str, Any]:
        """Provider, contract, source file and hash, zone, inferred bar size, dropped bars."""
        loaded = self._load(asset)
        return {
            "provider": self.name,
            "contract": asset.model_dump(),
            "source_file": str(self._path(asset)),
            "source_sha256": loaded.sha256,
            "timezone": self.rules.timezone,
            "bar_size": bar_size(pd.DatetimeIndex(loaded.bars.index)),
            "what_to_show": None,
            "feed": None,
            "invalid_bars": self.policy,
            "dropped_bars": len({b.line for b in loaded.dropped}),
        }


def bar_size(index: pd.DatetimeIndex) -> str | None:
    """The most common spacing of ``index`` as an IB-style bar size (``'1 hour'``)."""
    if len(index) < 2:
        return None
    steps, counts = np.unique(np.diff(index.asi8) // 1_000_000_000, return_counts=True)
    step = int(steps[np.argmax(counts)])
    return _BAR_SIZES.get(step, f"{step} secs")

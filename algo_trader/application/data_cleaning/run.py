"""``algotrader data_cleaning``: raw bars -> ``DATA_LAKE_SOURCE/<YYYY-WW>/``.

Load the selected assets (in parallel), aggregate all of them at once into weekly and
daily OHLC and weekly returns, and write the data lake files into a staging folder that
replaces the final ``YYYY-WW`` folder only when complete (see the data lake contract in
``shared/design.md`` and :mod:`staging`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from algo_trader.application.data_cleaning.daily import daily_bars
from algo_trader.application.data_cleaning.loading import load_assets, select_assets
from algo_trader.application.data_cleaning.outputs import (
    QUARANTINE_FILE,
    CleanedData,
    write_outputs,
)
from algo_trader.application.data_cleaning.periods import PeriodBars, stack_bars
from algo_trader.application.data_cleaning.weekly import (
    RETURN_TYPES,
    ReturnType,
    weekly_bars,
    weekly_returns,
)
from algo_trader.domain.errors import ConfigError, DataError
from algo_trader.infrastructure.data.atomic import UTC_FORMAT
from algo_trader.infrastructure.data.layout import week_folder_name
from algo_trader.infrastructure.data.raw_reader import LoadedAsset, month_of_file
from algo_trader.infrastructure.data.raw_store import Month, RawBarStore
from algo_trader.infrastructure.data.staging import staged_folder
from algo_trader.infrastructure.env import Settings


@dataclass(frozen=True)
class CleaningResult:
    """What a cleaning run wrote, for the CLI summary."""

    out_dir: Path
    assets: list[str]
    start: str
    end: str
    weeks: int
    days: int
    first_week: str
    last_week: str
    missing_weeks: dict[str, int]
    missing_days: dict[str, int]
    dropped_bars: int
    return_type: str
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent loading, aggregating and writing."""

    def summary_lines(self) -> list[str]:
        """Human-readable lines: assets, weeks, days, span, missing counts, dropped bars."""

        def worst(counts: dict[str, int]) -> str:
            total = sum(counts.values())
            if not total:
                return "none"
            top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
            named = ", ".join(f"{a} {n}" for a, n in top if n)
            return f"{total} in {sum(1 for n in counts.values() if n)} asset(s) ({named})"

        dropped = f"{self.dropped_bars}"
        if self.dropped_bars:
            dropped += f" (listed in {self.out_dir / QUARANTINE_FILE})"
        return [
            f"assets: {len(self.assets)} ({_shorten(self.assets)})",
            f"months read: {self.start} .. {self.end}",
            f"weeks: {self.weeks} ({self.first_week} .. {self.last_week}), "
            f"{self.return_type} returns",
            f"days: {self.days}",
            f"missing weeks: {worst(self.missing_weeks)}",
            f"missing Mon-Fri days: {worst(self.missing_days)}",
            f"dropped bars: {dropped}",
        ]


def _shorten(names: list[str], limit: int = 8) -> str:
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])}, ... and {len(names) - limit} more"


def _check_request(start: Month, end: Month | None, return_type: str) -> None:
    if return_type not in RETURN_TYPES:
        raise ConfigError(f"--return-type {return_type!r} is not one of {', '.join(RETURN_TYPES)}")
    if end is not None and end < start:
        raise ConfigError(f"--end {end} is before --start {start}; give --end >= --start")


def _months_read(loaded: list[LoadedAsset]) -> tuple[str, str]:
    months = [month_of_file(p) for a in loaded for p in a.files]
    return str(min(months)), str(max(months))


def _check_coverage(weekly: PeriodBars, start: Month, end: Month | None) -> None:
    """Every selected asset needs at least one Mon-Fri bar in the range."""
    without_bars = np.asarray(weekly.missing.all(axis=0))
    empty = [a for a, none in zip(weekly.assets, without_bars, strict=True) if none]
    if empty:
        raise DataError(
            f"no Monday-Friday bars between {start} and {end or 'the last month'} for "
            f"{', '.join(empty)}; choose other --start/--end months or leave them out with "
            "--assets",
            value=f"{start}..{end or 'latest'}",
        )


def build_outputs(
    loaded: list[LoadedAsset], start: Month, end: Month | None, return_type: str
) -> CleanedData:
    """Aggregate loaded assets into everything the data lake holds (no I/O)."""
    stacked = stack_bars({a.asset: a.bars for a in loaded})
    weekly = weekly_bars(stacked)
    _check_coverage(weekly, start, end)
    first, last = _months_read(loaded)
    kind: ReturnType = "log" if return_type == "log" else "simple"
    return CleanedData(
        weekly=weekly,
        returns=weekly_returns(weekly, kind),
        daily=daily_bars(stacked),
        return_type=kind,
        start=first,
        end=last,
        sources={a.asset: {"files": len(a.files), "sha256": a.sha256} for a in loaded},
        quarantine=[bad for a in loaded for bad in a.quarantine],
    )


def run_data_cleaning(
    settings: Settings,
    start: Month,
    end: Month | None,
    return_type: str,
    assets: list[str] | None,
    invalid_bars: str,
) -> CleaningResult:
    """Clean raw bars into ``DATA_LAKE_SOURCE/<YYYY-WW>/``.

    Parameters
    ----------
    settings
        ``data_source`` (raw layout) and ``data_lake_source`` (output root) are used.
    start, end
        Months to read, inclusive; ``end=None`` reads up to the latest month available.
    return_type
        ``simple`` or ``log`` weekly returns.
    assets
        Asset folder names to clean; None cleans every asset in the raw layout.
    invalid_bars
        ``raise`` stops at the first bad bar; ``drop`` drops bad bars and writes
        ``quarantine.csv`` beside the outputs.

    Returns
    -------
    CleaningResult
        The output folder, counts for the summary, and the time per phase.

    Raises
    ------
    ConfigError
        Bad flags or an unknown asset (the message lists the available ones).
    DataError
        No raw data, a bad raw file, or an asset without bars in ``start..end``.
    """
    _check_request(start, end, return_type)
    store = RawBarStore(settings.data_source)
    names = select_assets(store, assets)
    clock = time.perf_counter()
    loaded = load_assets(store, names, start, end, invalid_bars)
    timings = {"load": time.perf_counter() - clock}
    clock = time.perf_counter()
    data = build_outputs(loaded, start, end, return_type)
    timings["aggregate"] = time.perf_counter() - clock
    clock = time.perf_counter()
    labels = data.weekly.labels
    out_dir = settings.data_lake_source / week_folder_name(labels[-1])
    with staged_folder(out_dir) as staging:
        write_outputs(staging, data)
    timings["write"] = time.perf_counter() - clock
    return CleaningResult(
        out_dir=out_dir,
        assets=list(data.weekly.assets),
        start=data.start,
        end=data.end,
        weeks=len(labels),
        days=len(data.daily.labels),
        first_week=labels[0].strftime(UTC_FORMAT),
        last_week=labels[-1].strftime(UTC_FORMAT),
        missing_weeks=dict(zip(data.weekly.assets, _counts(data.weekly), strict=True)),
        missing_days=dict(zip(data.daily.assets, _counts(data.daily), strict=True)),
        dropped_bars=len({(b.file, b.line) for b in data.quarantine}),
        return_type=data.return_type,
        timings=timings,
    )


def _counts(bars: PeriodBars) -> list[int]:
    return np.count_nonzero(bars.missing, axis=0).tolist()

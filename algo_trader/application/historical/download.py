"""The historical download loop: months per asset, resume, atomic writes, progress.

Months run newest to oldest so that a provider paging backward (IB) asks for adjacent
windows. A month before the current one that was written completely on an earlier run
(``last_complete_month`` in ``_meta.json`` covers it and its file exists, or it is listed in
``empty_months``) is skipped; the
current month is always refreshed. The loop stops at the provider's first month (IB's head
timestamp) or the requested start, never at the first empty answer.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import pandas as pd

from algo_trader.domain.market_data.assets import AssetSpec
from algo_trader.infrastructure.data.raw_store import Month, RawBarStore
from algo_trader.infrastructure.progress import Tracker, progress_bar
from algo_trader.providers.historical.base import HistoricalProvider

logger = logging.getLogger(__name__)


@dataclass
class DownloadReport:
    """What one run did, per asset."""

    written: dict[str, list[str]] = field(default_factory=dict)
    skipped: dict[str, list[str]] = field(default_factory=dict)
    empty: dict[str, list[str]] = field(default_factory=dict)

    @property
    def files_written(self) -> int:
        return sum(len(v) for v in self.written.values())


def months_between(first: Month, last: Month) -> list[Month]:
    """Inclusive month range ``first..last``, newest first."""
    out, month = [], last
    while first <= month:
        out.append(month)
        month = month.prev()
    return out


async def _span(
    provider: HistoricalProvider, asset: AssetSpec, start: Month, current: Month
) -> list[Month]:
    """The months to visit for one asset, newest first."""
    first, last = await asyncio.gather(provider.first_month(asset), provider.last_month(asset))
    begin = first if first is not None and start < first else start
    end = last if last is not None and last < current else current
    return months_between(begin, end)


async def _download_asset(
    provider: HistoricalProvider,
    store: RawBarStore,
    asset: AssetSpec,
    months: list[Month],
    report: DownloadReport,
    tracker: Tracker,
) -> None:
    meta = store.read_meta(asset.name)
    done = meta.get("last_complete_month")
    done_until = Month.parse(done) if done else None
    known_empty = set(meta.get("empty_months", []))
    written: list[str] = []
    skipped: list[str] = []
    empty: list[str] = []
    newest = months[0] if months else None
    for month in months:
        on_disk = store.month_path(asset.name, month).exists() or str(month) in known_empty
        if month != newest and done_until is not None and month <= done_until and on_disk:
            skipped.append(str(month))
        else:
            bars = await provider.fetch_month(asset, month)
            if bars.empty:
                empty.append(str(month))
            else:
                store.write_month(asset.name, month, bars)
                written.append(str(month))
        tracker.advance()
    report.written[asset.name], report.skipped[asset.name] = written, skipped
    report.empty[asset.name] = empty
    if newest is not None:
        # Only now is every month before the newest on disk: record it for the next run.
        store.write_meta(
            asset.name,
            {
                **provider.metadata(asset),
                "first_month": str(months[-1]),
                "last_complete_month": str(newest.prev()),
                "empty_months": sorted((known_empty | set(empty)) - set(written)),
            },
        )


async def _download_all(
    provider: HistoricalProvider,
    store: RawBarStore,
    assets: list[AssetSpec],
    start: Month,
    current: Month,
    max_parallel: int,
) -> DownloadReport:
    report = DownloadReport()
    spans = await asyncio.gather(*(_span(provider, a, start, current) for a in assets))
    gate = asyncio.Semaphore(max_parallel)
    with progress_bar(f"download ({provider.name})", sum(map(len, spans))) as tracker:

        async def one(asset: AssetSpec, months: list[Month]) -> None:
            async with gate:
                await _download_asset(provider, store, asset, months, report, tracker)

        await asyncio.gather(*(one(a, m) for a, m in zip(assets, spans, strict=True)))
    return report


def download_history(
    provider: HistoricalProvider,
    store: RawBarStore,
    assets: list[AssetSpec],
    start: Month,
    current: Month | None = None,
    max_parallel: int = 4,
) -> DownloadReport:
    """Download ``assets`` from ``start`` to the current month into ``store``.

    Parameters
    ----------
    provider
        Source of bars.
    store
        Raw layout to write.
    assets
        Instruments to fetch.
    start
        Oldest month wanted (the provider's first month may be later).
    current
        The month treated as "now" (refreshed every run). Defaults to the current UTC month.
    max_parallel
        Assets fetched concurrently (``MAX_PARALLEL_REQUESTS``).
    """
    now = current or Month.of(pd.Timestamp.now(tz="UTC"))
    report = asyncio.run(_download_all(provider, store, assets, start, now, max_parallel))
    logger.info("download: %d monthly files written to %s", report.files_written, store.root)
    return report

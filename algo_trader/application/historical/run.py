"""``algotrader historical``: pick the provider, resolve the months, run the download."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from algo_trader.application.historical.config import TickersConfig, load_tickers
from algo_trader.application.historical.download import DownloadReport, download_history
from algo_trader.domain.errors import ConfigError
from algo_trader.domain.market_data.assets import AssetSpec
from algo_trader.infrastructure.data.raw_store import Month, RawBarStore
from algo_trader.infrastructure.env import Settings
from algo_trader.providers.historical.base import HistoricalProvider

_UNIT_MONTHS = {"Y": 12, "M": 1}
EARLIEST = Month(1900, 1)


@dataclass(frozen=True)
class HistoricalRequest:
    """The CLI's view of one download."""

    provider: str
    tickers_path: Path
    csv_dir: Path | None = None
    timezone: str | None = None
    start: Month | None = None
    invalid_bars: str = "raise"


def start_from_duration(duration: str, now: pd.Timestamp) -> Month:
    """Oldest month an IB-style duration (``'2 Y'``, ``'6 M'``, ``'10 D'``) reaches back to."""
    count, unit = duration.split()
    if unit in _UNIT_MONTHS:
        return Month.of(now - pd.DateOffset(months=int(count) * _UNIT_MONTHS[unit]))
    seconds = int(count) * {"W": 604_800, "D": 86_400, "S": 1}[unit]
    return Month.of(now - pd.Timedelta(seconds=seconds))


def _build_provider(
    request: HistoricalRequest, settings: Settings
) -> tuple[HistoricalProvider, list[AssetSpec], TickersConfig | None]:
    if request.provider == "sample":
        from algo_trader.providers.historical.sample import SampleProvider

        sample = SampleProvider()
        return sample, sample.assets(), None
    if request.provider == "csv":
        from algo_trader.providers.historical.csv_import import CsvProvider

        folder = request.csv_dir or settings.csv_import_dir
        if folder is None:
            raise ConfigError(
                "the csv provider needs a folder of <ASSET>.csv files: pass --csv-dir DIR "
                "or set CSV_IMPORT_DIR"
            )
        csv = CsvProvider(
            folder,
            timezone=request.timezone,
            invalid_bars=request.invalid_bars,
            quarantine_dir=settings.data_source,
        )
        return csv, csv.assets(), None
    tickers = load_tickers(request.tickers_path)
    if request.provider == "ib":
        from algo_trader.providers.historical.ib import IBProvider

        ib = IBProvider(
            tickers, host=settings.ib_host, port=settings.ib_port, client_id=settings.ib_client_id
        )
        return ib, tickers.tickers, tickers
    from algo_trader.providers.historical.alpaca import AlpacaProvider

    alpaca = AlpacaProvider(
        tickers,
        api_key=os.environ.get("ALPACA_API_KEY", ""),
        secret_key=os.environ.get("ALPACA_SECRET_KEY", ""),
    )
    return alpaca, tickers.tickers, tickers


def run_historical(request: HistoricalRequest, settings: Settings) -> DownloadReport:
    """Download per ``request`` into ``settings.data_source``."""
    provider, assets, tickers = _build_provider(request, settings)
    now = pd.Timestamp.now(tz="UTC")
    start = request.start
    if start is None:
        start = start_from_duration(tickers.duration, now) if tickers else EARLIEST
    return download_history(
        provider,
        RawBarStore(settings.data_source),
        assets,
        start=start,
        current=Month.of(now),
        max_parallel=settings.max_parallel_requests,
    )

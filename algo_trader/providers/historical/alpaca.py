"""Alpaca historical bars through ``alpaca-py``: stocks/ETFs and crypto, one month a request.

Stocks go to ``StockHistoricalDataClient`` (``/v2/stocks/bars``, needs API keys), crypto
pairs such as ``BTC/USD`` to ``CryptoHistoricalDataClient`` (``/v1beta3/crypto/us/bars``,
keys optional). The client follows ``next_page_token`` until the month is complete and
only then returns, so a month is either whole or an exception: never a prefix.

Retries: the client itself retries 429 and 504 a few times per page. Every other transient
answer (500, 502, 503, a dropped connection) and a 429 that outlasts the client's retries
is retried here for the whole month with exponential back-off; when that is exhausted the
month fails with :class:`ProviderError` instead of coming back short.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pandas as pd
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.enums import Adjustment, CryptoFeed, DataFeed
from alpaca.data.historical.crypto import CryptoHistoricalDataClient
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import CryptoBarsRequest, StockBarsRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

from algo_trader.application.historical.config import BAR_SIZES, TickersConfig
from algo_trader.domain.errors import ConfigError, ProviderError
from algo_trader.domain.market_data.assets import AssetSpec
from algo_trader.domain.market_data.bars import BAR_COLUMNS
from algo_trader.infrastructure.data.raw_store import Month

logger = logging.getLogger(__name__)

STOCK_TYPES = ("STK", "ETF")
CRYPTO_TYPES = ("CRYPTO",)
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
AUTH_STATUS = frozenset({401, 403})
# Alpaca's historical stock data starts in 2016 (its Data API v2 docs: trades, quotes and
# bars were backfilled for 2016-2020); asking for older months only costs empty requests.
STOCK_FIRST_MONTH = Month(2016, 1)
_UNITS = {
    "min": TimeFrameUnit.Minute,
    "mins": TimeFrameUnit.Minute,
    "hour": TimeFrameUnit.Hour,
    "hours": TimeFrameUnit.Hour,
    "day": TimeFrameUnit.Day,
    "week": TimeFrameUnit.Week,
    "month": TimeFrameUnit.Month,
}
# Alpaca's short wire keys, in BAR_COLUMNS order.
_WIRE_KEYS = ("o", "h", "l", "c", "v")


def _try_timeframe(bar_size: str) -> TimeFrame | None:
    count, _, unit = bar_size.partition(" ")
    if unit not in _UNITS or not count.isdigit():
        return None
    try:
        return TimeFrame(int(count), _UNITS[unit])
    except ValueError:  # alpaca-py's own limits, e.g. '8 hours' is fine but '2 days' is not
        return None


ALPACA_BAR_SIZES = tuple(s for s in BAR_SIZES if _try_timeframe(s) is not None)


def alpaca_timeframe(bar_size: str) -> TimeFrame:
    """The Alpaca ``TimeFrame`` for a ``tickers.yml`` ``bar_size`` such as ``'1 hour'``.

    Raises
    ------
    ConfigError
        Alpaca has no such bar (seconds bars, for instance); the message lists valid sizes.
    """
    timeframe = _try_timeframe(bar_size)
    if timeframe is None:
        raise ConfigError(
            f"tickers.yml: bar_size {bar_size!r} is not available from Alpaca; "
            f"valid: {', '.join(ALPACA_BAR_SIZES)}"
        )
    return timeframe


class AlpacaProvider:
    """Monthly bars from Alpaca's historical market data API.

    Parameters
    ----------
    tickers
        The validated ``tickers.yml``: assets, ``bar_size`` and ``alpaca.feed`` /
        ``alpaca.adjustment`` (stocks only).
    api_key, secret_key
        ``ALPACA_API_KEY`` / ``ALPACA_SECRET_KEY``; required when any asset is a stock.
    url_override
        Base URL instead of ``https://data.alpaca.markets`` (a proxy, or a local test server).
    retry_attempts
        Whole-month retries after a transient failure (see the module docstring).
    retry_wait_s
        First back-off; it doubles on each retry.

    Raises
    ------
    ConfigError
        An asset type Alpaca does not serve, a bar size it does not offer, or missing keys
        for stocks; all detected before any request.
    """

    name = "alpaca"

    def __init__(
        self,
        tickers: TickersConfig,
        api_key: str,
        secret_key: str,
        url_override: str | None = None,
        retry_attempts: int = 5,
        retry_wait_s: float = 1.0,
    ) -> None:
        self._timeframe = alpaca_timeframe(tickers.bar_size)
        self._bar_size = tickers.bar_size
        self._feed = DataFeed(tickers.alpaca.feed)
        self._adjustment = Adjustment(tickers.alpaca.adjustment)
        self._keys = (api_key, secret_key) if api_key and secret_key else None
        self._url = url_override
        self._retry_attempts = retry_attempts
        self._retry_wait_s = retry_wait_s
        stocks = [a.name for a in tickers.tickers if self._is_stock(a)]
        if stocks and self._keys is None:
            raise ConfigError(
                f"Alpaca stock data needs API keys (assets {', '.join(stocks)}): set both "
                "ALPACA_API_KEY and ALPACA_SECRET_KEY in the environment or .env "
                "(crypto pairs work without them)"
            )

    @staticmethod
    def _is_stock(asset: AssetSpec) -> bool:
        if asset.sec_type in STOCK_TYPES:
            return True
        if asset.sec_type in CRYPTO_TYPES:
            return False
        raise ConfigError(
            f"tickers.yml: asset {asset.name!r} has sec_type {asset.sec_type!r}, which the "
            f"alpaca provider cannot download; supported: "
            f"{', '.join((*STOCK_TYPES, *CRYPTO_TYPES))} (crypto as 'BTC/USD')"
        )

    async def first_month(self, asset: AssetSpec) -> Month | None:
        """2016-01 for stocks (Alpaca's data start); unknown (None) for crypto."""
        return STOCK_FIRST_MONTH if self._is_stock(asset) else None

    async def last_month(self, asset: AssetSpec) -> Month | None:
        """None: a live feed, so the download runs up to the current month."""
        return None

    async def fetch_month(self, asset: AssetSpec, month: Month) -> pd.DataFrame:
        """All bars of ``asset`` in ``month`` (every page), as a bar frame.

        Raises
        ------
        ProviderError
            Keys rejected (401/403), a non-transient error, or transient errors that
            outlasted every retry; the message names asset, month and HTTP status.
        """
        stock = self._is_stock(asset)
        attempt = 0
        while True:
            try:
                raw = await asyncio.to_thread(self._request_month, asset, stock, month)
            except (APIError, requests.RequestException) as exc:
                status = exc.status_code if isinstance(exc, APIError) else None
                self._raise_unless_transient(exc, status, asset, month, attempt)
                wait = self._retry_wait_s * 2**attempt
                attempt += 1
                logger.warning(
                    "alpaca %s %s: %s (status %s); retry %d/%d in %.1f s",
                    asset.name,
                    month,
                    type(exc).__name__,
                    status,
                    attempt,
                    self._retry_attempts,
                    wait,
                )
                await asyncio.sleep(wait)
            else:
                return _bar_frame(_symbol_rows(raw, asset), month)

    def _raise_unless_transient(
        self, exc: Exception, status: int | None, asset: AssetSpec, month: Month, attempt: int
    ) -> None:
        answer = "no HTTP answer" if status is None else f"HTTP status {status}"
        where = f"alpaca {asset.name} ({asset.symbol}) {month}: {answer}"
        detail = " ".join(str(exc).split())[:300]  # one line, even for an HTML error page
        if status in AUTH_STATUS:
            raise ProviderError(
                f"{where}, keys rejected or not entitled ({detail}); check ALPACA_API_KEY and "
                f"ALPACA_SECRET_KEY and that the plan includes the '{self._feed.value}' feed"
            ) from exc
        transient = status is None or status in TRANSIENT_STATUS
        if not transient:
            raise ProviderError(f"{where}: {detail}") from exc
        if attempt == self._retry_attempts:
            raise ProviderError(
                f"{where}: still failing after {attempt + 1} attempts ({detail}); "
                "no file was written for this month, re-run to resume"
            ) from exc

    def _request_month(self, asset: AssetSpec, stock: bool, month: Month) -> Any:
        """One blocking month request (all pages), run in a worker thread.

        A client per call: each owns a ``requests.Session``, which is not documented as
        safe to share between the threads that fetch assets in parallel.
        """
        # Alpaca's ``end`` is inclusive, so a bar at the next month's first instant may
        # come back; _bar_frame drops it.
        start, end = month.start().to_pydatetime(), month.end().to_pydatetime()
        api_key, secret_key = self._keys or (None, None)
        if stock:
            stocks = StockHistoricalDataClient(
                api_key, secret_key, raw_data=True, url_override=self._url
            )
            return stocks.get_stock_bars(
                StockBarsRequest(
                    symbol_or_symbols=asset.symbol,
                    timeframe=self._timeframe,
                    start=start,
                    end=end,
                    feed=self._feed,
                    adjustment=self._adjustment,
                )
            )
        crypto = CryptoHistoricalDataClient(
            api_key, secret_key, raw_data=True, url_override=self._url
        )
        request = CryptoBarsRequest(
            symbol_or_symbols=asset.symbol, timeframe=self._timeframe, start=start, end=end
        )
        return crypto.get_crypto_bars(request, feed=CryptoFeed.US)

    def metadata(self, asset: AssetSpec) -> dict[str, Any]:
        """What ``_meta.json`` records: provider, symbol, class, timeframe, feed, adjustment."""
        stock = self._is_stock(asset)
        return {
            "provider": self.name,
            "symbol": asset.symbol,
            "sec_type": asset.sec_type,
            "asset_class": "us_equity" if stock else "crypto",
            "bar_size": self._bar_size,
            "timeframe": self._timeframe.value,
            "feed": self._feed.value if stock else CryptoFeed.US.value,
            # Crypto has no corporate actions, so no adjustment applies.
            "adjustment": self._adjustment.value if stock else None,
        }


def _symbol_rows(raw: Any, asset: AssetSpec) -> list[dict[str, Any]]:
    """The bar rows of ``asset.symbol`` in a raw ``{symbol: [bars]}`` answer."""
    if not raw:
        return []  # Alpaca's answer for a month without bars: {"bars": {}}
    if asset.symbol not in raw:
        raise ProviderError(
            f"alpaca {asset.name}: the answer holds bars for {sorted(raw)} but not for the "
            f"requested symbol {asset.symbol!r}"
        )
    rows: list[dict[str, Any]] = raw[asset.symbol] or []
    return rows


def _bar_frame(rows: list[dict[str, Any]], month: Month) -> pd.DataFrame:
    """Alpaca bar dicts to a bar frame holding only ``month``'s bars, sorted and unique."""
    wire = pd.DataFrame.from_records(rows, columns=["t", *_WIRE_KEYS])
    frame = wire.loc[:, list(_WIRE_KEYS)].astype("float64")
    frame.columns = pd.Index(BAR_COLUMNS)
    stamps = pd.to_datetime(wire["t"], utc=True, format="ISO8601")
    frame.index = pd.DatetimeIndex(stamps, name="timestamp").as_unit("ns")
    frame = frame.loc[(frame.index >= month.start()) & (frame.index < month.end())]
    duplicated = frame.index.duplicated(keep="last")
    if duplicated.any():
        logger.warning("alpaca %s: dropped %d repeated bar timestamps", month, duplicated.sum())
    return frame.loc[~duplicated].sort_index()

"""Interactive Brokers historical bars through ``ib_async`` (TWS or IB Gateway).

One request per calendar month, newest first (the download loop's order): the request ends
at the month's timezone-aware UTC end (``now`` for the current month), spans the month's
days, and asks for ``formatDate=2`` so bar times come back as UTC epoch seconds. History
stops at the contract's head timestamp (``reqHeadTimeStamp``), never at an empty answer.

Failure policy, so that a transient problem can never truncate history:

* ``RaiseRequestErrors`` is on: a request error raises instead of returning an empty list,
  and ``reqHistoricalDataAsync`` runs without its own time-out (which would also return an
  empty list); the time-out is ours and raises.
* 162 "HMDS query returned no data" is a legitimately empty month.
* 162 "pacing violation" backs off exponentially (capped) and retries; 1100 (TWS lost IB),
  a dropped socket and time-outs wait (and reconnect) and retry. After ``attempts`` tries
  the month fails with :class:`ProviderError`; nothing is written for it.
* 200 (no security definition), 354 (no market data subscription) and other refusals fail
  at once with :class:`ProviderError` naming the asset and what to change.

Requests are spaced by :class:`~algo_trader.providers.historical.pacing.PacingLimiter`, and
settings IB cannot serve (TRADES for FX, a bar size too fine for a one-month request) are
rejected when the provider is built, before any request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pandas as pd
from ib_async import (
    CFD,
    IB,
    BarData,
    Contract,
    Crypto,
    Forex,
    Future,
    Index,
    RequestError,
    StartupFetchNONE,
    Stock,
    util,
)

from algo_trader.application.historical.config import TickersConfig
from algo_trader.domain.errors import ConfigError, ProviderError
from algo_trader.domain.market_data.assets import AssetSpec
from algo_trader.domain.market_data.bars import BAR_COLUMNS
from algo_trader.infrastructure.data.raw_store import Month
from algo_trader.providers.historical.pacing import DEFAULT_RULES, PacingLimiter, PacingRules

logger = logging.getLogger(__name__)
T = TypeVar("T")

ENV_HINT = "IB_HOST / IB_PORT / IB_CLIENT_ID"
_DAY = 86_400
# Seconds per duration unit. ``M`` is the longest calendar month so that every one-month
# request lands in IB's "1 M" row below; ``Y`` is a leap year for the same reason.
_DURATION_UNIT = {"S": 1, "D": _DAY, "W": 7 * _DAY, "M": 31 * _DAY, "Y": 366 * _DAY}
_BAR_UNIT = {"sec": 1, "min": 60, "hour": 3600, "day": _DAY, "week": 7 * _DAY, "month": 31 * _DAY}
# IB's step-size table: for a request duration, the finest and coarsest bar size allowed.
# Source: IB TWS API reference, "Historical Data Limitations" > "Step Sizes"
# (https://interactivebrokers.github.io/tws-api/historical_limitations.html). A duration
# between two rows takes the next longer row; beyond 1 Y the 1 Y row applies.
STEP_SIZES: tuple[tuple[str, str, str], ...] = (
    ("60 S", "1 secs", "1 min"),
    ("120 S", "1 secs", "2 mins"),
    ("1800 S", "1 secs", "30 mins"),
    ("3600 S", "5 secs", "1 hour"),
    ("14400 S", "10 secs", "3 hours"),
    ("28800 S", "30 secs", "8 hours"),
    ("1 D", "1 min", "1 day"),
    ("2 D", "2 mins", "1 day"),
    ("1 W", "3 mins", "1 week"),
    ("1 M", "30 mins", "1 month"),
    ("1 Y", "1 day", "1 month"),
)
FX_WHAT_TO_SHOW = ("MIDPOINT", "BID", "ASK", "BID_ASK")
# Errors a retry cannot fix, and what the user can do about each.
FATAL_HINTS = {
    200: "IB has no security definition for it: check symbol, sec_type, exchange, currency "
    "and primary_exchange in tickers.yml (futures: symbol is the IB local symbol of one "
    "expiry, e.g. ESZ4)",
    354: "the IB account has no market data subscription for it: subscribe in Client "
    "Portal (Settings > Market Data Subscriptions) or remove the asset from tickers.yml",
    321: "IB rejected the request parameters: check bar_size, what_to_show and use_rth",
}
# Request errors that mean "the link, not the request, failed": retried like a time-out.
TRANSIENT_CODES = frozenset({322, 366, 504, 1100, 10182})
_CONTRACT_FIELDS = (
    "conId",
    "symbol",
    "secType",
    "lastTradeDateOrContractMonth",
    "exchange",
    "primaryExchange",
    "currency",
    "localSymbol",
    "tradingClass",
)


class _Transient(Exception):
    """A failure of the link (time-out, 1100, dropped socket): retry after a pause."""


class _NoData(Exception):
    """IB's legitimate "no data" answer (162 HMDS query returned no data)."""


def _seconds(text: str, units: dict[str, int]) -> int:
    count, _, unit = text.partition(" ")
    return int(count) * units[unit.rstrip("s") if unit not in units else unit]


def allowed_bar_sizes(duration: str) -> tuple[str, str]:
    """IB's finest and coarsest bar size for a request of ``duration`` (e.g. ``'31 D'``)."""
    span = _seconds(duration, _DURATION_UNIT)
    for row, finest, coarsest in STEP_SIZES:
        if span <= _seconds(row, _DURATION_UNIT):
            return finest, coarsest
    return STEP_SIZES[-1][1:]


def check_step(duration: str, bar_size: str) -> None:
    """Raise :class:`ConfigError` unless IB serves ``bar_size`` bars over ``duration``."""
    finest, coarsest = allowed_bar_sizes(duration)
    bar = _seconds(bar_size, _BAR_UNIT)
    if not _seconds(finest, _BAR_UNIT) <= bar <= _seconds(coarsest, _BAR_UNIT):
        raise ConfigError(
            f"tickers.yml: bar_size {bar_size!r} cannot be requested with duration "
            f"{duration!r} (the ib provider asks for one calendar month per request); IB "
            f"allows bar sizes {finest} - {coarsest} for that duration, so use a bar_size "
            f"in that range"
        )


def month_duration(month: Month) -> str:
    """The ``durationStr`` of ``month``'s request: all its days, counted back from its end."""
    return f"{(month.end() - month.start()).days} D"


def check_settings(tickers: TickersConfig) -> None:
    """Reject what IB cannot serve before any request is made."""
    if tickers.what_to_show == "TRADES":
        fx = [a.name for a in tickers.tickers if a.sec_type == "CASH"]
        if fx:
            raise ConfigError(
                f"tickers.yml: what_to_show 'TRADES' is not available for FX pairs "
                f"({', '.join(fx)}): IB has no trade prints for sec_type CASH; use one of "
                f"{', '.join(FX_WHAT_TO_SHOW)}"
            )
    for days in (28, 31):  # every month's request falls between these two durations
        check_step(f"{days} D", tickers.bar_size)


def contract_for(asset: AssetSpec) -> Contract:
    """The ``ib_async`` contract of ``asset`` (unqualified)."""
    where = {"exchange": asset.exchange, "currency": asset.currency}
    kind = asset.sec_type
    if kind in ("STK", "ETF"):
        return Stock(asset.symbol, primaryExchange=asset.primary_exchange or "", **where)
    if kind == "CASH":
        return Forex(symbol=asset.symbol, **where)
    if kind == "CFD":
        return CFD(asset.symbol, **where)
    if kind == "IND":
        return Index(asset.symbol, **where)
    if kind == "FUT":
        # One expiry, named by IB's local symbol; includeExpired so old expiries resolve.
        return Future(localSymbol=asset.symbol, includeExpired=True, **where)
    return Crypto(asset.symbol.split("/")[0], **where)


def _describe(contract: Contract) -> str:
    parts = [contract.secType, contract.symbol or contract.localSymbol, contract.exchange]
    return " ".join([*parts, contract.currency])


def _utc(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def empty_bars() -> pd.DataFrame:
    """A bar frame with no rows."""
    index = pd.DatetimeIndex([], tz="UTC", name="timestamp")
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in BAR_COLUMNS}, index=index)


def bars_frame(bars: list[BarData], month: Month) -> pd.DataFrame:
    """IB bars as a bar frame holding only ``month``'s bars, sorted and unique.

    ``formatDate=2`` gives intraday bars as UTC datetimes; daily and coarser bars always
    come as dates, labelled here at 00:00 UTC. IB sends volume -1 where it has none (FX
    midpoints): that becomes NaN. A bar where two monthly pages meet belongs to one month
    only, so filtering to the month drops the other page's copy.
    """
    raw = util.df(bars)
    if raw is None:
        return empty_bars()
    index = pd.DatetimeIndex(pd.to_datetime(raw["date"], utc=True)).as_unit("ns")
    frame = raw.loc[:, list(BAR_COLUMNS)].astype("float64").set_axis(index)
    frame.index.name = "timestamp"
    frame["volume"] = frame["volume"].where(frame["volume"] >= 0)
    inside = (frame.index >= month.start()) & (frame.index < month.end())
    frame = frame.loc[inside]
    return frame.loc[~frame.index.duplicated(keep="last")].sort_index()


def _classify(error: RequestError) -> str:
    text = error.message.lower()
    if error.code == 162 and ("returned no data" in text or "no head time stamp" in text):
        return "no_data"
    if error.code == 162 and "pacing violation" in text:
        return "pacing"
    if error.code in TRANSIENT_CODES or (error.code == 162 and "query cancelled" in text):
        return "transient"
    return "fatal"


def _backoff(attempt: int, base: float, cap: float) -> float:
    return float(min(cap, base * 2 ** (attempt - 1)))


@dataclass
class _Session:
    """Per-event-loop state: asyncio primitives belong to the loop that made them."""

    loop: asyncio.AbstractEventLoop
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    link_up: asyncio.Event = field(default_factory=asyncio.Event)
    # Time-outs of the requests in flight: an 1100 expires them at once.
    deadlines: set[asyncio.Timeout] = field(default_factory=set)
    losses: int = 0
    # The first connection failed: every asset waiting on ``lock`` gets the same error
    # instead of knocking on a closed port again.
    unreachable: ProviderError | None = None

    def __post_init__(self) -> None:
        self.link_up.set()


class IBProvider:
    """Historical bars from TWS / IB Gateway, one calendar month per request.

    Parameters
    ----------
    tickers
        ``tickers.yml``: assets, ``bar_size``, ``what_to_show``, ``use_rth``.
    host, port, client_id
        Where TWS or IB Gateway listens (``IB_HOST``, ``IB_PORT``, ``IB_CLIENT_ID``).
    ib
        The ``ib_async.IB`` client to use, in the event loop that will run the download;
        by default the provider makes its own (a new one for each event loop).
    clock, sleep
        Monotonic clock and sleep for pacing and back-off (tests pass a fake clock).
    now
        Current UTC time; decides where the current month's request ends.
    request_timeout
        Seconds to wait for one answer before retrying.
    attempts
        Tries per request before giving up with :class:`ProviderError`.

    Raises
    ------
    ConfigError
        When IB cannot serve the settings (TRADES for FX, bar size too fine for a month).
    """

    name = "ib"

    def __init__(
        self,
        tickers: TickersConfig,
        host: str,
        port: int,
        client_id: int,
        ib: IB | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        now: Callable[[], pd.Timestamp] = lambda: pd.Timestamp.now(tz="UTC"),
        pacing: PacingRules = DEFAULT_RULES,
        request_timeout: float = 180.0,
        connect_timeout: float = 10.0,
        attempts: int = 8,
    ) -> None:
        check_settings(tickers)
        self.tickers = tickers
        self.host, self.port, self.client_id = host, port, client_id
        self._own_ib = ib is None
        self._ib = self._prepare(ib if ib is not None else IB())
        self._limiter = PacingLimiter(pacing, clock=clock, sleep=sleep)
        self._sleep, self._now = sleep, now
        self._request_timeout, self._connect_timeout = request_timeout, connect_timeout
        self._attempts = attempts
        self._contracts: dict[str, Contract] = {}
        self._session: _Session | None = None
        self._connected_once = False

    # -- HistoricalProvider -------------------------------------------------------------

    async def first_month(self, asset: AssetSpec) -> Month | None:
        """Month of the contract's head timestamp (its earliest data)."""
        contract = await self._contract(asset)
        t = self.tickers

        def ask() -> Awaitable[Any]:
            return self._ib.reqHeadTimeStampAsync(contract, t.what_to_show, t.use_rth, 2)

        pace = (("head", contract.conId, t.what_to_show, t.use_rth), *self._pace_key(contract))
        try:
            head = await self._call(asset, "head timestamp", ask, pace)
        except _NoData:
            logger.warning("%s: IB reports no head timestamp; paging from the start", asset.name)
            return None
        return Month.of(_utc(head))

    async def last_month(self, asset: AssetSpec) -> Month | None:
        """None: IB is a live source, the current month is the last."""
        return None

    async def fetch_month(self, asset: AssetSpec, month: Month) -> pd.DataFrame:
        """All bars of ``asset`` in ``month`` (an empty frame only on IB's "no data")."""
        contract = await self._contract(asset)
        end = min(month.end(), self._now().floor("s"))
        if end <= month.start():
            return empty_bars()
        t, duration = self.tickers, month_duration(month)
        check_step(duration, t.bar_size)

        def ask() -> Awaitable[Any]:
            return self._ib.reqHistoricalDataAsync(
                contract,
                endDateTime=end.to_pydatetime(),
                durationStr=duration,
                barSizeSetting=t.bar_size,
                whatToShow=t.what_to_show,
                useRTH=t.use_rth,
                formatDate=2,
                timeout=0,  # ib_async's own time-out returns an empty list; ours raises
            )

        request = (contract.conId, end.isoformat(), duration, t.bar_size, t.what_to_show, t.use_rth)
        try:
            bars = await self._call(
                asset, f"bars {month}", ask, (request, *self._pace_key(contract))
            )
        except _NoData:
            return empty_bars()
        return bars_frame(bars, month)

    def metadata(self, asset: AssetSpec) -> dict[str, Any]:
        """Provider, qualified contract, bar size, ``what_to_show`` and RTH flag."""
        contract = self._contracts.get(asset.name) or contract_for(asset)
        return {
            "provider": self.name,
            "contract": {f: getattr(contract, f) for f in _CONTRACT_FIELDS},
            "bar_size": self.tickers.bar_size,
            "what_to_show": self.tickers.what_to_show,
            "use_rth": self.tickers.use_rth,
        }

    # -- contracts ----------------------------------------------------------------------

    async def _contract(self, asset: AssetSpec) -> Contract:
        if asset.name in self._contracts:
            return self._contracts[asset.name]
        wanted = contract_for(asset)

        def ask() -> Awaitable[Any]:
            return self._ib.qualifyContractsAsync(wanted)

        try:
            [found] = await self._call(asset, "contract lookup", ask, None)
        except _NoData:
            found = None
        if not isinstance(found, Contract) or not found.conId:
            raise ProviderError(
                f"asset {asset.name!r}: IB found no single contract for {_describe(wanted)} "
                f"(unknown or ambiguous): {FATAL_HINTS[200]}"
            )
        self._contracts[asset.name] = found
        return found

    def _pace_key(self, contract: Contract) -> tuple[Hashable, int]:
        # IB counts "same Contract, Exchange and Tick Type"; BID_ASK requests count twice.
        what = self.tickers.what_to_show
        return (contract.conId, contract.exchange, what), 2 if what == "BID_ASK" else 1

    # -- the retry loop -----------------------------------------------------------------

    async def _call(
        self,
        asset: AssetSpec,
        what: str,
        ask: Callable[[], Awaitable[T]],
        pace: tuple[Hashable, Hashable, int] | None,
    ) -> T:
        """Send one request with pacing, retrying pacing violations and link failures."""
        last: Exception | None = None
        for attempt in range(1, self._attempts + 1):
            try:
                session = await self._connected()
                await self._link_restored(session)
                return await self._send(session, ask, pace)
            except RequestError as error:
                kind = _classify(error)
                if kind == "no_data":
                    raise _NoData from error
                if kind == "fatal":
                    hint = FATAL_HINTS.get(error.code, "IB refused the request")
                    raise ProviderError(
                        f"asset {asset.name!r} ({what}): IB error {error.code} "
                        f"{error.message!r}: {hint}"
                    ) from error
                last, base, cap = error, *((15.0, 600.0) if kind == "pacing" else (2.0, 120.0))
            except (_Transient, OSError) as error:  # OSError: time-outs, dropped sockets
                last, base, cap = error, 2.0, 120.0
            if attempt < self._attempts:
                delay = _backoff(attempt, base, cap)
                logger.warning(
                    "%s %s: %s; retry %d/%d in %.0f s",
                    asset.name,
                    what,
                    last,
                    attempt,
                    self._attempts - 1,
                    delay,
                )
                await self._sleep(delay)
        raise ProviderError(
            f"asset {asset.name!r} ({what}): gave up after {self._attempts} attempts, last "
            f"error: {last}. Nothing was written for it; months already on disk are kept, "
            f"so re-running `algotrader historical` resumes where this stopped"
        )

    async def _send(
        self,
        session: _Session,
        ask: Callable[[], Awaitable[T]],
        pace: tuple[Hashable, Hashable, int] | None,
    ) -> T:
        """Pace, send and await one request; a time-out or an 1100 raises ``_Transient``."""
        if pace is not None:
            await self._limiter.acquire(*pace)
        # Nothing below yields before ``ask()`` has written to the socket, so the request
        # leaves at the time the limiter recorded; ``asyncio.timeout`` runs in this task
        # (``wait_for`` would start a new one a loop turn later).
        losses = session.losses
        try:
            async with asyncio.timeout(self._request_timeout) as deadline:
                session.deadlines.add(deadline)
                try:
                    return await ask()
                finally:
                    session.deadlines.discard(deadline)
        except TimeoutError as error:
            if session.losses != losses:
                raise _Transient("TWS lost its connection to IB (error 1100)") from error
            raise _Transient(f"no answer within {self._request_timeout:g} s") from error

    async def _link_restored(self, session: _Session) -> None:
        if not session.link_up.is_set():
            try:
                await asyncio.wait_for(session.link_up.wait(), self._request_timeout)
            except TimeoutError as error:
                raise _Transient("TWS has not regained its connection to IB") from error

    # -- connection ---------------------------------------------------------------------

    def _prepare(self, ib: IB) -> IB:
        ib.RaiseRequestErrors = True
        ib.errorEvent += self._on_error
        return ib

    async def _connected(self) -> _Session:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.loop is not loop:
            if self._session is not None and self._own_ib:
                # Used before under another event loop (an earlier ``asyncio.run``): that
                # loop is closed and its socket cannot be closed cleanly, so start afresh.
                stale, self._ib = self._ib, self._prepare(IB())
                stale.errorEvent -= self._on_error
            elif self._ib.isConnected():
                self._ib.disconnect()
            self._session = _Session(loop)
        session = self._session
        async with session.lock:
            if session.unreachable is not None:
                raise session.unreachable
            if not self._ib.isConnected():
                await self._connect(session)
        return session

    async def _connect(self, session: _Session) -> None:
        try:
            await self._ib.connectAsync(
                self.host,
                self.port,
                clientId=self.client_id,
                timeout=self._connect_timeout,
                readonly=True,
                fetchFields=StartupFetchNONE,  # history needs no orders, positions or account
            )
        except OSError as error:  # refused, unreachable, handshake time-out
            if self._connected_once:
                raise _Transient(f"reconnecting to {self.host}:{self.port} failed") from error
            session.unreachable = ProviderError(
                f"cannot reach TWS / IB Gateway at {self.host}:{self.port} with client id "
                f"{self.client_id} ({error!r}). Start TWS or IB Gateway with the API enabled "
                f"(Configure > API > Settings: socket port, 'Enable ActiveX and Socket "
                f"Clients'), or set {ENV_HINT} to where it listens; a client id already in "
                f"use also fails like this"
            )
            raise session.unreachable from error
        self._connected_once = True

    def _on_error(self, req_id: int, code: int, message: str, contract: Any) -> None:
        session = self._session
        if session is None:
            return
        if code == 1100:
            logger.warning("IB: %s (error 1100); requests wait for it to return", message)
            session.link_up.clear()
            session.losses += 1
            now = session.loop.time()
            for deadline in session.deadlines:
                deadline.reschedule(now)
        elif code in (1101, 1102):
            logger.info("IB: %s (error %d)", message, code)
            session.link_up.set()

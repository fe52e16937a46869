"""IBProvider against a simulated TWS at the socket edge, through the real ``ib_async``.

``FakeTWS`` stands in for the TCP socket only (``ib_async.client.Connection``): everything
above it is the real library -- the handshake, message framing, ``Decoder`` turning IB's
wire fields into real ``BarData`` and ``ContractDetails``, ``Wrapper`` turning error
messages into ``RequestError`` (``RaiseRequestErrors``) or ``errorEvent`` (1100/1102).
Its answers come from the SIMULATED fixtures in ``tests/fixtures/ib`` (see README there).
Time: pacing and back-off run on a fake clock, so hours of IB pacing take milliseconds.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path

import ib_async.client
import numpy as np
import pandas as pd
import pytest
from ib_async import BarData
from ib_async.connection import Connection

from algo_trader.application.historical.config import TickersConfig
from algo_trader.application.historical.download import DownloadReport, download_history
from algo_trader.domain.errors import ConfigError, ProviderError
from algo_trader.domain.market_data.assets import AssetSpec
from algo_trader.infrastructure.data.raw_store import Month, RawBarStore
from algo_trader.providers.historical.ib import (
    IBProvider,
    allowed_bar_sizes,
    bars_frame,
    check_step,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "ib"
CONTRACTS = json.loads((FIXTURES / "simulated_contracts.json").read_text())
ERRORS = json.loads((FIXTURES / "simulated_errors.json").read_text())
SERVER_VERSION = 176  # a TWS 10.x server version inside ib_async's supported range
NOW = pd.Timestamp("2023-04-12 15:00", tz="UTC")
# contractData (message 10) after message id and request id, server versions >= 164.
CONTRACT_DATA_FIELDS = (
    *("symbol", "secType", "lastTimes", "strike", "right", "exchange", "currency"),
    *("localSymbol", "marketName", "tradingClass", "conId", "minTick", "multiplier"),
    *("orderTypes", "validExchanges", "priceMagnifier", "underConId", "longName"),
    *("primaryExchange", "contractMonth", "industry", "category", "subcategory"),
    *("timeZoneId", "tradingHours", "liquidHours", "evRule", "evMultiplier", "numSecIds"),
    *("aggGroup", "underSymbol", "underSecType", "marketRuleIds", "realExpirationDate"),
    *("stockType", "minSize", "sizeIncrement", "suggestedSizeIncrement"),
)
CONTRACT_DATA_DEFAULTS = {
    **{"strike": 0, "orderTypes": "ACTIVETIM,LMT,MKT", "priceMagnifier": 1, "underConId": 0},
    **{"numSecIds": 0, "aggGroup": 1, "minSize": 1, "sizeIncrement": 1},
    "suggestedSizeIncrement": 1,
}


def wire_bars(path: Path, symbol: str | None = None) -> pd.DataFrame:
    """Fixture rows as IB's wire strings plus their UTC bar start in ``start``."""
    rows = pd.read_csv(path, dtype=str)
    if symbol is not None:
        rows = rows.loc[rows.pop("symbol") == symbol].reset_index(drop=True)
    date = rows["date"]
    daily = date.str.len() == 8  # IB sends yyyyMMdd for daily bars whatever formatDate says
    start = pd.to_datetime(date.where(~daily, "0").astype("int64"), unit="s", utc=True)
    rows["start"] = start.where(
        ~daily, pd.to_datetime(date.where(daily), format="%Y%m%d", utc=True)
    )
    return rows


def _frame(*fields: object) -> bytes:
    payload = "".join(f"{f}\0" for f in fields).encode()
    return struct.pack(">I", len(payload)) + payload


def _messages(data: bytes) -> list[list[str]]:
    out = []
    while data:
        size = struct.unpack(">I", data[:4])[0]
        out.append(data[4 : 4 + size].decode().split("\0")[:-1])
        data = data[4 + size :]
    return out


def _error(req_id: int | str, name: str, **fmt: str) -> bytes:
    code, text = ERRORS[name]
    return _frame(4, 2, req_id, code, text.format(**fmt), "")


class FakeClock:
    """Monotonic seconds that only ``sleep`` moves."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)


@dataclass
class WireRequest:
    """One historical request as it reached the fake TWS, at fake-clock time ``at``."""

    kind: str
    symbol: str
    at: float
    fields: tuple[str, ...] = ()
    served: list[pd.Timestamp] = field(default_factory=list)

    @property
    def end(self) -> pd.Timestamp:
        return pd.to_datetime(
            self.fields[0].removesuffix(" UTC"), format="%Y%m%d %H:%M:%S", utc=True
        )

    @property
    def month(self) -> str:
        return "head" if self.kind == "head" else str(Month.of(self.end - pd.Timedelta("1s")))


@dataclass
class Instrument:
    details: dict[str, object]
    bars: pd.DataFrame
    subscribed: bool = True


class FakeConnection(Connection):
    """The socket, replaced: bytes the client writes go to ``FakeTWS.receive``."""

    def __init__(self, tws: FakeTWS) -> None:
        super().__init__()
        self.tws = tws

    async def connectAsync(self, host: str, port: int) -> None:
        self.tws.connections += 1
        self.transport = self  # any non-None transport means "connected" to Connection

    def sendMsg(self, msg: bytes) -> None:
        self.tws.receive(self, msg)

    def disconnect(self) -> None:
        if self.transport is not None:
            self.connection_lost(None)

    def deliver(self, data: bytes) -> None:
        if self.transport is not None:
            self.data_received(data)


class FakeTWS:
    """TWS / IB Gateway as seen through its API socket, answering in IB's wire format."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.now = NOW
        self.instruments: dict[str, Instrument] = {}
        self.requests: list[WireRequest] = []
        self.faults: dict[tuple[str, str], list[str]] = {}
        self.connections = 0

    def add(self, symbol: str, bars: pd.DataFrame) -> None:
        self.instruments[symbol] = Instrument(CONTRACTS[symbol], bars)

    def connection(self) -> FakeConnection:
        return FakeConnection(self)

    def historical(self) -> list[WireRequest]:
        return [r for r in self.requests if r.kind in ("head", "bars")]

    def _by_con_id(self, con_id: str) -> tuple[str, Instrument]:
        return next(
            (s, i) for s, i in self.instruments.items() if str(i.details["conId"]) == con_id
        )

    def _send(self, conn: FakeConnection, *frames: bytes) -> None:
        # Like a socket: the answer arrives on a later turn of the event loop.
        asyncio.get_running_loop().call_soon(conn.deliver, b"".join(frames))

    def receive(self, conn: FakeConnection, data: bytes) -> None:
        if data.startswith(b"API\0"):
            self._send(conn, _frame(SERVER_VERSION, "20230412 15:00:00 UTC"))
            return
        for fields in _messages(data):
            self._handle(conn, fields)

    def _handle(self, conn: FakeConnection, fields: list[str]) -> None:
        msg_id = int(fields[0])
        if msg_id == 71:  # startApi
            self._send(conn, _frame(9, 1, 1), _frame(15, 1, "DU0000001"))
        elif msg_id == 61:  # reqPositions (ib_async asks on connect)
            self._send(conn, _frame(62, 1))
        elif msg_id == 62:  # reqAccountSummary (ib_async asks again after a 1102)
            self._send(conn, _frame(64, 1, fields[2]))
        elif msg_id == 9:
            self._details(conn, fields[2], symbol=fields[4] or fields[13])
        elif msg_id == 87:
            self._head(conn, fields[1], fields[2], fields[16])
        elif msg_id == 20:
            self._bars(conn, fields[1], fields[2], tuple(fields[15:21]))

    def _details(self, conn: FakeConnection, req_id: str, symbol: str) -> None:
        self.requests.append(WireRequest("details", symbol, self.clock()))
        if symbol not in self.instruments:
            self._send(conn, _error(req_id, "no_definition"))
            return
        d = self.instruments[symbol].details
        values = {**CONTRACT_DATA_DEFAULTS, **d, "validExchanges": d["exchange"]}
        fields = [values.get(name, "") for name in CONTRACT_DATA_FIELDS]
        self._send(conn, _frame(10, req_id, *fields), _frame(52, 1, req_id))

    def _fault(self, conn: FakeConnection, req_id: str, key: tuple[str, str]) -> bool:
        """Apply the next scripted fault for ``key``; True if it replaces the answer."""
        queued = self.faults.get(key) or []
        if not queued:
            return False
        fault = queued.pop(0)
        if fault in ("pacing", "not_subscribed"):
            self._send(conn, _error(req_id, fault))
        elif fault == "lost":  # TWS loses IB: 1100, the request is never answered, 1102
            self._send(conn, _error(-1, "lost"))
            self._send(conn, _error(-1, "restored"))
        elif fault == "drop":  # the socket goes away under the request
            asyncio.get_running_loop().call_soon(conn.connection_lost, ConnectionResetError())
        # "silent": no answer at all (a time-out)
        return True

    def _head(self, conn: FakeConnection, req_id: str, con_id: str, what: str) -> None:
        symbol, inst = self._by_con_id(con_id)
        self.requests.append(WireRequest("head", symbol, self.clock(), (what,)))
        if self._fault(conn, req_id, (symbol, "head")):
            return
        if not inst.subscribed:
            self._send(conn, _error(req_id, "not_subscribed"))
            return
        self._send(conn, _frame(88, req_id, int(inst.bars["start"].iloc[0].timestamp())))

    def _bars(self, conn: FakeConnection, req_id: str, con_id: str, args: tuple[str, ...]) -> None:
        symbol, inst = self._by_con_id(con_id)
        request = WireRequest("bars", symbol, self.clock(), args)
        self.requests.append(request)
        if self._fault(conn, req_id, (symbol, request.month)):
            return
        if not inst.subscribed:
            self._send(conn, _error(req_id, "not_subscribed"))
            return
        end, (count, unit) = request.end, args[2].split()
        assert unit == "D"
        start = inst.bars["start"]
        # Both ends included, so adjacent monthly pages share their boundary bar.
        hit = inst.bars.loc[(start >= end - pd.Timedelta(days=int(count))) & (start <= end)]
        hit = hit.loc[hit["start"] <= self.now]
        if hit.empty:
            d = inst.details
            self._send(
                conn,
                _error(
                    req_id,
                    "no_data",
                    symbol=str(d["localSymbol"]),
                    exchange=str(d["exchange"]),
                    what=args[4].title(),
                ),
            )
            return
        request.served = list(hit["start"])
        wire = hit[["date", "open", "high", "low", "close", "volume", "wap", "count"]]
        self._send(conn, _frame(17, req_id, "", "", len(hit), *wire.to_numpy().ravel()))


@pytest.fixture
def tws(monkeypatch: pytest.MonkeyPatch) -> FakeTWS:
    fake = FakeTWS(FakeClock())
    monkeypatch.setattr(ib_async.client, "Connection", fake.connection)
    # ib_async throttles itself to 45 messages per second of *real* time; the fake clock
    # compresses hours of pacing into milliseconds, and that throttle would then re-time
    # what reaches the wire. Real pacing is far below 45/s, so it never acts in production.
    monkeypatch.setattr(ib_async.client.Client, "MaxRequests", 0)
    return fake


@pytest.fixture
def fx_bars() -> pd.DataFrame:
    return wire_bars(FIXTURES / "simulated_eurusd_midpoint_1h.csv")


def fx_tickers(**kw: object) -> TickersConfig:
    settings: dict[str, object] = {"what_to_show": "MIDPOINT", "bar_size": "1 hour"}
    return TickersConfig.model_validate({"tickers": ["EUR.USD"], **settings, **kw})


def make_provider(tws: FakeTWS, tickers: TickersConfig, **kw: object) -> IBProvider:
    kw.setdefault("request_timeout", 5.0)
    return IBProvider(
        tickers,
        "127.0.0.1",
        4002,
        7,
        clock=tws.clock,
        sleep=tws.clock.sleep,
        now=lambda: tws.now,
        **kw,  # type: ignore[arg-type]
    )


def run(provider: IBProvider, root: Path, tickers: TickersConfig) -> DownloadReport:
    """Download from 2015 (before every head timestamp) to the fake TWS's current month."""
    store = RawBarStore(root)
    current = Month.of(provider._now())
    return download_history(provider, store, tickers.tickers, Month(2015, 1), current, 2)


def read_all(root: Path, asset: str) -> pd.DataFrame:
    paths = [p for _, p in RawBarStore(root).months(asset)]
    frames = [pd.read_csv(p, index_col="timestamp") for p in paths]
    out = pd.concat(frames)
    out.index = pd.to_datetime(out.index, utc=True)
    return out


def expected(bars: pd.DataFrame, until: pd.Timestamp) -> pd.DataFrame:
    rows = bars.loc[bars["start"] <= until]
    out = rows[["open", "high", "low", "close", "volume"]].astype("float64")
    out["volume"] = out["volume"].where(out["volume"] >= 0)
    return out.set_axis(pd.DatetimeIndex(rows["start"], name="timestamp"))


# -- a full download -------------------------------------------------------------------


def test_full_history_months_and_wire_requests(tws: FakeTWS, fx_bars: pd.DataFrame, tmp_path: Path):
    tws.add("EUR", fx_bars)
    tickers = fx_tickers()
    report = run(make_provider(tws, tickers), tmp_path, tickers)

    months = [str(m) for m, _ in RawBarStore(tmp_path).months("EUR.USD")]
    assert months == ["2023-01", "2023-02", "2023-03", "2023-04"]
    assert report.written["EUR.USD"] == ["2023-04", "2023-03", "2023-02", "2023-01"]
    got = read_all(tmp_path, "EUR.USD")
    pd.testing.assert_frame_equal(got, expected(fx_bars, NOW), check_index_type=False)
    for month, path in RawBarStore(tmp_path).months("EUR.USD"):
        stamps = pd.to_datetime(pd.read_csv(path)["timestamp"], utc=True)
        assert (stamps >= month.start()).all() and (stamps < month.end()).all()

    # Head timestamp 2023-01-29 stops paging: nothing older than January was asked for.
    bars = [r for r in tws.historical() if r.kind == "bars"]
    assert [r.month for r in bars] == ["2023-04", "2023-03", "2023-02", "2023-01"]
    assert [r.fields for r in bars] == [
        ("20230412 15:00:00 UTC", "1 hour", "30 D", "0", "MIDPOINT", "2"),
        ("20230401 00:00:00 UTC", "1 hour", "31 D", "0", "MIDPOINT", "2"),
        ("20230301 00:00:00 UTC", "1 hour", "28 D", "0", "MIDPOINT", "2"),
        ("20230201 00:00:00 UTC", "1 hour", "31 D", "0", "MIDPOINT", "2"),
    ]
    meta = json.loads((tmp_path / "EUR.USD" / "_meta.json").read_text())
    assert meta["first_month"] == "2023-01" and meta["last_complete_month"] == "2023-03"
    assert meta["provider"] == "ib" and meta["bar_size"] == "1 hour"
    assert meta["what_to_show"] == "MIDPOINT" and meta["use_rth"] is False
    assert meta["contract"]["conId"] == 910001 and meta["contract"]["localSymbol"] == "EUR.USD"


def test_dst_change_moves_the_fx_week_open_in_utc(
    tws: FakeTWS, fx_bars: pd.DataFrame, tmp_path: Path
):
    tws.add("EUR", fx_bars)
    tickers = fx_tickers()
    run(make_provider(tws, tickers), tmp_path, tickers)
    march = pd.read_csv(RawBarStore(tmp_path).month_path("EUR.USD", Month(2023, 3)))
    stamps = pd.DatetimeIndex(pd.to_datetime(march["timestamp"], utc=True))
    sundays = stamps[stamps.day_of_week == 6]
    opens = sundays.to_series().groupby(sundays.date).min()
    assert [t.strftime("%m-%d %H:%M") for t in opens] == [
        "03-05 22:00",  # 17:00 New York, EST
        "03-12 21:00",  # 17:00 New York, EDT from 2023-03-12
        "03-19 21:00",
        "03-26 21:00",
    ]
    assert march["volume"].isna().all()  # IB's -1 "no volume" for FX midpoints


def test_page_boundary_bar_is_written_once(tws: FakeTWS, fx_bars: pd.DataFrame, tmp_path: Path):
    tws.add("EUR", fx_bars)
    tickers = fx_tickers()
    run(make_provider(tws, tickers), tmp_path, tickers)
    boundary = pd.Timestamp("2023-03-01 00:00", tz="UTC")
    served = [r.month for r in tws.historical() if boundary in r.served]
    assert served == ["2023-03", "2023-02"]  # both pages carried it
    got = read_all(tmp_path, "EUR.USD")
    assert got.index.is_unique and (got.index == boundary).sum() == 1
    assert (
        RawBarStore(tmp_path)
        .month_path("EUR.USD", Month(2023, 3))
        .read_text()
        .count("2023-03-01T00:00:00+00:00")
        == 1
    )


def test_empty_middle_month_does_not_stop_paging(
    tws: FakeTWS, fx_bars: pd.DataFrame, tmp_path: Path
):
    february = fx_bars["start"].dt.month == 2
    tws.add("EUR", fx_bars.loc[~february])
    tickers = fx_tickers()
    report = run(make_provider(tws, tickers), tmp_path, tickers)
    assert report.empty["EUR.USD"] == ["2023-02"]
    assert report.written["EUR.USD"] == ["2023-04", "2023-03", "2023-01"]
    pd.testing.assert_frame_equal(
        read_all(tmp_path, "EUR.USD"), expected(fx_bars.loc[~february], NOW), check_index_type=False
    )


def test_rerun_skips_complete_months_and_refreshes_the_current(
    tws: FakeTWS, fx_bars: pd.DataFrame, tmp_path: Path
):
    tws.add("EUR", fx_bars)
    tickers = fx_tickers()
    provider = make_provider(tws, tickers)
    tws.now = pd.Timestamp("2023-04-05 12:00", tz="UTC")
    run(provider, tmp_path, tickers)
    store = RawBarStore(tmp_path)
    march = store.month_path("EUR.USD", Month(2023, 3))
    before = {m: p.read_bytes() for m, p in store.months("EUR.USD")}
    first_april = len(pd.read_csv(store.month_path("EUR.USD", Month(2023, 4))))
    asked = len(tws.requests)

    tws.now = NOW
    report = run(provider, tmp_path, tickers)  # same provider, a new event loop: reconnects
    assert report.skipped["EUR.USD"] == ["2023-03", "2023-02", "2023-01"]
    assert [(r.kind, r.month) for r in tws.historical()[-2:]] == [
        ("head", "head"),
        ("bars", "2023-04"),
    ]
    assert len(tws.requests) == asked + 2 and tws.connections == 2
    assert march.read_bytes() == before[Month(2023, 3)]
    april = pd.read_csv(store.month_path("EUR.USD", Month(2023, 4)))
    assert len(april) > first_april
    pd.testing.assert_frame_equal(
        read_all(tmp_path, "EUR.USD"), expected(fx_bars, NOW), check_index_type=False
    )


# -- transient errors never truncate history ---------------------------------------------


def test_transient_errors_are_retried_and_history_stays_whole(
    tws: FakeTWS, fx_bars: pd.DataFrame, tmp_path: Path
):
    tws.add("EUR", fx_bars)
    tws.faults = {
        ("EUR", "2023-04"): ["drop"],
        ("EUR", "2023-03"): ["pacing", "pacing"],
        ("EUR", "2023-02"): ["lost"],
        ("EUR", "2023-01"): ["silent"],
    }
    tickers = fx_tickers()
    report = run(make_provider(tws, tickers, request_timeout=0.5), tmp_path, tickers)
    assert report.written["EUR.USD"] == ["2023-04", "2023-03", "2023-02", "2023-01"]
    pd.testing.assert_frame_equal(
        read_all(tmp_path, "EUR.USD"), expected(fx_bars, NOW), check_index_type=False
    )
    asks = {m: [r.at for r in tws.historical() if r.month == m] for m in ("2023-03", "2023-02")}
    # Pacing back-off doubles from 15 s; every retry also keeps the 15 s identical-request gap.
    assert len(asks["2023-03"]) == 3
    assert np.diff(asks["2023-03"]) == pytest.approx([15.0, 30.0])
    assert len(asks["2023-02"]) == 2 and asks["2023-02"][1] - asks["2023-02"][0] >= 15.0
    assert tws.connections == 2  # the dropped socket was reconnected
    assert not any(tws.faults.values())


def test_persistent_failure_raises_and_a_rerun_completes(
    tws: FakeTWS, fx_bars: pd.DataFrame, tmp_path: Path
):
    tws.add("EUR", fx_bars)
    tws.faults = {("EUR", "2023-02"): ["pacing", "silent", "lost"]}
    tickers = fx_tickers()
    with pytest.raises(
        ProviderError, match=r"'EUR.USD' \(bars 2023-02\): gave up after 3 attempts"
    ):
        run(make_provider(tws, tickers, attempts=3, request_timeout=0.3), tmp_path, tickers)
    store = RawBarStore(tmp_path)
    assert [str(m) for m, _ in store.months("EUR.USD")] == ["2023-03", "2023-04"]
    assert "last_complete_month" not in store.read_meta("EUR.USD")
    assert not any(r.month == "2023-01" for r in tws.historical())

    report = run(make_provider(tws, tickers), tmp_path, tickers)
    assert report.written["EUR.USD"] == ["2023-04", "2023-03", "2023-02", "2023-01"]
    pd.testing.assert_frame_equal(
        read_all(tmp_path, "EUR.USD"), expected(fx_bars, NOW), check_index_type=False
    )


# -- pacing ------------------------------------------------------------------------------


def test_pacing_rules_hold_on_the_wire(tws: FakeTWS, tmp_path: Path):
    daily = FIXTURES / "simulated_stocks_trades_1d.csv"
    for symbol in ("AAPL", "MSFT"):
        tws.add(symbol, wire_bars(daily, symbol))
    # Retries repeat a request: after an 1100 (2 s back-off) the identical-request rule must
    # hold it back to 15 s; after a pacing violation the back-off itself is 15 s.
    tws.faults = {("AAPL", "2021-06"): ["lost"], ("MSFT", "2020-09"): ["pacing"]}
    tickers = TickersConfig.model_validate(
        {"tickers": ["AAPL", "MSFT"], "bar_size": "1 day", "what_to_show": "TRADES"}
    )
    report = run(make_provider(tws, tickers), tmp_path, tickers)
    assert len(report.written["AAPL"]) == len(report.written["MSFT"]) == 35  # 2020-06..2023-04

    hist = tws.historical()
    times = sorted(r.at for r in hist)
    spans_60 = [b - a for a, b in zip(times, times[60:], strict=False)]
    assert min(spans_60) >= 600.0  # never more than 60 requests in 10 minutes
    assert min(spans_60) < 601.0  # ... and the limiter did have to wait for it
    for symbol in ("AAPL", "MSFT"):
        mine = sorted(r.at for r in hist if r.symbol == symbol)
        spans_5 = [b - a for a, b in zip(mine, mine[5:], strict=False)]
        assert min(spans_5) >= 2.0  # at most 5 (IB: "six or more" violate) within 2 s
    by_request: dict[tuple[str, ...], list[float]] = {}
    for r in hist:
        by_request.setdefault((r.symbol, r.month, *r.fields), []).append(r.at)
    retried = {k[:2] for k, v in by_request.items() if len(v) > 1}
    # The 1100 hits whatever is in flight at that moment, so MSFT may have retried too.
    assert {("AAPL", "2021-06"), ("MSFT", "2020-09")} <= retried
    assert len(by_request) == 2 + 2 * 35  # heads and months, each asked until answered
    assert all(b - a >= 15.0 for v in by_request.values() for a, b in itertools.pairwise(v))

    aapl = read_all(tmp_path, "AAPL")
    assert aapl.index[0] == pd.Timestamp("2020-06-01", tz="UTC")  # daily yyyyMMdd -> 00:00 UTC
    assert len(aapl) == len(wire_bars(daily, "AAPL")) and aapl.index.is_unique


# -- errors that a retry cannot fix --------------------------------------------------------


def test_unknown_contract_is_a_provider_error_naming_the_asset(tws: FakeTWS, tmp_path: Path):
    tickers = TickersConfig.model_validate({"tickers": ["ZZZZ"], "what_to_show": "TRADES"})
    with pytest.raises(ProviderError, match=r"asset 'ZZZZ'.*error 200.*check symbol, sec_type"):
        run(make_provider(tws, tickers), tmp_path, tickers)
    assert not (tmp_path / "ZZZZ").exists()


def test_missing_subscription_is_a_provider_error_saying_what_to_do(tws: FakeTWS, tmp_path: Path):
    tws.add("AAPL", wire_bars(FIXTURES / "simulated_stocks_trades_1d.csv", "AAPL"))
    tws.instruments["AAPL"].subscribed = False
    tickers = TickersConfig.model_validate({"tickers": ["AAPL"], "what_to_show": "TRADES"})
    with pytest.raises(ProviderError, match=r"'AAPL'.*error 354.*Market Data Subscriptions"):
        run(make_provider(tws, tickers), tmp_path, tickers)
    assert len(tws.historical()) == 1  # no retries: a retry cannot fix it


def test_unreachable_gateway_names_host_port_and_env_vars(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    with socket.socket() as probe:  # a real port that nothing listens on: no fake here
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tickers = TickersConfig.model_validate(
        {"tickers": ["EUR.USD", "GBP.USD"], "what_to_show": "MIDPOINT"}
    )
    provider = IBProvider(tickers, "127.0.0.1", port, 7, connect_timeout=2.0)
    store = RawBarStore(tmp_path)
    with pytest.raises(
        ProviderError, match=rf"127\.0\.0\.1:{port}.*IB_HOST / IB_PORT / IB_CLIENT_ID"
    ):
        download_history(provider, store, tickers.tickers, Month(2023, 1), Month(2023, 4))
    # Both assets wanted the connection; it was tried once and failed for both, cleanly.
    tries = [r for r in caplog.records if r.getMessage().startswith("API connection failed")]
    assert len(tries) == 1
    assert not [r for r in caplog.records if r.name == "asyncio"]
    assert store.assets() == []


# -- settings IB cannot serve: rejected before any request --------------------------------


def test_trades_for_fx_is_rejected_before_any_request(tws: FakeTWS):
    with pytest.raises(
        ConfigError, match=r"'TRADES' is not available for FX pairs \(EUR.USD\).*MIDPOINT"
    ):
        make_provider(tws, fx_tickers(what_to_show="TRADES"))
    assert tws.connections == 0 and tws.requests == []


@pytest.mark.parametrize("bar_size", ["1 secs", "5 mins", "15 mins", "20 mins"])
def test_bar_size_too_fine_for_a_month_is_rejected_before_any_request(tws: FakeTWS, bar_size: str):
    with pytest.raises(
        ConfigError, match=rf"bar_size '{bar_size}'.*duration '28 D'.*30 mins - 1 month"
    ):
        make_provider(tws, fx_tickers(bar_size=bar_size))
    assert tws.connections == 0 and tws.requests == []


@pytest.mark.parametrize(
    ("duration", "allowed"),
    [
        ("60 S", ("1 secs", "1 min")),
        ("1800 S", ("1 secs", "30 mins")),
        ("3600 S", ("5 secs", "1 hour")),
        ("1 D", ("1 min", "1 day")),
        ("3 D", ("3 mins", "1 week")),
        ("28 D", ("30 mins", "1 month")),
        ("31 D", ("30 mins", "1 month")),
        ("1 M", ("30 mins", "1 month")),
        ("32 D", ("1 day", "1 month")),
        ("5 Y", ("1 day", "1 month")),
    ],
)
def test_step_size_table(duration: str, allowed: tuple[str, str]):
    assert allowed_bar_sizes(duration) == allowed


def test_check_step_accepts_the_edges_and_rejects_outside():
    check_step("31 D", "30 mins")
    check_step("31 D", "1 month")
    check_step("1 D", "1 min")
    with pytest.raises(ConfigError, match=r"bar_size '1 week'.*'1 D'.*1 min - 1 day"):
        check_step("1 D", "1 week")


# -- the bar frame ------------------------------------------------------------------------


def test_bars_frame_keeps_the_month_dedupes_and_maps_missing_volume():
    def bar(stamp: str, close: float, volume: float) -> BarData:
        when = pd.Timestamp(stamp, tz="UTC").to_pydatetime()
        return BarData(when, close, close + 1, close - 1, close, volume, -1, -1)

    bars = [
        bar("2023-02-28 23:00", 1.0, -1),  # previous page's bar
        bar("2023-03-01 00:00", 2.0, 10),
        bar("2023-03-01 00:00", 2.5, 11),  # the same bar twice: the later copy wins
        bar("2023-03-31 23:00", 3.0, -1),
        bar("2023-04-01 00:00", 4.0, 5),  # next page's bar
    ]
    frame = bars_frame(bars, Month(2023, 3))
    assert list(frame.index) == [
        pd.Timestamp("2023-03-01 00:00", tz="UTC"),
        pd.Timestamp("2023-03-31 23:00", tz="UTC"),
    ]
    assert frame["close"].tolist() == [2.5, 3.0]
    assert frame["volume"].tolist()[0] == 11.0 and np.isnan(frame["volume"].iloc[1])
    assert frame.index.name == "timestamp" and (frame.dtypes == "float64").all()
    assert bars_frame([], Month(2023, 3)).empty


def test_metadata_names_the_unqualified_contract_before_lookup(tws: FakeTWS):
    asset = AssetSpec.from_ticker("EUR.USD")
    meta = make_provider(tws, fx_tickers()).metadata(asset)
    assert meta["provider"] == "ib"
    assert meta["contract"]["secType"] == "CASH" and meta["contract"]["symbol"] == "EUR"
    assert meta["contract"]["currency"] == "USD" and meta["contract"]["exchange"] == "IDEALPRO"

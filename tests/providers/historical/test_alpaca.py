"""AlpacaProvider through the real alpaca-py clients against a real HTTP server on 127.0.0.1.

The server replays the simulated wire responses in ``tests/fixtures/alpaca`` (see the
README there): the clients' ``url_override`` points at it, so requests, query strings,
pagination, retries and error handling all run through alpaca-py and ``requests``
unchanged. Only the network edge (Alpaca's servers) is replaced.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest

from algo_trader.application.historical.config import TickersConfig
from algo_trader.application.historical.download import download_history
from algo_trader.domain.errors import ConfigError, ProviderError
from algo_trader.domain.market_data.assets import AssetSpec
from algo_trader.domain.market_data.bars import BAR_COLUMNS
from algo_trader.infrastructure.data.raw_store import Month, RawBarStore
from algo_trader.providers.historical.alpaca import (
    ALPACA_BAR_SIZES,
    AlpacaProvider,
    alpaca_timeframe,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "alpaca"
STOCKS = "/v2/stocks/bars"
CRYPTO = "/v1beta3/crypto/us/bars"
MARCH = Month(2024, 3)
APRIL = Month(2024, 4)
AAPL = AssetSpec.from_ticker("AAPL")
BTC = AssetSpec.from_ticker("BTC/USD")
AAPL_PAGES = [FIXTURES / f"stocks_bars_AAPL_2024-03_1Hour_page{i}.json" for i in (1, 2, 3)]
BTC_PAGES = [FIXTURES / f"crypto_bars_BTC-USD_2024-03_1Hour_page{i}.json" for i in (1, 2)]
Reply = tuple[int, str]


def page(path: Path) -> Reply:
    return 200, path.read_text(encoding="utf-8")


def error(status: int, name: str | None = None) -> Reply:
    body = (FIXTURES / name).read_text(encoding="utf-8") if name else "Service Unavailable"
    return status, body


def page_token(path: Path) -> str | None:
    token: str | None = json.loads(path.read_text(encoding="utf-8"))["next_page_token"]
    return token


@dataclass
class FakeAlpaca:
    """Routes ``(path, symbols, month of start, page_token)`` to queued replies.

    Each route pops its replies in order and repeats the last one; every request is
    recorded as ``(path, query, headers)``. An unknown route answers 404.
    """

    url: str = ""
    routes: dict[tuple[str, str, str, str | None], list[Reply]] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, str], dict[str, str]]] = field(default_factory=list)

    def route(
        self, path: str, symbols: str, month: Month, replies: list[Reply], token: str | None = None
    ) -> None:
        self.routes[(path, symbols, str(month), token)] = list(replies)

    def serve_month(self, path: str, symbols: str, month: Month, pages: list[Path]) -> None:
        """Chain ``pages`` by their own ``next_page_token``s."""
        token = None
        for file in pages:
            self.route(path, symbols, month, [page(file)], token)
            token = page_token(file)

    def reply(self, path: str, query: dict[str, str]) -> Reply:
        key = (path, query.get("symbols", ""), query.get("start", "")[:7], query.get("page_token"))
        replies = self.routes.get(key)
        if not replies:
            return 404, json.dumps({"message": f"no simulated answer for {key}"})
        return replies.pop(0) if len(replies) > 1 else replies[0]

    def queries(self, path: str) -> list[dict[str, str]]:
        return [query for seen_path, query, _ in self.seen if seen_path == path]


@pytest.fixture
def fake_alpaca(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAlpaca]:
    """A threaded HTTP server on an ephemeral 127.0.0.1 port, shut down after the test."""
    # alpaca-py sleeps DEFAULT_RETRY_WAIT_SECONDS (3 s) before retrying a 429/504; it reads
    # the module constant when a client is built, so zero keeps the suite fast.
    monkeypatch.setattr("alpaca.common.rest.DEFAULT_RETRY_WAIT_SECONDS", 0)
    fake = FakeAlpaca()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            fake.seen.append((parts.path, query, dict(self.headers)))
            status, body = fake.reply(parts.path, query)
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def tickers(*names: str, bar_size: str = "1 hour", **alpaca: str) -> TickersConfig:
    return TickersConfig.model_validate(
        {"tickers": list(names), "bar_size": bar_size, "alpaca": alpaca}
    )


def provider(url: str, *names: str, keys: bool = True) -> AlpacaProvider:
    return AlpacaProvider(
        tickers(*(names or ("AAPL",))),
        api_key="PKTEST" if keys else "",
        secret_key="SECRETTEST" if keys else "",
        url_override=url,
        retry_attempts=2,
        retry_wait_s=0.01,
    )


def fetch(p: AlpacaProvider, asset: AssetSpec, month: Month = MARCH) -> pd.DataFrame:
    return asyncio.run(p.fetch_month(asset, month))


def wire_frame(pages: list[Path], symbol: str) -> pd.DataFrame:
    """The fixture pages as a plain frame, read independently of the provider."""
    rows = [bar for p in pages for bar in json.loads(p.read_text())["bars"][symbol]]
    frame = pd.DataFrame(rows)
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame["t"], utc=True), name="timestamp")
    return frame.rename(columns=dict(zip("ohlcv", BAR_COLUMNS, strict=True)))


def assert_bar_contract(bars: pd.DataFrame) -> None:
    assert list(bars.columns) == list(BAR_COLUMNS)
    assert (bars.dtypes == "float64").all()
    assert isinstance(bars.index, pd.DatetimeIndex)
    assert str(bars.index.tz) == "UTC" and bars.index.name == "timestamp"
    assert bars.index.is_monotonic_increasing and bars.index.is_unique


def test_multi_page_stock_month_arrives_whole(fake_alpaca: FakeAlpaca) -> None:
    fake_alpaca.serve_month(STOCKS, "AAPL", MARCH, AAPL_PAGES)
    bars = fetch(provider(fake_alpaca.url), AAPL)

    assert len(bars) == 321  # 128 + 128 + 65 bars on the three pages
    assert_bar_contract(bars)
    assert bars.index[0] == pd.Timestamp("2024-03-01T00:00Z")
    assert bars.index[-1] == pd.Timestamp("2024-03-28T23:00Z")
    expected = wire_frame(AAPL_PAGES, "AAPL")
    # The unit of the expected index may differ; values, order and columns may not.
    expected_bars = expected[list(BAR_COLUMNS)].astype("float64")
    pd.testing.assert_frame_equal(bars, expected_bars, check_index_type=False)
    queries = fake_alpaca.queries(STOCKS)
    common = {
        "symbols": "AAPL",
        "timeframe": "1Hour",
        "start": "2024-03-01T00:00:00+00:00",
        "end": "2024-04-01T00:00:00+00:00",
        "feed": "iex",
        "adjustment": "all",
        "limit": "10000",
    }
    tokens = [None, page_token(AAPL_PAGES[0]), page_token(AAPL_PAGES[1])]
    assert queries == [
        common if token is None else {**common, "page_token": token} for token in tokens
    ]
    headers = fake_alpaca.seen[0][2]
    assert headers["APCA-API-KEY-ID"] == "PKTEST"
    assert headers["APCA-API-SECRET-KEY"] == "SECRETTEST"


def test_feed_and_adjustment_come_from_tickers_yml(fake_alpaca: FakeAlpaca) -> None:
    fake_alpaca.serve_month(STOCKS, "AAPL", MARCH, AAPL_PAGES)
    config = tickers("AAPL", bar_size="1 hour", feed="sip", adjustment="split")
    p = AlpacaProvider(config, "PKTEST", "SECRETTEST", url_override=fake_alpaca.url)
    assert len(fetch(p, AAPL)) == 321
    assert {(q["feed"], q["adjustment"]) for q in fake_alpaca.queries(STOCKS)} == {("sip", "split")}
    assert p.metadata(AAPL) == {
        "provider": "alpaca",
        "symbol": "AAPL",
        "sec_type": "STK",
        "asset_class": "us_equity",
        "bar_size": "1 hour",
        "timeframe": "1Hour",
        "feed": "sip",
        "adjustment": "split",
    }


def test_crypto_month_without_keys_drops_the_inclusive_end_bar(fake_alpaca: FakeAlpaca) -> None:
    fake_alpaca.serve_month(CRYPTO, "BTC/USD", MARCH, BTC_PAGES)
    p = provider(fake_alpaca.url, "BTC/USD", keys=False)
    bars = fetch(p, BTC)

    # 745 bars served (two pages); the one at 2024-04-01T00:00Z belongs to April.
    assert len(bars) == 744
    assert_bar_contract(bars)
    assert bars.index[0] == pd.Timestamp("2024-03-01T00:00Z")
    assert bars.index[-1] == pd.Timestamp("2024-03-31T23:00Z")
    assert bars["close"].iloc[-1] == 48462.5
    assert bars["volume"].iloc[-1] == 1.31232079
    queries = fake_alpaca.queries(CRYPTO)
    assert [q.get("page_token") for q in queries] == [None, page_token(BTC_PAGES[0])]
    assert "feed" not in queries[0] and "adjustment" not in queries[0]
    assert queries[0]["symbols"] == "BTC/USD" and queries[0]["timeframe"] == "1Hour"
    assert "APCA-API-KEY-ID" not in fake_alpaca.seen[0][2]
    assert p.metadata(BTC)["feed"] == "us" and p.metadata(BTC)["adjustment"] is None


def test_empty_month_is_an_empty_bar_frame(fake_alpaca: FakeAlpaca) -> None:
    fake_alpaca.route(STOCKS, "AAPL", APRIL, [page(FIXTURES / "bars_empty.json")])
    bars = fetch(provider(fake_alpaca.url), AAPL, APRIL)
    assert bars.empty
    assert_bar_contract(bars)


def test_500_then_success_gives_the_complete_month(
    fake_alpaca: FakeAlpaca, caplog: pytest.LogCaptureFixture
) -> None:
    fake_alpaca.route(STOCKS, "AAPL", MARCH, [error(500, "error_500.json"), page(AAPL_PAGES[0])])
    for file, token in zip(AAPL_PAGES[1:], map(page_token, AAPL_PAGES), strict=False):
        fake_alpaca.route(STOCKS, "AAPL", MARCH, [page(file)], token)
    with caplog.at_level(logging.WARNING):
        assert len(fetch(provider(fake_alpaca.url), AAPL)) == 321
    assert len(fake_alpaca.queries(STOCKS)) == 4
    assert [r.getMessage() for r in caplog.records] == [
        "alpaca AAPL 2024-03: APIError (status 500); retry 1/2 in 0.0 s"
    ]


def test_503_in_the_middle_of_the_pages_restarts_the_month(fake_alpaca: FakeAlpaca) -> None:
    # Page 2 fails once: the client has already read page 1, so the month must be
    # refetched from its start rather than returned as a 128-bar prefix.
    fake_alpaca.serve_month(STOCKS, "AAPL", MARCH, AAPL_PAGES)
    token = page_token(AAPL_PAGES[0])
    fake_alpaca.route(STOCKS, "AAPL", MARCH, [error(503), page(AAPL_PAGES[1])], token)
    bars = fetch(provider(fake_alpaca.url), AAPL)
    assert len(bars) == 321
    assert [q.get("page_token") for q in fake_alpaca.queries(STOCKS)] == [
        None, token, None, token, page_token(AAPL_PAGES[1]),
    ]  # fmt: skip


def test_429_is_retried_by_the_client_itself(
    fake_alpaca: FakeAlpaca, caplog: pytest.LogCaptureFixture
) -> None:
    fake_alpaca.route(STOCKS, "AAPL", MARCH, [error(429, "error_429.json"), page(AAPL_PAGES[0])])
    for file, token in zip(AAPL_PAGES[1:], map(page_token, AAPL_PAGES), strict=False):
        fake_alpaca.route(STOCKS, "AAPL", MARCH, [page(file)], token)
    with caplog.at_level(logging.WARNING):
        assert len(fetch(provider(fake_alpaca.url), AAPL)) == 321
    assert len(fake_alpaca.queries(STOCKS)) == 4
    assert not caplog.records  # alpaca-py retried the page; the provider saw no error


def test_persistent_503_raises_naming_asset_month_and_status(fake_alpaca: FakeAlpaca) -> None:
    fake_alpaca.route(STOCKS, "AAPL", MARCH, [error(503)])
    with pytest.raises(ProviderError, match=r"AAPL.*2024-03.*status 503.*after 3 attempts"):
        fetch(provider(fake_alpaca.url), AAPL)
    assert len(fake_alpaca.queries(STOCKS)) == 3  # retry_attempts=2, then give up


def test_401_says_to_check_the_keys_without_retrying(fake_alpaca: FakeAlpaca) -> None:
    fake_alpaca.route(STOCKS, "AAPL", MARCH, [error(401, "error_401.json")])
    with pytest.raises(ProviderError, match=r"status 401.*ALPACA_API_KEY and ALPACA_SECRET_KEY"):
        fetch(provider(fake_alpaca.url), AAPL)
    assert len(fake_alpaca.queries(STOCKS)) == 1


def test_other_client_errors_are_not_retried(fake_alpaca: FakeAlpaca) -> None:
    with pytest.raises(ProviderError, match=r"AAPL.*2024-03.*status 404"):
        fetch(provider(fake_alpaca.url), AAPL)
    assert len(fake_alpaca.queries(STOCKS)) == 1


def test_unreachable_server_raises_after_retries() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ProviderError, match=r"AAPL.*2024-03: no HTTP answer.*after 3 attempts"):
        fetch(provider(f"http://127.0.0.1:{port}"), AAPL)


def test_download_history_writes_months_and_meta_with_the_feed(
    fake_alpaca: FakeAlpaca, tmp_path: Path
) -> None:
    fake_alpaca.serve_month(STOCKS, "AAPL", MARCH, AAPL_PAGES)
    fake_alpaca.serve_month(CRYPTO, "BTC/USD", MARCH, BTC_PAGES)
    empty = [page(FIXTURES / "bars_empty.json")]
    fake_alpaca.route(STOCKS, "AAPL", APRIL, empty)
    fake_alpaca.route(CRYPTO, "BTC/USD", APRIL, empty)
    store = RawBarStore(tmp_path / "raw")
    p = provider(fake_alpaca.url, "AAPL", "BTC/USD")

    report = download_history(p, store, [AAPL, BTC], start=MARCH, current=APRIL)

    assert report.written == {"AAPL": ["2024-03"], "BTC-USD": ["2024-03"]}
    assert report.empty == {"AAPL": ["2024-04"], "BTC-USD": ["2024-04"]}
    assert store.assets() == ["AAPL", "BTC-USD"]
    aapl = pd.read_csv(store.month_path("AAPL", MARCH), index_col="timestamp")
    btc = pd.read_csv(store.month_path("BTC-USD", MARCH), index_col="timestamp")
    assert (len(aapl), len(btc)) == (321, 744)
    assert aapl.index[0] == "2024-03-01T00:00:00+00:00"
    # The loop adds its own bookkeeping keys; everything the provider reports is kept.
    meta = store.read_meta("AAPL")
    assert meta.items() >= {**p.metadata(AAPL), "last_complete_month": "2024-03"}.items()
    assert store.read_meta("AAPL")["feed"] == "iex"
    assert store.read_meta("BTC-USD")["feed"] == "us"


@pytest.mark.parametrize(
    ("bar_size", "value"),
    [("1 min", "1Min"), ("5 mins", "5Min"), ("30 mins", "30Min"), ("1 hour", "1Hour"),
     ("4 hours", "4Hour"), ("8 hours", "8Hour"), ("1 day", "1Day"), ("1 week", "1Week"),
     ("1 month", "1Month")],
)  # fmt: skip
def test_bar_size_maps_to_alpaca_timeframe(bar_size: str, value: str) -> None:
    assert alpaca_timeframe(bar_size).value == value


@pytest.mark.parametrize("bar_size", ["1 secs", "30 secs"])
def test_bar_size_alpaca_lacks_is_a_config_error(bar_size: str) -> None:
    with pytest.raises(ConfigError, match=rf"bar_size '{bar_size}'.*valid: 1 min, 2 mins"):
        AlpacaProvider(tickers("AAPL", bar_size=bar_size), "PKTEST", "SECRETTEST")
    assert "secs" not in ", ".join(ALPACA_BAR_SIZES)


def test_fx_pair_is_a_config_error_naming_asset_and_supported_types() -> None:
    with pytest.raises(ConfigError, match=r"'EUR.USD' has sec_type 'CASH'.*STK, ETF, CRYPTO"):
        AlpacaProvider(tickers("AAPL", "EUR.USD"), "PKTEST", "SECRETTEST")


@pytest.mark.parametrize(("api_key", "secret_key"), [("", ""), ("PKTEST", ""), ("", "SECRET")])
def test_stocks_without_both_keys_are_a_config_error(api_key: str, secret_key: str) -> None:
    with pytest.raises(ConfigError, match=r"AAPL.*ALPACA_API_KEY and ALPACA_SECRET_KEY"):
        AlpacaProvider(tickers("AAPL", "BTC/USD"), api_key, secret_key)


def test_first_month_is_alpacas_data_start_for_stocks_only() -> None:
    p = AlpacaProvider(tickers("AAPL", "BTC/USD"), "PKTEST", "SECRETTEST")
    assert asyncio.run(p.first_month(AAPL)) == Month(2016, 1)
    assert asyncio.run(p.first_month(BTC)) is None
    assert asyncio.run(p.last_month(AAPL)) is None

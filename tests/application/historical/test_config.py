from pathlib import Path

import pytest

from algo_trader.application.historical.config import load_tickers
from algo_trader.domain.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tickers.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_file_parses() -> None:
    cfg = load_tickers(REPO / "config" / "tickers.example.yml")
    fx = next(a for a in cfg.tickers if a.name == "EUR.USD")
    assert (fx.symbol, fx.sec_type, fx.exchange, fx.currency) == ("EUR", "CASH", "IDEALPRO", "USD")


def test_on_no_tickers_stay_strings(tmp_path: Path) -> None:
    cfg = load_tickers(write(tmp_path, "tickers: [ON, NO, 'Y']\n"))
    assert [a.name for a in cfg.tickers] == ["ON", "NO", "Y"]


def test_numeric_ticker_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tickers: .*ticker 7203 is not a string; quote it"):
        load_tickers(write(tmp_path, "tickers: [7203]\n"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tickers: [AAPL]\nduration: 2 years\n", r"duration: .*'<N> <unit>'.*\(got '2 years'\)"),
        ("tickers: [AAPL]\nbar_size: 1 hr\n", r"bar_size: .*must be one of.*\(got '1 hr'\)"),
        ("tickers: [AAPL]\nwhat_to_show: LAST\n", r"what_to_show: .*'TRADES'"),
        ("tickers: []\n", r"tickers: .*at least 1"),
        ("tickers: [AAPL, AAPL]\n", r"duplicate ticker names \['AAPL'\]"),
        ("tickers: [AAPL]\nbarsize: 1 hour\n", r"barsize: unknown key"),
        ("tickers: [AAPL]\nalpaca:\n  feed: nyse\n", r"alpaca\.feed: "),
    ],
)
def test_bad_tickers_config(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_tickers(write(tmp_path, text))

"""The ``sample`` provider on the real bundled data, and the real hourly EURUSD fixture."""

from __future__ import annotations

import asyncio
import io
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from algo_trader.application.historical.download import download_history
from algo_trader.domain.errors import DataError
from algo_trader.domain.market_data.assets import AssetSpec
from algo_trader.domain.market_data.bars import BAR_COLUMNS, find_bad_bars
from algo_trader.infrastructure.data.raw_store import Month, RawBarStore
from algo_trader.providers.historical.sample import SampleProvider, bundled_sample_dir

EURUSD_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "eurusd_1h"
NAMES = ["AAPL", "GOOG", "IBM", "MSFT", "NASDAQ", "SP500"]


@pytest.fixture(scope="module")
def sample() -> SampleProvider:
    return SampleProvider()


def fetch(provider: SampleProvider, name: str, month: str) -> pd.DataFrame:
    spec = next(a for a in provider.assets() if a.name == name)
    return asyncio.run(provider.fetch_month(spec, Month.parse(month)))


def all_bars(provider: SampleProvider, name: str) -> pd.DataFrame:
    """Every month of one asset through ``fetch_month``, in one event loop."""
    spec = next(a for a in provider.assets() if a.name == name)

    async def months() -> list[pd.DataFrame]:
        return [await provider.fetch_month(spec, m) for m, _ in provider.store.months(name)]

    return pd.concat(asyncio.run(months()))


def test_lists_the_six_bundled_assets_with_their_contracts(sample: SampleProvider) -> None:
    assets = {a.name: a for a in sample.assets()}
    assert sorted(assets) == NAMES
    assert assets["AAPL"] == AssetSpec(name="AAPL", symbol="AAPL", primary_exchange="NASDAQ")
    assert (assets["SP500"].sec_type, assets["SP500"].symbol) == ("IND", "SPX")
    assert (assets["NASDAQ"].sec_type, assets["NASDAQ"].symbol) == ("IND", "COMP")


def test_data_lives_inside_the_package() -> None:
    import algo_trader

    package = Path(algo_trader.__file__).parent
    assert bundled_sample_dir().is_relative_to(package)
    assert (bundled_sample_dir() / "README.md").is_file()


def test_span_is_the_common_span_of_all_assets(sample: SampleProvider) -> None:
    for spec in sample.assets():
        assert asyncio.run(sample.first_month(spec)) == Month(2004, 8)
        assert asyncio.run(sample.last_month(spec)) == Month(2013, 3)


def test_fetch_month_returns_the_bar_frame_contract(sample: SampleProvider) -> None:
    bars = fetch(sample, "AAPL", "2004-08")
    stamps = pd.DatetimeIndex(bars.index)
    assert list(bars.columns) == list(BAR_COLUMNS)
    assert (bars.dtypes == np.float64).all()
    assert stamps.name == "timestamp" and str(stamps.tz) == "UTC"
    assert stamps.is_monotonic_increasing and stamps.is_unique
    # Daily bars at 00:00 UTC of the trading date; 2004-08-19 is Google's first day.
    assert stamps[0] == pd.Timestamp("2004-08-19", tz="UTC")
    assert (stamps == stamps.normalize()).all()
    assert len(bars) == 9
    assert bars.iloc[0].tolist() == [2.024737, 2.047227, 1.950842, 1.973332, 6945000.0]


def test_month_without_a_file_is_empty(sample: SampleProvider) -> None:
    bars = fetch(sample, "IBM", "2001-01")
    assert bars.empty and list(bars.columns) == list(BAR_COLUMNS)
    assert str(pd.DatetimeIndex(bars.index).tz) == "UTC"


def test_unknown_asset_is_a_clear_error(sample: SampleProvider) -> None:
    with pytest.raises(DataError, match=r"not in the sample; valid: AAPL, GOOG.*'TSLA'"):
        asyncio.run(sample.fetch_month(AssetSpec(name="TSLA", symbol="TSLA"), Month(2010, 1)))


def test_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no sample data found"):
        SampleProvider(tmp_path)


def test_metadata_names_provider_source_licence_and_adjustment(sample: SampleProvider) -> None:
    aapl, sp500 = (next(a for a in sample.assets() if a.name == n) for n in ("AAPL", "SP500"))
    meta = sample.metadata(aapl)
    assert meta["provider"] == "sample" and meta["bar_size"] == "1 day"
    assert meta["source"]["package"] == "bokeh_sampledata"
    assert "Public domain" in meta["licence"]
    assert "adj_close / close" in meta["adjustment"]
    assert "last_complete_month" not in meta  # the download loop records its own
    assert sample.metadata(sp500)["source"]["package"] == "arch"
    assert "NCSA" in sample.metadata(sp500)["licence"]


def test_download_writes_the_packaged_files_and_resumes(sample: SampleProvider) -> None:
    store = RawBarStore(Path.cwd() / "data")
    start = Month(2012, 7)  # a recent slice keeps the test fast; the loop is per month anyway
    first = download_history(sample, store, sample.assets(), start, current=Month(2024, 1))
    packaged = RawBarStore(bundled_sample_dir())
    for name in NAMES:
        expected = [m for m, _ in packaged.months(name) if start <= m]
        assert [m for m, _ in store.months(name)] == expected
        assert first.written[name] == [str(m) for m in reversed(expected)]
        for month in expected:
            ours = store.month_path(name, month).read_bytes()
            assert ours == packaged.month_path(name, month).read_bytes()
        assert store.read_meta(name)["last_complete_month"] == "2013-02"
    second = download_history(sample, store, sample.assets(), start, current=Month(2024, 1))
    # Complete months are skipped; only the newest month (2013-03) is fetched again.
    assert second.written == {name: ["2013-03"] for name in NAMES}
    assert all(len(second.skipped[name]) == 8 for name in NAMES)


def test_every_packaged_file_passes_the_ohlc_checks() -> None:
    paths = sorted(bundled_sample_dir().glob("*/*/hist_data_*.csv"))
    assert len(paths) == 624
    texts = [p.read_text(encoding="utf-8").split("\n", 1) for p in paths]
    assert {header for header, _ in texts} == {"timestamp,open,high,low,close,volume"}
    # All files parsed in one read; each row remembers its file and line for the report.
    frame = pd.read_csv(io.StringIO("".join(body for _, body in texts)), header=None)
    frame.columns = pd.Index(["timestamp", *BAR_COLUMNS])
    counts = [body.count("\n") for _, body in texts]
    lines = np.concatenate([np.arange(2, n + 2) for n in counts])
    files = np.repeat([p.relative_to(bundled_sample_dir()).as_posix() for p in paths], counts)
    bad = find_bad_bars(frame, "sample_data", lines)
    assert [f"{files[b.line - 2]}:{b.line} {b.rule}" for b in bad] == []
    assert frame.notna().all().all()
    # Same 2148 trading days for each of the six assets, no duplicates.
    per_asset = frame.groupby(np.array([f.split("/")[0] for f in files]))["timestamp"]
    assert per_asset.size().to_dict() == dict.fromkeys(NAMES, 2148)
    assert per_asset.nunique().to_dict() == dict.fromkeys(NAMES, 2148)


def test_adjusted_prices_match_the_source_packages(sample: SampleProvider) -> None:
    stocks = pytest.importorskip("bokeh_sampledata.stocks")
    try:
        # The file ``arch.data.sp500.load()`` reads; importing ``arch`` itself takes seconds.
        sp500_csv = metadata.distribution("arch").locate_file("arch/data/sp500/sp500.csv.gz")
    except metadata.PackageNotFoundError:
        pytest.skip("the 'sample' dependency group (arch) is not installed")

    for name, day in [
        ("AAPL", "2005-02-28"),
        ("GOOG", "2008-10-10"),
        ("IBM", "2011-06-01"),
        ("MSFT", "2013-03-01"),
    ]:
        source = pd.DataFrame(getattr(stocks, name)).set_index("date").loc[day]
        ratio = source["adj_close"] / source["close"]
        bar = fetch(sample, name, day[:7]).loc[pd.Timestamp(day, tz="UTC")]
        for column in ("open", "high", "low", "close"):
            assert bar[column] == pytest.approx(source[column] * ratio, abs=5e-7)
        assert bar["volume"] == source["volume"]  # volume is not adjusted
    index = pd.read_csv(str(sp500_csv), index_col="Date").loc["10/10/2008"]
    bar = fetch(sample, "SP500", "2008-10").loc[pd.Timestamp("2008-10-10", tz="UTC")]
    assert bar["close"] == pytest.approx(index["Close"], abs=5e-7)
    assert bar["volume"] == index["Volume"]


def test_split_does_not_show_as_a_return(sample: SampleProvider) -> None:
    # AAPL split 2:1 on 2005-02-28; unadjusted close went 88.99 -> 44.86.
    closes = fetch(sample, "AAPL", "2005-02")["close"]
    change = closes.iloc[-1] / closes.iloc[-2] - 1
    assert closes.index[-1] == pd.Timestamp("2005-02-28", tz="UTC")
    assert abs(change) < 0.02


# --- the real hourly fixture (tests/fixtures/eurusd_1h), read through the same provider ---


@pytest.fixture(scope="module")
def eurusd() -> pd.DataFrame:
    provider = SampleProvider(EURUSD_DIR)
    assert [a.name for a in provider.assets()] == ["EURUSD"]
    assert provider.assets()[0].sec_type == "CASH"
    return all_bars(provider, "EURUSD")


HOUR = pd.Timedelta(hours=1).value


def weekend_opens(stamps: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """First bar after each gap of one to three days (a weekend, Friday to Sunday)."""
    steps = np.diff(stamps.asi8)
    weekend = (steps > 24 * HOUR) & (steps < 72 * HOUR)
    return stamps[1:][weekend]


def test_eurusd_fixture_is_hourly_with_weekend_gaps(eurusd: pd.DataFrame) -> None:
    stamps = pd.DatetimeIndex(eurusd.index)
    assert len(eurusd) == 2095
    assert find_bad_bars(eurusd, "EURUSD", np.arange(len(eurusd))) == []
    assert (stamps.minute == 0).all() and (stamps.second == 0).all()
    steps = np.diff(stamps.asi8)
    assert (steps % HOUR == 0).all() and (steps > 0).all()
    assert (steps == HOUR).mean() > 0.95
    opens = weekend_opens(stamps)
    assert len(opens) == 16
    assert set(opens.strftime("%A")) == {"Sunday"}  # every weekend gap ends on a Sunday
    first = eurusd.loc[pd.Timestamp("2017-03-01 00:00", tz="UTC")].to_numpy().tolist()
    assert first == [1.05693, 1.05695, 1.05601, 1.05628, 7322089844.0]


def test_eurusd_fixture_week_opens_shift_with_us_dst(eurusd: pd.DataFrame) -> None:
    opens = weekend_opens(pd.DatetimeIndex(eurusd.index))
    hour = dict(zip(opens.strftime("%Y-%m-%d"), opens.hour, strict=True))
    # UTC stamps: 22:00 in EST, 21:00 in EDT (US DST 2017-03-12 .. 2017-11-05).
    days = ["2017-03-05", "2017-03-12", "2017-10-29", "2017-11-05"]
    assert [hour[d] for d in days] == [22, 21, 21, 22]

"""OHLC panels for the feature tests: generated (synthetic, not market) and the real sample.

``generated_daily`` draws geometric random-walk daily bars (Mon-Fri, stamped 00:00 UTC);
``to_weekly`` aggregates them the way the data lake contract does (calendar weeks from
Monday, label = latest bar timestamp of the week across all assets, open first / high max /
low min / close last / volume sum). ``sample_daily`` reads the bundled real sample (daily
bars of 6 US assets, 2004-2013) straight from its raw monthly files.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from algo_trader.application.feature_engineering.inputs import (
    FeatureInputs,
    inputs_from_frames,
)

FIELDS = ["open", "high", "low", "close", "volume"]
SAMPLE_DIR = Path(__file__).parents[3] / "algo_trader/providers/historical/sample_data"


def generated_daily(
    n_assets: int = 5,
    n_weeks: int = 120,
    seed: int = 0,
    start: str = "2015-01-05",
) -> pd.DataFrame:
    """Generated daily bars, MultiIndex columns (asset, field), assets ``GEN0..``."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range(start, periods=n_weeks * 5, tz="UTC", name="timestamp")
    sigma = rng.uniform(0.005, 0.03, n_assets)
    ret = rng.standard_t(4, size=(len(days), n_assets)) * sigma * 0.7
    close = 100.0 * rng.uniform(0.5, 2.0, n_assets) * np.exp(np.cumsum(ret, axis=0))
    prev = np.vstack([close[:1], close[:-1]])
    open_ = prev * np.exp(rng.normal(0, 0.3, close.shape) * sigma)
    wick = np.abs(rng.normal(0, 0.5, (2, *close.shape))) * sigma
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    volume = rng.integers(1_000, 100_000, close.shape).astype(float)
    assets = [f"GEN{i}" for i in range(n_assets)]
    data = np.stack([open_, high, low, close, volume], axis=2).reshape(len(days), -1)
    columns = pd.MultiIndex.from_product([assets, FIELDS], names=["asset", "field"])
    return pd.DataFrame(data, index=days, columns=columns)


def to_weekly(daily: pd.DataFrame) -> pd.DataFrame:
    """Aggregate daily bars to weekly bars per the data lake contract."""
    week = pd.DatetimeIndex(daily.index).tz_localize(None).to_period("W-SUN")
    label = pd.Series(daily.index, index=daily.index).groupby(week).max()
    parts = {}
    for field, how in (
        ("open", "first"),
        ("high", "max"),
        ("low", "min"),
        ("close", "last"),
        ("volume", "sum"),
    ):
        block = daily.xs(field, axis=1, level="field").groupby(week)
        agg = block.sum(min_count=1) if how == "sum" else getattr(block, how)()
        parts[field] = agg
    weekly = pd.concat(parts, axis=1).swaplevel(0, 1, axis=1)
    weekly = weekly.reindex(
        columns=pd.MultiIndex.from_product(
            [daily.columns.get_level_values(0).unique(), FIELDS], names=["asset", "field"]
        )
    )
    weekly.index = pd.DatetimeIndex(label.to_numpy(), name="timestamp")
    return weekly.dropna(how="all")


def sample_daily() -> pd.DataFrame:
    """The bundled real sample as one daily (asset, field) frame; skips if it is absent."""
    assets = (
        sorted(p.name for p in SAMPLE_DIR.iterdir() if p.is_dir()) if SAMPLE_DIR.is_dir() else []
    )
    if not assets:
        pytest.skip("bundled sample not present")
    frames = {}
    for asset in assets:
        files = sorted((SAMPLE_DIR / asset).glob("*/hist_data_*.csv"))
        bars = pd.concat([pd.read_csv(f, index_col="timestamp") for f in files])
        bars.index = pd.to_datetime(bars.index, utc=True, format="ISO8601")
        frames[asset] = bars[FIELDS]
    daily = pd.concat(frames, axis=1, names=["asset", "field"])
    daily.index.name = "timestamp"
    return daily.sort_index()


def make_inputs(daily: pd.DataFrame) -> FeatureInputs:
    return inputs_from_frames(to_weekly(daily), daily)


def array_inputs(
    close: np.ndarray,
    high: np.ndarray | None = None,
    low: np.ndarray | None = None,
    start: str = "2020-01-10",
) -> FeatureInputs:
    """Weekly-only inputs from ``(T, A)`` arrays (Friday labels; open = previous close)."""
    close = np.asarray(close, dtype=np.float64)
    high = close if high is None else np.asarray(high, dtype=np.float64)
    low = close if low is None else np.asarray(low, dtype=np.float64)
    open_ = np.vstack([close[:1], close[:-1]])
    n_assets = close.shape[1]
    index = pd.date_range(start, periods=close.shape[0], freq="W-FRI", tz="UTC", name="timestamp")
    empty = np.empty((0, n_assets))
    return FeatureInputs(
        assets=[f"GEN{i}" for i in range(n_assets)],
        weekly_index=index,
        weekly={
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": np.full_like(close, np.nan),
        },
        daily_index=pd.DatetimeIndex([], tz="UTC", name="timestamp"),
        daily={f: empty for f in FIELDS},
    )


def write_lake(root: Path, daily: pd.DataFrame) -> Path:
    """Write weekly_ohlc.csv / daily_ohlc.csv into ``root/<YYYY-WW>/`` like data_cleaning."""
    from algo_trader.infrastructure.data.atomic import write_csv
    from algo_trader.infrastructure.data.layout import week_folder_name

    weekly = to_weekly(daily)
    folder = root / week_folder_name(weekly.index[-1])
    write_csv(folder / "weekly_ohlc.csv", weekly)
    write_csv(folder / "daily_ohlc.csv", daily)
    return folder


@pytest.fixture
def daily_factory() -> Callable[..., pd.DataFrame]:
    return generated_daily


@pytest.fixture
def weekly_of() -> Callable[[pd.DataFrame], pd.DataFrame]:
    return to_weekly


@pytest.fixture
def inputs_of() -> Callable[[pd.DataFrame], FeatureInputs]:
    return make_inputs


@pytest.fixture
def arrays_to_inputs() -> Callable[..., FeatureInputs]:
    return array_inputs


@pytest.fixture
def lake_writer() -> Callable[[Path, pd.DataFrame], Path]:
    return write_lake


@pytest.fixture(scope="session")
def sample_inputs() -> FeatureInputs:
    """The bundled real sample (6 assets, ~450 weeks)."""
    return make_inputs(sample_daily())


@pytest.fixture(params=["generated", "sample"])
def panel(request: pytest.FixtureRequest) -> FeatureInputs:
    """Each plain-loop comparison runs on the generated panel and on the real sample."""
    name = "generated_inputs" if request.param == "generated" else "sample_inputs"
    inputs: FeatureInputs = request.getfixturevalue(name)
    return inputs


@pytest.fixture(scope="session")
def generated_inputs() -> FeatureInputs:
    """5 generated assets x 120 weeks; GEN3 starts 30 weeks late, one Monday is a holiday."""
    daily = generated_daily(n_assets=5, n_weeks=120, seed=7)
    daily.loc[daily.index[:150], "GEN3"] = np.nan
    days = pd.DatetimeIndex(daily.index)
    holiday = days[days.day_of_week == 0][40]
    daily = daily.drop(index=holiday)
    return make_inputs(daily)

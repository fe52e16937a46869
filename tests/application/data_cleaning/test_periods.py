"""Stacking and period aggregation: calendar keys, exact small cases, a pandas reference."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algo_trader.application.data_cleaning.periods import (
    aggregate_periods,
    missing_labels,
    ohlc_frame,
    stack_bars,
    week_numbers,
    weekdays,
)

Factory = Callable[..., pd.DataFrame]


def _ns(*stamps: str) -> np.ndarray:
    return pd.to_datetime(list(stamps), utc=True).as_unit("ns").asi8


def test_weekdays_and_weeks_follow_the_utc_calendar() -> None:
    ts = _ns(
        "2024-03-04T00:00:00Z",  # Monday
        "2024-03-08T23:00:00Z",  # Friday
        "2024-03-10T23:59:59Z",  # Sunday, same week
        "2024-03-11T00:00:00Z",  # next Monday
        "1969-12-29T00:00:00Z",  # a Monday before the epoch
        "1970-01-04T12:00:00Z",  # the Sunday after it
    )
    assert weekdays(ts).tolist() == [0, 4, 6, 0, 0, 6]
    weeks = week_numbers(ts)
    assert weeks[0] == weeks[1] == weeks[2] == weeks[3] - 1
    assert weeks[4] == weeks[5] == 0


def test_stack_drops_weekend_bars_and_sorts_assets(bars_factory: Factory) -> None:
    frames = {
        "ZZZ": bars_factory(["2024-03-08T10:00:00Z", "2024-03-09T10:00:00Z"], [1.0, 2.0]),
        "AAA": bars_factory(["2024-03-10T22:00:00Z", "2024-03-11T00:00:00Z"], [3.0, 4.0]),
    }
    stacked = stack_bars(frames)
    assert stacked.assets == ("AAA", "ZZZ")
    assert stacked.codes.tolist() == [0, 1]
    assert stacked.values[:, 3].tolist() == [4.0, 1.0]


def test_stack_rejects_unsorted_bars(bars_factory: Factory) -> None:
    frame = bars_factory(["2024-03-05T10:00:00Z", "2024-03-04T10:00:00Z"], [1.0, 2.0])
    with pytest.raises(ValueError, match="X: bars must be sorted"):
        stack_bars({"X": frame})


def test_weekly_aggregation_exact_values(bars_factory: Factory) -> None:
    a = bars_factory(
        ["2024-03-05T09:00:00Z", "2024-03-06T09:00:00Z", "2024-03-08T15:00:00Z"],
        [10.0, 12.0, 11.0],
    )
    a.loc[a.index[1], "volume"] = np.nan  # a NaN volume is skipped in the sum
    b = bars_factory(["2024-03-04T00:00:00Z", "2024-03-11T00:00:00Z"], [5.0, 6.0])
    b["volume"] = np.nan  # a source without volume stays NaN
    stacked = stack_bars({"A": a, "B": b})
    weeks = aggregate_periods(stacked, week_numbers(stacked.ts))
    assert list(weeks.labels.strftime("%Y-%m-%d %H")) == ["2024-03-08 15", "2024-03-11 00"]
    open_, high, low, close, volume = weeks.values[0, 0]
    assert (open_, high, low, close, volume) == (9.5, 13.0, 8.5, 11.0, 20.0)
    assert weeks.values[0, 1, :4].tolist() == [4.5, 6.0, 3.5, 5.0]
    assert np.isnan(weeks.values[0, 1, 4])
    assert np.isnan(weeks.values[1, 0]).all()  # A has no bar in the second week
    assert weeks.missing.tolist() == [[False, False], [True, False]]
    assert missing_labels(weeks) == {"A": ["2024-03-11T00:00:00+00:00"], "B": []}


def test_ohlc_frame_round_trips_through_the_contract_reader(bars_factory: Factory) -> None:
    frames = {
        "A": bars_factory(["2024-03-05T09:00:00Z"], [10.0]),
        "B": bars_factory(["2024-03-12T09:00:00Z"], [7.0]),
    }
    stacked = stack_bars(frames)
    frame = ohlc_frame(aggregate_periods(stacked, week_numbers(stacked.ts)))
    text = frame.to_csv(date_format="%Y-%m-%dT%H:%M:%S+00:00")
    back = pd.read_csv(__import__("io").StringIO(text), header=[0, 1], index_col=0)
    back.index = pd.to_datetime(back.index, utc=True).as_unit("ns")
    assert back.columns.names == ["asset", "field"]
    pd.testing.assert_frame_equal(back, frame, check_names=False, check_freq=False)


def _reference(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Straightforward pandas groupby per asset and Monday-start week (test oracle)."""
    rows = []
    for asset, frame in frames.items():
        index = pd.DatetimeIndex(frame.index)
        f = frame[index.day_of_week < 5]
        if f.empty:
            continue
        days = pd.DatetimeIndex(f.index)
        week = (days.normalize() - pd.to_timedelta(days.day_of_week, unit="D")).rename("wk")
        agg = f.groupby(week).agg(
            open=("open", "first"),
            high=("high", "max"),
            low=("low", "min"),
            close=("close", "last"),
            last=("close", lambda s: s.index.max()),
        )
        rows.append(agg.assign(asset=asset))
    if not rows:
        return pd.DataFrame(columns=["wk", "open", "high", "low", "close", "last", "asset"])
    return pd.concat(rows).reset_index()


@settings(max_examples=40, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["A", "B", "C"]),
        st.lists(st.integers(0, 24 * 40 - 1), min_size=1, max_size=60, unique=True),
        min_size=1,
    )
)
def test_aggregation_matches_a_pandas_groupby(hours_by_asset: dict[str, list[int]]) -> None:
    origin = pd.Timestamp("2024-02-28T00:00:00Z")
    frames = {}
    for asset, hours in hours_by_asset.items():
        stamps = origin + pd.to_timedelta(sorted(hours), unit="h")
        close = 100.0 + np.arange(len(hours)) * 1.5 + len(asset)
        idx = pd.DatetimeIndex(stamps, name="timestamp")
        frames[asset] = pd.DataFrame(
            {
                "open": close - 1,
                "high": close + 2 + np.arange(len(close)) % 3,
                "low": close - 3,
                "close": close,
                "volume": np.ones(len(close)),
            },
            index=idx,
        )
    ref = _reference(frames)
    stacked = stack_bars(frames)
    weeks = aggregate_periods(stacked, week_numbers(stacked.ts))
    assert len(weeks.labels) == ref["wk"].nunique()
    labels = ref.groupby("wk")["last"].max().sort_index()
    assert list(weeks.labels) == list(labels)
    row_of = {wk: i for i, wk in enumerate(labels.index)}
    got = np.isnan(weeks.values[:, :, 3])
    for rec in ref.itertuples():
        j = stacked.assets.index(rec.asset)
        i = row_of[rec.wk]
        assert weeks.values[i, j, :4].tolist() == [rec.open, rec.high, rec.low, rec.close]
        got[i, j] = True  # mark as seen
    assert got.all()  # every non-NaN cell is covered by a reference row

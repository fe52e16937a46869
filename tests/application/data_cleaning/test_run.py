"""End to end: raw CSVs written by hand -> data lake files, checked against hand computations.

The raw files are plain text written here (not through the project's writers), and the
expected numbers are worked out by hand from those rows (see the comments), so these tests
share nothing with the implementation except the file contract.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from algo_trader.application.data_cleaning import loading, outputs
from algo_trader.application.data_cleaning.run import run_data_cleaning
from algo_trader.domain.errors import ConfigError, DataError
from algo_trader.infrastructure.data.atomic import load_tensor
from algo_trader.infrastructure.data.raw_reader import LoadedAsset
from algo_trader.infrastructure.data.raw_store import Month, RawBarStore
from algo_trader.infrastructure.env import Settings, load_settings

HEADER = "timestamp,open,high,low,close,volume\n"
Row = tuple[str, float, float, float, float, float]

# AAA: hourly. Week of Mar 4 and Mar 11 and Mar 18; nothing in the week of Mar 25;
# no bar on Tue Mar 12 (a holiday for it); a Saturday bar that must be ignored.
AAA: list[Row] = [
    ("2024-03-04T14:00:00", 100.0, 101.0, 99.0, 100.5, 10),
    ("2024-03-04T15:00:00", 100.5, 102.0, 100.0, 101.0, 5),
    ("2024-03-08T20:00:00", 101.0, 103.0, 100.5, 102.0, 7),
    ("2024-03-09T10:00:00", 150.0, 200.0, 140.0, 190.0, 1),  # Saturday: ignored
    ("2024-03-11T14:00:00", 102.0, 104.0, 101.0, 103.0, 4),
    ("2024-03-13T14:00:00", 103.0, 106.0, 102.5, 104.0, 6),
    ("2024-03-15T19:00:00", 104.0, 105.5, 103.0, 105.0, 3),
    ("2024-03-18T14:00:00", 105.0, 105.0, 98.0, 99.0, 2),
    ("2024-03-22T20:00:00", 99.0, 100.0, 97.0, 98.0, 8),
    ("2024-04-01T14:00:00", 98.0, 99.0, 97.0, 98.5, 1),
]
# BBB: hourly, starts a week later (Tue Mar 12); a Sunday bar that must be ignored.
BBB: list[Row] = [
    ("2024-03-12T09:00:00", 50.0, 51.0, 49.0, 50.5, 100),
    ("2024-03-12T21:00:00", 50.5, 52.0, 50.0, 51.0, 100),
    ("2024-03-17T22:00:00", 60.0, 61.0, 59.0, 60.0, 1),  # Sunday: ignored
    ("2024-03-18T09:00:00", 51.0, 53.0, 50.0, 52.0, 100),
    ("2024-03-22T21:00:00", 52.0, 52.5, 51.0, 51.5, 100),
    ("2024-03-27T10:00:00", 51.5, 52.0, 51.0, 51.8, 100),
    ("2024-04-01T09:00:00", 51.8, 52.0, 51.0, 51.2, 100),
    ("2024-04-05T16:00:00", 51.2, 53.0, 51.0, 52.5, 100),
]
WEEK_LABELS = [  # latest Mon-Fri bar of each week across both assets
    "2024-03-08T20:00:00+00:00",  # AAA Fri 20:00 (BBB has none)
    "2024-03-15T19:00:00+00:00",  # AAA Fri 19:00 beats BBB Tue 21:00
    "2024-03-22T21:00:00+00:00",  # BBB Fri 21:00 beats AAA Fri 20:00
    "2024-03-27T10:00:00+00:00",  # only BBB
    "2024-04-05T16:00:00+00:00",  # BBB Fri 16:00
]


def write_raw(root: Path, asset: str, rows: Sequence[Row]) -> None:
    """Write rows as monthly raw files, as plain text."""
    by_month: dict[str, list[str]] = {}
    for stamp, *values in rows:
        line = ",".join([stamp + "+00:00", *(repr(float(v)) for v in values)])
        by_month.setdefault(stamp[:7], []).append(line + "\n")
    for month, lines in by_month.items():
        path = root / asset / month[:4] / f"hist_data_{month}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(HEADER + "".join(lines), encoding="utf-8")


@pytest.fixture
def settings(isolated_env: Path) -> Settings:
    write_raw(isolated_env / "data" / "raw", "AAA", AAA)
    write_raw(isolated_env / "data" / "raw", "BBB", BBB)
    return load_settings(env_file=None)


def _clean(settings: Settings, **kwargs: object) -> Path:
    args: dict[str, object] = {
        "start": Month(2024, 3),
        "end": None,
        "return_type": "simple",
        "assets": None,
        "invalid_bars": "raise",
    }
    args.update(kwargs)
    return run_data_cleaning(settings, **args).out_dir  # type: ignore[arg-type]


def _read_ohlc(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, header=[0, 1], index_col=0)
    frame.index = pd.to_datetime(frame.index, utc=True)
    return frame


def test_weekly_outputs_match_hand_computation(settings: Settings) -> None:
    out = _clean(settings)
    assert out == settings.data_lake_source / "2024-14"  # ISO week of Fri 2024-04-05
    returns = pd.read_csv(out / "returns.csv", index_col=0)
    assert list(returns.columns) == ["AAA", "BBB"]
    assert list(returns.index) == WEEK_LABELS
    aaa, bbb = returns["AAA"].tolist(), returns["BBB"].tolist()
    assert math.isnan(aaa[0]) and math.isnan(bbb[0]) and math.isnan(bbb[1])  # first weeks
    assert aaa[1] == pytest.approx(105.0 / 102.0 - 1)  # Fri close wk2 / Fri close wk1
    assert aaa[2] == pytest.approx(98.0 / 105.0 - 1)
    assert math.isnan(aaa[3]) and math.isnan(aaa[4])  # no AAA bar in the week of Mar 25
    assert bbb[2] == pytest.approx(51.5 / 51.0 - 1)  # Sunday bar (60.0) ignored
    assert bbb[3] == pytest.approx(51.8 / 51.5 - 1)
    assert bbb[4] == pytest.approx(52.5 / 51.8 - 1)

    ohlc = _read_ohlc(out / "weekly_ohlc.csv")
    fields = ["open", "high", "low", "close", "volume"]
    # Week of Mar 4: the Saturday bar (high 200) is not part of it.
    assert ohlc.loc[:, "AAA"].iloc[0][fields].tolist() == [100.0, 103.0, 99.0, 102.0, 22.0]
    assert ohlc.loc[:, "AAA"].iloc[1][fields].tolist() == [102.0, 106.0, 101.0, 105.0, 13.0]
    assert ohlc.loc[:, "BBB"].iloc[1][fields].tolist() == [50.0, 52.0, 49.0, 51.0, 200.0]
    assert ohlc.loc[:, "BBB"].iloc[2][fields].tolist() == [51.0, 53.0, 50.0, 51.5, 200.0]
    assert ohlc.loc[:, "BBB"].iloc[0].isna().all()  # BBB starts later
    assert ohlc.loc[:, "AAA"].iloc[3].isna().all()

    meta = json.loads((out / "weekly_ohlc_meta.json").read_text())
    assert meta["missing_weeks"] == {"AAA": [WEEK_LABELS[3]], "BBB": [WEEK_LABELS[0]]}
    assert (meta["weeks"], meta["return_type"], meta["start"], meta["end"]) == (
        5,
        "simple",
        "2024-03",
        "2024-04",
    )
    assert meta["source"]["AAA"]["files"] == 2 and len(meta["source"]["BBB"]["sha256"]) == 64


def test_daily_outputs_and_missing_days_match_hand_computation(settings: Settings) -> None:
    out = _clean(settings)
    daily = _read_ohlc(out / "daily_ohlc.csv")
    # Mon-Fri dates with any bar, each at its latest bar across assets.
    assert [t.strftime("%m-%d %H") for t in daily.index] == [
        "03-04 15",
        "03-08 20",
        "03-11 14",
        "03-12 21",
        "03-13 14",
        "03-15 19",
        "03-18 14",
        "03-22 21",
        "03-27 10",
        "04-01 14",
        "04-05 16",
    ]
    assert daily.loc[:, "AAA"].iloc[0].tolist() == [100.0, 102.0, 99.0, 101.0, 15.0]
    assert daily.loc[:, "BBB"].iloc[3].tolist() == [50.0, 52.0, 49.0, 51.0, 200.0]
    meta = json.loads((out / "daily_ohlc_meta.json").read_text())
    assert meta["days"] == 11
    # AAA: holiday Tue Mar 12 (BBB traded), nothing in the week of Mar 25, nor Apr 5.
    assert meta["missing_days"]["AAA"] == [
        "2024-03-12T21:00:00+00:00",
        "2024-03-27T10:00:00+00:00",
        "2024-04-05T16:00:00+00:00",
    ]
    assert len(meta["missing_days"]["BBB"]) == 5  # Mar 4, 8, 11 (not started), 13, 15
    assert meta["missing_by_month"] == {
        "AAA": {"2024-03": 2, "2024-04": 1},
        "BBB": {"2024-03": 5, "2024-04": 0},
    }
    assert meta["first_day"] == {
        "AAA": "2024-03-04T15:00:00+00:00",
        "BBB": "2024-03-12T21:00:00+00:00",
    }
    assert meta["last_day"]["AAA"] == "2024-04-01T14:00:00+00:00"


def test_log_returns_and_tensor(settings: Settings) -> None:
    out = _clean(settings, return_type="log")
    returns = pd.read_csv(out / "returns.csv", index_col=0)
    assert returns["AAA"].iloc[1] == pytest.approx(math.log(105.0) - math.log(102.0))
    assert returns["BBB"].iloc[4] == pytest.approx(math.log(52.5) - math.log(51.8))
    tensor = load_tensor(out / "return_tensor.pt")
    values = tensor["values"].numpy()
    assert tensor["assets"] == ["AAA", "BBB"]
    assert values.dtype == np.float64 and values.shape == (5, 2)
    assert np.array_equal(tensor["missing_mask"].numpy(), np.isnan(values))
    assert tensor["missing_mask"].numpy().sum() == 5
    np.testing.assert_allclose(values, returns.to_numpy(), rtol=1e-15)
    stamps = pd.to_datetime(tensor["timestamps"].numpy(), utc=True)
    assert list(stamps.strftime("%Y-%m-%dT%H:%M:%S+00:00")) == WEEK_LABELS


def test_asset_subset_relabels_weeks(settings: Settings) -> None:
    out = _clean(settings, assets=["BBB"])
    returns = pd.read_csv(out / "returns.csv", index_col=0)
    assert list(returns.columns) == ["BBB"]
    # With BBB alone, week 2's label is its own latest bar.
    assert returns.index[0] == "2024-03-12T21:00:00+00:00"
    assert len(returns) == 4


def test_end_bound_reads_only_months_up_to_it(settings: Settings) -> None:
    out = _clean(settings, end=Month(2024, 3))
    assert out.name == "2024-13"  # ISO week of Wed 2024-03-27
    returns = pd.read_csv(out / "returns.csv", index_col=0)
    assert list(returns.index) == WEEK_LABELS[:4]


def test_unknown_asset_lists_the_available_ones(settings: Settings) -> None:
    with pytest.raises(ConfigError, match=r"unknown asset\(s\) ZZZ.*available: AAA, BBB"):
        _clean(settings, assets=["AAA", "ZZZ"])


def test_no_data_in_range_is_a_clear_error(settings: Settings) -> None:
    with pytest.raises(DataError, match="no monthly files for 'AAA' between 2025-01"):
        _clean(settings, start=Month(2025, 1))
    with pytest.raises(ConfigError, match="--end 2024-02 is before --start 2024-03"):
        _clean(settings, end=Month(2024, 2))


def test_daily_input_bars(isolated_env: Path) -> None:
    raw = isolated_env / "data" / "raw"
    # Daily bars stamped 00:00 UTC; Fri Mar 29 2024 is a holiday for both, Thu Mar 28 for X.
    days = ["2024-03-18", "2024-03-19", "2024-03-22", "2024-03-25", "2024-03-28", "2024-04-01"]
    write_raw(
        raw,
        "X",
        [
            (d + "T00:00:00", 10.0 + i, 11.0 + i, 9.0 + i, 10.0 + i, 1.0)
            for i, d in enumerate(days)
            if d != "2024-03-28"
        ],
    )
    write_raw(
        raw,
        "Y",
        [
            (d + "T00:00:00", 20.0 + i, 22.0 + i, 19.0 + i, 20.0 + i, 2.0)
            for i, d in enumerate(days)
        ],
    )
    out = _clean(load_settings(env_file=None))
    returns = pd.read_csv(out / "returns.csv", index_col=0)
    assert list(returns.index) == [
        "2024-03-22T00:00:00+00:00",
        "2024-03-28T00:00:00+00:00",
        "2024-04-01T00:00:00+00:00",
    ]
    assert returns["X"].iloc[1] == pytest.approx(13.0 / 12.0 - 1)  # its last day is Mon
    assert returns["Y"].iloc[1] == pytest.approx(24.0 / 22.0 - 1)  # Thu close / Fri close
    meta = json.loads((out / "daily_ohlc_meta.json").read_text())
    assert meta["missing_days"] == {"X": ["2024-03-28T00:00:00+00:00"], "Y": []}


def test_invalid_bars_drop_writes_quarantine(isolated_env: Path) -> None:
    raw = isolated_env / "data" / "raw"
    rows = [r for r in AAA if r[0] < "2024-04"]
    bad = ("2024-03-14T14:00:00", 104.0, 103.0, 105.0, 104.0, 1.0)  # high < low
    write_raw(raw, "AAA", sorted([*rows, bad]))
    settings = load_settings(env_file=None)
    with pytest.raises(DataError, match="high is below low"):
        _clean(settings)
    assert not settings.data_lake_source.exists() or not any(settings.data_lake_source.iterdir())
    result = run_data_cleaning(settings, Month(2024, 3), None, "simple", None, "drop")
    quarantine = pd.read_csv(result.out_dir / "quarantine.csv")
    assert list(quarantine.columns) == ["file", "line", "column", "rule", "value"]
    assert quarantine["line"].tolist() == [8]
    assert result.dropped_bars == 1
    assert "dropped bars: 1" in "\n".join(result.summary_lines())


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_interrupted_load_leaves_previous_outputs(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _clean(settings)
    before = _snapshot(out)
    write_raw(settings.data_source, "BBB", [*BBB[:-1], (BBB[-1][0], 51.2, 53.0, 51.0, 53.0, 1)])
    real = loading.load_asset

    def interrupted(store: RawBarStore, asset: str, *args: Any) -> LoadedAsset:
        if asset == "BBB":
            raise KeyboardInterrupt
        return real(store, asset, *args)

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(loading, "load_asset", interrupted)
        _clean(settings)
    assert _snapshot(out) == before
    assert _clean(settings) == out
    assert pd.read_csv(out / "returns.csv", index_col=0)["BBB"].iloc[4] == pytest.approx(
        53.0 / 51.8 - 1
    )


def test_interrupted_write_leaves_previous_outputs(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _clean(settings)
    before = _snapshot(out)
    write_raw(settings.data_source, "AAA", [*AAA[:-1], ("2024-04-01T14:00:00", 98, 99, 97, 97, 1)])
    real, calls = outputs.write_csv, []

    def interrupted(path: Path, frame: pd.DataFrame, **kwargs: Any) -> None:
        calls.append(path)
        if len(calls) == 3:  # returns.csv and weekly_ohlc.csv are already staged
            raise KeyboardInterrupt
        real(path, frame, **kwargs)

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(outputs, "write_csv", interrupted)
        _clean(settings)
    assert len(calls) == 3
    assert _snapshot(out) == before
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no staging left
    _clean(settings)
    ohlc = _read_ohlc(out / "weekly_ohlc.csv")
    assert ohlc[("AAA", "close")].iloc[4] == 97.0


FIXTURE = Path(__file__).parents[2] / "fixtures" / "eurusd_1h"


def _reference_weekly_closes(folder: Path) -> dict[tuple[int, int], tuple[str, float]]:
    """Plain Python: last Mon-Fri close of each ISO week, from the raw CSV text."""
    closes: dict[tuple[int, int], tuple[str, float]] = {}
    for path in sorted(folder.glob("*/hist_data_*.csv")):
        for line in path.read_text().splitlines()[1:]:
            stamp, _o, _h, _l, close, _v = line.split(",")
            when = datetime.fromisoformat(stamp)
            if when.weekday() < 5:
                iso = when.isocalendar()
                closes[(iso.year, iso.week)] = (stamp, float(close))
    return closes


def test_real_hourly_eurusd_fixture(isolated_env: Path) -> None:
    shutil.copytree(FIXTURE / "EURUSD", isolated_env / "data" / "raw" / "EURUSD")
    out = _clean(load_settings(env_file=None), start=Month(2017, 1))
    returns = pd.read_csv(out / "returns.csv", index_col=0)["EURUSD"]
    reference = _reference_weekly_closes(FIXTURE / "EURUSD")
    weeks = sorted(reference)
    assert list(returns.index) == [reference[w][0] for w in weeks]  # label = last bar
    for prev, week, got in zip(weeks[:-1], weeks[1:], returns.iloc[1:], strict=True):
        adjacent = date.fromisocalendar(*prev, 1) + timedelta(weeks=1) == date.fromisocalendar(
            *week, 1
        )
        if adjacent:
            assert got == pytest.approx(reference[week][1] / reference[prev][1] - 1, rel=1e-12)
        else:  # April..September are not in the fixture: no return across the gap
            assert math.isnan(got)
    assert returns.notna().sum() == len(weeks) - 2  # first week and the week after the gap
    ohlc = _read_ohlc(out / "weekly_ohlc.csv")
    # The week of Mon 2017-10-02 opens with Monday's 00:00 bar, not Sunday's 21:00 bar.
    assert ohlc[("EURUSD", "open")].loc["2017-10-06"].iloc[0] == 1.18083

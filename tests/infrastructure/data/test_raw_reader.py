"""The raw layout reader: month and year-folder rules, load_asset, and a write/read round trip."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algo_trader.domain.errors import DataError
from algo_trader.infrastructure.data.raw_reader import load_asset, month_of_file, read_raw_month
from algo_trader.infrastructure.data.raw_store import Month, RawBarStore

HEADER = "timestamp,open,high,low,close,volume\n"


def bar(ts: str, close: float = 10.0) -> str:
    return f"{ts},{close},{close + 1},{close - 1},{close},100\n"


def put(root: Path, asset: str, folder: str, month: str, body: str) -> Path:
    path = root / asset / folder / f"hist_data_{month}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def generated_store(root: Path) -> RawBarStore:
    """Three months of generated (not real) bars for asset GEN."""
    put(root, "GEN", "2024", "2024-01", bar("2024-01-31T23:00:00+00:00", 10))
    put(
        root,
        "GEN",
        "2024",
        "2024-02",
        bar("2024-02-01T00:00:00+00:00", 11) + bar("2024-02-29T23:00:00+00:00", 12),
    )
    put(root, "GEN", "2024", "2024-03", bar("2024-03-01T00:00:00+00:00", 13))
    return RawBarStore(root)


# --- month and year-folder rules ------------------------------------------------------


def test_read_raw_month_reads_the_month_of_the_file_name(tmp_path: Path) -> None:
    path = put(
        tmp_path,
        "A",
        "2024",
        "2024-02",
        bar("2024-02-01T00:00:00+00:00") + bar("2024-02-29T23:00:00+00:00", 11),
    )
    frame, lines = read_raw_month(path)
    assert frame["close"].tolist() == [10.0, 11.0]
    assert lines.tolist() == [2, 3]


def test_row_from_another_month(tmp_path: Path) -> None:
    path = put(
        tmp_path,
        "A",
        "2024",
        "2024-02",
        bar("2024-02-29T23:00:00+00:00") + bar("2024-03-01T00:00:00+00:00"),
    )
    with pytest.raises(DataError) as info:
        read_raw_month(path)
    err = info.value
    assert (err.path, err.line, err.column, err.value) == (
        str(path),
        3,
        "timestamp",
        "2024-03-01T00:00:00+00:00",
    )
    assert "a bar of 2024-03 in the file of 2024-02" in str(err)
    assert str(path) in str(err) and "line 3" in str(err)


def test_row_from_the_previous_month(tmp_path: Path) -> None:
    path = put(tmp_path, "A", "2024", "2024-02", bar("2024-01-31T23:59:59+00:00"))
    with pytest.raises(DataError, match="a bar of 2024-01 in the file of 2024-02") as info:
        read_raw_month(path)
    assert info.value.line == 2


def test_explicit_month_overrides_the_name(tmp_path: Path) -> None:
    path = put(tmp_path, "A", "2024", "2024-02", bar("2024-02-01T00:00:00+00:00"))
    with pytest.raises(DataError, match="in the file of 2024-03"):
        read_raw_month(path, Month(2024, 3))


def test_file_in_the_wrong_year_folder(tmp_path: Path) -> None:
    path = put(tmp_path, "A", "2023", "2024-02", bar("2024-02-01T00:00:00+00:00"))
    with pytest.raises(DataError) as info:
        read_raw_month(path)
    err = info.value
    assert (err.path, err.column, err.value) == (str(path), "folder", "2023")
    assert f"belongs in {tmp_path / 'A' / '2024'}" in str(err)


def test_bad_file_name(tmp_path: Path) -> None:
    path = tmp_path / "A" / "2024" / "hist_data_2024-13.csv"
    with pytest.raises(DataError, match=r"month must be 01\.\.12"):
        month_of_file(path)
    with pytest.raises(DataError, match=r"hist_data_YYYY-MM\.csv"):
        month_of_file(tmp_path / "A" / "2024" / "bars.csv")


# --- load_asset -----------------------------------------------------------------------


def test_load_asset_concatenates_months_in_range(tmp_path: Path) -> None:
    store = generated_store(tmp_path)
    loaded = load_asset(store, "GEN", Month(2024, 2), None)
    assert loaded.asset == "GEN"
    assert loaded.bars["close"].tolist() == [11.0, 12.0, 13.0]
    assert list(loaded.bars.columns) == ["open", "high", "low", "close", "volume"]
    assert str(loaded.bars.index.dtype) == "datetime64[ns, UTC]"
    assert loaded.files == [store.month_path("GEN", Month(2024, m)) for m in (2, 3)]
    expected = hashlib.sha256(b"".join(p.read_bytes() for p in loaded.files)).hexdigest()
    assert loaded.sha256 == expected
    assert loaded.quarantine == []
    assert len(load_asset(store, "GEN", None, Month(2024, 1)).bars) == 1


def test_load_asset_without_files_in_range_lists_what_exists(tmp_path: Path) -> None:
    store = generated_store(tmp_path)
    with pytest.raises(DataError) as info:
        load_asset(store, "GEN", Month(2025, 1), None)
    assert info.value.path == str(tmp_path / "GEN")
    assert "months available: 2024-01..2024-03 (3 files)" in str(info.value)
    with pytest.raises(DataError, match="months available: none"):
        load_asset(store, "NOPE", None, None)


def test_load_asset_duplicate_timestamp_across_files(tmp_path: Path) -> None:
    store = generated_store(tmp_path)
    # A March bar repeated in the February file: the error names both files and lines.
    feb = put(
        tmp_path,
        "GEN",
        "2024",
        "2024-02",
        bar("2024-02-01T00:00:00+00:00") + bar("2024-03-01T00:00:00+00:00", 13),
    )
    with pytest.raises(DataError) as info:
        load_asset(store, "GEN", None, None)
    mar = store.month_path("GEN", Month(2024, 3))
    assert (info.value.path, info.value.line) == (str(mar), 2)
    assert f"duplicate timestamp: identical to {feb} line 3" in str(info.value)


def test_load_asset_wrong_year_folder(tmp_path: Path) -> None:
    store = generated_store(tmp_path)
    put(tmp_path, "GEN", "2023", "2024-04", bar("2024-04-01T00:00:00+00:00"))
    with pytest.raises(DataError, match="wrong year folder"):
        load_asset(store, "GEN", None, None)


def test_load_asset_raise_names_the_first_bad_bar_and_the_count(tmp_path: Path) -> None:
    store = generated_store(tmp_path)
    bad = "2024-03-01T01:00:00+00:00,10,9,11,10,1\n2024-03-01T02:00:00+00:00,10,11,9,0,1\n"
    mar = put(tmp_path, "GEN", "2024", "2024-03", bar("2024-03-01T00:00:00+00:00") + bad)
    with pytest.raises(DataError) as info:
        load_asset(store, "GEN", None, None)
    err = info.value
    assert (err.path, err.line, err.column, err.value) == (str(mar), 3, "high", "9.0 < low")
    assert "2 bad bar(s) in all" in str(err) and "--invalid-bars drop" in str(err)


def test_load_asset_drop_quarantines_bad_bars(tmp_path: Path) -> None:
    store = generated_store(tmp_path)
    bad = "2024-03-01T01:00:00+00:00,10,9,11,10,1\n"
    mar = put(tmp_path, "GEN", "2024", "2024-03", bar("2024-03-01T00:00:00+00:00", 13) + bad)
    loaded = load_asset(store, "GEN", None, None, invalid_bars="drop")
    assert loaded.bars["close"].tolist() == [10.0, 11.0, 12.0, 13.0]
    assert [(b.file, b.line, b.column, b.rule) for b in loaded.quarantine] == [
        (str(mar), 3, "high", "high is below low"),
    ]


# --- round trip -----------------------------------------------------------------------

MONTH = Month(2024, 3)
_SPAN_S = int((MONTH.end() - MONTH.start()).total_seconds())
_price = st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False)


@st.composite
def valid_month_frames(draw: st.DrawFn) -> pd.DataFrame:
    """Generated valid bars at random instants of March 2024."""
    seconds = draw(st.lists(st.integers(0, _SPAN_S - 1), min_size=1, max_size=30, unique=True))
    rows = []
    for _ in seconds:
        a, b, c, d = sorted(draw(st.lists(_price, min_size=4, max_size=4)))
        o, cl = draw(st.permutations([b, c]))
        vol = draw(st.one_of(st.just(np.nan), st.floats(0, 1e12, allow_nan=False)))
        rows.append((o, d, a, cl, vol))
    index = MONTH.start() + pd.to_timedelta(sorted(seconds), unit="s")
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close", "volume"], index=index)
    frame.index = pd.DatetimeIndex(frame.index).as_unit("ns").rename("timestamp")
    return frame


@settings(max_examples=40, deadline=None)
@given(frame=valid_month_frames())
def test_write_month_then_read_raw_month_round_trips_exactly(
    tmp_path_factory: pytest.TempPathFactory, frame: pd.DataFrame
) -> None:
    store = RawBarStore(tmp_path_factory.mktemp("raw"))
    path = store.write_month("GEN", MONTH, frame)
    back, lines = read_raw_month(path)
    pd.testing.assert_frame_equal(back, frame, check_exact=True, check_freq=False)
    assert lines.tolist() == list(range(2, len(frame) + 2))

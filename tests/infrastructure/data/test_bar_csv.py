"""Strict bar CSV parsing: one test per kind of bad input, each checking the error names
file, line, column and value; plus the valid forms (BOM, extras, offsets, zones, dates)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from algo_trader.domain.errors import DataError
from algo_trader.infrastructure.data.bar_csv import (
    IMPORT_RULES,
    RAW_RULES,
    CsvRules,
    apply_invalid_bars,
    read_bar_csv,
    read_bar_csvs,
)

HEADER = "timestamp,open,high,low,close,volume\n"
ROW1 = "2024-01-02T00:00:00+00:00,10,11,9,10.5,100\n"
ROW2 = "2024-01-02T01:00:00+00:00,10.5,12,10,11,200\n"
ROW3 = "2024-01-02T02:00:00+00:00,11,11.5,10.5,11.25,150\n"


def write(folder: Path, text: str | bytes, name: str = "bars.csv") -> Path:
    path = folder / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def error_of(path: Path, rules: CsvRules = RAW_RULES, policy: str | None = None) -> DataError:
    with pytest.raises(DataError) as info:
        table = read_bar_csv(path, rules)
        if policy is not None:
            apply_invalid_bars(table, policy)  # type: ignore[arg-type]
    return info.value


def assert_names(err: DataError, path: Path, line: int, column: str | None, value: str) -> None:
    text = str(err)
    assert err.path == str(path) and str(path) in text
    assert err.line == line and f"line {line}" in text
    assert err.column == column
    if column is not None:
        assert repr(column) in text
    assert err.value == value and repr(value) in text


# --- valid input ----------------------------------------------------------------------


def test_valid_file_gives_the_bar_frame_contract(tmp_path: Path) -> None:
    table = read_bar_csv(write(tmp_path, HEADER + ROW1 + ROW2 + ROW3))
    frame = table.frame
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert str(frame.index.dtype) == "datetime64[ns, UTC]"
    assert frame.index.name == "timestamp"
    assert (frame.dtypes == np.float64).all()
    assert frame["close"].tolist() == [10.5, 11.0, 11.25]
    assert frame.index[1] == pd.Timestamp("2024-01-02T01:00:00Z")
    assert table.lines.tolist() == [2, 3, 4]


def test_bom_is_accepted(tmp_path: Path) -> None:
    plain = read_bar_csv(write(tmp_path, HEADER + ROW1, "a.csv")).frame
    with_bom = read_bar_csv(write(tmp_path, b"\xef\xbb\xbf" + (HEADER + ROW1).encode())).frame
    pd.testing.assert_frame_equal(plain, with_bom)


def test_crlf_line_endings_and_z_suffix_are_accepted(tmp_path: Path) -> None:
    text = "timestamp,open,high,low,close,volume\r\n2024-01-02T00:00:00Z,10,11,9,10.5,100\r\n"
    frame = read_bar_csv(write(tmp_path, text)).frame
    assert frame.index[0] == pd.Timestamp("2024-01-02T00:00:00Z")
    assert frame["volume"].tolist() == [100.0]


def test_extra_columns_are_kept_in_raw_files(tmp_path: Path) -> None:
    text = HEADER.rstrip("\n") + ",average,bar_count\n" + ROW1.rstrip("\n") + ",10.2,7\n"
    frame = read_bar_csv(write(tmp_path, text)).frame
    assert list(frame.columns)[5:] == ["average", "bar_count"]
    assert frame["average"].tolist() == [10.2]


def test_blank_volume_means_no_volume(tmp_path: Path) -> None:
    frame = read_bar_csv(
        write(tmp_path, HEADER + "2024-01-02T00:00:00+00:00,10,11,9,10.5,\n")
    ).frame
    assert np.isnan(frame["volume"].iloc[0])
    kept, bad = apply_invalid_bars(read_bar_csv(write(tmp_path, HEADER + ROW1, "b.csv")), "raise")
    assert bad == [] and len(kept.frame) == 1


# --- structural problems --------------------------------------------------------------


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    err = error_of(path)
    assert_names(err, path, 1, None, "")
    assert "empty" in str(err) and "timestamp,open,high,low,close,volume" in str(err)


def test_header_only_file(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER)
    err = error_of(path)
    assert_names(err, path, 2, "timestamp", "")
    assert "no bars" in str(err)


def test_missing_column_lists_found_and_required(tmp_path: Path) -> None:
    path = write(tmp_path, "timestamp,open,high,low,volume\n2024-01-02T00:00:00+00:00,1,1,1,1\n")
    err = error_of(path)
    assert_names(err, path, 1, "close", "timestamp,open,high,low,volume")
    assert "found: timestamp, open, high, low, volume" in str(err)
    assert "required: timestamp,open,high,low,close,volume" in str(err)


def test_renamed_column_is_missing_and_case_matters_in_raw_files(tmp_path: Path) -> None:
    path = write(tmp_path, "timestamp,open,high,low,Close,volume\n" + ROW1)
    err = error_of(path)
    assert_names(err, path, 1, "close", "timestamp,open,high,low,Close,volume")
    assert "case-sensitive" in str(err)


def test_raw_header_order_is_fixed(tmp_path: Path) -> None:
    path = write(tmp_path, "timestamp,high,open,low,close,volume\n" + ROW1)
    err = error_of(path)
    assert err.line == 1 and "in this order" in str(err)


def test_truncated_last_line(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + ROW1 + "2024-01-02T01:00:00+00:00,10.5,12")
    err = error_of(path)
    assert_names(err, path, 3, "low", "2024-01-02T01:00:00+00:00,10.5,12")
    assert "truncated" in str(err) and "has 3 fields but the header has 6" in str(err)


def test_unquoted_thousands_separator(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + ROW1 + "2024-01-02T01:00:00+00:00,1,234.5,1300,1200,1250,5\n")
    err = error_of(path)
    assert_names(err, path, 3, "open", "1,234.5")
    assert "thousands separator" in str(err) and "1234.5" in str(err)


def test_quoted_thousands_separator(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + ROW1 + '2024-01-02T01:00:00+00:00,1200,1300,1100,"1,234.5",5\n')
    err = error_of(path)
    assert_names(err, path, 3, "close", "1,234.5")
    assert "not a number" in str(err) and "thousands separators" in str(err)


def test_text_in_a_number_column(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + ROW1 + "2024-01-02T01:00:00+00:00,10,11,9,10.5,N/A\n")
    assert_names(error_of(path), path, 3, "volume", "N/A")


def test_blank_line_in_the_middle(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + ROW1 + "\n" + ROW2)
    err = error_of(path)
    assert_names(err, path, 3, "timestamp", "")
    assert "blank line" in str(err)


def test_unparsable_timestamp(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + ROW1 + "2024-01-02 1am,10,11,9,10.5,100\n")
    err = error_of(path)
    assert_names(err, path, 3, "timestamp", "2024-01-02 1am")
    assert "ISO 8601" in str(err)


def test_impossible_date(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + ROW1 + "2024-02-30T01:00:00+00:00,10,11,9,10.5,100\n")
    assert_names(error_of(path), path, 3, "timestamp", "2024-02-30T01:00:00+00:00")


def test_naive_timestamp_in_raw_file(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + ROW1 + "2024-01-02T01:00:00,10,11,9,10.5,100\n")
    err = error_of(path)
    assert_names(err, path, 3, "timestamp", "2024-01-02T01:00:00")
    assert "no UTC offset" in str(err) and "--timezone" in str(err)


def test_mixed_offsets_rejected_in_raw_file(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + ROW1 + "2024-01-02T02:00:00+01:00,10,11,9,10.5,100\n")
    err = error_of(path)
    assert_names(err, path, 3, "timestamp", "2024-01-02T02:00:00+01:00")
    assert "mixes UTC offsets (+00:00 and +01:00)" in str(err)


def test_single_non_utc_offset_rejected_in_raw_file(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2024-01-02T02:00:00-05:00,10,11,9,10.5,100\n")
    err = error_of(path)
    assert_names(err, path, 2, "timestamp", "2024-01-02T02:00:00-05:00")
    assert "is not UTC" in str(err)


def test_date_only_rejected_in_raw_file(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2024-01-02,10,11,9,10.5,100\n")
    assert_names(error_of(path), path, 2, "timestamp", "2024-01-02")


def test_identical_duplicate_rows(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + ROW1 + ROW2 + ROW2)
    err = error_of(path)
    assert_names(err, path, 4, "timestamp", "2024-01-02T01:00:00+00:00")
    assert "identical to line 3" in str(err)


def test_conflicting_duplicate_rows(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + ROW1 + ROW2 + "2024-01-02T01:00:00+00:00,10.5,12,10,11.5,200\n")
    err = error_of(path)
    assert_names(err, path, 4, "timestamp", "2024-01-02T01:00:00+00:00")
    assert "conflicting duplicate" in str(err) and "line 3" in str(err)
    assert "different close" in str(err)


def test_out_of_order_rows(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + ROW1 + ROW3 + ROW2)
    err = error_of(path)
    assert_names(err, path, 4, "timestamp", "2024-01-02T01:00:00+00:00")
    assert "out of order" in str(err) and "line 3" in str(err)


# --- bad bar values (raise or drop) ----------------------------------------------------


@pytest.mark.parametrize(
    ("row", "column", "value", "rule"),
    [
        ("10,11,9,,100", "close", "nan", "missing"),
        ("10,11,9,nan,100", "close", "nan", "missing"),
        ("10,inf,9,10,100", "high", "inf", "missing, NaN or infinite"),
        ("0,11,9,10,100", "open", "0.0", "> 0"),
        ("10,11,-9,10,100", "low", "-9.0", "> 0"),
        ("10,8,9,8.5,100", "high", "8.0 < low", "high is below low"),
        ("12,11,9,10,100", "open", "12.0 not in 9.0..11.0", "open outside"),
        ("10,11,9,8,100", "close", "8.0 not in 9.0..11.0", "close outside"),
        ("10,11,9,10,-1", "volume", "-1.0", "volume"),
    ],
)
def test_bad_bar_values(tmp_path: Path, row: str, column: str, value: str, rule: str) -> None:
    path = write(tmp_path, HEADER + ROW1 + f"2024-01-02T01:00:00+00:00,{row}\n")
    err = error_of(path, policy="raise")
    assert_names(err, path, 3, column, value)
    assert rule in str(err)
    assert "1 bad bar(s)" in str(err) and "--invalid-bars drop" in str(err)


def test_drop_policy_removes_and_reports_bad_rows(tmp_path: Path) -> None:
    bad = "2024-01-02T01:00:00+00:00,10,8,9,8.5,100\n"
    path = write(tmp_path, HEADER + ROW1 + bad + ROW3)
    kept, reports = apply_invalid_bars(read_bar_csv(path), "drop")
    assert kept.frame["close"].tolist() == [10.5, 11.25]
    assert kept.lines.tolist() == [2, 4]
    assert [(r.file, r.line, r.column, r.rule, r.value) for r in reports] == [
        (str(path), 3, "high", "high is below low", "8.0 < low"),
    ]


def test_raise_counts_every_bad_row(tmp_path: Path) -> None:
    rows = "".join(f"2024-01-02T0{h}:00:00+00:00,10,8,9,8.5,1\n" for h in range(3))
    err = error_of(write(tmp_path, HEADER + rows), policy="raise")
    assert err.line == 2 and "3 bad bar(s)" in str(err)


# --- several files --------------------------------------------------------------------


def test_rows_of_several_files_keep_their_file_and_line(tmp_path: Path) -> None:
    a = write(tmp_path, HEADER + ROW1, "a.csv")
    b = write(tmp_path, HEADER + ROW2 + "2024-01-02T02:00:00+00:00,10,8,9,8.5,1\n", "b.csv")
    table = read_bar_csvs([a, b])
    assert table.where(2) == (b, 3)
    with pytest.raises(DataError) as info:
        apply_invalid_bars(table, "raise")
    assert info.value.path == str(b) and info.value.line == 3


def test_duplicate_across_files_names_both(tmp_path: Path) -> None:
    a = write(tmp_path, HEADER + ROW1 + ROW2, "a.csv")
    b = write(tmp_path, HEADER + ROW2, "b.csv")
    with pytest.raises(DataError) as info:
        read_bar_csvs([a, b])
    assert info.value.path == str(b) and info.value.line == 2
    assert f"identical to {a} line 3" in str(info.value)


def test_files_with_different_extras_are_read_together(tmp_path: Path) -> None:
    a = write(tmp_path, HEADER + ROW1, "a.csv")
    b = write(tmp_path, HEADER.rstrip("\n") + ",average\n" + ROW2.rstrip("\n") + ",10.7\n", "b.csv")
    frame = read_bar_csvs([a, b]).frame
    assert frame["close"].tolist() == [10.5, 11.0]
    assert np.isnan(frame["average"].iloc[0]) and frame["average"].iloc[1] == 10.7


# --- user imports ---------------------------------------------------------------------


def test_import_header_is_case_insensitive_with_optional_volume_and_ignored_extras(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, " Date ,Open,HIGH,low,Close,Adj Close\n2024-01-02,10,11,9,10.5,10.4\n")
    frame = read_bar_csv(path, IMPORT_RULES).frame
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert frame.index[0] == pd.Timestamp("2024-01-02T00:00:00Z")
    assert np.isnan(frame["volume"].iloc[0])


def test_import_with_both_date_and_timestamp_is_ambiguous(tmp_path: Path) -> None:
    path = write(tmp_path, "date,timestamp,open,high,low,close\n")
    err = error_of(path, IMPORT_RULES)
    assert err.line == 1 and "both 'date' and 'timestamp'" in str(err)


def test_import_converts_mixed_offsets_to_utc(tmp_path: Path) -> None:
    text = (
        "timestamp,open,high,low,close\n"
        "2024-03-08T09:00:00-05:00,1,1,1,1\n"
        "2024-03-11T09:00:00-04:00,1,1,1,1\n"
    )
    frame = read_bar_csv(write(tmp_path, text), IMPORT_RULES).frame
    assert frame.index.tolist() == [
        pd.Timestamp("2024-03-08T14:00:00Z"),
        pd.Timestamp("2024-03-11T13:00:00Z"),
    ]


def test_import_naive_without_timezone_suggests_the_option(tmp_path: Path) -> None:
    path = write(tmp_path, "timestamp,open,high,low,close\n2024-03-08 09:00,1,1,1,1\n")
    err = error_of(path, IMPORT_RULES)
    assert_names(err, path, 2, "timestamp", "2024-03-08 09:00")
    assert "--timezone" in str(err)


def test_import_naive_with_timezone_across_dst(tmp_path: Path) -> None:
    text = (
        "timestamp,open,high,low,close\n"
        "2024-03-09 23:00,1,1,1,1\n"
        "2024-03-10 01:00,1,1,1,1\n"
        "2024-03-10 03:00,1,1,1,1\n"  # 02:00 does not exist: clocks jump to 03:00 EDT
        "2024-11-03 01:00,1,1,1,1\n"  # the repeated hour: first EDT, then EST
        "2024-11-03 01:00,1,1,1,1\n"
        "2024-11-03 02:00,1,1,1,1\n"
    )
    rules = replace(IMPORT_RULES, timezone="America/New_York")
    index = read_bar_csv(write(tmp_path, text), rules).frame.index
    assert [t.strftime("%m-%d %H:%M") for t in index] == [
        "03-10 04:00",
        "03-10 06:00",
        "03-10 07:00",
        "11-03 05:00",
        "11-03 06:00",
        "11-03 07:00",
    ]


def test_import_nonexistent_local_time(tmp_path: Path) -> None:
    path = write(tmp_path, "timestamp,open,high,low,close\n2024-03-10 02:30,1,1,1,1\n")
    err = error_of(path, replace(IMPORT_RULES, timezone="America/New_York"))
    assert_names(err, path, 2, "timestamp", "2024-03-10 02:30")
    assert "does not exist" in str(err)


def test_import_ambiguous_local_time(tmp_path: Path) -> None:
    path = write(tmp_path, "timestamp,open,high,low,close\n2024-11-03 01:30,1,1,1,1\n")
    err = error_of(path, replace(IMPORT_RULES, timezone="America/New_York"))
    assert_names(err, path, 2, "timestamp", "2024-11-03 01:30")
    assert "ambiguous" in str(err)


def test_import_mixing_naive_and_offset(tmp_path: Path) -> None:
    text = "timestamp,open,high,low,close\n2024-03-08 09:00,1,1,1,1\n2024-03-08T10:00Z,1,1,1,1\n"
    path = write(tmp_path, text)
    err = error_of(path, replace(IMPORT_RULES, timezone="UTC"))
    assert_names(err, path, 3, "timestamp", "2024-03-08T10:00Z")


def test_import_mixing_dates_and_timestamps(tmp_path: Path) -> None:
    text = "date,open,high,low,close\n2024-03-08,1,1,1,1\n2024-03-09T10:00Z,1,1,1,1\n"
    path = write(tmp_path, text)
    assert_names(error_of(path, IMPORT_RULES), path, 3, "date", "2024-03-09T10:00Z")


def test_import_date_only_with_timezone_stays_at_midnight_utc(tmp_path: Path) -> None:
    path = write(tmp_path, "date,open,high,low,close\n2024-03-10,1,1,1,1\n2024-11-03,1,1,1,1\n")
    index = read_bar_csv(path, replace(IMPORT_RULES, timezone="America/New_York")).frame.index
    assert index.tolist() == [
        pd.Timestamp("2024-03-10", tz="UTC"),
        pd.Timestamp("2024-11-03", tz="UTC"),
    ]


def test_non_utf8_bytes(tmp_path: Path) -> None:
    path = write(
        tmp_path, (HEADER + ROW1).encode() + b"2024-01-02T01:00:00+00:00,10,11,9,1\xff,1\n"
    )
    err = error_of(path)
    assert (err.path, err.line, err.value) == (str(path), 3, b"\xff")
    assert "not UTF-8" in str(err)


def test_raw_extra_column_without_name(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER.rstrip("\n") + ",\n" + ROW1.rstrip("\n") + ",1\n")
    err = error_of(path)
    assert err.line == 1 and "column 7 has no name" in str(err)


def test_import_ignores_unnamed_and_repeated_extra_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "date,open,high,low,close,note,note,\n2024-01-02,1,1,1,1,a,b,\n")
    assert read_bar_csv(path, IMPORT_RULES).frame["close"].tolist() == [1.0]

"""Fuzzing the raw bar CSV readers: any bytes give bars or a ``DataError``, never a crash.

``bar_csv.read_bar_csv`` (raw and import rules) and ``raw_reader.read_raw_month`` are fed
arbitrary bytes, CSV-shaped token soup and mutations of a real bundled sample file. The only
exception allowed is the project's own :class:`AlgoTraderError`; every example has a
deadline, so a hang (a pathological regex, an endless loop) fails too. The default example
counts keep the fast suite fast; the ``slow`` variants run many more.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from algo_trader.domain.errors import AlgoTraderError
from algo_trader.infrastructure.data.bar_csv import IMPORT_RULES, RAW_RULES, read_bar_csv
from algo_trader.infrastructure.data.raw_reader import read_raw_month

SAMPLE_FILE = (
    Path(__file__).parents[2]
    / "algo_trader/providers/historical/sample_data/GOOG/2006/hist_data_2006-05.csv"
)
VALID = SAMPLE_FILE.read_bytes()[:1200]  # header + ~12 real daily bars (cut at a line end)
VALID = VALID[: VALID.rfind(b"\n") + 1]
FAST = settings(max_examples=25, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=1500, deadline=2000, suppress_health_check=[HealthCheck.too_slow])

TOKENS = [
    "timestamp",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "date",
    ",",
    ",",
    ",",
    "\n",
    "\r\n",
    "\n\n",
    '"',
    " ",
    "2006-05-01T00:00:00+00:00",
    "2006-05-31T23:59:59Z",
    "2006-06-01",
    "2006-05-02 15:00",
    "2006-05-02T15:00:00-05:00",
    "2006-13-45T99:99:99+00:00",
    "1.5",
    "-3",
    "0",
    "1e308",
    "1e999",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1,234.5",
    "abc",
    "\ufeff",
    "\x00",
    "é",
]
csv_soup = st.lists(st.sampled_from(TOKENS), max_size=80).map(lambda parts: "".join(parts))


@st.composite
def mutated_valid(draw: st.DrawFn) -> bytes:
    """The valid sample bytes with a few random edits (delete, insert, overwrite, line ops)."""
    data = bytearray(VALID)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "insert", "overwrite", "dup_line", "swap", "cut"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "delete":
            del data[pos : pos + draw(st.integers(1, 20))]
        elif op == "insert":
            data[pos:pos] = draw(
                st.binary(min_size=1, max_size=8) | st.sampled_from(TOKENS).map(str.encode)
            )
        elif op == "overwrite" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[pos:]
        else:
            lines = bytes(data).split(b"\n")
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            if op == "dup_line":
                lines.insert(j, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            data = bytearray(b"\n".join(lines))
    return bytes(data)


def _check_result(frame: pd.DataFrame) -> None:
    """A file that reads must follow the bar-frame contract."""
    index = pd.DatetimeIndex(frame.index)
    assert str(index.tz) == "UTC"
    assert index.is_monotonic_increasing and index.is_unique
    assert list(frame.columns[:5]) == ["open", "high", "low", "close", "volume"]
    assert all(frame[c].dtype == np.float64 for c in frame.columns[:5])


def _raw(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "GOOG" / "2006" / "hist_data_2006-05.csv"
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        try:
            frame, lines = read_raw_month(path)
        except AlgoTraderError:
            return
        _check_result(frame)
        assert len(lines) == len(frame)


def _import(data: bytes) -> None:
    rules = replace(IMPORT_RULES, timezone="America/New_York")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bars.csv"
        path.write_bytes(data)
        for rule in (RAW_RULES, rules):
            try:
                table = read_bar_csv(path, rule)
            except AlgoTraderError:
                continue
            _check_result(table.frame)


READERS: dict[str, Callable[[bytes], None]] = {"raw_month": _raw, "import": _import}


def test_the_unmutated_sample_reads() -> None:
    _raw(VALID)
    frame, _ = read_raw_month(_copy_valid())
    assert len(frame) == VALID.count(b"\n") - 1


def test_non_utf8_byte_after_a_non_number() -> None:
    """Found by the fuzzer: the retry as text once let a UnicodeDecodeError escape."""
    path = _copy_valid()
    body = VALID.split(b"\n", 1)[1]
    path.write_bytes(
        b"timestamp,open,high,low,close,volume\n"
        + b"2006-05-01T00:00:00+00:00,abc,\x80,1,1,1\n"
        + body
    )
    with pytest.raises(AlgoTraderError, match="not UTF-8"):
        read_raw_month(path)


def _copy_valid() -> Path:
    folder = Path.cwd() / "GOOG" / "2006"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "hist_data_2006-05.csv"
    path.write_bytes(VALID)
    return path


@pytest.mark.parametrize("reader", list(READERS))
@FAST
@given(data=st.binary(max_size=600))
def test_arbitrary_bytes(reader: str, data: bytes) -> None:
    READERS[reader](data)


@pytest.mark.parametrize("reader", list(READERS))
@FAST
@given(text=csv_soup)
def test_csv_token_soup(reader: str, text: str) -> None:
    READERS[reader](("timestamp,open,high,low,close,volume\n" + text).encode("utf-8"))


@pytest.mark.parametrize("reader", list(READERS))
@FAST
@given(data=mutated_valid())
def test_mutated_sample_file(reader: str, data: bytes) -> None:
    READERS[reader](data)


@pytest.mark.slow
@pytest.mark.parametrize("reader", list(READERS))
@SLOW
@given(data=st.binary(max_size=4000) | csv_soup.map(str.encode) | mutated_valid())
def test_many_examples(reader: str, data: bytes) -> None:
    READERS[reader](data)

"""Strict, vectorized reading of OHLCV bar CSV files (raw layout files and user imports).

One parser serves every stage. It reads the bytes itself (so that it can check the header
and the field count of every line before pandas pads or rejects them), hands the body to
the pandas C parser with float columns, and checks timestamps, order and duplicates with
array operations. Any problem is a :class:`~algo_trader.domain.errors.DataError` naming
the file, the 1-based line (the header is line 1), the column and the value, and saying
what would be valid. Only the first bad row is formatted in Python.

Two kinds of problem are told apart:

* structural problems (empty file, header, field count, blank lines, text where a number
  belongs, unparsable / naive / non-UTC timestamps, duplicates, order) always raise;
* bad bar *values* (missing, NaN or infinite prices, prices <= 0, high < low, open or close
  outside [low, high], negative volume) are found by
  :func:`~algo_trader.domain.market_data.bars.find_bad_bars` and either raise or are dropped
  and quarantined, per the caller's ``invalid_bars`` policy (:func:`apply_invalid_bars`).

A UTF-8 byte order mark is legal and skipped. Quoted fields may not contain line breaks.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, cast

import numpy as np
import pandas as pd

from algo_trader.domain.errors import DataError
from algo_trader.domain.market_data.bars import BAR_COLUMNS, PRICE_COLUMNS, BadBar, find_bad_bars

BOM = b"\xef\xbb\xbf"
NA_TEXT = ("", "nan", "NaN", "NAN")
"""Cell texts read as a missing value (a bad bar for prices, "no volume" for volume)."""
RAW_EXAMPLE = "2024-03-04T15:00:00+00:00"
InvalidBars = Literal["raise", "drop"]

# date, optional time, optional offset: e.g. 2024-03-04, 2024-03-04 15:00, 2024-03-04T15:00:00.5Z
_ISO = r"(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(Z|[+-]\d{2}(?::?\d{2})?)?)?"
_UTC_OFFSETS = ("Z", "+00:00", "+0000", "+00")
_THOUSANDS_PAIR = (re.compile(r"[+-]?\d{1,3}"), re.compile(r"\d{3}(?:\.\d*)?"))


@dataclass(frozen=True)
class CsvRules:
    """What a file of one kind must look like.

    Attributes
    ----------
    timestamp_columns
        Accepted names of the timestamp column (exactly one must be present).
    require_volume
        Whether ``volume`` must be present (else a missing column is all NaN).
    fixed_order
        The header must start with the timestamp column then ``open, high, low, close,
        volume`` (the raw layout); otherwise columns may come in any order.
    case_insensitive
        Match column names ignoring case and surrounding blanks.
    keep_extra
        Keep columns beyond OHLCV (as float when every value is a number, else text).
    timezone
        IANA zone of timestamps written without an offset; None makes them an error.
    allow_date_only
        Accept ``YYYY-MM-DD`` values as daily bars stamped 00:00 UTC of that date.
    utc_only
        Every offset must be UTC (``+00:00`` or ``Z``); else offsets are converted to UTC.
    """

    timestamp_columns: tuple[str, ...] = ("timestamp",)
    require_volume: bool = True
    fixed_order: bool = True
    case_insensitive: bool = False
    keep_extra: bool = True
    timezone: str | None = None
    allow_date_only: bool = False
    utc_only: bool = True


RAW_RULES = CsvRules()
"""The raw layout contract (``shared/design.md``)."""

IMPORT_RULES = CsvRules(
    timestamp_columns=("timestamp", "date"),
    require_volume=False,
    fixed_order=False,
    case_insensitive=True,
    keep_extra=False,
    allow_date_only=True,
    utc_only=False,
)
"""User OHLCV files for the ``csv`` provider (``timezone`` set per run)."""


@dataclass(frozen=True)
class BarTable:
    """Bars read from one or more files, and where each row came from.

    ``frame`` follows the bar-frame contract (UTC ``DatetimeIndex`` named ``timestamp``,
    float64 ``open..volume``, sorted, unique) plus any kept extra columns. Row ``i`` came
    from ``files[file_index[i]]`` at 1-based line ``lines[i]``.
    """

    frame: pd.DataFrame
    files: tuple[Path, ...]
    file_index: np.ndarray
    lines: np.ndarray
    stamp_column: str = "timestamp"
    """The file's name of the timestamp column (``date`` in some imports), for errors."""
    sha256: str = ""
    """SHA-256 over the bytes of ``files`` in order (for manifests)."""

    @property
    def index(self) -> pd.DatetimeIndex:
        return cast(pd.DatetimeIndex, self.frame.index)

    def where(self, row: int) -> tuple[Path, int]:
        return self.files[int(self.file_index[row])], int(self.lines[row])

    def error(self, row: int, column: str | None, value: object, message: str) -> DataError:
        path, line = self.where(row)
        return DataError(message, path=path, line=line, column=column, value=value)

    def take(self, keep: np.ndarray) -> BarTable:
        """The rows where boolean ``keep`` is True."""
        return replace(
            self,
            frame=self.frame.loc[keep],
            file_index=self.file_index[keep],
            lines=self.lines[keep],
        )


@dataclass(frozen=True)
class _Header:
    """A file's header mapped onto canonical names: position of each column in the line."""

    fields: list[str]
    positions: dict[str, int]  # 'timestamp', 'open', ... -> field position
    extras: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------


def read_bar_csv(path: str | Path, rules: CsvRules = RAW_RULES) -> BarTable:
    """Read and check one bar CSV file.

    Parameters
    ----------
    path
        The file.
    rules
        Layout rules: :data:`RAW_RULES` (default) or :data:`IMPORT_RULES`.

    Returns
    -------
    BarTable
        The bars (bar-frame contract) with each row's line number. Bad bar *values* are
        not removed: pass the table to :func:`apply_invalid_bars`.

    Raises
    ------
    DataError
        On any structural problem, naming file, line, column and value.
    """
    return read_bar_csvs([path], rules)


def read_bar_csvs(paths: Sequence[str | Path], rules: CsvRules = RAW_RULES) -> BarTable:
    """Read consecutive files of one series (e.g. monthly raw files) as one table.

    Files with the same header are parsed in one pandas call, which is what makes loading
    thousands of small monthly files fast. Rows must be sorted and unique across files.
    """
    files = tuple(Path(p) for p in paths)
    if not files:
        raise ValueError("read_bar_csvs needs at least one file")
    groups: list[tuple[_Header, list[int], list[bytes]]] = []
    digest = hashlib.sha256()
    for k, path in enumerate(files):
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DataError(f"cannot read the file: {exc.strerror}", path=path) from exc
        digest.update(data)
        header, body = _split_header(path, data, rules)
        if groups and groups[-1][0].fields == header.fields:
            groups[-1][1].append(k)
            groups[-1][2].append(body)
        else:
            groups.append((header, [k], [body]))
    parts = [_parse_group(files, header, ids, bodies) for header, ids, bodies in groups]
    first = groups[0][0]
    table = BarTable(
        frame=pd.concat([p[0].frame for p in parts], ignore_index=True)
        if len(parts) > 1
        else parts[0][0].frame,
        files=files,
        file_index=np.concatenate([p[0].file_index for p in parts]),
        lines=np.concatenate([p[0].lines for p in parts]),
        stamp_column=first.fields[first.positions["timestamp"]],
        sha256=digest.hexdigest(),
    )
    stamps = pd.concat([p[1] for p in parts], ignore_index=True)
    table.frame.index = parse_timestamps(table, stamps.to_numpy(dtype=object), rules)
    check_order(table)
    return table


def find_table_bad_bars(table: BarTable) -> tuple[np.ndarray, list[BadBar]]:
    """Bad bars of ``table``: the bad row positions, and one report per broken rule.

    Each report names its own file and line (the table may span files).
    """
    # find_bad_bars reports positions as "lines"; table.where maps them to file and line.
    raw = find_bad_bars(table.frame, "", np.arange(len(table.frame)))
    rows = np.unique(np.fromiter((b.line for b in raw), dtype=np.int64, count=len(raw)))
    reports = []
    for bad in raw:
        path, line = table.where(bad.line)
        reports.append(replace(bad, file=str(path), line=line))
    return rows, reports


def apply_invalid_bars(table: BarTable, policy: InvalidBars) -> tuple[BarTable, list[BadBar]]:
    """Enforce the bar value rules on ``table``.

    Parameters
    ----------
    table
        Parsed bars.
    policy
        ``'raise'``: stop at the first bad bar. ``'drop'``: remove every row with a broken
        rule and return the reports (one per broken rule) for a quarantine file.

    Returns
    -------
    (BarTable, list of BadBar)
        The kept rows and the quarantined reports (empty under ``'raise'``).

    Raises
    ------
    DataError
        Under ``'raise'``, the first bad bar's error; it also says how many rows are bad
        and that ``--invalid-bars drop`` drops them.
    """
    if policy not in ("raise", "drop"):
        raise ValueError(f"invalid_bars must be 'raise' or 'drop', not {policy!r}")
    rows, reports = find_table_bad_bars(table)
    if not reports:
        return table, []
    if policy == "raise":
        first = reports[0]
        raise DataError(
            f"{first.rule}; {len(rows)} bad bar(s) in all; run with `--invalid-bars drop` "
            "to drop them and write a quarantine report",
            path=first.file,
            line=first.line,
            column=first.column,
            value=first.value,
        )
    keep = np.ones(len(table.frame), dtype=bool)
    keep[rows] = False
    return table.take(keep), reports


# ---------------------------------------------------------------------------------------
# Header and byte-level checks
# ---------------------------------------------------------------------------------------


def _split_header(path: Path, data: bytes, rules: CsvRules) -> tuple[_Header, bytes]:
    """Split the bytes of ``path`` into its mapped header and the body (ends with a newline)."""
    if data.startswith(BOM):
        data = data[len(BOM) :]
    expected = _expected_header(rules)
    if not data or data.isspace():
        raise DataError(
            f"the file is empty; expected a header line {expected!r} then one bar per line",
            path=path,
            line=1,
            value="",
        )
    end = data.find(b"\n")
    head, body = (data, b"") if end < 0 else (data[:end], data[end + 1 :])
    try:
        text = head.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError as exc:
        raise DataError("the header is not UTF-8 text", path=path, line=1, value=head[:80]) from exc
    header = _map_header(path, text, rules)
    if not body or body.isspace():
        raise DataError(
            f"the file has a header but no bars; expected lines like "
            f"'{RAW_EXAMPLE},1.10,1.12,1.09,1.11,1500' after it",
            path=path,
            line=2,
            column=header.fields[header.positions["timestamp"]],
            value="",
        )
    if not body.endswith(b"\n"):
        body += b"\n"
    return header, body


def _expected_header(rules: CsvRules) -> str:
    stamp = "|".join(rules.timestamp_columns)
    vol = "volume" if rules.require_volume else "[volume]"
    return f"{stamp},{','.join(PRICE_COLUMNS)},{vol}"


def _map_header(path: Path, text: str, rules: CsvRules) -> _Header:
    fields = [f.strip().strip('"').strip() for f in text.split(",")]
    keys = [f.lower() for f in fields] if rules.case_insensitive else fields
    found = ", ".join(fields)
    required = f"required: {_expected_header(rules)}"
    if not rules.case_insensitive:
        required += " (names are case-sensitive)"

    def fail(message: str, column: str | None) -> DataError:
        return DataError(
            f"{message}; found: {found}; {required}",
            path=path,
            line=1,
            column=column,
            value=text,
        )

    # Only columns that are read must be unique and named; ignored extras may be anything.
    known = {*rules.timestamp_columns, *BAR_COLUMNS}
    used = [k for k in keys if k in known or rules.keep_extra]
    dupes = sorted({k for k in used if used.count(k) > 1})
    if dupes:
        raise fail(f"column {dupes[0]!r} appears more than once", dupes[0])
    if "" in used:
        raise fail(f"column {used.index('') + 1} has no name", None)
    stamps = [k for k in keys if k in rules.timestamp_columns]
    if len(stamps) != 1:
        what = "no timestamp column" if not stamps else f"both {stamps[0]!r} and {stamps[1]!r}"
        raise fail(
            f"{what} (need exactly one of {', '.join(rules.timestamp_columns)})",
            rules.timestamp_columns[0],
        )
    wanted = ["timestamp", *PRICE_COLUMNS] + (["volume"] if rules.require_volume else [])
    positions = {"timestamp": keys.index(stamps[0])}
    missing = [c for c in wanted[1:] if c not in keys]
    if missing:
        raise fail(f"missing column(s) {', '.join(missing)}", missing[0])
    positions.update({c: keys.index(c) for c in BAR_COLUMNS if c in keys})
    if rules.fixed_order and [keys[positions[c]] for c in wanted] != keys[: len(wanted)]:
        raise fail(f"the header must start with {','.join(wanted)} in this order", None)
    taken = set(positions.values())
    extras = {fields[i]: i for i in range(len(fields)) if i not in taken and rules.keep_extra}
    return _Header(fields=fields, positions=positions, extras=extras)


def _check_field_counts(
    files: tuple[Path, ...], header: _Header, ids: list[int], bodies: list[bytes]
) -> np.ndarray:
    """Rows per file; raise at the first line whose field count differs from the header.

    Counted on the bytes (commas per line) because the C parser silently pads short lines
    (a truncated last line would read as blank cells). Files with quotes are left to the
    parser: a quoted field may hold a comma.
    """
    counts = np.empty(len(bodies), dtype=np.int64)
    width = len(header.fields)
    for k, body in enumerate(bodies):
        arr = np.frombuffer(body, dtype=np.uint8)
        newlines = np.flatnonzero(arr == ord("\n"))
        counts[k] = len(newlines)
        if b'"' in body:
            continue
        per_line = np.bincount(
            np.searchsorted(newlines, np.flatnonzero(arr == ord(","))), minlength=len(newlines)
        )
        bad = np.flatnonzero(per_line != width - 1)
        if len(bad):
            i = int(bad[0])
            start = 0 if i == 0 else int(newlines[i - 1]) + 1
            text = body[start : newlines[i]].decode("utf-8", "replace").rstrip("\r")
            raise _field_count_error(files[ids[k]], i + 2, text, header.fields)
    return counts


def _field_count_error(path: Path, line: int, text: str, names: list[str]) -> DataError:
    fields = text.split(",")
    width = len(names)
    if not text.strip():
        return DataError(
            "blank line; every line after the header must be one bar",
            path=path,
            line=line,
            column=names[0],
            value=text,
        )
    if len(fields) < width:
        return DataError(
            f"the line has {len(fields)} fields but the header has {width} (truncated line?); "
            f"missing {', '.join(names[len(fields) :])}",
            path=path,
            line=line,
            column=names[len(fields)],
            value=text,
        )
    for i in range(1, len(fields) - 1):
        if _THOUSANDS_PAIR[0].fullmatch(fields[i]) and _THOUSANDS_PAIR[1].fullmatch(fields[i + 1]):
            return DataError(
                f"the line has {len(fields)} fields but the header has {width}: "
                f"{fields[i]},{fields[i + 1]} looks like a number with a thousands separator; "
                f"write plain decimals such as {fields[i]}{fields[i + 1]}",
                path=path,
                line=line,
                column=names[min(i, width - 1)],
                value=f"{fields[i]},{fields[i + 1]}",
            )
    return DataError(
        f"the line has {len(fields)} fields but the header has {width} (an unquoted comma?)",
        path=path,
        line=line,
        column=f"<field {width + 1}>",
        value=text,
    )


# ---------------------------------------------------------------------------------------
# Parsing the body
# ---------------------------------------------------------------------------------------


def _parse_group(
    files: tuple[Path, ...], header: _Header, ids: list[int], bodies: list[bytes]
) -> tuple[BarTable, pd.Series]:
    """Parse files sharing ``header`` in one C-parser call: the table and the stamp texts.

    The table's index is still positional; :func:`read_bar_csvs` sets the timestamps.
    """
    counts = _check_field_counts(files, header, ids, bodies)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    origin = BarTable(
        frame=pd.DataFrame(),
        files=files,
        file_index=np.repeat(np.asarray(ids, dtype=np.int64), counts),
        lines=np.arange(int(counts.sum()), dtype=np.int64) - starts + 2,
    )
    key = [f"f{i}" for i in range(len(header.fields))]  # positional names: headers may repeat
    numeric = {key[header.positions[c]]: c for c in BAR_COLUMNS if c in header.positions}
    extra = {key[i]: name for name, i in header.extras.items()}
    stamp = key[header.positions["timestamp"]]
    data = b"".join(bodies)

    def read(as_text: bool) -> pd.DataFrame:
        number: type[str] | type[np.float64] = str if as_text else np.float64
        dtypes = {stamp: str, **dict.fromkeys(numeric, number), **dict.fromkeys(extra, str)}
        return pd.read_csv(
            io.BytesIO(data),
            header=None,
            names=key,
            usecols=list(dtypes),
            dtype=dtypes,
            index_col=False,
            engine="c",
            keep_default_na=False,
            na_values={k: list(NA_TEXT) for k in numeric},
            skip_blank_lines=False,
            encoding="utf-8",
        )

    try:
        raw = read(as_text=False)
    except UnicodeDecodeError as exc:
        raise _decode_error(origin, bodies, ids) from exc
    except (ValueError, pd.errors.ParserError) as exc:
        # Something is not a number (or the parser rejects a line): find exactly where.
        try:
            text = read(as_text=True)
        except UnicodeDecodeError as undecodable:
            raise _decode_error(origin, bodies, ids) from undecodable
        except pd.errors.ParserError as again:
            raise _parser_error(origin, again) from exc
        raise _first_non_number(origin, text, numeric) from exc
    if len(raw) != len(origin.lines):
        raise origin.error(
            min(len(raw), len(origin.lines) - 1),
            None,
            None,
            "a quoted field spans lines; put one bar per line",
        )
    frame = raw.loc[:, list(numeric)].rename(columns=numeric)
    for c in BAR_COLUMNS:
        if c not in frame:
            frame[c] = np.nan
    frame = frame.loc[:, list(BAR_COLUMNS)].astype(np.float64)
    for k, name in extra.items():
        values = raw[k].astype(object)
        as_num = pd.to_numeric(values, errors="coerce")
        blank = values.isna() | values.isin(NA_TEXT)
        frame[name] = as_num.to_numpy() if bool((as_num.notna() | blank).all()) else values
    return replace(origin, frame=frame), raw[stamp]


def _decode_error(origin: BarTable, bodies: list[bytes], ids: list[int]) -> DataError:
    """Locate the first byte that is not UTF-8."""
    for body, k in zip(bodies, ids, strict=True):
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = body.count(b"\n", 0, exc.start) + 2
            row = int(np.flatnonzero((origin.file_index == k) & (origin.lines == line))[0])
            return origin.error(
                row, None, body[exc.start : exc.end], "not UTF-8 text; save the file as UTF-8"
            )
    return origin.error(0, None, None, "not UTF-8 text; save the file as UTF-8")


def _parser_error(origin: BarTable, error: Exception) -> DataError:
    """The C parser's own complaint (files with quotes skip the byte-level field count)."""
    match = re.search(r"line (\d+), saw (\d+)", str(error))
    row = int(match.group(1)) - 2 if match else 0
    row = min(max(row, 0), len(origin.lines) - 1)
    return origin.error(row, None, None, f"the line's field count differs from the header: {error}")


def _first_non_number(origin: BarTable, text: pd.DataFrame, numeric: dict[str, str]) -> DataError:
    """The first cell (by row, then column) that is neither a number nor a missing value."""
    best: tuple[int, str, str] | None = None
    for key, name in numeric.items():
        values = text[key].astype(object)
        bad = pd.to_numeric(values, errors="coerce").isna() & ~values.isna() & ~values.isin(NA_TEXT)
        hits = np.flatnonzero(bad.to_numpy())
        if len(hits) and (best is None or hits[0] < best[0]):
            best = (int(hits[0]), name, str(values.iloc[hits[0]]))
    if best is None:
        return origin.error(0, None, None, "the file could not be parsed as numbers")
    row, name, value = best
    hint = " (thousands separators are not allowed)" if "," in value else ""
    return origin.error(
        row, name, value, f"not a number{hint}; write a plain decimal such as 1234.5"
    )


# ---------------------------------------------------------------------------------------
# Timestamps, order, duplicates
# ---------------------------------------------------------------------------------------


def parse_timestamps(table: BarTable, values: np.ndarray, rules: CsvRules) -> pd.DatetimeIndex:
    """Parse timestamp texts per ``rules`` into a UTC (ns) index named ``timestamp``."""
    text = pd.Series(values, dtype=object)
    fast = _parse_fast(text, rules.utc_only)
    if fast is not None:
        return fast
    parsed = text.str.extract(f"^{_ISO}$")
    unmatched = np.flatnonzero(parsed[0].isna().to_numpy())
    if len(unmatched):
        row = int(unmatched[0])
        raise table.error(
            row,
            table.stamp_column,
            text.iloc[row],
            f"not an ISO 8601 timestamp; expected e.g. {RAW_EXAMPLE}",
        )
    date_only = parsed[1].isna().to_numpy()
    offset = parsed[2]
    naive = (~date_only) & offset.isna().to_numpy()
    out = np.empty(len(text), dtype="datetime64[ns]")
    if date_only.any():
        _check_date_only(table, text, date_only, rules)
        out[date_only] = _to_utc(table, text, date_only, "%Y-%m-%d")
    if naive.any():
        out[naive] = _localize(table, text, naive, ~date_only & ~naive, rules)
    aware = ~date_only & ~naive
    if aware.any():
        if rules.utc_only:
            _check_utc(table, text, offset, aware)
        out[aware] = _to_utc(table, text, aware, "ISO8601")
    return pd.DatetimeIndex(out, name="timestamp").tz_localize("UTC")


def _parse_fast(text: pd.Series, utc_only: bool) -> pd.DatetimeIndex | None:
    """ISO timestamps that all carry one offset, in one C call; else None (checking path).

    Without ``utc=True`` pandas refuses mixed offsets and mixed naive/aware values, and
    keeps a single offset as the dtype's zone, so a UTC dtype proves every value was UTC.
    """
    try:
        parsed = pd.to_datetime(text, format="ISO8601")
    except (ValueError, TypeError):
        return None
    tz = getattr(parsed.dtype, "tz", None)
    if tz is None or (utc_only and str(tz) != "UTC") or parsed.isna().any():
        return None
    return pd.DatetimeIndex(parsed, name="timestamp").tz_convert("UTC").as_unit("ns")


def _to_utc(table: BarTable, text: pd.Series, rows: np.ndarray, fmt: str) -> np.ndarray:
    parsed = pd.to_datetime(text[rows], format=fmt, utc=True, errors="coerce")
    _raise_on_nat(table, text, rows, parsed.isna().to_numpy())
    return parsed.dt.tz_convert("UTC").dt.tz_localize(None).dt.as_unit("ns").to_numpy()


def _raise_on_nat(table: BarTable, text: pd.Series, rows: np.ndarray, nat: np.ndarray) -> None:
    if nat.any():
        row = int(np.flatnonzero(rows)[np.flatnonzero(nat)[0]])
        raise table.error(
            row,
            table.stamp_column,
            text.iloc[row],
            f"not a valid date or time; expected e.g. {RAW_EXAMPLE}",
        )


def _check_date_only(
    table: BarTable, text: pd.Series, date_only: np.ndarray, rules: CsvRules
) -> None:
    if not rules.allow_date_only:
        row = int(np.flatnonzero(date_only)[0])
        raise table.error(
            row,
            table.stamp_column,
            text.iloc[row],
            f"a date without a time; raw files need timestamps like {RAW_EXAMPLE}",
        )
    if not date_only.all():
        row = int(np.flatnonzero(~date_only)[0])
        raise table.error(
            row,
            table.stamp_column,
            text.iloc[row],
            "the file mixes dates (daily bars) and timestamps; use one kind",
        )


def _check_utc(table: BarTable, text: pd.Series, offset: pd.Series, aware: np.ndarray) -> None:
    utc = offset.isin(_UTC_OFFSETS).to_numpy()
    bad = np.flatnonzero(aware & ~utc)
    if len(bad):
        row = int(bad[0])
        first = offset.iloc[int(np.flatnonzero(aware)[0])]
        mixed = offset[aware].nunique() > 1
        what = f"mixes UTC offsets ({first} and {offset.iloc[row]})" if mixed else "is not UTC"
        raise table.error(
            row,
            table.stamp_column,
            text.iloc[row],
            f"the file {what}; raw bar files hold UTC timestamps such as {RAW_EXAMPLE}",
        )


def _localize(
    table: BarTable, text: pd.Series, naive: np.ndarray, aware: np.ndarray, rules: CsvRules
) -> np.ndarray:
    first = int(np.flatnonzero(naive)[0])
    if rules.timezone is None:
        raise table.error(
            first,
            table.stamp_column,
            text.iloc[first],
            "the timestamp has no UTC offset; add one (e.g. "
            f"{RAW_EXAMPLE}) or give the zone with --timezone, e.g. "
            "--timezone America/New_York",
        )
    if aware.any():
        row = int(np.flatnonzero(aware)[0])
        raise table.error(
            row,
            table.stamp_column,
            text.iloc[row],
            f"the file mixes timestamps with and without an offset (line "
            f"{table.where(first)[1]} has none); use one kind",
        )
    local = pd.to_datetime(text[naive], format="ISO8601", errors="coerce")
    _raise_on_nat(table, text, naive, local.isna().to_numpy())
    index = pd.DatetimeIndex(local)
    try:
        # 'infer' resolves the repeated hour of a DST fall-back from the row order.
        zoned = index.tz_localize(rules.timezone, ambiguous="infer", nonexistent="NaT")
    except Exception:  # the error type for an uninferable hour differs between tz backends
        zoned = index.tz_localize(rules.timezone, ambiguous="NaT", nonexistent="NaT")
    nat = np.asarray(zoned.isna())
    if nat.any():
        row = int(np.flatnonzero(naive)[np.flatnonzero(nat)[0]])
        # Shifting resolves a time in the spring-forward gap but not an ambiguous one.
        shifted = pd.DatetimeIndex([index[np.flatnonzero(nat)[0]]]).tz_localize(
            rules.timezone, ambiguous="NaT", nonexistent="shift_forward"
        )
        why = (
            "is ambiguous (DST fall-back) and the row order does not resolve it"
            if pd.isna(shifted[0])
            else "does not exist (DST spring-forward gap)"
        )
        raise table.error(
            row,
            table.stamp_column,
            text.iloc[row],
            f"local time {why} in {rules.timezone}; give timestamps with a UTC offset instead",
        )
    return np.asarray(zoned.tz_convert("UTC").tz_localize(None).as_unit("ns"))


def check_order(table: BarTable) -> None:
    """Rows must be strictly increasing in time; tell identical from conflicting duplicates."""
    stamps = table.index.asi8
    if len(stamps) < 2:
        return
    step = np.diff(stamps)
    bad = np.flatnonzero(step <= 0)
    if not len(bad):
        return
    row = int(bad[0]) + 1
    prev_path, prev_line = table.where(row - 1)
    same_file = prev_path == table.where(row)[0]
    prev = f"line {prev_line}" if same_file else f"{prev_path} line {prev_line}"
    stamp = table.index[row].isoformat()
    if step[row - 1] < 0:
        raise table.error(
            row,
            table.stamp_column,
            stamp,
            f"out of order: earlier than {prev} ({table.index[row - 1].isoformat()}); rows "
            "must be sorted oldest first",
        )
    values = table.frame.iloc[[row - 1, row]].loc[:, list(BAR_COLUMNS)].to_numpy()
    if np.array_equal(values[0], values[1], equal_nan=True):
        raise table.error(
            row,
            table.stamp_column,
            stamp,
            f"duplicate timestamp: identical to {prev}; remove the repeated row",
        )
    differ = [
        c
        for j, c in enumerate(BAR_COLUMNS)
        if not np.array_equal(values[0, j], values[1, j], equal_nan=True)
    ]
    raise table.error(
        row,
        table.stamp_column,
        stamp,
        f"conflicting duplicate timestamp: {prev} has the same time but a different "
        f"{', '.join(differ)}; keep one bar per timestamp",
    )

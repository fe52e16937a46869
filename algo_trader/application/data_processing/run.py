"""``algotrader data_processing``: run one preprocessor on the latest weekly returns.

Input: ``DATA_LAKE_SOURCE/<YYYY-WW>/returns.csv`` of the newest week folder that has one.
Output: ``FEATURE_STORE_SOURCE/<preprocessor>/<pipeline>/<YYYY-WW>/`` (same ``YYYY-WW`` as
the input), holding the preprocessor's files and ``metadata.json``. Every file is written
atomically and ``metadata.json`` last, so a folder with a current ``metadata.json`` is
complete.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from algo_trader.domain.errors import DataError
from algo_trader.infrastructure.data.atomic import atomic_path, save_tensor, write_csv, write_json
from algo_trader.infrastructure.data.layout import latest_week_dir
from algo_trader.infrastructure.env import Settings
from algo_trader.preprocessing.base import Processed
from algo_trader.preprocessing.registry import Configured, configure

RETURNS_FILE = "returns.csv"
_OFFSET = r"(?:Z|[+-]\d{2}:?\d{2})$"


@dataclass(frozen=True)
class ProcessingResult:
    """Where a run wrote, and what it read."""

    out_dir: Path
    input_file: Path
    preprocessor: str
    pipeline: str
    rows_in: int
    rows_out: int
    columns_out: int
    files: tuple[str, ...]
    notes: tuple[str, ...]

    def summary_lines(self) -> list[str]:
        """Short human-readable lines for the CLI."""
        return [
            f"{self.preprocessor} (pipeline {self.pipeline}) on {self.input_file}",
            f"rows: {self.rows_in} in, {self.rows_out} out; {self.columns_out} output columns",
            *self.notes,
            f"files: {', '.join(self.files)}",
        ]


def _bad_cell(path: Path, line: int, column: str, value: object, why: str) -> DataError:
    return DataError(why, path=path, line=line, column=column, value=value)


def _parse_index(raw: pd.Index, path: Path) -> pd.DatetimeIndex:
    text = pd.Series(raw.astype(str), dtype=object)
    no_offset = ~text.str.contains(_OFFSET, regex=True).to_numpy()
    parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    bad = np.flatnonzero(no_offset | parsed.isna().to_numpy())
    if bad.size:
        row = int(bad[0])
        raise _bad_cell(
            path,
            row + 2,
            "timestamp",
            text.iloc[row],
            "not an ISO 8601 timestamp with a UTC offset, e.g. 2024-03-08T21:00:00+00:00",
        )
    index = pd.DatetimeIndex(parsed, name="timestamp")
    steps = np.flatnonzero(np.diff(index.asi8) <= 0)
    if steps.size:
        row = int(steps[0]) + 1
        raise _bad_cell(
            path,
            row + 2,
            "timestamp",
            text.iloc[row],
            "timestamps must be strictly increasing (sorted, no duplicates)",
        )
    return index


def _check_header(path: Path) -> None:
    with path.open(encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle), [])
    if len(header) < 2 or header[0] != "timestamp":
        raise DataError(
            "header must be timestamp,<asset>,... with at least one asset",
            path=path,
            line=1,
            value=",".join(header),
        )
    seen = set()
    for name in header[1:]:
        if name in seen or not name:
            raise DataError(
                "asset names must be unique and non-empty", path=path, line=1, column=name
            )
        seen.add(name)


def read_returns(path: Path) -> pd.DataFrame:
    """Read and validate a data-lake ``returns.csv`` (empty cell = missing).

    Raises
    ------
    DataError
        Naming file, line, column and value of the first bad cell: a timestamp that is not
        ISO 8601 with an offset or out of order, a non-numeric or non-finite return, or a
        file with no asset columns or no rows.
    """
    _check_header(path)
    try:
        raw = pd.read_csv(path, index_col=0, dtype=str, keep_default_na=False, na_values=[""])
    except pd.errors.ParserError as err:  # e.g. a row with more cells than the header
        raise DataError(f"not a rectangular CSV: {err}", path=path) from None
    if raw.shape[0] == 0:
        raise DataError("has a header but no rows", path=path)
    index = _parse_index(raw.index, path)
    values = raw.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    bad = (np.isnan(values) & raw.notna().to_numpy()) | np.isinf(values)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise _bad_cell(
            path,
            row + 2,
            str(raw.columns[col]),
            raw.iat[row, col],
            "a return must be a finite number (empty cell = missing)",
        )
    return pd.DataFrame(values, index=index, columns=pd.Index(map(str, raw.columns), name=None))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write(processed: Processed, out_dir: Path, input_file: Path) -> None:
    if processed.copy_input:
        with atomic_path(out_dir / processed.main_file) as tmp:
            shutil.copyfile(input_file, tmp)
    else:
        write_csv(out_dir / processed.main_file, processed.frame, index_label="timestamp")
    for name, table in processed.tables.items():
        write_csv(out_dir / name, table)
    for name, payload in processed.tensors.items():
        save_tensor(out_dir / name, payload)


def _metadata(
    configured: Configured, processed: Processed, returns: pd.DataFrame, input_file: Path
) -> dict[str, Any]:
    frame = processed.frame
    return {
        **processed.metadata,
        "preprocessor": configured.preprocessor.name,
        "pipeline": configured.pipeline,
        "args": {**configured.preprocessor.describe(), "pipeline": configured.pipeline},
        "input": {
            "folder": str(input_file.parent),
            "file": input_file.name,
            "sha256": _sha256(input_file),
            "rows": int(returns.shape[0]),
            "assets": list(map(str, returns.columns)),
        },
        "output": {
            "main_file": processed.main_file,
            "rows": int(frame.shape[0]),
            "rows_dropped": int(returns.shape[0] - frame.shape[0]),
            "columns": list(map(str, frame.columns)),
            "files": processed.file_names(),
        },
    }


def run_data_processing(
    settings: Settings, preprocessor: str, raw_args: list[str]
) -> ProcessingResult:
    """Run ``preprocessor`` with ``--preprocessor-arg`` strings on the latest returns.

    Parameters
    ----------
    settings
        Gives ``DATA_LAKE_SOURCE`` (input) and ``FEATURE_STORE_SOURCE`` (output).
    preprocessor
        A registered name: ``identity``, ``zscore`` or ``pca``.
    raw_args
        ``key=value`` strings, e.g. ``["k=3", "missing=drop", "pipeline=exp1"]``.

    Raises
    ------
    ConfigError
        Unknown preprocessor or bad argument (checked before any file is read).
    DataError
        No data-lake folder with ``returns.csv``, or a malformed one.
    """
    configured = configure(preprocessor, raw_args)
    week_dir = latest_week_dir(settings.data_lake_source, must_contain=RETURNS_FILE)
    input_file = week_dir / RETURNS_FILE
    returns = read_returns(input_file)
    processed = configured.preprocessor.process(returns)
    out_dir = settings.feature_store_source / preprocessor / configured.pipeline / week_dir.name
    _write(processed, out_dir, input_file)
    write_json(out_dir / "metadata.json", _metadata(configured, processed, returns, input_file))
    return ProcessingResult(
        out_dir=out_dir,
        input_file=input_file,
        preprocessor=preprocessor,
        pipeline=configured.pipeline,
        rows_in=int(returns.shape[0]),
        rows_out=int(processed.frame.shape[0]),
        columns_out=int(processed.frame.shape[1]),
        files=tuple(processed.file_names()),
        notes=processed.notes,
    )

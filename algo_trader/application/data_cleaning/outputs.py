"""Write the data lake files of one cleaning run (the data lake contract) into a folder.

The folder is a staging folder (see :mod:`staging`); each file still goes through the
atomic writers so that nothing in the project writes a file any other way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from algo_trader.application.data_cleaning.daily import daily_meta
from algo_trader.application.data_cleaning.periods import PeriodBars, missing_labels, ohlc_frame
from algo_trader.application.data_cleaning.weekly import LABEL_RULE, ReturnType
from algo_trader.domain.market_data.bars import BadBar
from algo_trader.infrastructure.data.atomic import save_tensor, write_csv, write_json
from algo_trader.infrastructure.data.layout import tensor_payload

RETURNS_FILE = "returns.csv"
WEEKLY_FILE = "weekly_ohlc.csv"
WEEKLY_META_FILE = "weekly_ohlc_meta.json"
DAILY_FILE = "daily_ohlc.csv"
DAILY_META_FILE = "daily_ohlc_meta.json"
TENSOR_FILE = "return_tensor.pt"
QUARANTINE_FILE = "quarantine.csv"
QUARANTINE_COLUMNS = ("file", "line", "column", "rule", "value")


@dataclass(frozen=True)
class CleanedData:
    """Everything one run writes, already computed."""

    weekly: PeriodBars
    returns: np.ndarray  # (weeks, assets)
    daily: PeriodBars
    return_type: ReturnType
    start: str  # first month read, YYYY-MM
    end: str  # last month read, YYYY-MM
    sources: dict[str, dict[str, Any]]  # {asset: {"files": n, "sha256": hex}}
    quarantine: list[BadBar]


def returns_frame(data: CleanedData) -> pd.DataFrame:
    """``returns.csv`` as a frame: index ``timestamp`` (weekly labels), one column per asset."""
    return pd.DataFrame(data.returns, index=data.weekly.labels, columns=list(data.weekly.assets))


def weekly_meta(data: CleanedData) -> dict[str, Any]:
    """The ``weekly_ohlc_meta.json`` payload."""
    return {
        "assets": list(data.weekly.assets),
        "start": data.start,
        "end": data.end,
        "return_type": data.return_type,
        "weeks": len(data.weekly.labels),
        "label_rule": LABEL_RULE,
        "missing_weeks": missing_labels(data.weekly),
        "source": data.sources,
    }


def write_outputs(folder: Path, data: CleanedData) -> list[Path]:
    """Write every contract file of ``data`` into ``folder``; returns the paths written."""
    written = [
        folder / RETURNS_FILE,
        folder / WEEKLY_FILE,
        folder / WEEKLY_META_FILE,
        folder / DAILY_FILE,
        folder / DAILY_META_FILE,
        folder / TENSOR_FILE,
    ]
    write_csv(written[0], returns_frame(data))
    write_csv(written[1], ohlc_frame(data.weekly))
    write_json(written[2], weekly_meta(data))
    write_csv(written[3], ohlc_frame(data.daily))
    write_json(written[4], daily_meta(data.daily))
    save_tensor(written[5], tensor_payload(data.returns, data.weekly.labels, data.weekly.assets))
    if data.quarantine:
        rows = pd.DataFrame([b.as_dict() for b in data.quarantine], columns=QUARANTINE_COLUMNS)
        written.append(folder / QUARANTINE_FILE)
        write_csv(written[-1], rows, index=False)
    return written

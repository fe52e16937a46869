"""Shared helpers for the dated stage folders (``YYYY-WW``) and the tensor file contract.

A stage's output folder is named by the ISO year and week of its last timestamp, e.g.
``2013-09``. Tensors are plain dicts (see ``shared/design.md``): ``values``,
``timestamps`` (int64 ns UTC), ``missing_mask`` (True = missing; NaN in ``values`` too),
and the ``assets`` / ``features`` labels.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from algo_trader.domain.errors import DataError

WEEK_DIR = re.compile(r"^(\d{4})-(\d{2})$")


def week_folder_name(ts: pd.Timestamp) -> str:
    """``YYYY-WW`` (ISO year and week) of a timestamp."""
    iso = ts.isocalendar()
    return f"{iso.year:04d}-{iso.week:02d}"


def latest_week_dir(root: str | Path, must_contain: str | None = None) -> Path:
    """The newest ``YYYY-WW`` folder under ``root`` (optionally one holding ``must_contain``).

    Raises
    ------
    DataError
        When there is none, naming the folder and the command that makes it.
    """
    base = Path(root)
    found = sorted(
        p
        for p in (base.iterdir() if base.is_dir() else [])
        if p.is_dir()
        and WEEK_DIR.match(p.name)
        and (must_contain is None or (p / must_contain).exists())
    )
    if not found:
        wanted = f" containing {must_contain}" if must_contain else ""
        raise DataError(
            f"no YYYY-WW output folder{wanted}; run the previous stage first", path=base
        )
    return found[-1]


def timestamps_ns(index: pd.DatetimeIndex) -> torch.Tensor:
    """int64 nanoseconds since the epoch (UTC) of a tz-aware index."""
    if index.tz is None:
        raise ValueError("timestamps must be tz-aware UTC")
    return torch.from_numpy(index.tz_convert("UTC").as_unit("ns").asi8.copy())


def tensor_payload(
    values: np.ndarray,
    index: pd.DatetimeIndex,
    assets: Sequence[str],
    features: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Build the tensor-file dict; the mask is exactly ``isnan(values)``."""
    # A private contiguous copy: pandas 3 hands out read-only views, which torch refuses to wrap.
    arr = np.array(values, order="C", copy=True)
    payload: dict[str, Any] = {
        "values": torch.from_numpy(arr),
        "timestamps": timestamps_ns(index),
        "missing_mask": torch.from_numpy(np.isnan(arr)),
        "assets": [str(a) for a in assets],
    }
    if features is not None:
        payload["features"] = [str(f) for f in features]
    return payload

"""``zscore``: per-asset standardization with statistics from a fit window only.

Statistics
    ``mean`` and ``std`` (sample std, ``ddof=1``) of each asset over the rows whose UTC
    calendar date lies in ``[start_date, end_date]`` (both inclusive; either bound defaults
    to the data's own), using that asset's observed values only. They are then applied to
    every row, inside the window or not, so rows outside the window never influence the
    statistics (no look-ahead when the window is the training period).
Zero std
    An asset whose window values are constant (``std <= 1e-12 * max |x|``) is only centered:
    it is divided by 1 instead of 0, so its window values become ~0 and no inf appears.
    ``std_ref.pt`` keeps the true std and the divisor used (``scale``); the asset is listed
    under ``zero_std_assets`` in ``metadata.json``.
Missing cells (``missing``)
    ``zero``: after scaling a missing cell becomes 0 (the window mean) in ``processed.csv``
    and in the tensor's ``values``, and stays True in ``missing_mask``.
    ``drop``: every row with any missing asset is removed from the output. The statistics
    are the same under both policies (each asset's observed window values).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from algo_trader.domain.errors import ConfigError, DataError
from algo_trader.preprocessing.args import arg_error, parse_choice, parse_date
from algo_trader.preprocessing.base import Preprocessor, Processed, masked_payload

DDOF = 1
ZERO_STD_RTOL = 1e-12
MISSING_POLICIES = ("zero", "drop")


@dataclass(frozen=True)
class ZScoreFit:
    """Per-asset statistics of the fit window (arrays are aligned with the columns)."""

    mean: np.ndarray
    std: np.ndarray
    scale: np.ndarray
    window: np.ndarray
    observed: np.ndarray
    zero_std: tuple[str, ...]

    def apply(self, returns: pd.DataFrame) -> pd.DataFrame:
        """``(x - mean) / scale`` on every row; missing stays NaN."""
        return returns.sub(self.mean, axis=1).div(self.scale, axis=1)


def window_rows(index: pd.DatetimeIndex, start: date | None, end: date | None) -> np.ndarray:
    """Boolean mask of the rows whose UTC date lies in ``[start, end]`` (inclusive)."""
    keep = np.ones(len(index), dtype=bool)
    if start is not None:
        keep &= index >= pd.Timestamp(start, tz="UTC")
    if end is not None:
        keep &= index < pd.Timestamp(end + timedelta(days=1), tz="UTC")
    return keep


def _span(index: pd.DatetimeIndex) -> str:
    if len(index) == 0:
        return "no rows"
    return f"{index[0].date()}..{index[-1].date()}"


def fit_zscore(
    returns: pd.DataFrame, start: date | None, end: date | None, preprocessor: str
) -> ZScoreFit:
    """Mean/std of each column over the fit window; only window rows are ever read.

    Raises
    ------
    ConfigError
        When the window holds no row of ``returns``.
    DataError
        When an asset has fewer than two observed values in the window (no sample std).
    """
    index = pd.DatetimeIndex(returns.index)
    window = window_rows(index, start, end)
    if not window.any():
        raise ConfigError(
            f"preprocessor {preprocessor!r}: the fit window start_date={start or 'first row'} "
            f"end_date={end or 'last row'} holds no row of returns.csv, whose weeks span "
            f"{_span(index)}; pick dates inside that span"
        )
    fit_values = returns.to_numpy(dtype=float)[window]
    observed = np.sum(~np.isnan(fit_values), axis=0)
    short = observed <= DDOF
    if short.any():
        names = [str(a) for a in returns.columns[short]]
        counts = ", ".join(f"{a} ({n})" for a, n in zip(names, observed[short], strict=True))
        raise DataError(
            f"preprocessor {preprocessor!r}: need at least {DDOF + 1} observed returns per "
            f"asset in the fit window {_span(index[window])} for a sample std; these have "
            f"fewer: {counts}. Widen start_date/end_date",
            column=names[0],
        )
    mean = np.nanmean(fit_values, axis=0)
    std = np.nanstd(fit_values, axis=0, ddof=DDOF)
    zero = std <= ZERO_STD_RTOL * np.nanmax(np.abs(fit_values), axis=0)
    return ZScoreFit(
        mean=mean,
        std=std,
        scale=np.where(zero, 1.0, std),
        window=window,
        observed=observed,
        zero_std=tuple(str(a) for a in returns.columns[zero]),
    )


def handle_missing(scaled: pd.DataFrame, policy: str, preprocessor: str) -> pd.DataFrame:
    """Apply ``missing=drop`` (remove rows with any NaN); ``zero`` keeps NaN for the mask."""
    if policy == "zero":
        return scaled
    kept = scaled.loc[~scaled.isna().any(axis=1)]
    if kept.empty:
        raise DataError(
            f"preprocessor {preprocessor!r}: missing=drop removes every row: each week of "
            f"{_span(pd.DatetimeIndex(scaled.index))} misses at least one asset; use "
            "missing=zero or fewer assets"
        )
    return kept


def parse_scaling(preprocessor: str, pairs: Mapping[str, str]) -> ZScore:
    """The z-score keys (``start_date``, ``end_date``, ``missing``) shared with ``pca``."""
    start, end = (
        parse_date(preprocessor, key, pairs[key]) if key in pairs else None
        for key in ("start_date", "end_date")
    )
    if start is not None and end is not None and start > end:
        raise arg_error(
            preprocessor,
            "start_date",
            pairs["start_date"],
            f"must not be after end_date={pairs['end_date']}",
        )
    missing = parse_choice(preprocessor, "missing", pairs.get("missing", "zero"), MISSING_POLICIES)
    return ZScore(start_date=start, end_date=end, missing=missing)


def fit_metadata(fit: ZScoreFit, returns: pd.DataFrame, scaling: ZScore) -> dict[str, Any]:
    """The fit window as requested and as found in the data, for ``metadata.json``."""
    fit_index = pd.DatetimeIndex(returns.index)[fit.window]
    return {
        "fit_window": {
            "start_date": scaling.describe()["start_date"],
            "end_date": scaling.describe()["end_date"],
            "first_row": fit_index[0].isoformat(),
            "last_row": fit_index[-1].isoformat(),
            "rows": len(fit_index),
            "observed_per_asset": dict(
                zip(map(str, returns.columns), fit.observed.tolist(), strict=True)
            ),
        },
        "ddof": DDOF,
        "missing": scaling.missing,
        "zero_std_assets": list(fit.zero_std),
    }


def _stat_tensor(values: np.ndarray, assets: pd.Index) -> dict[str, Any]:
    return {"values": torch.from_numpy(values.astype(np.float64)), "assets": list(map(str, assets))}


@dataclass(frozen=True)
class ZScore(Preprocessor):
    """Z-score each asset with its fit-window mean and std; see the module docstring."""

    start_date: date | None = None
    end_date: date | None = None
    missing: str = "zero"

    name: ClassVar[str] = "zscore"
    keys: ClassVar[tuple[str, ...]] = ("start_date", "end_date", "missing")

    @classmethod
    def from_args(cls, pairs: Mapping[str, str]) -> ZScore:
        return parse_scaling(cls.name, pairs)

    def describe(self) -> dict[str, Any]:
        return {
            "start_date": None if self.start_date is None else self.start_date.isoformat(),
            "end_date": None if self.end_date is None else self.end_date.isoformat(),
            "missing": self.missing,
        }

    def process(self, returns: pd.DataFrame) -> Processed:
        fit = fit_zscore(returns, self.start_date, self.end_date, self.name)
        kept = handle_missing(fit.apply(returns), self.missing, self.name)
        missing = kept.isna().to_numpy()
        std_ref = _stat_tensor(fit.std, returns.columns)
        std_ref["scale"] = torch.from_numpy(fit.scale.astype(np.float64))
        notes = [f"fit window: {fit.window.sum()} weeks; ddof={DDOF}; missing={self.missing}"]
        if fit.zero_std:
            notes.append(f"zero std (centered only): {', '.join(fit.zero_std)}")
        return Processed(
            frame=kept.fillna(0.0),
            main_file="processed.csv",
            tensors={
                "processed_tensor.pt": masked_payload(
                    kept.to_numpy(dtype=float),
                    missing,
                    pd.DatetimeIndex(kept.index),
                    list(map(str, kept.columns)),
                ),
                "mean_ref.pt": _stat_tensor(fit.mean, returns.columns),
                "std_ref.pt": std_ref,
            },
            metadata=fit_metadata(fit, returns, self),
            notes=tuple(notes),
        )

"""OHLCV bars: the in-memory contract and the vectorized checks every input goes through.

A bar frame is a ``pandas.DataFrame`` indexed by a tz-aware UTC ``DatetimeIndex`` named
``timestamp`` with float64 columns ``open, high, low, close, volume`` (volume may be NaN
when a source has none). :func:`find_bad_bars` checks a whole frame in a few array calls
and reports every broken rule with the row it came from, so that a caller can either stop
with a precise error or drop and quarantine the bad bars.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from algo_trader.domain.errors import DataError

PRICE_COLUMNS = ("open", "high", "low", "close")
BAR_COLUMNS = (*PRICE_COLUMNS, "volume")


@dataclass(frozen=True)
class BadBar:
    """One broken rule on one row: where, which rule, and the row's values."""

    file: str
    line: int
    column: str
    rule: str
    value: str

    def as_error(self) -> DataError:
        return DataError(
            self.rule, path=self.file, line=self.line, column=self.column, value=self.value
        )

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def find_bad_bars(frame: pd.DataFrame, file: str, lines: np.ndarray) -> list[BadBar]:
    """Check OHLC consistency of every row at once.

    Parameters
    ----------
    frame
        Bars with float columns ``open, high, low, close`` and optional ``volume``.
    file
        File the rows came from (used in the report).
    lines
        1-based line number in ``file`` of each row (same length as ``frame``).

    Returns
    -------
    list of BadBar
        Empty when every row is valid. Rules: missing or non-finite price, non-positive
        price, ``high < low``, ``open``/``close`` outside ``[low, high]``, negative or
        non-finite volume.
    """
    prices = frame.loc[:, list(PRICE_COLUMNS)].to_numpy(dtype=np.float64)
    bad: list[BadBar] = []

    def report(mask: np.ndarray, column: str, rule: str, template: str, **cols: np.ndarray) -> None:
        # Values are formatted only for bad rows: formatting every row costs more than parsing.
        for i in np.flatnonzero(mask):
            text = template.format(**{k: v[i] for k, v in cols.items()})
            bad.append(BadBar(file, int(lines[i]), column, rule, text))

    finite = np.isfinite(prices)
    o, h, lo, c = (prices[:, j] for j in range(4))
    for j, name in enumerate(PRICE_COLUMNS):
        col = prices[:, j]
        report(~finite[:, j], name, "price is missing, NaN or infinite", "{v}", v=col)
        report(finite[:, j] & (col <= 0), name, "price must be > 0", "{v}", v=col)
    all_ok = finite.all(axis=1) & (prices > 0).all(axis=1)
    report(all_ok & (h < lo), "high", "high is below low", "{h} < low", h=h)
    ok_range = all_ok & (h >= lo)
    for name, x in (("open", o), ("close", c)):
        outside = ok_range & ((x < lo) | (x > h))
        report(
            outside, name, f"{name} outside [low, high]", "{x} not in {lo}..{h}", x=x, lo=lo, h=h
        )
    if "volume" in frame:
        vol = frame["volume"].to_numpy(dtype=np.float64)
        report(np.isinf(vol) | (vol < 0), "volume", "volume must be finite and >= 0", "{v}", v=vol)
    bad.sort(key=lambda b: (b.line, b.column))
    return bad

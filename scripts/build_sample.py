"""Build the bundled real sample in ``algo_trader/providers/historical/sample_data/``.

Run with ``uv run --group sample python scripts/build_sample.py``.

Daily OHLCV of AAPL, GOOG, IBM and MSFT (``bokeh_sampledata.stocks``, Quandl WIKI prices,
public domain) and of the S&P 500 and NASDAQ Composite indices (``arch.data``, NCSA
licence), cut to the span all six cover, written in the raw layout
``<ASSET>/<YYYY>/hist_data_YYYY-MM.csv`` with a ``_meta.json`` per asset and a generated
``README.md``. Open, high, low and close are multiplied by ``adj_close / close`` of the same
day (split and dividend adjustment); volume is left as reported. Every bar is checked with
:func:`find_bad_bars`; bad bars are dropped and listed in the README, never repaired.
The output depends only on the source packages: re-running gives byte-identical files.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from functools import reduce
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from algo_trader.domain.market_data.assets import AssetSpec
from algo_trader.domain.market_data.bars import BAR_COLUMNS, PRICE_COLUMNS, BadBar, find_bad_bars
from algo_trader.infrastructure.data.atomic import atomic_path
from algo_trader.infrastructure.data.raw_store import Month, RawBarStore

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "algo_trader/providers/historical/sample_data"
DECIMALS = 6
"""Adjusted prices are rounded to 1e-6 (rounding is monotone, so OHLC order is kept)."""
ADJUSTMENT = (
    "open, high, low and close multiplied by adj_close / close of the same day "
    f"(split and dividend adjustment), rounded to {DECIMALS} decimals; volume unadjusted"
)
STOCKS = {
    "AAPL": AssetSpec(name="AAPL", symbol="AAPL", primary_exchange="NASDAQ"),
    "GOOG": AssetSpec(name="GOOG", symbol="GOOG", primary_exchange="NASDAQ"),
    "IBM": AssetSpec(name="IBM", symbol="IBM", primary_exchange="NYSE"),
    "MSFT": AssetSpec(name="MSFT", symbol="MSFT", primary_exchange="NASDAQ"),
}
INDICES = {
    "SP500": (AssetSpec(name="SP500", symbol="SPX", sec_type="IND", exchange="CBOE"), "sp500"),
    "NASDAQ": (
        AssetSpec(name="NASDAQ", symbol="COMP", sec_type="IND", exchange="NASDAQ"),
        "nasdaq",
    ),
}
STOCK_LICENCE = "Public domain (Quandl WIKI Prices)"
INDEX_LICENCE = "NCSA (University of Illinois/NCSA Open Source License), arch package"


@dataclass(frozen=True)
class Source:
    """One asset as the source package ships it (unadjusted OHLC, adj_close, volume)."""

    spec: AssetSpec
    frame: pd.DataFrame
    source: dict[str, str]
    licence: str
    what_to_show: str


def _daily_index(dates: Any) -> pd.DatetimeIndex:
    # A daily bar is stamped 00:00 UTC of its trading date (design.md, raw bars).
    return pd.DatetimeIndex(pd.to_datetime(dates), name="timestamp").tz_localize("UTC")


def load_stocks() -> list[Source]:
    """The four stocks from ``bokeh_sampledata.stocks``."""
    from bokeh_sampledata import stocks

    version = metadata.version("bokeh_sampledata")
    out = []
    for name, spec in STOCKS.items():
        raw = pd.DataFrame(getattr(stocks, name))
        frame = raw.drop(columns="date").set_index(_daily_index(raw["date"]))
        source = {
            "package": "bokeh_sampledata",
            "version": version,
            "module": "bokeh_sampledata.stocks",
            "series": name,
            "origin": "Quandl WIKI Prices",
        }
        out.append(Source(spec, frame, source, STOCK_LICENCE, "ADJUSTED_LAST"))
    return out


def load_indices() -> list[Source]:
    """The S&P 500 and NASDAQ Composite from ``arch.data``."""
    version = metadata.version("arch")
    out = []
    for spec, module in INDICES.values():
        raw = importlib.import_module(f"arch.data.{module}").load()
        frame = raw.rename(columns=lambda c: c.lower().replace(" ", "_"))
        frame.index = _daily_index(frame.index)
        source = {
            "package": "arch",
            "version": version,
            "module": f"arch.data.{module}",
            "series": "Open, High, Low, Close, Adj Close, Volume",
        }
        out.append(Source(spec, frame, source, INDEX_LICENCE, "TRADES"))
    return out


def common_span(sources: list[Source]) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last date on which every source has data."""
    first = max(s.frame.index.min() for s in sources)
    last = min(s.frame.index.max() for s in sources)
    return first, last


def adjust(frame: pd.DataFrame) -> pd.DataFrame:
    """Split/dividend-adjusted OHLC (ratio ``adj_close / close``), volume as reported."""
    ratio = frame["adj_close"] / frame["close"]
    bars = frame.loc[:, list(PRICE_COLUMNS)].mul(ratio, axis=0).round(DECIMALS)
    bars["volume"] = frame["volume"].astype(np.float64)
    return bars.astype(np.float64)


def drop_bad_bars(name: str, bars: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[str, BadBar]]]:
    """Remove rows breaking an OHLC rule; return the kept bars and ``(date, rule)`` per drop."""
    # ``line`` here is the 1-based row within this asset's span, mapped back to its date.
    bad = find_bad_bars(bars, name, np.arange(1, len(bars) + 1))
    rows = sorted({b.line - 1 for b in bad})
    dropped = [(f"{bars.index[b.line - 1]:%Y-%m-%d}", b) for b in bad]
    return bars.drop(index=bars.index[rows]), dropped


def _month_keys(index: pd.Index) -> np.ndarray:
    stamps = pd.DatetimeIndex(index)
    return np.asarray(stamps.year * 100 + stamps.month)


def by_month(bars: pd.DataFrame) -> list[tuple[Month, pd.DataFrame]]:
    """Split bars into calendar months (one raw file each), oldest first."""
    keys = _month_keys(bars.index)
    return [(Month(k // 100, k % 100), bars[keys == k]) for k in np.unique(keys).tolist()]


def write_asset(store: RawBarStore, source: Source, bars: pd.DataFrame) -> list[Path]:
    """One file per month plus ``_meta.json``; returns the month files written."""
    paths = [store.write_month(source.spec.name, m, chunk) for m, chunk in by_month(bars)]
    store.write_meta(
        source.spec.name,
        {
            "provider": "sample",
            "contract": source.spec.model_dump(exclude={"name"}),
            "bar_size": "1 day",
            "what_to_show": source.what_to_show,
            "feed": None,
            "source": source.source,
            "licence": source.licence,
            "adjustment": ADJUSTMENT,
            "first_month": str(Month.of(bars.index[0])),
            # The source ends here for good, so its last month is complete too.
            "last_complete_month": str(Month.of(bars.index[-1])),
        },
    )
    return paths


def remove_stale(root: Path, keep: set[Path]) -> list[Path]:
    """Delete month files a previous build wrote that this build did not."""
    stale = [p for p in root.glob("*/*/hist_data_*.csv") if p not in keep]
    for path in stale:
        path.unlink()
        if not any(path.parent.iterdir()):
            path.parent.rmdir()
    return stale


def _licence_texts() -> tuple[str, str, dict[str, Any]]:
    """Verbatim notices: bokeh stocks docstring, arch LICENSE.md, bokeh inventory entry."""
    from bokeh_sampledata import stocks

    paragraphs = (stocks.__doc__ or "").strip().split("\n\n")
    # The licence statement and its link targets; skip the API description in between.
    notice = "\n\n".join([*paragraphs[1:4], paragraphs[-1]])
    inventory = json.loads(
        metadata.distribution("bokeh_sampledata").read_text("licenses/licenses/datasets.json")
        or "{}"
    )
    entries = [e for e in inventory.get("datasets", []) if e.get("module") == "stocks"]
    arch_licence = metadata.distribution("arch").read_text("licenses/LICENSE.md") or ""
    return notice, arch_licence.strip(), entries[0] if entries else {}


def _calendar_text(kept: dict[str, pd.DataFrame]) -> str:
    """Say whether all assets trade on the same days, or which days each one lacks."""
    every_day = reduce(pd.Index.union, (b.index for b in kept.values()))
    lacking = {
        name: pd.DatetimeIndex(every_day.difference(b.index)).strftime("%Y-%m-%d").tolist()
        for name, b in kept.items()
    }
    if not any(lacking.values()):
        return f"All six assets have a bar on each of the same {len(every_day)} trading days."
    return "Days on which some asset has no bar (kept as missing, not filled): " + "; ".join(
        f"{name}: {', '.join(days)}" for name, days in lacking.items() if days
    )


def _n_months(index: pd.Index) -> int:
    return len(np.unique(_month_keys(index)))


def _quote(text: str) -> str:
    return "\n".join(f"> {line}".rstrip() for line in text.splitlines())


def render_readme(
    sources: list[Source],
    kept: dict[str, pd.DataFrame],
    dropped: dict[str, list[tuple[str, BadBar]]],
    span: tuple[pd.Timestamp, pd.Timestamp],
) -> str:
    """The sample's README: what, sources, licences (verbatim), method, counts."""
    notice, arch_licence, entry = _licence_texts()
    versions = {s.source["package"]: s.source["version"] for s in sources}
    rows = "\n".join(
        f"| {name} | {b.index[0]:%Y-%m-%d} | {b.index[-1]:%Y-%m-%d} | {len(b)} | "
        f"{_n_months(b.index)} |"
        for name, b in kept.items()
    )
    n_bad = sum(len(v) for v in dropped.values())
    bad_lines = "\n".join(
        f"- {name} {date}: {bar.column}: {bar.rule} ({bar.value})"
        for name, items in dropped.items()
        for date, bar in items
    )
    bad_text = (
        f"{n_bad} bars broke a rule and were dropped (not repaired):\n\n{bad_lines}"
        if n_bad
        else "All bars pass: 0 bad bars, none dropped, none changed."
    )
    inventory = json.dumps(
        {
            k: entry[k]
            for k in ("attribution", "recorded_license", "verified_source_terms", "sources")
            if k in entry
        },
        indent=2,
        sort_keys=True,
    )
    return README.format(
        first=f"{span[0]:%Y-%m-%d}",
        last=f"{span[1]:%Y-%m-%d}",
        bokeh_version=versions["bokeh_sampledata"],
        arch_version=versions["arch"],
        rows=rows,
        total=sum(len(b) for b in kept.values()),
        files=sum(_n_months(b.index) for b in kept.values()),
        decimals=DECIMALS,
        bad_text=bad_text,
        calendar=_calendar_text(kept),
        notice=_quote(notice),
        inventory=inventory,
        arch_licence=_quote(arch_licence),
    )


README = """# Bundled sample: real daily market data

Real, not generated: daily OHLCV bars of four US stocks and two US stock indices,
{first} to {last} (the span all six sources cover), in the raw layout
`<ASSET>/<YYYY>/hist_data_YYYY-MM.csv` with a `_meta.json` per asset. The `sample`
historical provider (`HISTORICAL_DATA_PROVIDER=sample`, the default pipeline) reads it, so
`uv run algotrader` needs no network.

This file is generated by `scripts/build_sample.py`; edit the script, not this file.

## Sources

- AAPL, GOOG, IBM, MSFT: `bokeh_sampledata.stocks` from the `bokeh_sampledata` package,
  version {bokeh_version}; originally Quandl WIKI Prices (GOOG is Google's pre-2014 history,
  filed as GOOGL in the source).
- SP500 (S&P 500) and NASDAQ (NASDAQ Composite): `arch.data.sp500` and `arch.data.nasdaq`
  from the `arch` package, version {arch_version}, shipped as its example data. The
  package does not name the vendor; the columns follow Yahoo Finance's
  `Open, High, Low, Close, Adj Close, Volume` layout.

## Method

- Span: {first} to {last}, the first and last date on which all six assets have data.
  The first and last month files are partial months.
- Calendar: {calendar}
- Timestamps: each daily bar is stamped 00:00 UTC of its trading date.
- Adjustment: open, high, low and close are multiplied by `adj_close / close` of the same
  day, which adjusts them for splits and dividends; prices are then rounded to {decimals}
  decimals (rounding is monotone, so `low <= open, close <= high` is kept). Volume is the
  unadjusted reported volume. For the indices `adj_close == close` on every day, so their
  levels are unchanged. The stock adjustment factors come from the Quandl snapshot, which
  includes corporate actions after 2013 (e.g. Apple's 2014 7:1 split, Google's 2014 share
  class split), so adjusted stock prices are far below the prices traded at the time;
  returns are what they are meant for.
- Checks: every bar passed through `algo_trader.domain.market_data.bars.find_bad_bars`
  (missing/non-finite or non-positive prices, high < low, open or close outside
  [low, high], negative volume). {bad_text}

## Contents

| Asset | First bar | Last bar | Bars | Month files |
|---|---|---|---|---|
{rows}

{total} bars in {files} month files.

## Rebuild

```
uv run --group sample python scripts/build_sample.py
```

The build is deterministic: re-running it with the same package versions rewrites
byte-identical files (and removes month files a previous build left outside the span).

## Licences and notices

### Stocks (AAPL, GOOG, IBM, MSFT): public domain

The `bokeh_sampledata.stocks` module documentation states:

{notice}

`bokeh_sampledata`'s dataset inventory (`licenses/datasets.json` in its distribution)
records for `stocks.csv.gz`:

```json
{inventory}
```

### Indices (SP500, NASDAQ): NCSA licence (`arch`)

The data files ship inside the `arch` package, whose licence (`LICENSE.md`, verbatim):

{arch_licence}
"""


def main() -> None:
    sources = [*load_stocks(), *load_indices()]
    first, last = common_span(sources)
    store = RawBarStore(SAMPLE_DIR)
    kept: dict[str, pd.DataFrame] = {}
    dropped: dict[str, list[tuple[str, BadBar]]] = {}
    written: set[Path] = set()
    for source in sources:
        name = source.spec.name
        bars, dropped[name] = drop_bad_bars(name, adjust(source.frame.loc[first:last]))
        kept[name] = bars.loc[:, list(BAR_COLUMNS)]
        written.update(write_asset(store, source, kept[name]))
    stale = remove_stale(SAMPLE_DIR, written)
    text = render_readme(sources, kept, dropped, (first, last))
    with atomic_path(SAMPLE_DIR / "README.md") as tmp:
        tmp.write_text(text, encoding="utf-8")
    n_bad = sum(map(len, dropped.values()))
    print(
        f"sample: {len(written)} month files, {sum(map(len, kept.values()))} bars, "
        f"{first:%Y-%m-%d}..{last:%Y-%m-%d}, {n_bad} bad bars dropped, "
        f"{len(stale)} stale files removed -> {SAMPLE_DIR}"
    )


if __name__ == "__main__":
    main()

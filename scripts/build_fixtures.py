"""Build the real hourly test fixture ``tests/fixtures/eurusd_1h/``.

Run with ``uv run --group sample python scripts/build_fixtures.py``.

Source: ``gym_anytrading/datasets/data/FOREX_EURUSD_1H_ASK.csv`` from the MIT-licensed
``gym-anytrading`` package: hourly EUR/USD ask bars of 2017, timestamps
``DD.MM.YYYY HH:MM:SS.fff`` without a zone. They are UTC: the FX week opens Sunday 17:00
New York time, and in the file the first bar of the week moves from 22:00 to 21:00 on
2017-03-12 and back to 22:00 on 2017-11-05, exactly the US DST changes (a New York or
European local clock would show no shift, or a shift at the EU dates 03-26 and 10-29).
The fixture keeps March (US DST start; EU DST start is in it too), October-December (EU
and US DST end, the Christmas holiday gaps), localised as UTC and written in
the raw layout with a ``_meta.json`` and a generated README. Values are not changed.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from algo_trader.domain.market_data.assets import AssetSpec
from algo_trader.domain.market_data.bars import BAR_COLUMNS, find_bad_bars
from algo_trader.infrastructure.data.atomic import atomic_path
from algo_trader.infrastructure.data.raw_store import Month, RawBarStore

FIXTURE_DIR = Path(__file__).resolve().parents[1] / "tests/fixtures/eurusd_1h"
DIST = "gym-anytrading"
SOURCE_FILE = "gym_anytrading/datasets/data/FOREX_EURUSD_1H_ASK.csv"
ASSET = AssetSpec.from_ticker("EUR.USD").model_copy(update={"name": "EURUSD"})
MONTHS = (Month(2017, 3), Month(2017, 10), Month(2017, 11), Month(2017, 12))


def load_source() -> pd.DataFrame:
    """The whole source file as a bar frame (UTC index, float64 OHLCV)."""
    path = Path(str(metadata.distribution(DIST).locate_file(SOURCE_FILE)))
    raw = pd.read_csv(path)
    stamps = pd.to_datetime(raw["Time"], format="%d.%m.%Y %H:%M:%S.%f")
    frame = raw.drop(columns="Time").rename(columns=str.lower).astype(np.float64)
    frame.index = pd.DatetimeIndex(stamps, name="timestamp").tz_localize("UTC")
    bad = find_bad_bars(frame, SOURCE_FILE, np.arange(2, len(frame) + 2))
    if bad or not frame.index.is_monotonic_increasing or not frame.index.is_unique:
        raise SystemExit(f"{SOURCE_FILE}: unexpected bad rows: {bad[:5]}")
    return frame.loc[:, list(BAR_COLUMNS)]


def week_open_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """Runs of equal UTC hour of the first bar after each gap longer than a day.

    One row per run: first and last such open, the hour, and how many opens. This is the
    evidence for the source's zone (the hour moves with New York's DST).
    """
    index = pd.DatetimeIndex(frame.index)
    stamps = index[(index.to_series().diff() > pd.Timedelta(days=1)).to_numpy()]
    opens = pd.DataFrame({"stamp": stamps, "hour": stamps.hour})
    run = (opens["hour"] != opens["hour"].shift()).cumsum()
    return opens.groupby(run).agg(
        first=("stamp", "first"),
        last=("stamp", "last"),
        hour=("hour", "first"),
        opens=("hour", "size"),
    )


README = """# Test fixture: real hourly EUR/USD (ask), 2017

Real, not generated: hourly EUR/USD ask bars (OHLC and tick volume as supplied) for
{months}, from the file `{source}`
in the `{dist}` package (version {version}, MIT licence, below), in the raw layout
`EURUSD/<YYYY>/hist_data_YYYY-MM.csv` plus `EURUSD/_meta.json`. Built by `scripts/build_fixtures.py`
(`uv run --group sample python scripts/build_fixtures.py`); this README is generated.

## Time zone

The source timestamps (`DD.MM.YYYY HH:MM:SS.fff`) carry no zone. They are UTC: the FX
week opens Sunday 17:00 New York time. Hour of the first bar after each gap of more than a
day, over the whole 2017 source file:

| From | To | Hour (as in the file) | Openings |
|---|---|---|---|
{opens}

The open moves by an hour exactly at the US DST changes (2017-03-12 and 2017-11-05), as UTC
stamps of a New York-anchored session must (22:00 UTC in EST, 21:00 UTC in EDT; the 23:00
opening is Christmas Eve); a New York clock would show no shift and a European clock would
shift at the EU dates (2017-03-26, 2017-10-29). The fixture stores the same instants with
an explicit `+00:00` offset. Values are unchanged.

## What it exercises

- Weekend gaps: {weekends} gaps of one to three days (Friday close to Sunday open).
- DST: the weekly open and close move by an hour in UTC at the US changes (2017-03-12 in
  March, 2017-11-05 in November); the EU changes (2017-03-26, 2017-10-29) fall inside the
  kept months too.
- Holidays: Christmas (the week reopens Sunday 2017-12-24 23:00, then trading pauses on
  2017-12-25 from 07:00 to 22:00 UTC); the file ends on Friday 2017-12-29 21:00.
- A gap of months (April to September are not included): loaders must not assume
  consecutive month files.

| Month | Bars | First bar (UTC) | Last bar (UTC) |
|---|---|---|---|
{rows}

All {total} bars pass `find_bad_bars` (0 bad bars).

## Licence (gym-anytrading, `LICENSE`, verbatim)

{licence}
"""


def render_readme(kept: pd.DataFrame, source: pd.DataFrame, version: str) -> str:
    opens = "\n".join(
        f"| {r.first:%Y-%m-%d %H:%M} | {r.last:%Y-%m-%d %H:%M} | {r.hour:02d}:00 | {r.opens} |"
        for r in week_open_runs(source).itertuples()
    )
    rows = "\n".join(
        f"| {m} | {len(c)} | {c.index[0]:%Y-%m-%d %H:%M} | {c.index[-1]:%Y-%m-%d %H:%M} |"
        for m, c in ((m, kept.loc[m.start() : m.end() - pd.Timedelta(1)]) for m in MONTHS)
    )
    licence = (metadata.distribution(DIST).read_text("LICENSE") or "").strip()
    return README.format(
        months=", ".join(str(m) for m in MONTHS),
        source=SOURCE_FILE,
        dist=DIST,
        version=version,
        opens=opens,
        weekends=int(
            kept.index.to_series().diff().between(pd.Timedelta(days=1), pd.Timedelta(days=3)).sum()
        ),
        rows=rows,
        total=len(kept),
        licence="\n".join(f"> {line}".rstrip() for line in licence.splitlines()),
    )


def main() -> None:
    version = metadata.version(DIST)
    source = load_source()
    store = RawBarStore(FIXTURE_DIR)
    chunks = [source.loc[m.start() : m.end() - pd.Timedelta(1)] for m in MONTHS]
    for month, chunk in zip(MONTHS, chunks, strict=True):
        store.write_month(ASSET.name, month, chunk)
    store.write_meta(
        ASSET.name,
        {
            "provider": "fixture",
            "contract": ASSET.model_dump(exclude={"name"}),
            "bar_size": "1 hour",
            "what_to_show": "ASK",
            "feed": None,
            "source": {"package": DIST, "version": version, "file": SOURCE_FILE},
            "licence": "MIT",
            "source_timezone": "UTC (naive in the source file)",
            "first_month": str(MONTHS[0]),
            "last_complete_month": str(MONTHS[-1]),
        },
    )
    kept = pd.concat(chunks)
    text = render_readme(kept, source, version)
    with atomic_path(FIXTURE_DIR / "README.md") as tmp:
        tmp.write_text(text, encoding="utf-8")
    print(f"fixture: {len(kept)} hourly bars in {len(MONTHS)} month files -> {FIXTURE_DIR}")


if __name__ == "__main__":
    main()

"""Benchmark ``algotrader data_cleaning`` on GENERATED hourly bars (not real prices).

Generates ``--assets`` assets x ``--years`` years of hourly bars in the raw layout
(``DATA_SOURCE/<asset>/<YYYY>/hist_data_YYYY-MM.csv``) and times ``run_data_cleaning`` end
to end, split into load / aggregate / write, with the peak resident memory.

The generated data imitates real trading calendars: half the assets trade like FX (hourly
bars from Sunday 22:00 to Friday 21:00 UTC, so Sunday bars exist and must be dropped),
half like US equities (7 hourly bars from 09:30 New York time, so the UTC hours move with
daylight saving time). Each asset misses a few random weekdays a year (holidays) and a few
random hours; a tenth of the assets start one to five years late. Prices are a geometric
random walk with consistent OHLC.

Run (no arguments needed)::

    uv run python benchmarks/bench_data_cleaning.py            # 100 assets x 10 years
    uv run python benchmarks/bench_data_cleaning.py --assets 10 --years 2   # quick check

The data is generated in a child process, so that the peak memory reported is the
cleaning run's (plus the interpreter and its imports), not the generator's.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

FIRST_YEAR = 2014


def _fx_hours(start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    hours = pd.date_range(start, end, freq="h", inclusive="left")
    dow, hour = hours.day_of_week, hours.hour
    # FX trades from Sunday 22:00 UTC to Friday 21:00 UTC (the last bar starts at 20:00).
    closed = (dow == 5) | ((dow == 6) & (hour < 22)) | ((dow == 4) & (hour >= 21))
    return hours[~closed]


def _equity_hours(start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    days = pd.date_range(start.tz_convert(None), end.tz_convert(None), freq="B", inclusive="left")
    local = days.repeat(7) + pd.to_timedelta(np.tile(np.arange(7) * 60 + 570, len(days)), "min")
    return local.tz_localize("America/New_York").tz_convert("UTC")


def generated_bars(
    kind: str, years: int, late_years: int, rng: np.random.Generator
) -> pd.DataFrame:
    """Generated hourly bars (bar-frame contract) of one asset."""
    start = pd.Timestamp(f"{FIRST_YEAR + late_years}-01-01", tz="UTC")
    end = pd.Timestamp(f"{FIRST_YEAR + years}-01-01", tz="UTC")
    stamps = _fx_hours(start, end) if kind == "fx" else _equity_hours(start, end)
    utc_days = stamps.normalize()
    unique_days = utc_days.unique()
    holidays = rng.choice(unique_days, size=min(len(unique_days), 3 * years), replace=False)
    keep = ~utc_days.isin(holidays) & (rng.random(len(stamps)) > 0.001)
    stamps = stamps[keep]
    n = len(stamps)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, n)))
    open_ = np.r_[100.0, close[:-1]] * np.exp(rng.normal(0.0, 0.0003, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.001, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.001, n)))
    frame = pd.DataFrame(
        {
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.integers(100, 10_000, n).astype(np.float64),
        },
        index=pd.DatetimeIndex(stamps, name="timestamp"),
    )
    # Rounding is monotone, so high >= max(open, close) and low <= min(open, close) survive.
    return frame.round(4)


def write_raw_layout(root: Path, asset: str, bars: pd.DataFrame) -> int:
    """Write one asset's bars as monthly files; returns the number of files.

    Benchmark set-up only: the temp files are written directly (no fsync per file as the
    project's atomic writers do), which keeps generating 12,000 files fast.
    """
    text = bars.to_csv(date_format="%Y-%m-%dT%H:%M:%S+00:00", lineterminator="\n")
    header, _, body = text.partition("\n")
    lines = body.splitlines(keepends=True)
    months = np.asarray(pd.DatetimeIndex(bars.index).strftime("%Y-%m"))
    bounds = np.flatnonzero(np.r_[True, months[1:] != months[:-1], True])
    for lo, hi in itertools.pairwise(bounds):
        month = str(months[lo])
        path = root / asset / month[:4] / f"hist_data_{month}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + "\n" + "".join(lines[lo:hi]), encoding="utf-8")
    return len(bounds) - 1


def generate(root: Path, n_assets: int, years: int, seed: int = 7) -> None:
    """Generate the whole raw layout under ``root`` (called in a child process)."""
    rng = np.random.default_rng(seed)
    rows = files = 0
    for i in range(n_assets):
        kind = "fx" if i % 2 == 0 else "equity"
        late = int(rng.integers(1, 6)) if i % 10 == 9 and years > 5 else 0
        bars = generated_bars(kind, years, late, rng)
        files += write_raw_layout(root, f"GEN{i:03d}", bars)
        rows += len(bars)
    print(f"generated {n_assets} assets, {files} monthly files, {rows:,} hourly bars", flush=True)


def _maxrss_mib() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(root: Path) -> None:
    """Time run_data_cleaning on the raw layout under ``root``."""
    from algo_trader.application.data_cleaning.run import run_data_cleaning
    from algo_trader.infrastructure.data.raw_store import Month
    from algo_trader.infrastructure.env import load_settings

    os.environ["DATA_SOURCE"] = str(root / "raw")
    os.environ["DATA_LAKE_SOURCE"] = str(root / "lake")
    settings = load_settings(env_file=None)
    rss_before = _maxrss_mib()
    began = time.perf_counter()
    result = run_data_cleaning(settings, Month(FIRST_YEAR, 1), None, "simple", None, "raise")
    wall = time.perf_counter() - began
    print(f"outputs: {result.out_dir}")
    for line in result.summary_lines():
        print(f"  {line}")
    phases = ", ".join(f"{k} {v:.2f} s" for k, v in result.timings.items())
    print(f"wall time: {wall:.2f} s ({phases}); cpu_count={os.cpu_count()}")
    print(f"peak RSS: {_maxrss_mib():.0f} MiB (before the run: {rss_before:.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=100)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--generate-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate_only is not None:
        generate(args.generate_only, args.assets, args.years)
        return
    with tempfile.TemporaryDirectory(prefix="bench_data_cleaning_") as tmp:
        root = Path(tmp)
        began = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--assets",
                str(args.assets),
                "--years",
                str(args.years),
                "--generate-only",
                str(root / "raw"),
            ],
            check=True,
        )
        print(f"(generation took {time.perf_counter() - began:.1f} s, not timed below)")
        bench(root)


if __name__ == "__main__":
    main()

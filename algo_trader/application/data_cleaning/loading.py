"""Load the selected assets' raw bars, one asset per task, in parallel.

Workers: ``max(1, os.cpu_count() - 1)`` capped by the number of assets (the spec), in a
thread pool. Threads rather than processes: much of the per-asset time is in pandas' C
tokenizer and float parser and in file reads, which release the GIL; threads hand the
frames back without pickling, start at once, and leave Ctrl-C to the main thread. A
process pool would either fork a parent that may run a progress-bar thread (unsafe) or
start fresh interpreters that re-import pandas and torch (a ``forkserver`` pool took
over 30 s to load 12 assets on the loaded 2-core dev machine, against 1.5 s serially).
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor, as_completed

from algo_trader.domain.errors import ConfigError, DataError
from algo_trader.infrastructure.data.bar_csv import InvalidBars
from algo_trader.infrastructure.data.raw_reader import LoadedAsset, load_asset
from algo_trader.infrastructure.data.raw_store import Month, RawBarStore
from algo_trader.infrastructure.progress import progress_bar


def worker_count(n_assets: int, cpus: int | None = None) -> int:
    """``max(1, cpus - 1)`` capped by ``n_assets`` (``cpus`` defaults to ``os.cpu_count()``)."""
    available = os.cpu_count() if cpus is None else cpus
    return max(1, min(n_assets, (available or 1) - 1))


def select_assets(store: RawBarStore, wanted: list[str] | None) -> list[str]:
    """The assets to clean: all in the store, or ``wanted`` after checking each exists.

    Raises
    ------
    DataError
        When the store holds no asset at all.
    ConfigError
        When a wanted asset has no folder with monthly files; lists the available ones.
    """
    available = store.assets()
    if not available:
        raise DataError(
            "no raw bars found; run `algotrader historical` first (or set DATA_SOURCE)",
            path=store.root,
        )
    if wanted is None:
        return available
    unknown = [a for a in wanted if a not in available]
    if unknown:
        raise ConfigError(
            f"--assets: unknown asset(s) {', '.join(unknown)} under {store.root}; "
            f"available: {', '.join(available)}"
        )
    return sorted(dict.fromkeys(wanted))


def load_assets(
    store: RawBarStore,
    assets: list[str],
    start: Month,
    end: Month | None,
    invalid_bars: str,
) -> list[LoadedAsset]:
    """Load every asset's months ``start..end`` in parallel; results in ``assets`` order.

    The first failing asset's error is raised after the tasks not yet started are
    cancelled (the running ones finish; nothing has been written yet).
    """
    if invalid_bars not in ("raise", "drop"):
        raise ConfigError(f"--invalid-bars {invalid_bars!r} is not one of raise, drop")
    policy: InvalidBars = "drop" if invalid_bars == "drop" else "raise"
    loaded: dict[str, LoadedAsset] = {}
    pool = ThreadPoolExecutor(worker_count(len(assets)), thread_name_prefix="load")
    try:
        with progress_bar("data_cleaning: loading assets", len(assets)) as tracker:
            futures: dict[Future[LoadedAsset], str] = {
                pool.submit(load_asset, store, a, start, end, policy): a for a in assets
            }
            for future in as_completed(futures):
                loaded[futures[future]] = future.result()
                tracker.advance()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return [loaded[a] for a in assets]

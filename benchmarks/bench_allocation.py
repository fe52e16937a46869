"""Benchmark the allocation policies on GENERATED predictive samples (not real data).

Each week draws ``--samples`` x ``--assets`` predictive samples of weekly returns from a
one-factor model (factor vol 2 %, idiosyncratic vol 1-5 %, asset drifts N(0, 0.4 %) that
wander from week to week), then runs every policy through ``--weeks`` consecutive weeks
with ``w_prev`` = the previous week's weights, in three settings:

* ``long_only``: fully invested, no cap (the default config);
* ``long_short``: 150/50 (gross 2, net 1), ``max_weight`` 5 %;
* ``+penalty``: each above with a 5 bps turnover penalty (optimizing policies only).

Prints the median and the maximum seconds per week. OpenBLAS is pinned to one thread
unless ``OPENBLAS_NUM_THREADS`` is set: on a small shared machine a multi-threaded BLAS
oversubscribes the cores and makes a 400 x 400 Cholesky ~50x slower.

Run::

    uv run python benchmarks/bench_allocation.py                      # A=100, S=500
    uv run python benchmarks/bench_allocation.py --assets 20 --weeks 3   # quick
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import statistics
import time

import numpy as np

from algo_trader.application.simulation.allocation import allocate
from algo_trader.domain.simulation.config import AllocationConfig

POLICIES = ("equal_weight", "sign_of_mean", "mean_variance", "min_cvar")
OPTIMIZING = ("mean_variance", "min_cvar")


def generated_weeks(n_weeks: int, n_samples: int, n_assets: int, seed: int) -> list[np.ndarray]:
    """Predictive samples per week from a one-factor model (generated, not real)."""
    rng = np.random.default_rng(seed)
    beta = rng.uniform(0.5, 1.5, n_assets)
    idio = rng.uniform(0.01, 0.05, n_assets)
    drift = rng.normal(0.0, 0.004, n_assets)
    weeks = []
    for _ in range(n_weeks):  # weeks are drawn one by one only to let the drift wander
        drift = 0.9 * drift + rng.normal(0.0, 0.002, n_assets)
        factor = rng.normal(0.0, 0.02, (n_samples, 1))
        weeks.append(drift + beta * factor + idio * rng.normal(size=(n_samples, n_assets)))
    return weeks


def settings() -> dict[str, dict[str, object]]:
    long_short: dict[str, object] = {
        "long_only": False,
        "gross_leverage": 2.0,
        "net_exposure": 1.0,
        "max_weight": 0.05,
    }
    return {
        "long_only": {},
        "long_only+penalty": {"turnover_penalty": 5e-4},
        "long_short": long_short,
        "long_short+penalty": {**long_short, "turnover_penalty": 5e-4},
    }


def time_walk(weeks: list[np.ndarray], cfg: AllocationConfig) -> list[float]:
    w_prev = np.zeros(weeks[0].shape[1])
    seconds = []
    for samples in weeks:  # sequential by nature: each week starts from the last weights
        start = time.perf_counter()
        w_prev = allocate(samples, w_prev, cfg)
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=100)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--weeks", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    weeks = generated_weeks(args.weeks, args.samples, args.assets, args.seed)
    print(
        f"generated samples: A={args.assets} S={args.samples}, {args.weeks} weeks; "
        f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}"
    )
    print(f"{'policy':<15}{'setting':<21}{'median s/week':>14}{'max s/week':>12}")
    for policy in POLICIES:
        for name, values in settings().items():
            if "turnover_penalty" in values and policy not in OPTIMIZING:
                continue
            cfg = AllocationConfig(policy=policy, **values)  # type: ignore[arg-type]
            seconds = time_walk(weeks, cfg)
            print(f"{policy:<15}{name:<21}{statistics.median(seconds):>14.4f}{max(seconds):>12.4f}")


if __name__ == "__main__":
    main()

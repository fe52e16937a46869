"""Benchmark the scoring kernels on GENERATED predictive draws (not real data).

Draws ``--samples`` x ``--weeks`` x ``--assets`` float64 values from a correlated Gaussian
(a random factor covariance, seed ``--seed``) and an independent "truth" from the same
distribution, then measures in one run:

* :func:`energy_score_per_week` (blocks of weeks through ``torch.cdist``), against
  ``scoringrules.es_ensemble`` with its numba backend (the fastest one available here: its
  numpy backend builds a ``T x S x S x A`` array, ~10 GB at full size) on the same inputs,
  numba compiled beforehand and not timed; the relative error of ours against it;
* :func:`sorted_summaries` (CRPS, 3 quantiles and PIT from one sort).

Each timing is the median of ``--repeats`` runs. Peak memory is the growth of the process's
resident high-water mark (``ru_maxrss``) over the run, measured in a fresh child process per
kernel so the other kernel and the input generation are not counted.

Run::

    uv run python benchmarks/bench_energy_score.py                  # T=52, S=500, A=100
    uv run python benchmarks/bench_energy_score.py --samples 100    # quick
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import torch

from algo_trader.application.simulation.scoring import energy_score_per_week, sorted_summaries

KIB = 1024


def generated_inputs(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """``(samples (S, T, A), truth (T, A))`` from a random factor-model Gaussian."""
    rng = np.random.default_rng(args.seed)
    loadings = rng.normal(size=(args.assets, 3))
    chol = np.linalg.cholesky(loadings @ loadings.T + np.eye(args.assets))
    draws = rng.normal(size=(args.samples + 1, args.weeks, args.assets)) @ chol.T
    return draws[1:], draws[0]


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall seconds of ``repeats`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _ours_es(samples: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return energy_score_per_week(torch.from_numpy(samples), torch.from_numpy(truth)).numpy()


def _reference_es(samples: np.ndarray, truth: np.ndarray) -> np.ndarray:
    import scoringrules

    return np.asarray(scoringrules.es_ensemble(truth, samples.transpose(1, 0, 2), backend="numba"))


def _summaries(samples: np.ndarray, truth: np.ndarray) -> torch.Tensor:
    out = sorted_summaries(torch.from_numpy(samples), torch.from_numpy(truth), (0.05, 0.5, 0.95))
    return out.crps


KERNELS = {"ours_es": _ours_es, "reference_es": _reference_es, "summaries": _summaries}


def child(name: str, args: argparse.Namespace) -> tuple[float, int, np.ndarray]:
    """Run one kernel in this fresh process: warm up, time, and report its peak memory."""
    if args.threads:
        torch.set_num_threads(args.threads)
    samples, truth = generated_inputs(args)
    fn = KERNELS[name]
    fn(samples[:4, :2], truth[:2])  # compiles numba / loads torch kernels, not timed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds, result = timed(lambda: fn(samples, truth), args.repeats)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    return seconds, peak * KIB, np.asarray(result)


def run_in_child(name: str, args: argparse.Namespace) -> tuple[float, int, np.ndarray]:
    """:func:`child` in a fresh process (its errors are raised here)."""
    context = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(child, name, args).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--assets", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)  # reported below; each child sets it too
    print(
        f"generated inputs: T={args.weeks} S={args.samples} A={args.assets} float64, "
        f"torch threads {torch.get_num_threads()}"
    )
    ours_t, ours_mem, ours = run_in_child("ours_es", args)
    ref_t, ref_mem, ref = run_in_child("reference_es", args)
    sum_t, sum_mem, _ = run_in_child("summaries", args)
    rel = float(np.max(np.abs(ours - ref) / np.abs(ref)))
    report("energy score, ours (cdist blocks)", ours_t, ours_mem)
    report("energy score, scoringrules numba", ref_t, ref_mem)
    print(f"speed-up {ref_t / ours_t:.1f}x, max relative error per week {rel:.2e}")
    report("CRPS + 3 quantiles + PIT (one sort)", sum_t, sum_mem)


def report(label: str, seconds: float, peak_bytes: int) -> None:
    print(f"{label:<38} {seconds * 1e3:9.1f} ms  peak +{peak_bytes / 1e6:7.1f} MB")


if __name__ == "__main__":
    main()

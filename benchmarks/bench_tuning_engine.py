"""Benchmark ``tuning.engine``: the stub simulation on the bundled sample, local vs Ray.

Prepares the bundled real daily sample once (``algotrader historical`` -> ``data_cleaning``
-> ``feature_engineering`` into a temporary folder, not timed), then times
``run_simulation`` of ``config/simulation_stub.yml`` (2 outer folds x 21 inner splits x 4
candidates) with

* ``tuning.engine: local`` (the sequential loop in this process),
* ``tuning.engine: ray`` on a local Ray started with ``--cpus`` CPUs each (default 1 and 2;
  one trial per CPU at ``tuning.resources.cpu: 1``),

each the median of ``--repeats`` runs after one warm-up run. Ray's start-up is timed
separately (it is paid once per run by ``algotrader simulation``, not per fold). Every run
must choose the same candidates; the script checks it. Needs the ``ray`` extra
(``uv sync --extra ray``).

Run::

    uv run python benchmarks/bench_tuning_engine.py
    uv run python benchmarks/bench_tuning_engine.py --cpus 1 2 4 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from algo_trader.application.simulation.runner import run_simulation
from algo_trader.infrastructure.env import load_settings

ROOT = Path(__file__).resolve().parents[1]
STUB = ROOT / "config" / "simulation_stub.yml"


SAMPLE_START = "2004-08"  # the bundled sample's first month


def prepare() -> None:
    """The sample pipeline up to the feature store (not timed), into the env's folders."""
    for command in (
        ["historical"],
        ["data_cleaning", "--start", SAMPLE_START],
        ["feature_engineering"],
    ):
        subprocess.run(
            [sys.executable, "-m", "algo_trader.cli.main", *command],
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )


def write_config(work: Path, engine: str) -> Path:
    config = yaml.safe_load(STUB.read_text(encoding="utf-8"))
    config["tuning"]["engine"] = engine
    config["data"]["simulation_output_path"] = f"bench_{engine}"
    path = work / f"stub_{engine}.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def time_runs(config: Path, repeats: int) -> tuple[float, dict[int, str]]:
    """Median wall time of ``repeats`` runs (the panel inputs are reused after the first,
    untimed, run); the chosen candidates."""
    best = run_simulation(load_settings(), config).best
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run_simulation(load_settings(), config)
        times.append(time.perf_counter() - start)
        assert result.best == best, "a rerun chose other candidates"
    return statistics.median(times), best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    import ray

    logging.disable(logging.INFO)  # the progress bars and INFO lines are not the point here
    with tempfile.TemporaryDirectory(prefix="bench_tuning_") as tmp:
        work = Path(tmp)
        for name, sub in (
            ("DATA_SOURCE", "raw"),
            ("DATA_LAKE_SOURCE", "lake"),
            ("FEATURE_STORE_SOURCE", "fs"),
            ("SIMULATION_SOURCE", "sim"),
        ):
            os.environ[name] = str(work / sub)
        started = time.perf_counter()
        prepare()
        print(f"sample prepared in {time.perf_counter() - started:.1f} s (not timed below)")
        local, best = time_runs(write_config(work, "local"), args.repeats)
        print(f"engine local            : {local:7.1f} s   best {best}")
        for cpus in args.cpus:
            started = time.perf_counter()
            ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
            boot = time.perf_counter() - started
            wall, chosen = time_runs(write_config(work, "ray"), args.repeats)
            ray.shutdown()
            same = "same" if chosen == best else f"DIFFERENT {chosen}"
            print(
                f"engine ray, {cpus} CPU(s)  : {wall:7.1f} s   (+ Ray start {boot:.1f} s; "
                f"x{local / wall:.2f} vs local; {same} candidates)"
            )
        summary = json.loads((work / "sim" / "bench_ray" / "cv" / "summary.json").read_text())
        print(f"{summary['n_candidates']} candidates, folds {[f['k'] for f in summary['folds']]}")


if __name__ == "__main__":
    main()

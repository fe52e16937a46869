"""Benchmark: one candidate on every inner split of one outer fold of the sample config.

Real data: the bundled sample (download -> cleaning -> features into a temp folder, or
``--root`` to reuse one), ``config/simulation.yml`` (factor_model_v1, its first candidate,
prebuild on), the last outer fold's CPCV splits preprocessed as the simulation does. In one
run it fits that candidate on every split

* **one fit after the other** with the project's single-fit trainer (what a plain
  per-split loop does; same likelihood and optimizer, so this isolates batching), and
* **batched**: the same fits as one vectorized SVI program (``hooks.pyro_fit_many``,
  what ``simulation_mode: full`` runs),

and reports milliseconds per model-step (one optimizer step of one fit) for both.
The generated-data comparison against stock Pyro (``AutoNormal``, ``dist.StudentT``) is
``bench_batched_fit.py``.

Run::

    uv run python benchmarks/bench_sample_inner_fold.py
    uv run python benchmarks/bench_sample_inner_fold.py --steps 50    # quick
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch

from algo_trader.application.simulation.candidates import generate_candidates
from algo_trader.application.simulation.hooks import (
    HookConfig,
    pyro_fit_many,
    pyro_fit_model,
)
from algo_trader.application.simulation.inner_objective import prepare_split
from algo_trader.application.simulation.panel import build_panel
from algo_trader.application.simulation.prebuild import run_prebuild
from algo_trader.application.simulation.runner import build_cv
from algo_trader.domain.simulation.config import (
    load_simulation_config,
    with_overrides,
)
from algo_trader.infrastructure.data.layout import latest_week_dir

CONFIG = Path(__file__).resolve().parents[1] / "config" / "simulation.yml"


def build_sample_store(root: Path) -> None:
    """The real stages on the bundled sample, into ``root``."""
    from algo_trader.cli.main import main

    for name, sub in (
        ("DATA_SOURCE", "raw"),
        ("DATA_LAKE_SOURCE", "lake"),
        ("FEATURE_STORE_SOURCE", "fs"),
    ):
        os.environ[name] = str(root / sub)
    if not (root / "fs").is_dir():
        assert main(["historical"]) == 0
        assert main(["data_cleaning", "--start", "2004-08"]) == 0
        assert main(["feature_engineering"]) == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=None, help="reuse a sample store here")
    parser.add_argument("--steps", type=int, default=300, help="SVI steps per fit")
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = args.root or Path(tempfile.mkdtemp(prefix="bench_inner_fold_"))
    build_sample_store(root)

    config = load_simulation_config(CONFIG)
    params = config.data.dataset_params
    panel = build_panel(
        latest_week_dir(root / "fs"),
        latest_week_dir(root / "lake") / "return_tensor.pt",
        params.groups,
        params.target_shift,
        params.target_scale,
        params.prefix_feature_names,
    )
    cv = build_cv(config, panel.X.shape[0])
    config = run_prebuild(config, panel, cv.folds, root / "prebuild")
    first = next(iter(generate_candidates(config.tuning).values()))
    config = with_overrides(
        config,
        {
            **first,
            "training.svi.num_steps": args.steps,
            "training.svi.early_stopping.enabled": False,
        },
    )
    fold = cv.folds[-1]
    prepared = [prepare_split(panel, s, config, fold.k) for s in cv.splits[fold.k]]
    items = [(p.X_train, p.y_train, HookConfig(config, seed=i)) for i, p in enumerate(prepared)]
    model_steps = len(items) * args.steps
    print(
        f"sample panel {tuple(panel.X.shape)}, outer fold {fold.k}: {len(items)} inner "
        f"splits, {args.steps} steps each, candidate {first}"
    )

    start = time.perf_counter()
    for X, y, hc in items:
        pyro_fit_model(X, y, hc, None)
    sequential = time.perf_counter() - start
    start = time.perf_counter()
    pyro_fit_many(items)
    batched = time.perf_counter() - start

    seq_ms = 1000 * sequential / model_steps
    bat_ms = 1000 * batched / model_steps
    print(f"one fit after the other: {sequential:7.2f} s  {seq_ms:6.3f} ms per model-step")
    print(f"batched (one program):   {batched:7.2f} s  {bat_ms:6.3f} ms per model-step")
    print(f"speed-up: {seq_ms / bat_ms:.1f}x")


if __name__ == "__main__":
    main()

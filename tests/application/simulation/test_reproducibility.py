"""Bit-for-bit reproducibility: the same config, seeds and inputs give the same bytes.

Two uninterrupted runs into the same folder (the first moved away in between, so that
paths recorded in the artifacts are equal) are compared file by file; only the manifest's
wall-clock fields (``manifest.WALL_CLOCK_FIELDS``) are left out. Inputs are generated
(seeded normal draws), not market data.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from algo_trader.application.simulation.manifest import MANIFEST_FILE, WALL_CLOCK_FIELDS
from algo_trader.application.simulation.runner import run_simulation
from algo_trader.infrastructure.data.atomic import save_tensor
from algo_trader.infrastructure.data.layout import tensor_payload
from algo_trader.infrastructure.env import load_settings

N_WEEKS = 61
ASSETS = ["AAA", "BBB", "CCC"]


def write_inputs(root: Path) -> None:
    """Generated feature store and data lake (seeded normal draws)."""
    rng = np.random.default_rng(1)
    weeks = pd.date_range("2020-01-03", periods=N_WEEKS, freq="7D", tz="UTC")
    features = rng.normal(size=(N_WEEKS, 3, 3))
    features[5:9, 1, 0] = np.nan
    save_tensor(
        root / "data/feature_store/2021-09/momentum/features_tensor.pt",
        tensor_payload(features, weeks, ASSETS, ["z_mom_4w", "z_mom_12w", "z_mom_26w"]),
    )
    returns = rng.normal(0.001, 0.02, size=(N_WEEKS, 3))
    returns[0] = np.nan
    save_tensor(
        root / "data/data_lake/2021-09/return_tensor.pt", tensor_payload(returns, weeks, ASSETS)
    )


def write_config(root: Path, mode: str, **extra: Any) -> Path:
    config: dict[str, Any] = {
        "simulation_mode": mode,
        "data": {"simulation_output_path": "run"},
        "cv": {"warmup_len": 12, "group_len": 8, "horizon": 1, "embargo_len": 1, "q": 2},
        "outer": {"test_groups": "last_n", "last_n": 2},
        "tuning": {
            "num_samples": 2,
            "seed": 5,
            "space": [
                {
                    "path": "training.svi.learning_rate",
                    "type": "float",
                    "bounds": [0.001, 0.1],
                    "transform": "log10",
                }
            ],
        },
        "predictive": {"num_samples": 32},
        **extra,
    }
    path = root / "simulation.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def run_bytes(folder: Path) -> dict[str, bytes]:
    """Every file's bytes; the manifest without its wall-clock fields."""
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name == MANIFEST_FILE:
            manifest = json.loads(data)
            for key in WALL_CLOCK_FIELDS:
                manifest.pop(key)
            data = json.dumps(manifest, sort_keys=True).encode()
        out[path.relative_to(folder).as_posix()] = data
    return out


def twice(root: Path, config: Path) -> tuple[dict[str, bytes], dict[str, bytes]]:
    first = run_simulation(load_settings(), config).out_dir
    expected = run_bytes(first)
    shutil.rmtree(first)
    second = run_simulation(load_settings(), config).out_dir
    return expected, run_bytes(second)


@pytest.fixture
def work(isolated_env: Path) -> Path:
    write_inputs(isolated_env)
    return isolated_env


def test_save_tensor_gives_the_same_bytes_for_the_same_payload(tmp_path: Path) -> None:
    """torch.save names its zip folder after the file: the temp name must not leak in."""
    payload = {"x": torch.arange(4, dtype=torch.float64), "names": ["a", "b"]}
    save_tensor(tmp_path / "a.pt", payload)
    save_tensor(tmp_path / "b.pt", payload)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


def test_two_stub_runs_give_identical_bytes(work: Path) -> None:
    expected, actual = twice(work, write_config(work, "stub"))
    assert len(expected) > 20 and any(name.endswith(".pt") for name in expected)
    assert sorted(actual) == sorted(expected)
    assert [name for name in expected if actual[name] != expected[name]] == []


def test_manifest_differs_only_in_wall_clock_fields(work: Path) -> None:
    config = write_config(work, "stub", stop_after="cv")
    first = run_simulation(load_settings(), config).out_dir
    before = json.loads((first / MANIFEST_FILE).read_text("utf-8"))
    shutil.rmtree(first)
    run_simulation(load_settings(), config)
    after = json.loads((first / MANIFEST_FILE).read_text("utf-8"))
    assert set(WALL_CLOCK_FIELDS) == {"started", "finished"}
    assert {k for k in before if before[k] != after[k]} <= set(WALL_CLOCK_FIELDS)


@pytest.mark.slow
def test_two_full_runs_with_a_tiny_svi_budget_give_identical_bytes(work: Path) -> None:
    svi = {"svi": {"num_steps": 5, "log_every": 5}}
    outer = {"test_groups": "last_n", "last_n": 2, "warm_start_steps": 2}
    config = write_config(work, "full", training=svi, outer=outer)
    expected, actual = twice(work, config)
    assert sorted(actual) == sorted(expected)
    assert [name for name in expected if actual[name] != expected[name]] == []

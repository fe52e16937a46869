"""Bad inputs of the audit table (docs/bad_input_audit.md) not covered by other tests.

Corrupt or truncated artifacts, a simulated full disk, and the no-pickle / no-NaN-token
guarantees of the writers. Every case expects the project's clear error (or, for the OS
failures, the OS error naming the file with the previous file left intact).
"""

from __future__ import annotations

import errno
import functools
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from algo_trader.application.simulation.panel import (
    build_panel,
    load_feature_store_panel,
)
from algo_trader.domain.errors import DataError
from algo_trader.infrastructure.data import atomic
from algo_trader.infrastructure.data.atomic import load_tensor, save_tensor, write_json
from algo_trader.infrastructure.data.layout import tensor_payload

WEEKS = pd.date_range("2020-01-03", periods=6, freq="7D", tz="UTC")


def _stores(root: Path, features: np.ndarray | None = None) -> tuple[Path, Path]:
    """Generated one-group feature store and data lake (seeded draws)."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(6, 2, 1)) if features is None else features
    fs = root / "fs"
    save_tensor(
        fs / "2020-06" / "mom" / "features_tensor.pt",
        tensor_payload(values, WEEKS, ["A", "B"], ["z_mom_4w"]),
    )
    lake = root / "lake"
    save_tensor(
        lake / "2020-06" / "return_tensor.pt",
        tensor_payload(rng.normal(size=(6, 2)), WEEKS, ["A", "B"]),
    )
    return fs, lake


def _load(root: Path) -> object:
    fs, lake = _stores(root) if not (root / "fs").exists() else (root / "fs", root / "lake")
    return load_feature_store_panel(root / "sim", fs, lake, "all", 1, 1.0, True)


def test_zero_byte_panel_tensor(tmp_path: Path) -> None:
    panel = tmp_path / "sim" / "inputs" / "panel_tensor.pt"
    panel.parent.mkdir(parents=True)
    panel.write_bytes(b"")
    with pytest.raises(DataError, match=r"panel_tensor\.pt"):
        _load(tmp_path)


def test_truncated_panel_tensor(tmp_path: Path) -> None:
    _load(tmp_path)  # builds (does not write) the panel: write a real one, then cut it
    panel = tmp_path / "sim" / "inputs" / "panel_tensor.pt"
    save_tensor(panel, {"X": torch.zeros(3, 2, 1)})
    panel.write_bytes(panel.read_bytes()[:40])
    with pytest.raises(DataError, match=r"panel_tensor\.pt"):
        _load(tmp_path)


def test_panel_tensor_with_wrong_shape(tmp_path: Path) -> None:
    panel = tmp_path / "sim" / "inputs" / "panel_tensor.pt"
    payload = {
        "X": torch.zeros(5, 2, 1, dtype=torch.float64),
        "y": torch.zeros(4, 2, dtype=torch.float64),  # one row short
        "missing_mask": torch.zeros(5, 2, 1, dtype=torch.bool),
        "y_missing_mask": torch.zeros(4, 2, dtype=torch.bool),
        "timestamps": torch.arange(5, dtype=torch.int64),
        "assets": ["A", "B"],
        "features": ["f"],
        "sources": {},
    }
    save_tensor(panel, payload)
    with pytest.raises(DataError, match="shapes are inconsistent; delete it to rebuild it"):
        _load(tmp_path)


def test_feature_tensor_with_inf_where_the_mask_says_observed(tmp_path: Path) -> None:
    values = np.random.default_rng(1).normal(size=(6, 2, 1))
    values[2, 1, 0] = np.inf
    fs, lake = _stores(tmp_path, values)
    with pytest.raises(DataError, match=r"infinite value at row 2 .*asset 'B'"):
        build_panel(fs / "2020-06", lake / "2020-06" / "return_tensor.pt", "all", 1, 1.0, True)


def test_feature_tensor_with_wrong_rank(tmp_path: Path) -> None:
    fs, lake = _stores(tmp_path)
    path = fs / "2020-06" / "mom" / "features_tensor.pt"
    payload = load_tensor(path)
    payload["values"] = payload["values"][:, :, 0]  # (T, A): a group tensor must be 3-D
    save_tensor(path, payload)
    with pytest.raises(DataError, match="values must be 3-D"):
        build_panel(fs / "2020-06", lake / "2020-06" / "return_tensor.pt", "all", 1, 1.0, True)


def test_full_disk_keeps_the_previous_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out" / "metrics.json"
    write_json(path, {"a": 1})

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", no_space)
    with pytest.raises(OSError, match="No space left") as info:
        write_json(path, {"a": 2})
    assert info.value.errno == errno.ENOSPC
    assert json.loads(path.read_text(encoding="utf-8")) == {"a": 1}
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]


def test_json_nan_is_written_as_null_never_as_a_token(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    write_json(path, {"x": float("nan"), "y": [1.0, float("nan")]})
    text = path.read_text(encoding="utf-8")
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"x": None, "y": [1.0, None]}


def test_saved_tensors_load_without_pickle(tmp_path: Path) -> None:
    fs, lake = _stores(tmp_path)
    for path in [*fs.rglob("*.pt"), *lake.rglob("*.pt")]:
        torch.load(path, weights_only=True)


def _stub_run_inputs(root: Path) -> Path:
    """Generated feature store, data lake and a small stub config (seeded draws)."""
    rng = np.random.default_rng(5)
    weeks = pd.date_range("2020-01-03", periods=61, freq="7D", tz="UTC")
    features = rng.normal(size=(61, 3, 2))
    features[4:7, 0, 1] = np.nan  # missing features: NaN in artifacts must become null
    save_tensor(
        root / "data" / "feature_store" / "2021-09" / "mom" / "features_tensor.pt",
        tensor_payload(features, weeks, ["A", "B", "C"], ["z_mom_4w", "z_mom_12w"]),
    )
    returns = rng.normal(0.0, 0.02, size=(61, 3))
    returns[0] = np.nan
    save_tensor(
        root / "data" / "data_lake" / "2021-09" / "return_tensor.pt",
        tensor_payload(returns, weeks, ["A", "B", "C"]),
    )
    config = root / "simulation.yml"
    config.write_text(
        "simulation_mode: stub\n"
        "data: {simulation_output_path: run}\n"
        "cv: {warmup_len: 12, group_len: 8, horizon: 1, embargo_len: 1, q: 2, seed: 3}\n"
        "tuning:\n  num_samples: 2\n  space:\n"
        "    - {path: training.svi.learning_rate, type: float, bounds: [0.001, 0.1]}\n"
        "predictive: {num_samples: 16}\n",
        encoding="utf-8",
    )
    return config


@pytest.mark.slow
def test_a_stub_run_writes_no_pickle_and_no_nan_token(isolated_env: Path) -> None:
    from algo_trader.application.simulation.runner import run_simulation
    from algo_trader.infrastructure.env import load_settings

    result = run_simulation(load_settings(), _stub_run_inputs(isolated_env))
    tensors = sorted(result.out_dir.rglob("*.pt"))
    documents = sorted(result.out_dir.rglob("*.json"))
    assert tensors and len(documents) >= 5
    for path in tensors:
        torch.load(path, weights_only=True)  # raises on any pickled object
    for path in documents:
        text = path.read_text(encoding="utf-8")
        json.loads(text, parse_constant=functools.partial(_fail_on_token, path))


def test_read_only_output_folder_fails_before_any_half_written_file(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simulated (the tests run as root, whom chmod does not stop): creating the temp file
    in the output folder is refused with EACCES."""
    from algo_trader.application.simulation.runner import run_simulation
    from algo_trader.infrastructure.env import load_settings

    config = _stub_run_inputs(isolated_env)
    config.write_text(config.read_text(encoding="utf-8") + "stop_after: inputs\n", "utf-8")
    real_mkstemp = atomic.tempfile.mkstemp
    simulation = isolated_env / "data" / "simulation"

    def read_only(*args: Any, **kwargs: Any) -> tuple[int, str]:
        folder = Path(kwargs["dir"]).resolve()
        if simulation in (folder, *folder.parents):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(folder))
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(atomic.tempfile, "mkstemp", read_only)
    with pytest.raises(PermissionError, match=r"Permission denied: .*simulation/run/inputs"):
        run_simulation(load_settings(), config)
    assert not [p for p in simulation.rglob("*") if p.is_file()]


def _fail_on_token(path: Path, token: str) -> None:
    pytest.fail(f"{path}: {token} token")

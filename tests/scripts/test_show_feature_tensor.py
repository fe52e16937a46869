"""``scripts/show_feature_tensor.sh``: argument handling (fast), a real run (slow: uv + torch)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from algo_trader.infrastructure.data.atomic import save_tensor
from algo_trader.infrastructure.data.layout import tensor_payload

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "show_feature_tensor.sh"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "UV_NO_SYNC": "1"}  # never let a test touch the shared venv
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_is_executable_bash_with_strict_mode() -> None:
    assert os.access(SCRIPT, os.X_OK)
    assert "set -euo pipefail" in SCRIPT.read_text()


def test_help() -> None:
    done = run("-h")
    assert done.returncode == 0
    assert done.stdout.startswith("Usage: scripts/show_feature_tensor.sh --group GROUP [--head N]")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--group GROUP is required"),
        (["--head", "3"], "--group GROUP is required"),
        (["--group", "momentum", "--head", "-1"], "--head must be a positive integer, got '-1'"),
        (["--group"], "--group needs a value"),
        (["momentum"], "unexpected argument 'momentum'"),
    ],
)
def test_bad_arguments(args: list[str], message: str) -> None:
    done = run(*args)
    assert done.returncode == 2
    assert message in done.stderr


@pytest.mark.slow
def test_shows_latest_group_tensor() -> None:
    index = pd.date_range("2024-01-05 21:00", periods=3, freq="7D", tz="UTC", name="timestamp")
    values = np.arange(12.0).reshape(3, 2, 2)
    values[0, 1, 0] = np.nan
    store = Path("data/feature_store")
    payload = tensor_payload(values, index, ["X", "Y"], ["mom_4", "mom_12"])
    save_tensor(store / "2024-02" / "momentum" / "features_tensor.pt", payload)
    save_tensor(store / "2024-03" / "volatility" / "features_tensor.pt", payload)
    done = run("--group=momentum", "--head", "1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "file: data/feature_store/2024-02/momentum/features_tensor.pt"
    assert "shape: 3 x 2 x 2 (time x asset x feature), dtype float64" in lines
    assert "features (2): mom_4, mom_12" in lines
    assert "missing: 1 of 12 cells (8.3%)" in lines
    assert [line.split() for line in lines[-2:]] == [
        ["2024-01-05T21:00:00+00:00", "X", "0.0", "1.0"],
        ["Y", "NaN", "3.0"],
    ]
    absent = run("--group", "regime")
    assert absent.returncode == 1
    assert "groups found: momentum, volatility" in absent.stderr

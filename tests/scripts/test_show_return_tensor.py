"""``scripts/show_return_tensor.sh``: argument handling (fast) and a real run (slow: uv + torch)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from algo_trader.infrastructure.data.atomic import save_tensor
from algo_trader.infrastructure.data.layout import tensor_payload

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "show_return_tensor.sh"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "UV_NO_SYNC": "1"}  # never let a test touch the shared venv
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_is_executable_bash_with_strict_mode() -> None:
    assert os.access(SCRIPT, os.X_OK)
    assert "set -euo pipefail" in SCRIPT.read_text()


def test_help() -> None:
    done = run("--help")
    assert done.returncode == 0
    assert done.stdout.startswith(
        "Usage: scripts/show_return_tensor.sh [--head N] [DATA_CLEANING_DIR]"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--head", "0"], "--head must be a positive integer, got '0'"),
        (["--head", "x"], "--head must be a positive integer, got 'x'"),
        (["--head"], "--head needs a value"),
        (["--bogus"], "unknown option '--bogus'"),
        (["a", "b"], "only one DATA_CLEANING_DIR"),
    ],
)
def test_bad_arguments(args: list[str], message: str) -> None:
    done = run(*args)
    assert done.returncode == 2
    assert message in done.stderr


@pytest.mark.slow
def test_shows_latest_tensor_from_env_file() -> None:
    index = pd.date_range("2024-01-05 21:00", periods=3, freq="7D", tz="UTC", name="timestamp")
    values = np.array([[np.nan, 1.0], [0.25, np.nan], [0.5, 0.75]])
    save_tensor(Path("lake/2024-02/return_tensor.pt"), tensor_payload(values, index, ["X", "Y"]))
    save_tensor(
        Path("lake/2023-40/return_tensor.pt"), tensor_payload(values[:1], index[:1], ["X", "Y"])
    )
    Path(".env").write_text("DATA_LAKE_SOURCE=lake\n")
    done = run("--head", "2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:6] == [
        "file: lake/2024-02/return_tensor.pt",
        "shape: 3 x 2 (time x asset), dtype float64",
        "assets (2): X, Y",
        "time span: 2024-01-05T21:00:00+00:00 .. 2024-01-19T21:00:00+00:00 (3 steps)",
        "missing: 2 of 6 cells (33.3%)",
        "first 2 rows:",
    ]
    assert lines[-1].split() == ["2024-01-12T21:00:00+00:00", "0.25", "NaN"]
    older = run("lake/2023-40")
    assert older.returncode == 0, older.stderr
    assert "shape: 1 x 2" in older.stdout
    missing = run("nowhere")
    assert missing.returncode == 1
    assert "nowhere: no YYYY-WW output folder containing return_tensor.pt" in missing.stderr

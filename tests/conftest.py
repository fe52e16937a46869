"""Shared fixtures: every test runs with its own data folders and a clean environment."""

from __future__ import annotations

from pathlib import Path

import pytest

ENV_VARS = (
    "DATA_SOURCE",
    "DATA_LAKE_SOURCE",
    "FEATURE_STORE_SOURCE",
    "MODEL_STORE_SOURCE",
    "SIMULATION_SOURCE",
    "HISTORICAL_DATA_PROVIDER",
    "HISTORICAL_DATA_EXPORTER",
    "CSV_IMPORT_DIR",
    "MAX_PARALLEL_REQUESTS",
    "IB_HOST",
    "IB_PORT",
    "IB_CLIENT_ID",
    "TORCH_DEVICE",
    "LOG_DEST",
    "LOG_LEVEL",
    "LOG_FILE_PATH",
    "ALPACA_API_KEY",
    "ALPACA_SECRET_KEY",
)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every data location at a fresh tmp folder and run from it (no stray .env)."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    root = tmp_path / "work"
    root.mkdir()
    monkeypatch.chdir(root)
    return root

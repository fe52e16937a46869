"""The feature_store_panel loader on generated feature-store / data-lake folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from algo_trader.application.simulation.panel import (
    build_panel,
    load_feature_store_panel,
    panel_from_payload,
    save_panel,
    sha256_file,
)
from algo_trader.domain.errors import ConfigError, DataError
from algo_trader.infrastructure.data.atomic import load_tensor, save_tensor
from algo_trader.infrastructure.data.layout import tensor_payload

WEEKS = pd.date_range("2024-01-05", periods=6, freq="7D", tz="UTC")
ASSETS = ["AAA", "BBB"]


def write_stores(
    root: Path,
    feature_assets: list[str] | None = None,
    return_weeks: pd.DatetimeIndex = WEEKS,
) -> tuple[Path, Path]:
    """Generated data: two groups (1 and 2 features) and a return tensor with known values."""
    t, a = len(WEEKS), len(ASSETS)
    cells = np.arange(t * a, dtype=np.float64).reshape(t, a)
    mom = cells[:, :, None] + 0.5  # X[t, a, 0] = 2t + a + 0.5
    vol = np.stack([cells * 10, -cells], axis=2)
    vol[2, 1, 0] = np.nan
    fs = root / "fs" / "2024-06"
    save_tensor(
        fs / "mom" / "features_tensor.pt",
        tensor_payload(mom, WEEKS, feature_assets or ASSETS, ["z"]),
    )
    save_tensor(
        fs / "vol" / "features_tensor.pt",
        tensor_payload(vol, WEEKS, feature_assets or ASSETS, ["z", "w"]),
    )
    r = len(return_weeks)
    returns = (np.arange(r * a, dtype=np.float64).reshape(r, a) + 1) / 1000  # R[t, a]
    returns[3, 0] = np.nan
    lake = root / "lake" / "2024-06"
    save_tensor(lake / "return_tensor.pt", tensor_payload(returns, return_weeks, ASSETS))
    return root / "fs", root / "lake"


def test_alignment_is_exact(tmp_path: Path) -> None:
    fs, lake = write_stores(tmp_path)
    panel = build_panel(fs / "2024-06", lake / "2024-06" / "return_tensor.pt", "all", 1, 1000, True)
    # Six feature weeks, the last has no next-week return: 5 rows.
    assert panel.X.shape == (5, 2, 3)
    assert panel.features == ["mom__z", "vol__z", "vol__w"]
    assert panel.assets == ASSETS
    np.testing.assert_array_equal(panel.timestamps, WEEKS[:5].as_unit("ns").asi8)
    # X[t, a] is feature row t; y[t, a] = R[t+1, a] * 1000 = (2(t+1) + a + 1).
    np.testing.assert_array_equal(panel.X[:, 1, 0], [1.5, 3.5, 5.5, 7.5, 9.5])
    t = np.arange(5)
    expected_y = np.stack([2 * (t + 1) + 1, 2 * (t + 1) + 2], axis=1).astype(float)
    expected_y[2, 0] = np.nan  # R[3, 0] is missing
    np.testing.assert_array_equal(panel.y, expected_y)
    assert panel.y_missing_mask.tolist() == np.isnan(expected_y).tolist()
    assert panel.missing_mask[2, 1, 1] and np.isnan(panel.X[2, 1, 1])
    assert panel.missing_mask.sum() == 1


def test_target_shift_two_drops_two_rows(tmp_path: Path) -> None:
    fs, lake = write_stores(tmp_path)
    panel = build_panel(fs / "2024-06", lake / "2024-06" / "return_tensor.pt", ["mom"], 2, 1, False)
    assert panel.X.shape == (4, 2, 1)
    assert panel.features == ["z"]
    np.testing.assert_allclose(panel.y[:, 1], (2 * (np.arange(4) + 2) + 2) / 1000)


def test_longer_return_tensor_labels_every_feature_week(tmp_path: Path) -> None:
    weeks = pd.date_range(WEEKS[0], periods=7, freq="7D", tz="UTC")
    fs, lake = write_stores(tmp_path, return_weeks=weeks)
    panel = build_panel(fs / "2024-06", lake / "2024-06" / "return_tensor.pt", "all", 1, 1, True)
    assert panel.X.shape[0] == 6


def test_mismatched_assets_name_group_and_assets(tmp_path: Path) -> None:
    fs, lake = write_stores(tmp_path, feature_assets=["AAA", "CCC"])
    with pytest.raises(DataError, match=r"group 'mom'.*missing \['BBB'\], extra \['CCC'\]"):
        build_panel(fs / "2024-06", lake / "2024-06" / "return_tensor.pt", "all", 1, 1, True)


def test_unknown_group_lists_present_ones(tmp_path: Path) -> None:
    fs, lake = write_stores(tmp_path)
    with pytest.raises(DataError, match=r"\['regime'\].*groups present: mom, vol"):
        build_panel(fs / "2024-06", lake / "2024-06" / "return_tensor.pt", ["regime"], 1, 1, True)


def test_duplicate_names_without_prefix_are_refused(tmp_path: Path) -> None:
    fs, lake = write_stores(tmp_path)
    with pytest.raises(DataError, match="prefix_feature_names: true"):
        build_panel(fs / "2024-06", lake / "2024-06" / "return_tensor.pt", "all", 1, 1, False)


def test_zero_target_shift_is_a_config_error(tmp_path: Path) -> None:
    fs, lake = write_stores(tmp_path)
    with pytest.raises(ConfigError, match="target_shift must be >= 1"):
        build_panel(fs / "2024-06", lake / "2024-06" / "return_tensor.pt", "all", 0, 1, True)


def test_load_writes_panel_then_reuses_it(tmp_path: Path) -> None:
    fs, lake = write_stores(tmp_path)
    out = tmp_path / "sim" / "run_a"
    first = load_feature_store_panel(out, fs, lake, "all", 1, 1000, True)
    assert not first.reused
    assert not out.exists()  # nothing written before the runner saves it
    save_panel(first)
    assert first.path == out / "inputs" / "panel_tensor.pt"
    payload = load_tensor(first.path)
    assert payload["X"].dtype.is_floating_point and str(payload["X"].dtype) == "torch.float64"
    assert payload["sources"]["returns"]["sha256"] == sha256_file(
        lake / "2024-06" / "return_tensor.pt"
    )
    # Reuse: the stores may even be gone, the file is read back unchanged.
    (lake / "2024-06" / "return_tensor.pt").unlink()
    second = load_feature_store_panel(out, fs, lake, "all", 1, 1000, True)
    assert second.reused
    np.testing.assert_array_equal(second.panel.X, first.panel.X)
    np.testing.assert_array_equal(second.panel.y, first.panel.y)
    assert second.panel.sources == first.panel.sources


def test_existing_folder_without_panel_is_an_error(tmp_path: Path) -> None:
    fs, lake = write_stores(tmp_path)
    out = tmp_path / "sim" / "run_a"
    out.mkdir(parents=True)
    with pytest.raises(DataError, match="delete the folder or choose another label"):
        load_feature_store_panel(out, fs, lake, "all", 1, 1, True)


def test_corrupt_panel_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "panel_tensor.pt"
    with pytest.raises(DataError, match="lacks keys"):
        panel_from_payload({"X": None}, path)

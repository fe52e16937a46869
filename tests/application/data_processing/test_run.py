from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from algo_trader.application.data_processing.run import read_returns, run_data_processing
from algo_trader.domain.errors import ConfigError, DataError
from algo_trader.infrastructure.data.atomic import write_csv
from algo_trader.infrastructure.env import load_settings

NAN = np.nan
# hand-made returns (not market data): see tests/preprocessing/conftest.py for the arithmetic
HAND = """timestamp,A,B
2024-01-05T21:00:00+00:00,,
2024-01-12T21:00:00+00:00,1.0,4.0
2024-01-19T21:00:00+00:00,2.0,0.0
2024-01-26T21:00:00+00:00,3.0,2.0
2024-02-02T21:00:00+00:00,5.0,8.0
2024-02-09T21:00:00+00:00,,6.0
"""
LAKE = Path("data/data_lake")
STORE = Path("data/feature_store")

OUTPUTS = {
    "identity": ["metadata.json", "processed.csv", "processed_tensor.pt"],
    "zscore": [
        "mean_ref.pt",
        "metadata.json",
        "processed.csv",
        "processed_tensor.pt",
        "std_ref.pt",
    ],
    "pca": [
        "eigenvalues.csv",
        "factors.csv",
        "factors.pt",
        "loadings.csv",
        "loadings.pt",
        "metadata.json",
    ],
}
ARGS = {"identity": [], "zscore": ["end_date=2024-01-26"], "pca": ["k=2", "end_date=2024-01-26"]}


def write_lake(text: str = HAND, week: str = "2024-06") -> Path:
    folder = LAKE / week
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "returns.csv").write_text(text)
    return folder / "returns.csv"


@pytest.mark.parametrize("name", ["identity", "zscore", "pca"])
def test_writes_exactly_the_spec_files(name: str) -> None:
    source = write_lake()
    result = run_data_processing(load_settings(), name, [*ARGS[name], "pipeline=p1"])
    assert result.out_dir == STORE / name / "p1" / "2024-06"
    assert sorted(p.name for p in result.out_dir.iterdir()) == OUTPUTS[name]  # no temp files left
    for tensor in result.out_dir.glob("*.pt"):
        payload = torch.load(tensor, weights_only=True)
        assert isinstance(payload, dict)
    meta = json.loads((result.out_dir / "metadata.json").read_text())
    assert meta["preprocessor"] == name and meta["pipeline"] == "p1"
    assert meta["input"]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert meta["input"]["folder"] == str(source.parent) and meta["input"]["rows"] == 6
    assert meta["output"]["files"] == OUTPUTS[name]
    assert meta["args"]["pipeline"] == "p1"


def test_zscore_outputs_round_trip() -> None:
    write_lake()
    result = run_data_processing(load_settings(), "zscore", ["end_date=2024-01-26", "missing=drop"])
    frame = pd.read_csv(result.out_dir / "processed.csv", index_col=0)
    assert list(frame.index) == [
        "2024-01-12T21:00:00+00:00",
        "2024-01-19T21:00:00+00:00",
        "2024-01-26T21:00:00+00:00",
        "2024-02-02T21:00:00+00:00",
    ]
    np.testing.assert_array_equal(frame.to_numpy(), [[-1, 1], [0, -1], [1, 0], [3, 3]])
    mean = torch.load(result.out_dir / "mean_ref.pt", weights_only=True)
    assert mean == {"values": mean["values"], "assets": ["A", "B"]}
    assert mean["values"].tolist() == [2.0, 2.0]
    meta = json.loads((result.out_dir / "metadata.json").read_text())
    assert meta["output"]["rows"] == 4 and meta["output"]["rows_dropped"] == 2
    assert meta["fit_window"]["end_date"] == "2024-01-26"
    assert meta["fit_window"]["last_row"] == "2024-01-26T21:00:00+00:00"
    assert result.summary_lines()[1] == "rows: 6 in, 4 out; 2 output columns"


def test_pca_csv_outputs() -> None:
    write_lake()
    out = run_data_processing(load_settings(), "pca", ARGS["pca"]).out_dir
    eig = pd.read_csv(out / "eigenvalues.csv", index_col=0)
    assert list(eig.index) == ["PC1", "PC2"]
    assert list(eig.columns) == ["eigenvalue", "explained_ratio", "cumulative"]
    np.testing.assert_allclose(eig["eigenvalue"], [1.5, 0.5], rtol=1e-14)
    loadings = pd.read_csv(out / "loadings.csv", index_col=0)
    assert loadings.index.name == "asset" and list(loadings.index) == ["A", "B"]
    factors = torch.load(out / "factors.pt", weights_only=True)
    assert sorted(factors) == ["factors", "missing_mask", "timestamps", "values"]
    assert factors["values"].shape == (6, 2)


def test_identity_copy_true_is_verbatim_copy_false_rewrites() -> None:
    # hand-written formatting a canonical rewrite changes: 'Z' offset and trailing zeros
    text = "timestamp,A\n2024-01-05T21:00:00Z,0.010\n2024-01-12T21:00:00Z,\n"
    source = write_lake(text)
    out = run_data_processing(load_settings(), "identity", ["copy=true"]).out_dir
    assert (out / "processed.csv").read_bytes() == source.read_bytes()
    run_data_processing(load_settings(), "identity", ["copy=false"])
    assert (out / "processed.csv").read_text() == (
        "timestamp,A\n2024-01-05T21:00:00+00:00,0.01\n2024-01-12T21:00:00+00:00,\n"
    )
    tensor = torch.load(out / "processed_tensor.pt", weights_only=True)
    assert tensor["missing_mask"].tolist() == [[False], [True]]
    assert torch.isnan(tensor["values"][1, 0])


def test_reads_latest_week_holding_returns() -> None:
    write_lake(HAND, "2023-52")
    write_lake(HAND.replace("3.0,2.0", "3.0,2.5"), "2024-06")
    (LAKE / "2024-07").mkdir()  # newer, but no returns.csv
    result = run_data_processing(load_settings(), "identity", [])
    assert result.input_file == LAKE / "2024-06" / "returns.csv"
    assert result.out_dir.name == "2024-06"


def test_no_data_lake_is_a_clear_error() -> None:
    with pytest.raises(
        DataError, match=r"data/data_lake: no YYYY-WW output folder containing returns.csv"
    ):
        run_data_processing(load_settings(), "identity", [])


def test_bad_args_fail_before_reading_anything() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown preprocessor 'nope'; valid: identity, pca, zscore"
    ):
        run_data_processing(load_settings(), "nope", [])
    with pytest.raises(ConfigError, match=r"variance='1.5'"):
        run_data_processing(load_settings(), "pca", ["variance=1.5"])


def test_k_above_columns_is_a_config_error() -> None:
    write_lake()
    with pytest.raises(ConfigError, match=r"'pca'.*k='3'.*at most the 2 columns"):
        run_data_processing(load_settings(), "pca", ["k=3"])
    assert not STORE.exists()


def test_read_returns_matches_writer(tmp_path: Path) -> None:
    index = pd.date_range("2024-01-05 21:00", periods=3, freq="7D", tz="UTC", name="timestamp")
    frame = pd.DataFrame({"A": [NAN, 0.1, -0.2], "B": [0.3, NAN, 1e-9]}, index=index)
    write_csv(tmp_path / "r.csv", frame)
    pd.testing.assert_frame_equal(read_returns(tmp_path / "r.csv"), frame, check_freq=False)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("time,A\n2024-01-05T21:00:00+00:00,1\n", r"line 1: header must be timestamp"),
        ("timestamp\n2024-01-05T21:00:00+00:00\n", r"line 1: header must be timestamp"),
        (
            "timestamp,A,A\n2024-01-05T21:00:00+00:00,1,2\n",
            r"line 1, column 'A': asset names must be unique",
        ),
        ("timestamp,A\n", r"has a header but no rows"),
        (
            "timestamp,A\n2024-01-05T21:00:00+00:00,1\n2024-01-12,2\n",
            r"line 3, column 'timestamp'.*UTC offset.*'2024-01-12'",
        ),
        (
            "timestamp,A\n2024-01-12T21:00:00+00:00,1\n2024-01-05T21:00:00+00:00,2\n",
            r"line 3, column 'timestamp'.*strictly increasing",
        ),
        (
            "timestamp,A\n2024-01-05T21:00:00+00:00,1\n2024-01-05T21:00:00+00:00,2\n",
            r"line 3.*strictly increasing",
        ),
        (
            "timestamp,A,B\n2024-01-05T21:00:00+00:00,1,x\n",
            r"line 2, column 'B'.*finite number.*'x'",
        ),
        (
            "timestamp,A\n2024-01-05T21:00:00+00:00,1\n2024-01-12T21:00:00+00:00,1,2\n",
            r"not a rectangular CSV.*line 3",
        ),
        (
            "timestamp,A\n2024-01-05T21:00:00+00:00,1\n2024-01-12T21:00:00+00:00,inf\n",
            r"line 3, column 'A'.*finite.*'inf'",
        ),
    ],
)
def test_read_returns_rejects_bad_files(tmp_path: Path, text: str, pattern: str) -> None:
    path = tmp_path / "returns.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=pattern):
        read_returns(path)

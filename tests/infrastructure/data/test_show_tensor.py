from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from algo_trader.domain.errors import DataError
from algo_trader.infrastructure.data.atomic import save_tensor
from algo_trader.infrastructure.data.layout import tensor_payload
from algo_trader.infrastructure.data.show_tensor import (
    describe,
    feature_tensor_path,
    main,
    read_payload,
    return_tensor_path,
)

NAN = np.nan
INDEX = pd.date_range("2024-01-05 21:00", periods=4, freq="7D", tz="UTC", name="timestamp")


def return_payload() -> dict:
    values = np.array([[NAN, NAN], [0.5, -0.25], [NAN, 1.0], [2.0, 3.0]])
    return tensor_payload(values, INDEX, ["AAA", "BBB"])


def test_describe_return_tensor() -> None:
    text = describe(return_payload(), Path("x/return_tensor.pt"), head=2)
    assert text.splitlines()[:6] == [
        "file: x/return_tensor.pt",
        "shape: 4 x 2 (time x asset), dtype float64",
        "assets (2): AAA, BBB",
        "time span: 2024-01-05T21:00:00+00:00 .. 2024-01-26T21:00:00+00:00 (4 steps)",
        "missing: 3 of 8 cells (37.5%)",
        "first 2 rows:",
    ]
    assert text.splitlines()[-1].split() == ["2024-01-12T21:00:00+00:00", "0.5", "-0.25"]
    assert "2024-01-19" not in text


def test_describe_feature_tensor_shows_masked_cells_as_nan() -> None:
    values = np.arange(12.0).reshape(2, 2, 3)
    payload = tensor_payload(values, INDEX[:2], ["AAA", "BBB"], ["f1", "f2", "f3"])
    payload["missing_mask"][1, 0, 2] = True  # readers trust the mask, not the value
    text = describe(payload, Path("g.pt"), head=5)
    assert "shape: 2 x 2 x 3 (time x asset x feature)" in text
    assert "features (3): f1, f2, f3" in text
    assert "missing: 1 of 12 cells (8.3%)" in text
    assert "first 2 rows:" in text
    assert "AAA 6.0 7.0 NaN" in " ".join(text.split())


def test_describe_rejects_incomplete_payload() -> None:
    with pytest.raises(DataError, match=r"lacks keys \['missing_mask', 'assets'\]"):
        describe({"values": None, "timestamps": None}, Path("bad.pt"), 1)


def test_read_payload_wraps_unreadable_files(tmp_path: Path) -> None:
    path = tmp_path / "junk.pt"
    path.write_text("not a tensor")
    with pytest.raises(DataError, match=r"junk.pt: not a tensor file"):
        read_payload(path)


def test_return_tensor_path_resolution(tmp_path: Path) -> None:
    for name in ("2024-03", "2024-04"):
        save_tensor(Path("data/data_lake") / name / "return_tensor.pt", return_payload())
    Path("data/data_lake/2024-05").mkdir()
    assert return_tensor_path(None) == Path("data/data_lake/2024-04/return_tensor.pt")
    week = Path("data/data_lake/2024-03")
    assert return_tensor_path(week) == week / "return_tensor.pt"
    with pytest.raises(DataError, match=r"no YYYY-WW output folder containing return_tensor.pt"):
        return_tensor_path(tmp_path / "elsewhere")


def test_feature_tensor_path_lists_groups_when_missing() -> None:
    store = Path("data/feature_store")
    save_tensor(store / "2024-03" / "momentum" / "features_tensor.pt", return_payload())
    save_tensor(store / "2024-04" / "volatility" / "features_tensor.pt", return_payload())
    assert feature_tensor_path("momentum") == store / "2024-03" / "momentum" / "features_tensor.pt"
    with pytest.raises(
        DataError, match=r"no regime/features_tensor.pt.*groups found: momentum, volatility"
    ):
        feature_tensor_path("regime")


def test_main_reports_errors_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["returns"]) == 1
    assert capsys.readouterr().err.startswith("error: data/data_lake: no YYYY-WW output folder")

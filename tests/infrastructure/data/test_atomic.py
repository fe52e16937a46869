import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from algo_trader.infrastructure.data.atomic import (
    atomic_write,
    load_tensor,
    save_tensor,
    write_csv,
    write_json,
)


def test_write_json_sorted_and_nan_as_null(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    write_json(path, {"b": math.nan, "a": [1.0, float("nan")]})
    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == {"a": [1.0, None], "b": None}
    assert text.index('"a"') < text.index('"b"')


def test_write_json_rejects_inf(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="infinite"):
        write_json(tmp_path / "a.json", {"x": math.inf})
    assert not (tmp_path / "a.json").exists()


def test_failed_write_keeps_previous_file(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    path = folder / "f.txt"
    path.write_text("old", encoding="utf-8")

    def boom(handle: object) -> None:
        handle.write("partial")  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, boom)
    assert path.read_text(encoding="utf-8") == "old"
    assert [p.name for p in folder.iterdir()] == ["f.txt"]


def test_csv_timestamps_utc_iso(tmp_path: Path) -> None:
    idx = pd.DatetimeIndex(["2024-03-04 15:00"], tz="UTC", name="timestamp")
    write_csv(tmp_path / "a.csv", pd.DataFrame({"x": [1.5]}, index=idx))
    assert (tmp_path / "a.csv").read_text().splitlines()[1] == "2024-03-04T15:00:00+00:00,1.5"


def test_tensor_roundtrip_weights_only(tmp_path: Path) -> None:
    payload = {"values": torch.from_numpy(np.array([[1.0, np.nan]])), "assets": ["A", "B"]}
    save_tensor(tmp_path / "t.pt", payload)
    back = load_tensor(tmp_path / "t.pt")
    assert back["assets"] == ["A", "B"]
    assert torch.equal(back["values"].isnan(), payload["values"].isnan())

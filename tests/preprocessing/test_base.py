from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from algo_trader.preprocessing.base import Processed, masked_payload


def test_masked_payload_zeroes_missing_cells_and_keeps_the_mask() -> None:
    index = pd.DatetimeIndex(["2024-01-05T21:00:00+00:00", "2024-01-12T21:00:00+00:00"])
    values = np.array([[np.nan, 1.5], [2.0, np.nan]])
    missing = np.isnan(values)
    payload = masked_payload(values, missing, index, ["PC1", "PC2"], label_key="factors")
    assert torch.equal(
        payload["values"], torch.tensor([[0.0, 1.5], [2.0, 0.0]], dtype=torch.float64)
    )
    assert payload["missing_mask"].tolist() == [[True, False], [False, True]]
    assert payload["factors"] == ["PC1", "PC2"]
    assert "assets" not in payload
    assert payload["timestamps"].tolist() == list(index.as_unit("ns").asi8)


def test_file_names_include_metadata() -> None:
    processed = Processed(
        frame=pd.DataFrame(),
        main_file="factors.csv",
        tensors={"factors.pt": {}},
        tables={"loadings.csv": pd.DataFrame()},
    )
    assert processed.file_names() == ["factors.csv", "factors.pt", "loadings.csv", "metadata.json"]

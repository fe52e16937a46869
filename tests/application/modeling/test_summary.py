from __future__ import annotations

import numpy as np
import pytest
import torch

from algo_trader.application.modeling.summary import index_labels, summary_frame


def test_one_row_per_element_with_exact_statistics() -> None:
    draws = {
        "tau": torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]),
        "W": torch.arange(5 * 2 * 3, dtype=torch.float64).reshape(5, 2, 3),
    }
    table = summary_frame(draws)
    assert table["name"].tolist() == ["tau"] + ["W"] * 6
    assert table["index"].tolist() == ["", "0,0", "0,1", "0,2", "1,0", "1,1", "1,2"]
    tau = table.iloc[0]
    assert (tau["mean"], tau["q05"], tau["q50"], tau["q95"]) == (3.0, 1.2, 3.0, 4.8)
    assert tau["sd"] == pytest.approx(np.std([1, 2, 3, 4, 5], ddof=1))
    # W[s, i, j] = 6 s + 3 i + j: the mean over s = 0..4 is 12 + 3 i + j.
    np.testing.assert_allclose(table["mean"].to_numpy()[1:], 12 + np.array([0, 1, 2, 3, 4, 5]))


def test_index_labels_and_too_few_draws() -> None:
    assert index_labels(()) == [""]
    assert index_labels((2,)) == ["0", "1"]
    with pytest.raises(ValueError, match="site 'x': 1 draw"):
        summary_frame({"x": torch.zeros(1, 3)})

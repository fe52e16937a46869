"""``quantile_loss`` (outer): z-space pinball loss at ``alpha_tail``."""

from __future__ import annotations

import pytest
import torch

from algo_trader.application.simulation.metrics.outer.quantile_loss import quantile_loss
from algo_trader.domain.simulation.config import ScoreSpec


def test_exact_value() -> None:
    # MAD of y_train per asset: [1, 2] (+ mad_eps 0.5 -> scale [1.5, 2.5])
    y_train = torch.tensor([[0.0, 0.0], [1.0, 2.0], [2.0, 4.0]], dtype=torch.float64)
    # 5 draws 0..4 per entry: the 0.25 quantile is 1 (linear interpolation at position 1)
    samples = torch.arange(5, dtype=torch.float64).view(5, 1, 1).expand(5, 2, 2)
    y_test = torch.tensor([[0.0, 5.0], [4.0, torch.nan]], dtype=torch.float64)
    spec = ScoreSpec(alpha_tail=0.25, mad_eps=0.5)
    # asset 0, z = y / 1.5, q = 1 / 1.5: e = -1/1.5 -> 0.75/1.5; e = 3/1.5 -> 0.75/1.5
    # asset 1, z = y / 2.5, q = 1 / 2.5: e = 4/2.5 -> 0.25 * 1.6 = 0.4 (one observed week)
    got = quantile_loss(y_test, {"samples": samples, "y_train": y_train}, spec)
    assert got == pytest.approx((0.5 + 0.4) / 2)

"""Inner (tuning) metrics, higher is better; importing this package registers them."""

from algo_trader.application.simulation.metrics.inner import energy_score, neg_mse

__all__ = ["energy_score", "neg_mse"]

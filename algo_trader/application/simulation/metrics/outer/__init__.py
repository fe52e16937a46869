"""Outer (evaluation) metrics in z-space, lower is better; importing this package registers them."""

from algo_trader.application.simulation.metrics.outer import crps, quantile_loss

__all__ = ["crps", "quantile_loss"]

"""Backtest plots, each a PNG beside the CSV of its numbers (matplotlib, Agg canvas).

- ``equity_drawdown.png`` from ``curves.csv``: top, the growth of 1 invested in the strategy
  (net of costs) and in the equal-weight buy-and-hold benchmark on the same weeks; bottom,
  their drawdowns from the running peak (``performance.equity_curve`` /
  ``performance.drawdown_curve``). Dotted vertical lines mark where an outer fold starts.
- ``weights.png`` from ``weights.csv``: the weights held each week as a heat map (assets
  by weeks); a diverging scale centred on 0 when there are short positions.

Weeks are the decision weeks ``t``; the return plotted at ``t`` is earned over its label week.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from algo_trader.application.simulation.performance import drawdown_curve, equity_curve
from algo_trader.infrastructure.data.atomic import atomic_path, write_csv

EQUITY_PNG = "equity_drawdown.png"
WEIGHTS_PNG = "weights.png"
CURVES_CSV = "curves.csv"
_DPI = 120
_STRATEGY = "#1f5fa8"
_BENCHMARK = "#7f7f7f"


def curves_frame(net: pd.Series, benchmark: pd.Series) -> pd.DataFrame:
    """Equity (growth of 1) and drawdown of the strategy's net returns and the benchmark's.

    Parameters
    ----------
    net, benchmark
        Per-week returns on the same index.
    """
    if not net.index.equals(benchmark.index):
        raise ValueError("the strategy and benchmark returns must share their weeks")
    strategy, bench = net.to_numpy(dtype=np.float64), benchmark.to_numpy(dtype=np.float64)
    return pd.DataFrame(
        {
            "strategy_return": strategy,
            "benchmark_return": bench,
            "strategy_equity": equity_curve(strategy),
            "benchmark_equity": equity_curve(bench),
            "strategy_drawdown": drawdown_curve(strategy),
            "benchmark_drawdown": drawdown_curve(bench),
        },
        index=net.index.rename("timestamp"),
    )


def _naive(index: pd.Index) -> np.ndarray:
    """A UTC index as naive ``datetime64`` (what matplotlib's date axis takes)."""
    return pd.DatetimeIndex(index).tz_convert(None).to_numpy()


def _figure(size: tuple[float, float], rows: int = 1, **grid: Any) -> tuple[Any, Any]:
    # Imported here: matplotlib costs import time and only reports draw. Figure() uses no
    # pyplot state, so drawing is safe off the main thread and needs no backend switch.
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(rows, 1, sharex=True, **grid)
    return fig, axes


def _date_axis(ax: Any) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI)
    return path


def plot_equity_drawdown(
    curves: pd.DataFrame, path: Path, fold_starts: Sequence[pd.Timestamp] = ()
) -> Path:
    """Draw :func:`curves_frame` numbers as ``path`` (PNG)."""
    from matplotlib.ticker import PercentFormatter

    fig, (top, bottom) = _figure((11, 6.5), rows=2, height_ratios=(2.2, 1))
    x = _naive(curves.index)
    for name, color, label in (
        ("strategy", _STRATEGY, "strategy (net of costs)"),
        ("benchmark", _BENCHMARK, "equal-weight buy-and-hold"),
    ):
        equity, drawdown = curves[f"{name}_equity"], curves[f"{name}_drawdown"]
        top.plot(x, equity, color=color, lw=1.6, label=f"{label}: {equity.iloc[-1]:.3f}")
        bottom.plot(x, drawdown, color=color, lw=1.2, label=f"{label}: min {drawdown.min():.1%}")
    bottom.fill_between(x, curves["strategy_drawdown"], 0.0, color=_STRATEGY, alpha=0.2, lw=0)
    top.axhline(1.0, color="black", lw=0.6)
    for start in fold_starts:
        for ax in (top, bottom):
            ax.axvline(_naive(pd.DatetimeIndex([start]))[0], color="black", ls=":", lw=0.8)
    top.set_title("Outer walk-forward: growth of 1 (dotted lines: outer fold starts)")
    top.set_ylabel("equity (growth of 1)")
    bottom.set_ylabel("drawdown")
    bottom.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    top.legend(loc="best", fontsize=9, framealpha=0.85)
    bottom.legend(loc="best", fontsize=9, framealpha=0.85)
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    _date_axis(bottom)
    return _save(fig, path)


def plot_weights(weights: pd.DataFrame, path: Path) -> Path:
    """Draw the ``weeks x assets`` weights as a heat map ``path`` (PNG)."""
    values = weights.to_numpy(dtype=np.float64).T  # (A, W): assets as rows
    weeks = pd.DatetimeIndex(weights.index)
    step = weeks[-1] - weeks[-2] if len(weeks) > 1 else pd.Timedelta(days=7)
    edges = _naive(weeks.append(pd.DatetimeIndex([weeks[-1] + step])))
    top = float(np.abs(values).max()) or 1.0
    short = bool((values < 0).any())
    cmap, low = ("RdBu_r", -top) if short else ("Blues", 0.0)
    height = max(2.5, 0.45 * values.shape[0] + 1.5)
    fig, ax = _figure((11, height))
    mesh = ax.pcolormesh(
        edges, np.arange(values.shape[0] + 1), values, cmap=cmap, vmin=low, vmax=top
    )
    ax.set_yticks(np.arange(values.shape[0]) + 0.5, labels=[str(c) for c in weights.columns])
    ax.invert_yaxis()
    ax.set_title("Weights held each week (fraction of portfolio value)")
    fig.colorbar(mesh, ax=ax, label="weight", pad=0.01)
    _date_axis(ax)
    return _save(fig, path)


def write_report_plots(
    folder: Path,
    net: pd.Series,
    benchmark: pd.Series,
    weights: pd.DataFrame,
    fold_starts: Sequence[pd.Timestamp] = (),
) -> list[Path]:
    """``curves.csv``, ``equity_drawdown.png`` and ``weights.png`` in ``folder``.

    ``weights`` is drawn as given; the caller writes it as ``weights.csv``.
    """
    curves = curves_frame(net, benchmark)
    write_csv(folder / CURVES_CSV, curves)
    return [
        plot_equity_drawdown(curves, folder / EQUITY_PNG, fold_starts),
        plot_weights(weights, folder / WEIGHTS_PNG),
    ]

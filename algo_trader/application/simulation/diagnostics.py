"""Model diagnostics of the global best candidate (nestedcv.md, "Model Diagnostics").

Drawn from that candidate's inner split payloads (every outer fold, test weeks only, z-space)
when ``diagnostics.fan_charts.enable``; each plot is a PNG with the CSV of its numbers:

- ``outer/diagnostics/fan_charts/fan_chart_<asset>.{png,csv}``: realized z (black) and the
  predictive median and central bands at ``quantiles`` (blue). A week tested by several
  splits shows the pooled draws of all of them; every split's ``z = y / scale_k`` is first
  rescaled to the asset's median split scale (``z * scale_k / median_k scale_k``) so the
  splits share one axis.
- ``outer/diagnostics/calibration/calibration_fan.{png,csv}``: per week, the share of
  forecasts (assets x splits testing the week) whose realized value lies in the central
  interval of each ``coverage_levels`` level, against the nominal level (dashed).
- ``.../calibration/pit_histogram.{png,csv}``: pooled PIT over every forecast and asset.
  The PIT of an ``S``-draw forecast is discrete (``k / S``, ``k`` draws at or below the
  truth), so the histogram uses the randomized rank PIT ``(k + U) / (S + 1)``, exactly
  uniform for a calibrated forecast (``U`` from a seeded generator). Flat at density 1:
  calibrated; U shape: under-dispersed; hump: over-dispersed; skew: bias.
- ``.../calibration/coverage_curve.{png,csv}``: pooled empirical vs nominal central
  coverage on a grid of levels (plus ``coverage_levels``); the diagonal is calibration.
  The interval between the sample quantiles of ``S`` draws covers a calibrated forecast's
  truth with probability ``c (S - 1) / (S + 1)``, not ``c`` (the order statistics it
  interpolates sit ``(S - 1) c`` apart among ``S + 1`` equally likely ranks), so that
  finite-draw line is drawn too (``calibrated_expected``).

Calibration is computed per forecast (each split's own predictive distribution), not on
the pooled fan, so it judges the forecasts the model actually made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from algo_trader.application.simulation.model_selection import group_means, nan_mean_last
from algo_trader.application.simulation.scoring import central_coverage, pit_values
from algo_trader.domain.errors import ConfigError, DataError
from algo_trader.domain.simulation.config import FanChartsConfig
from algo_trader.infrastructure.data.atomic import atomic_path, load_tensor, write_csv

PIT_BINS = 10
"""Bins of the PIT histogram (each holds 10 % of a calibrated forecast's PIT values)."""
COVERAGE_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))
"""Nominal levels of the coverage curve (0.05 .. 0.95), merged with ``coverage_levels``."""
ROLLING_WEEKS = 13
"""Window of the calibration fan's smoothed line (a quarter, centred on the week)."""
_DPI = 110
_BLUE = "#1f5fa8"


def fan_chart_assets(config: FanChartsConfig, assets: Sequence[str]) -> list[str]:
    """The assets to draw, checked against the panel's.

    Raises
    ------
    ConfigError
        ``diagnostics.fan_charts.assets`` names an asset the panel lacks.
    """
    if config.assets == "all":
        return list(assets)
    unknown = [a for a in config.assets if a not in assets]
    if unknown:
        raise ConfigError(
            f"diagnostics.fan_charts.assets: {unknown} are not panel assets; valid: all, "
            f"or a list of {', '.join(assets)}"
        )
    return list(config.assets)


@dataclass(frozen=True, eq=False)
class Forecasts:
    """Every ``(split, week)`` forecast of one candidate, side by side (``N`` of them).

    Attributes
    ----------
    z_true
        ``(N, A)`` realized, in each split's own z-space (NaN where missing).
    z_samples
        ``(S, N, A)`` draws in the same space.
    rescale
        ``(N, A)`` factor ``scale_k / median_k scale_k`` to the shared median split scale.
    week
        ``(N,)`` position of the forecast's week in ``timestamps``.
    timestamps
        ``(W,)`` the distinct test weeks (int64 ns UTC), increasing.
    """

    z_true: torch.Tensor
    z_samples: torch.Tensor
    rescale: torch.Tensor
    week: torch.Tensor
    timestamps: np.ndarray


def load_forecasts(paths: Sequence[Path]) -> Forecasts:
    """Read one candidate's split payloads (see ``model_selection.payload_recorder``).

    Raises
    ------
    DataError
        No payload, or payloads with different numbers of draws.
    """
    if not paths:
        raise DataError("diagnostics: the best candidate has no split payload")
    payloads = [load_tensor(p) for p in paths]  # one read per file
    draws = {int(p["z_samples"].shape[0]) for p in payloads}
    if len(draws) != 1:
        raise DataError(
            f"split payloads hold different numbers of draws {sorted(draws)}", path=paths[0]
        )
    lengths = torch.tensor([int(p["z_true"].shape[0]) for p in payloads])
    scales = torch.stack([p["scale"] for p in payloads])  # (P, A): one row per split
    shared = scales.quantile(0.5, dim=0)  # the median (mean of the middle two if even)
    stamps = torch.cat([p["timestamps"] for p in payloads]).numpy()
    weeks, week = np.unique(stamps, return_inverse=True)
    return Forecasts(
        z_true=torch.cat([p["z_true"] for p in payloads]),
        z_samples=torch.cat([p["z_samples"] for p in payloads], dim=1),
        rescale=(scales / shared).repeat_interleave(lengths, dim=0),
        week=torch.from_numpy(week.reshape(-1)),
        timestamps=weeks,
    )


def pooled_fan(
    forecasts: Forecasts, levels: Sequence[float], columns: Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per week: realized ``(W, A')`` and quantiles ``(L, W, A')`` at the shared scale.

    The draws of every forecast of a week are pooled (a week tested by ``c`` splits has
    ``c * S`` draws; weeks with fewer are padded with NaN, which the quantile ignores).
    ``columns`` picks the assets (default: all), so only drawn assets are pooled.
    """
    f = forecasts
    cols = torch.arange(f.z_true.shape[1]) if columns is None else torch.tensor(list(columns))
    n_weeks = len(f.timestamps)
    draws = (f.z_samples[..., cols] * f.rescale[:, cols]).transpose(0, 1)  # (N, S, A')
    counts = torch.bincount(f.week, minlength=n_weeks)
    order = torch.argsort(f.week, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.empty_like(f.week)
    slot[order] = torch.arange(len(f.week)) - starts[f.week[order]]
    padded = torch.full(
        (n_weeks, int(counts.max()), *draws.shape[1:]), float("nan"), dtype=torch.float64
    )
    padded[f.week, slot] = draws
    q = torch.tensor(list(levels), dtype=torch.float64)
    quantiles = torch.nanquantile(padded.flatten(1, 2), q, dim=1)
    realized = group_means((f.z_true[:, cols] * f.rescale[:, cols]).T, f.week, n_weeks).T
    return realized, quantiles


def randomized_pit(forecasts: Forecasts, generator: torch.Generator) -> torch.Tensor:
    """``(N, A)`` randomized rank PIT ``(k + U) / (S + 1)``; NaN where the truth is missing."""
    n_draws = int(forecasts.z_samples.shape[0])
    at_or_below = pit_values(forecasts.z_samples, forecasts.z_true) * n_draws
    u = torch.rand(at_or_below.shape, generator=generator, dtype=torch.float64)
    return (at_or_below + u) / (n_draws + 1)


def pit_histogram(pit: np.ndarray, bins: int = PIT_BINS) -> pd.DataFrame:
    """Density histogram of the finite PIT values on ``[0, 1]``.

    Columns ``bin_low``, ``bin_high``, ``count``, ``density`` and ``density_se``, the
    standard error of a bin's density under uniform PIT (``sqrt(p (1 - p) / n) / width``,
    ``p`` = the bin width).
    """
    values = pit[np.isfinite(pit)]
    counts, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    width = 1.0 / bins
    n = max(int(values.size), 1)
    return pd.DataFrame(
        {
            "bin_low": edges[:-1],
            "bin_high": edges[1:],
            "count": counts,
            "density": counts / (n * width),
            "density_se": np.full(bins, np.sqrt(width * (1 - width) / n) / width),
        }
    )


def coverage_indicators(forecasts: Forecasts, levels: Sequence[float]) -> torch.Tensor:
    """``(L, N, A)``: 1.0 where the truth lies in the level's central interval, NaN where
    the truth is missing."""
    covered = central_coverage(forecasts.z_samples, forecasts.z_true, levels).to(torch.float64)
    return torch.where(torch.isnan(forecasts.z_true), float("nan"), covered)


def coverage_by_week(forecasts: Forecasts, covered: torch.Tensor) -> torch.Tensor:
    """``(L, W)`` share of a week's forecasts (assets x splits) inside each interval."""
    n_assets = int(covered.shape[-1])
    index = forecasts.week.repeat_interleave(n_assets)
    return group_means(covered.flatten(1, 2), index, len(forecasts.timestamps))


def _dates(timestamps: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(timestamps, utc=True), name="timestamp")


def _naive(frame: pd.DataFrame) -> np.ndarray:
    """The frame's UTC index as naive ``datetime64`` (what matplotlib's date axis takes)."""
    return pd.DatetimeIndex(frame.index).tz_convert(None).to_numpy()


def _level_name(level: float) -> str:
    return f"{level:g}"


def _band_pairs(levels: Sequence[float]) -> list[tuple[int, int]]:
    """Positions of ``(low, high)`` quantile pairs, outermost first."""
    below = [i for i, q in enumerate(levels) if q < 0.5]
    above = [i for i, q in enumerate(levels) if q > 0.5][::-1]
    return list(zip(below, above, strict=False))


def _figure(size: tuple[float, float]) -> tuple[Any, Any]:
    # Imported here: matplotlib costs import time and only diagnostics draw.
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def _date_axis(ax: Any) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.grid(alpha=0.3)


def _legend_right(ax: Any) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def _save(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI)


def fan_chart_frames(
    forecasts: Forecasts, levels: Sequence[float], assets: Sequence[str], chosen: Sequence[str]
) -> dict[str, pd.DataFrame]:
    """Per chosen asset, the fan chart numbers: ``realized`` and ``q_<level>`` per test week."""
    columns = [list(assets).index(asset) for asset in chosen]
    realized, quantiles = pooled_fan(forecasts, levels, columns)
    index = _dates(forecasts.timestamps)
    frames = {}
    for a, asset in enumerate(chosen):  # slicing the computed tensors, one frame per asset
        data = {"realized": realized[:, a].numpy()}
        data |= {f"q_{_level_name(q)}": quantiles[i, :, a].numpy() for i, q in enumerate(levels)}
        frames[asset] = pd.DataFrame(data, index=index)
    return frames


def _plot_fan(frame: pd.DataFrame, levels: Sequence[float], asset: str, title: str) -> Any:
    fig, ax = _figure((11, 4.5))
    x = _naive(frame)
    pairs = _band_pairs(levels)
    for depth, (lo, hi) in enumerate(pairs):
        low, high = levels[lo], levels[hi]
        ax.fill_between(
            x,
            frame[f"q_{_level_name(low)}"],
            frame[f"q_{_level_name(high)}"],
            color=_BLUE,
            alpha=0.15 + 0.15 * depth,
            linewidth=0,
            label=f"{low:.0%}-{high:.0%} band",
        )
    ax.plot(x, frame["q_0.5"], color=_BLUE, linewidth=1.2, label="predictive median")
    ax.plot(x, frame["realized"], color="black", linewidth=0.8, label="realized")
    if pairs:
        lo, hi = pairs[0]
        lower = frame[f"q_{_level_name(levels[lo])}"]
        upper = frame[f"q_{_level_name(levels[hi])}"]
        observed = frame["realized"].notna()
        outside = ((frame["realized"] < lower) | (frame["realized"] > upper))[observed].mean()
        nominal = 1.0 - (levels[hi] - levels[lo])
        title += (
            f"; realized outside the outer band: {outside:.0%} of weeks (nominal {nominal:.0%})"
        )
    ax.set_title(f"{asset}: {title}", fontsize=10)
    ax.set_ylabel("z (return / median split MAD scale)")
    ax.set_xlabel("test week")
    _date_axis(ax)
    _legend_right(ax)
    return fig


def write_fan_charts(
    folder: Path, forecasts: Forecasts, config: FanChartsConfig, assets: Sequence[str], label: str
) -> list[Path]:
    """``fan_chart_<asset>.{csv,png}`` for each selected asset."""
    levels = sorted({*config.quantiles, 0.5})
    written = []
    frames = fan_chart_frames(forecasts, levels, assets, fan_chart_assets(config, assets))
    for asset, frame in frames.items():  # one figure per asset
        stem = folder / f"fan_chart_{asset}"
        write_csv(stem.with_suffix(".csv"), frame)
        _save(_plot_fan(frame, levels, asset, f"predictive fan, {label}"), stem.with_suffix(".png"))
        written += [stem.with_suffix(".csv"), stem.with_suffix(".png")]
    return written


def calibration_fan_frame(forecasts: Forecasts, levels: Sequence[float]) -> pd.DataFrame:
    """Per week: coverage at each level, its rolling mean and the forecasts counted."""
    covered = coverage_indicators(forecasts, levels)
    weekly = coverage_by_week(forecasts, covered).numpy()
    observed = (~torch.isnan(forecasts.z_true)).sum(dim=1)
    counts = torch.zeros(len(forecasts.timestamps), dtype=torch.long)
    counts.index_add_(0, forecasts.week, observed)
    frame = pd.DataFrame(index=_dates(forecasts.timestamps))
    for i, level in enumerate(levels):
        column = f"coverage_{_level_name(level)}"
        frame[column] = weekly[i]
        frame[f"{column}_rolling"] = (
            frame[column].rolling(ROLLING_WEEKS, center=True, min_periods=1).mean()
        )
    frame["n_forecasts"] = counts.numpy()
    return frame


def _plot_calibration_fan(frame: pd.DataFrame, levels: Sequence[float], title: str) -> Any:
    import matplotlib as mpl

    fig, ax = _figure((11, 4.5))
    x = _naive(frame)
    colors = mpl.colormaps["viridis"](np.linspace(0.0, 0.85, len(levels)))
    for level, color in zip(levels, colors, strict=True):
        column = f"coverage_{_level_name(level)}"
        ax.plot(x, frame[column], color=color, linewidth=0.6, alpha=0.35)
        ax.plot(
            x,
            frame[f"{column}_rolling"],
            color=color,
            linewidth=1.6,
            label=f"{level:.0%} interval\n({ROLLING_WEEKS}-week centred mean)",
        )
        ax.axhline(level, color=color, linestyle="--", linewidth=1.0)
    ax.set_ylim(-0.02, 1.05)
    ax.set_ylabel("share of forecasts inside the interval")
    ax.set_xlabel("test week")
    ax.set_title(f"{title} (thin: weekly; dashed: nominal)", fontsize=10)
    _date_axis(ax)
    _legend_right(ax)
    return fig


def coverage_curve_frame(forecasts: Forecasts, levels: Sequence[float]) -> pd.DataFrame:
    """Pooled empirical central coverage at each nominal level, and what a calibrated
    forecast of the same number of draws is expected to reach."""
    covered = coverage_indicators(forecasts, levels).flatten(1, 2)
    empirical = nan_mean_last(covered)
    n_draws = int(forecasts.z_samples.shape[0])
    nominal = np.asarray(levels, dtype=np.float64)
    return pd.DataFrame(
        {
            "nominal": nominal,
            "empirical": empirical.numpy(),
            "calibrated_expected": nominal * (n_draws - 1) / (n_draws + 1),
        }
    )


def _plot_coverage_curve(frame: pd.DataFrame, marked: Sequence[float], title: str) -> Any:
    fig, ax = _figure((5.5, 5.5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1.0, label="calibrated")
    ax.plot(
        frame["nominal"],
        frame["calibrated_expected"],
        color="grey",
        linestyle=":",
        linewidth=1.2,
        label="calibrated, finite draws",
    )
    ax.plot(frame["nominal"], frame["empirical"], color=_BLUE, marker=".", label="empirical")
    points = frame[frame["nominal"].isin(list(marked))]
    ax.scatter(
        points["nominal"],
        points["empirical"],
        color="darkorange",
        zorder=3,
        label="coverage_levels",
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("nominal central coverage")
    ax.set_ylabel("empirical coverage")
    ax.set_title(f"{title}\nabove diagonal: too wide; below: too narrow", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def _plot_pit(frame: pd.DataFrame, n: int, title: str) -> Any:
    fig, ax = _figure((7, 4.5))
    width = float(frame["bin_high"].iloc[0] - frame["bin_low"].iloc[0])
    ax.bar(
        frame["bin_low"],
        frame["density"],
        width=width,
        align="edge",
        color=_BLUE,
        alpha=0.7,
        edgecolor="white",
        label="PIT density",
    )
    se = float(frame["density_se"].iloc[0])
    ax.axhspan(1 - 2 * se, 1 + 2 * se, color="grey", alpha=0.2, label="±2 SE of a flat histogram")
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1.0, label="calibrated (density 1)")
    ax.set_xlim(0, 1)
    ax.set_xlabel("PIT (randomized rank)")
    ax.set_ylabel("density")
    ax.set_title(
        f"{title}, {n} PIT values (forecasts x assets)\nU: too narrow; hump: too wide; skew: bias",
        fontsize=10,
    )
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=8, ncol=3)
    return fig


def write_calibration(
    folder: Path, forecasts: Forecasts, config: FanChartsConfig, seed: int, label: str
) -> list[Path]:
    """``calibration_fan``, ``pit_histogram`` and ``coverage_curve`` (CSV + PNG each)."""
    levels = list(config.coverage_levels)
    fan = calibration_fan_frame(forecasts, levels)
    pit = randomized_pit(forecasts, torch.Generator().manual_seed(seed)).numpy().ravel()
    histogram = pit_histogram(pit)
    curve = coverage_curve_frame(forecasts, sorted({*COVERAGE_GRID, *levels}))
    n = int(np.isfinite(pit).sum())
    figures = {
        "calibration_fan": (fan, _plot_calibration_fan(fan, levels, f"Calibration fan, {label}")),
        "pit_histogram": (histogram, _plot_pit(histogram, n, f"PIT histogram, {label}")),
        "coverage_curve": (
            curve,
            _plot_coverage_curve(curve, levels, f"Coverage vs nominal, {label}"),
        ),
    }
    written = []
    for name, (frame, fig) in figures.items():
        write_csv(folder / f"{name}.csv", frame, index=name == "calibration_fan")
        _save(fig, folder / f"{name}.png")
        written += [folder / f"{name}.csv", folder / f"{name}.png"]
    return written


def write_diagnostics(
    out_dir: Path,
    payload_paths: Sequence[Path],
    candidate_id: str,
    config: FanChartsConfig,
    assets: Sequence[str],
    seed: int,
) -> list[Path]:
    """Every diagnostic of ``candidate_id`` under ``outer/diagnostics/``; returns the files.

    Parameters
    ----------
    out_dir
        ``SIMULATION_SOURCE/<label>``.
    payload_paths
        The candidate's split payloads of every outer fold.
    candidate_id
        The global best candidate (named in the titles).
    config
        ``diagnostics.fan_charts``.
    assets
        The panel's assets (the payloads' asset order).
    seed
        Seed of the randomized PIT.
    """
    forecasts = load_forecasts(payload_paths)
    label = f"candidate {candidate_id}, inner test weeks"
    root = out_dir / "outer" / "diagnostics"
    return write_fan_charts(
        root / "fan_charts", forecasts, config, assets, label
    ) + write_calibration(root / "calibration", forecasts, config, seed, label)

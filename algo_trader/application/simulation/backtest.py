"""``algotrader backtest``: replay a simulation run's outer walk-forward and report it.

The backtest reuses the run's inputs (``inputs/panel_tensor.pt``, checked against the
run's manifest) and runs the weekly outer walk-forward (:mod:`.outer_walk_forward`) of
every outer fold with one of these configurations:

- default: what the run's outer loop ran, fold by fold: ``outer/outer_<k>/config.json``,
  else the global ``outer/best_config.json`` of model selection for every fold, else each
  fold's ``inner/outer_<k>/best_config.json``;
- ``candidate``: that candidate of ``cv/candidates.json`` on top of the run's config
  (``run_manifest.json``, prebuild defaults included), for every fold;
- ``simulation_config``: a ``simulation.yml`` (its own CV structure on the run's panel),
  with ``candidate`` applied on top when both are given.

Seeds derive from the configuration and the fold/week alone, so replaying the saved
configuration reproduces the run's outer results exactly.

Outputs, all-or-nothing, in ``<run>/backtest/``: ``pnl.csv``, ``weights.csv``,
``predictive.csv`` (all folds, with ``outer_fold``), ``metrics.json``
(``outer_report.results_payload``: annualized return and volatility, Sharpe, Sortino, max
drawdown, turnover, hit rate, DSR and PBO against the run's inner trials, and the
equal-weight buy-and-hold benchmark), ``config.json`` (what each fold ran), ``curves.csv``,
``equity_drawdown.png`` and ``weights.png`` (:mod:`.report_plots`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from algo_trader.application.simulation.cv_groups import OuterFold
from algo_trader.application.simulation.hooks import Hooks, cost_spec, full_hooks, stub_hooks
from algo_trader.application.simulation.manifest import MANIFEST_FILE
from algo_trader.application.simulation.outer_report import (
    benchmark_returns,
    combined,
    results_payload,
)
from algo_trader.application.simulation.outer_walk_forward import (
    OuterResult,
    evaluate_outer_walk_forward,
)
from algo_trader.application.simulation.panel import (
    INPUTS_DIR,
    PANEL_FILE,
    Panel,
    panel_from_payload,
    sha256_file,
)
from algo_trader.application.simulation.report_plots import write_report_plots
from algo_trader.application.simulation.runner import build_cv, check_horizon
from algo_trader.application.simulation.trial_returns import (
    TRIAL_RETURNS_FILE,
    pooled_trials,
    read_trial_returns,
)
from algo_trader.domain.errors import ConfigError, DataError
from algo_trader.domain.simulation.config import (
    SimulationConfig,
    load_simulation_config,
    with_overrides,
)
from algo_trader.infrastructure.data.atomic import write_csv, write_json
from algo_trader.infrastructure.data.show_tensor import read_payload
from algo_trader.infrastructure.data.staging import staged_folder
from algo_trader.infrastructure.env import Settings
from algo_trader.infrastructure.progress import progress_bar
from algo_trader.infrastructure.yaml_config import format_validation_error

BACKTEST_DIR = "backtest"
HEADLINE = (
    "annualized_return",
    "annualized_volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "mean_turnover",
    "hit_rate",
    "dsr",
)


@dataclass(frozen=True)
class FoldPlan:
    """What one outer fold runs: the candidate (None: a given config) and its config."""

    candidate_id: str | None
    config: SimulationConfig


@dataclass(frozen=True)
class BacktestResult:
    """Where the backtest wrote, what it ran, and its ``metrics.json`` payload."""

    out_dir: Path
    run_dir: Path
    source: str
    metrics: dict[str, Any]
    plots: tuple[Path, ...]

    def headline(self) -> dict[str, float | None]:
        """The headline metrics of the strategy plus the PBO (None: undefined)."""
        perf = self.metrics.get("performance") or {}
        out: dict[str, float | None] = {key: perf.get(key) for key in HEADLINE}
        out["pbo"] = (self.metrics.get("overfitting") or {}).get("pbo")
        return out

    def summary_lines(self) -> list[str]:
        """Short human-readable lines for the CLI."""
        m = self.metrics
        lines = [
            f"run {self.run_dir}, {self.source}",
            f"{m['n_weeks']} weeks {m['first_week'][:10]} .. {m['last_week'][:10]}; "
            + ", ".join(f"{k}: {v['candidate_id']}" for k, v in m["folds"].items()),
        ]
        for name, perf in (
            ("strategy", m.get("performance")),
            ("buy-and-hold", (m.get("benchmark") or {}).get("performance")),
        ):
            if perf:
                lines.append(f"{name}: {_headline_text(perf)}")
        h = self.headline()
        trials = (m.get("performance") or {}).get("n_trials")
        note = (m.get("overfitting") or {}).get("pbo_note")
        lines.append(
            f"DSR {_fmt(h['dsr'], '.3f')} ({trials} trials), PBO {_fmt(h['pbo'], '.3f')}"
            + (f" ({note})" if note else "")
        )
        lines += [f"plot: {path}" for path in self.plots]
        return lines


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None or not math.isfinite(value) else format(value, spec)


def _headline_text(perf: dict[str, Any]) -> str:
    return (
        f"return {_fmt(perf['annualized_return'], '.2%')}/yr, vol "
        f"{_fmt(perf['annualized_volatility'], '.2%')}, Sharpe {_fmt(perf['sharpe'], '.2f')}, "
        f"Sortino {_fmt(perf['sortino'], '.2f')}, max drawdown "
        f"{_fmt(perf['max_drawdown'], '.2%')}, turnover {_fmt(perf['mean_turnover'], '.3f')}"
        f"/wk, hit rate {_fmt(perf['hit_rate'], '.1%')}"
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"not valid JSON: {err.msg}", path=path, line=err.lineno) from None
    if not isinstance(payload, dict):
        raise DataError("expected a JSON object", path=path)
    return payload


def _manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / MANIFEST_FILE
    if not path.is_file():
        raise DataError(
            f"no {MANIFEST_FILE}: not a finished simulation run (run algotrader simulation, "
            "or pass --run with a run folder)",
            path=run_dir,
        )
    manifest = _read_json(path)
    if manifest.get("status") != "complete" or "config" not in manifest:
        raise DataError("the run's manifest is not a complete run's", path=path)
    return manifest


def latest_run(root: Path) -> Path:
    """The simulation run under ``root`` whose manifest finished last.

    Raises
    ------
    DataError
        No folder under ``root`` holds a complete ``run_manifest.json``.
    """
    runs = []
    if root.is_dir():
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            path = folder / MANIFEST_FILE
            if path.is_file():
                manifest = _read_json(path)
                if manifest.get("status") == "complete":
                    runs.append((str(manifest.get("finished", "")), folder.name, folder))
    if not runs:
        raise DataError(
            f"no finished simulation run under SIMULATION_SOURCE ({root}); run algotrader "
            "simulation first",
            path=root,
        )
    return max(runs)[2]


def load_run_panel(run_dir: Path, manifest: dict[str, Any]) -> Panel:
    """The run's ``inputs/panel_tensor.pt``, checked against the manifest's checksum.

    Raises
    ------
    DataError
        The file is missing or changed since the run.
    """
    path = run_dir / INPUTS_DIR / PANEL_FILE
    if not path.is_file():
        raise DataError(f"the run has no {INPUTS_DIR}/{PANEL_FILE}", path=run_dir)
    expected = (manifest.get("inputs") or {}).get("panel", {}).get("sha256")
    if expected is not None and sha256_file(path) != expected:
        raise DataError(
            "the panel changed since the run (sha256 differs from run_manifest.json); rerun "
            "the simulation to backtest these inputs",
            path=path,
        )
    return panel_from_payload(read_payload(path), path)


def _candidate_params(run_dir: Path, manifest: dict[str, Any], candidate: str) -> dict[str, Any]:
    candidates = manifest.get("candidates") or {}
    if candidate not in candidates:
        raise ConfigError(
            f"--candidate {candidate!r} is not a candidate of the run "
            f"({run_dir / 'cv' / 'candidates.json'}); valid: {', '.join(candidates) or 'none'}"
        )
    return dict(candidates[candidate])


def _saved_config(payload: Any, path: Path) -> SimulationConfig:
    """A config saved by a run, validated again (the schema may have changed since)."""
    try:
        return SimulationConfig.model_validate(payload)
    except ValidationError as err:
        raise ConfigError(format_validation_error(f"{path} (key 'config')", err)) from None


def _saved_plan(run_dir: Path, k: int) -> tuple[FoldPlan, str] | None:
    """The configuration the run's outer loop ran for fold ``k``, and its file."""
    for path in (
        run_dir / "outer" / f"outer_{k}" / "config.json",
        run_dir / "outer" / "best_config.json",
        run_dir / "inner" / f"outer_{k}" / "best_config.json",
    ):
        if path.is_file():
            saved = _read_json(path)
            if "config" not in saved:
                raise DataError("lacks the key 'config'", path=path)
            config = _saved_config(saved["config"], path)
            return FoldPlan(saved.get("candidate_id"), config), str(path.relative_to(run_dir))
    return None


def plan_folds(
    run_dir: Path,
    manifest: dict[str, Any],
    n_samples: int,
    simulation_config: Path | None,
    candidate: str | None,
) -> tuple[list[OuterFold], dict[int, FoldPlan], str]:
    """The outer folds, what each runs, and a description of where that comes from.

    Raises
    ------
    ConfigError
        An unknown candidate, or a config the panel cannot support.
    DataError
        No saved configuration for a fold (the run stopped before its inner loop).
    """
    base = _saved_config(manifest["config"], run_dir / MANIFEST_FILE)
    source = "the run's config"
    if simulation_config is not None:
        base, source = load_simulation_config(simulation_config), str(simulation_config)
    if candidate is not None:
        base = with_overrides(base, _candidate_params(run_dir, manifest, candidate))
        source = f"candidate {candidate} on {source}"
    folds = build_cv(base, n_samples).folds
    if simulation_config is not None or candidate is not None:
        return folds, {f.k: FoldPlan(candidate, base) for f in folds}, source
    plans: dict[int, FoldPlan] = {}
    files = set()
    for fold in folds:
        saved = _saved_plan(run_dir, fold.k)
        if saved is None:
            raise DataError(
                f"no saved configuration for outer fold {fold.k} (the run stopped after "
                f"{manifest.get('stopped_after')}); pass --candidate or --simulation-config",
                path=run_dir,
            )
        plans[fold.k], file = saved
        files.add(file)
    return folds, plans, f"saved configuration: {', '.join(sorted(files))}"


def _hooks(plans: dict[int, FoldPlan]) -> Hooks:
    modes = {p.config.simulation_mode for p in plans.values()}
    if modes - {"stub", "full"} or len(modes) != 1:
        raise ConfigError(
            f"simulation_mode: {sorted(modes)}; a backtest runs one of stub or full (dry_run "
            "calls no model)"
        )
    return stub_hooks() if modes == {"stub"} else full_hooks()


def _run_trials(
    run_dir: Path, ks: list[int]
) -> tuple[dict[int, pd.DataFrame], pd.DataFrame | None]:
    """The run's inner trial returns per fold (those recorded) and pooled."""
    frames = {
        k: read_trial_returns(path)
        for k in ks
        if (path := run_dir / "inner" / f"outer_{k}" / TRIAL_RETURNS_FILE).is_file()
    }
    return frames, (pooled_trials(frames) if frames else None)


def _evaluate(
    panel: Panel, folds: list[OuterFold], plans: dict[int, FoldPlan], hooks: Hooks
) -> dict[int, OuterResult]:
    results: dict[int, OuterResult] = {}
    total = sum(int(f.test_idx.size) for f in folds)
    with progress_bar("backtest walk-forward", total) as tracker:
        for fold in folds:
            config = plans[fold.k].config
            check_horizon(config)
            params = config.data.dataset_params
            costs = cost_spec(config.cost, panel.assets, params.target_scale)
            results[fold.k] = evaluate_outer_walk_forward(
                panel, fold, config, hooks, costs, tracker
            )
    return results


def _write(
    folder: Path,
    results: dict[int, OuterResult],
    plans: dict[int, FoldPlan],
    metrics: dict[str, Any],
) -> list[str]:
    """Every backtest file into ``folder``; returns the plot file names."""
    frames = combined(results)
    write_csv(folder / "pnl.csv", frames["pnl"].rename_axis("timestamp"))
    write_csv(folder / "weights.csv", frames["weights"].rename_axis("timestamp"))
    predictive = pd.concat([r.predictive.assign(outer_fold=k) for k, r in sorted(results.items())])
    write_csv(folder / "predictive.csv", predictive, index=False)
    write_json(folder / "metrics.json", metrics)
    write_json(
        folder / "config.json",
        {
            f"outer_{k}": {
                "candidate_id": p.candidate_id,
                "config": p.config.model_dump(mode="json"),
            }
            for k, p in sorted(plans.items())
        },
    )
    returns = frames["returns"].drop(columns="outer_fold")
    starts = [r.pnl.index[0] for _, r in sorted(results.items()) if len(r.pnl)]
    plots = write_report_plots(
        folder,
        frames["pnl"]["net"],
        benchmark_returns(returns),
        frames["weights"].drop(columns="outer_fold"),
        starts,
    )
    return [p.name for p in plots]


def run_backtest(
    settings: Settings,
    run_dir: Path | None = None,
    simulation_config: Path | None = None,
    candidate: str | None = None,
) -> BacktestResult:
    """Replay the outer walk-forward of a simulation run and write its report.

    Parameters
    ----------
    settings
        Env settings (``SIMULATION_SOURCE`` holds the runs).
    run_dir
        The run folder; None = the latest finished run under ``SIMULATION_SOURCE``.
    simulation_config
        A ``simulation.yml`` to run instead of the run's saved configuration.
    candidate
        A candidate id of the run to run on every fold.

    Returns
    -------
    BacktestResult
        Output folder, what ran, the metrics and the plot paths.

    Raises
    ------
    DataError
        No finished run, a run without the needed files, or a changed panel.
    ConfigError
        An unknown candidate, an invalid config, or ``simulation_mode: dry_run``.
    NotYetImplementedError
        ``simulation_mode: full`` until the model hooks are plugged in.
    """
    run = run_dir if run_dir is not None else latest_run(settings.simulation_source)
    manifest = _manifest(run)
    panel = load_run_panel(run, manifest)
    folds, plans, source = plan_folds(
        run, manifest, int(panel.X.shape[0]), simulation_config, candidate
    )
    hooks = _hooks(plans)
    results = _evaluate(panel, folds, plans, hooks)
    fold_trials, pooled = _run_trials(run, sorted(results))
    metrics = {
        **results_payload(results, {k: p.candidate_id for k, p in plans.items()}, pooled),
        "source": source,
        "run": str(run),
        "hooks": hooks.name,
        "fold_trials_recorded": sorted(f"outer_{k}" for k in fold_trials),
    }
    out_dir = run / BACKTEST_DIR
    with staged_folder(out_dir) as staging:
        names = _write(staging, results, plans, metrics)
    return BacktestResult(
        out_dir=out_dir,
        run_dir=run,
        source=source,
        metrics=metrics,
        plots=tuple(out_dir / name for name in names),
    )

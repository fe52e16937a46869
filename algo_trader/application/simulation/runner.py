"""``algotrader simulation``: the nested-CV simulation, phase by phase.

Phases, in order (each writes its artifacts under ``SIMULATION_SOURCE/<label>/``):

1. ``inputs``: the ``feature_store_panel`` -> ``inputs/panel_tensor.pt`` (reused if present);
2. ``cv``: groups, outer folds, inner CPCV splits -> ``cv/cv_structure.json``,
   ``cv/timestamps_cv.csv``, ``cv/candidates.json``;
3. ``inner``: optional prebuild (``artifacts/prebuild/prebuild.json``), then every candidate
   on every inner split of each outer fold; the best per fold by the inner objective ->
   ``inner/outer_<k>/{scores.json, best_config.json, candidate_returns.csv}`` (the last:
   each candidate's inner test-week net returns under the allocation and costs, the
   trials of the DSR and PBO), ``preprocessing/outer_<k>/inner_splits.json``; with
   ``model_selection.enable`` the split payloads (``inner/outer_<k>/candidates/``) and
   the post-tune selection (``inner/outer_<k>/postprocessing/``) choose the fold's
   candidate instead;
4. ``outer``: with ``model_selection.enable`` first the global selection
   (``outer/{metrics,selection,best_config}.json``) and, with
   ``diagnostics.fan_charts.enable``, the diagnostics (``outer/diagnostics/``); then the
   weekly walk-forward of each fold's chosen candidate ->
   ``outer/outer_<k>/{pnl.csv, weights.csv, predictive.csv, metrics.json, config.json}``
   (``outer_report``), ``preprocessing/outer_<k>/outer_cleaning.json``;
5. ``results``: ``cv/summary.json``, ``outer/pnl.csv`` (all folds) and
   ``outer/results.json`` (performance report, buy-and-hold benchmark, DSR, PBO).

``run_manifest.json`` is written last by every run.

Resume (:mod:`.checkpoint`): re-running the same command on the same folder continues a
killed run. Before any unit of work the run records its identity (the config without
``stop_after``, the SHA-256 of each input file) in ``checkpoint/identity.json``; every
inner (fold, candidate) evaluation and every outer week is checkpointed after its
artifacts, and a re-run skips what is recorded and recomputes, deterministically, the
cheap steps between (CV, preprocessing, selection, reports), so that it ends with the same
bytes as an uninterrupted run. A folder whose identity differs from the config and inputs
of this run is an error naming the differences. A finished run (a complete manifest with
the same identity that reached the requested phase) is left alone: the re-run reports it
complete and writes nothing. The ``checkpoint/`` folder is deleted once the manifest is
written. ``stop_after`` sets the last phase and
wins over ``simulation_mode``; without it ``dry_run`` stops after ``cv`` and the other modes
run every phase. ``simulation_mode`` sets the work inside the phases: ``stub`` and ``full``
use their hooks; ``dry_run`` calls no hook, so an inner/outer phase it is asked to reach
writes its plan (splits, candidates, seeds, test weeks) instead of results.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from algo_trader.application.simulation.candidates import (
    Candidates,
    candidates_payload,
    generate_candidates,
)
from algo_trader.application.simulation.checkpoint import (
    Checkpoint,
    candidate_frame,
    check_identity,
    fold_trials,
    input_files,
    is_empty_start,
    remove_stray_temps,
    run_identity,
)
from algo_trader.application.simulation.cv_groups import (
    InnerSplit,
    OuterFold,
    build_equal_groups,
    cv_structure_payload,
    index_runs,
    make_cpcv_splits,
    make_outer_folds,
    sample_group_labels,
    timestamps_cv_frame,
    validate_cv,
)
from algo_trader.application.simulation.diagnostics import fan_chart_assets, write_diagnostics
from algo_trader.application.simulation.hooks import (
    Hooks,
    allocation_spec,
    cost_spec,
    full_hooks,
    stub_hooks,
)
from algo_trader.application.simulation.inner_objective import (
    CandidateScore,
    OnPrediction,
    PreparedSplit,
    Stream,
    best_candidate,
    derive_seed,
    prepare_split,
)
from algo_trader.application.simulation.manifest import (
    MANIFEST_FILE,
    manifest_payload,
    utc_now,
    write_manifest,
)
from algo_trader.application.simulation.model_selection import (
    FoldSelection,
    SelectionTable,
    SplitTarget,
    declared_complexity,
    payload_path,
    payload_recorder,
    select_fold,
    select_global,
    split_targets,
)
from algo_trader.application.simulation.outer_report import (
    results_payload,
    write_fold,
    write_results,
)
from algo_trader.application.simulation.outer_walk_forward import (
    OuterResult,
    evaluate_outer_walk_forward,
)
from algo_trader.application.simulation.panel import (
    Panel,
    PanelLoad,
    feature_week_dir,
    save_panel,
    sha256_file,
    store_roots,
)
from algo_trader.application.simulation.prebuild import run_prebuild
from algo_trader.application.simulation.registry import DATASET_LOADERS, FEATURE_STORE_PANEL
from algo_trader.application.simulation.trial_returns import (
    TrialReturns,
    pooled_trials,
    write_trial_returns,
)
from algo_trader.application.simulation.tuning_engine import (
    FoldWork,
    check_engine,
    evaluate_candidates,
    tuning_session,
)
from algo_trader.domain.errors import ConfigError, DataError
from algo_trader.domain.simulation.config import (
    SimulationConfig,
    load_simulation_config,
    with_overrides,
)
from algo_trader.infrastructure.data.atomic import write_csv, write_json
from algo_trader.infrastructure.env import Settings
from algo_trader.infrastructure.progress import progress_bar

logger = logging.getLogger(__name__)

PHASES = ("inputs", "cv", "inner", "outer", "results")
MIN_TRAIN_SAMPLES = 8
"""Fewest training weeks an outer fold or inner split may keep after purge and embargo."""
# Folders and files of a run that left no identity (an older version's, or one killed
# before recording it): they are removed first so that the folder never mixes two runs
# (inputs/ is reused).
_RUN_OUTPUTS = ("cv", "inner", "outer", "preprocessing", "artifacts", "run_manifest.json")


@dataclass(frozen=True, eq=False)
class CVStructure:
    """Groups, outer folds and inner splits of one panel."""

    groups: list[np.ndarray]
    folds: list[OuterFold]
    splits: dict[int, list[InnerSplit]]


@dataclass(frozen=True)
class SimulationResult:
    """What a run did and where it wrote (``summary_lines`` for the CLI)."""

    out_dir: Path
    mode: str
    stopped_after: str
    reused_inputs: bool
    panel_shape: tuple[int, int, int]
    n_folds: int = 0
    n_candidates: int = 0
    hooks: str | None = None
    best: dict[int, str] = field(default_factory=dict)
    summary: dict[str, Any] | None = None
    already_complete: bool = False
    """The folder held this finished run already; nothing was recomputed or written."""

    def summary_lines(self) -> list[str]:
        """Short human-readable lines for the CLI."""
        t, a, f = self.panel_shape
        reuse = " (reused)" if self.reused_inputs else ""
        lines = [
            f"simulation ({self.mode}, stopped after {self.stopped_after}) -> {self.out_dir}",
            f"inputs: {t} weeks x {a} assets x {f} features{reuse}",
        ]
        if self.already_complete:
            lines.insert(
                1,
                "already complete with this config and these inputs: nothing recomputed "
                "(delete the folder to recompute)",
            )
        if self.n_folds:
            lines.append(f"cv: {self.n_folds} outer folds, {self.n_candidates} candidates")
        if self.best:
            picks = ", ".join(f"outer_{k}: {c}" for k, c in self.best.items())
            lines.append(f"best candidate ({self.hooks} hooks): {picks}")
        selection = (self.summary or {}).get("model_selection")
        if selection:
            lines.append(f"model selection: global best candidate {selection['global_selected']}")
        overall = (self.summary or {}).get("overall") or {}
        if "total_net" in overall:
            lines.append(
                f"outer: {overall['n_weeks']} weeks, net {overall['total_net']:.6g} "
                f"(cost {overall['total_cost']:.6g}, fractions of capital)"
            )
        return lines


def last_phase(config: SimulationConfig) -> str:
    """The phase the run stops after: ``stop_after`` if set, else by ``simulation_mode``."""
    if config.stop_after is not None:
        return config.stop_after
    return "cv" if config.simulation_mode == "dry_run" else "results"


def _reaches(last: str, phase: str) -> bool:
    return PHASES.index(last) >= PHASES.index(phase)


def resolve_hooks(config: SimulationConfig, last: str) -> Hooks | None:
    """The hooks the run needs (None if it calls none); fails before any work.

    Raises
    ------
    ConfigError
        ``tuning.engine: ray`` without the ``ray`` extra installed.
    """
    if not _reaches(last, "inner") or config.simulation_mode == "dry_run":
        return None
    check_engine(config.tuning)
    return stub_hooks() if config.simulation_mode == "stub" else full_hooks()


def check_diagnostics(config: SimulationConfig) -> None:
    """Fan charts show the global best candidate of the post-tune model selection.

    Raises
    ------
    ConfigError
        ``diagnostics.fan_charts.enable`` without ``model_selection.enable``.
    """
    if config.diagnostics.fan_charts.enable and not config.model_selection.enable:
        raise ConfigError(
            "diagnostics.fan_charts.enable: true needs model_selection.enable: true (the "
            "plots show the global best candidate of the post-tune selection, from its "
            "inner split payloads); enable model_selection or disable the fan charts"
        )


def check_horizon(config: SimulationConfig) -> None:
    """Purge and embargo assume ``cv.horizon`` covers the label: ``y[t]`` ends at ``t + shift``.

    Raises
    ------
    ConfigError
        ``cv.horizon`` below ``data.dataset_params.target_shift``.
    """
    shift = config.data.dataset_params.target_shift
    if config.cv.horizon < shift:
        raise ConfigError(
            f"cv.horizon: {config.cv.horizon} is below data.dataset_params.target_shift "
            f"({shift}); labels reach {shift} weeks ahead, so purging by a shorter horizon "
            f"would leak; set cv.horizon >= {shift}"
        )


def output_dir(settings: Settings, config: SimulationConfig) -> Path:
    """``SIMULATION_SOURCE/<label>``; the label defaults to the latest feature-store week."""
    label = config.data.simulation_output_path
    if label is None:
        feature_store, _ = store_roots(settings, config.data.dataset_params)
        label = feature_week_dir(feature_store).name
    return settings.simulation_source / label


def build_cv(config: SimulationConfig, n_samples: int) -> CVStructure:
    """Validate the CV config against the panel length, then build the structure.

    Raises
    ------
    ConfigError
        From ``validate_cv`` / ``outer.select`` with the parameters and numbers.
    """
    cv = config.cv
    groups = build_equal_groups(n_samples, cv.warmup_len, cv.group_len)
    outer_ids = config.outer.select(len(groups), cv.q)
    validate_cv(
        n_samples,
        warmup_len=cv.warmup_len,
        group_len=cv.group_len,
        horizon=cv.horizon,
        embargo_len=cv.embargo_len,
        q=cv.q,
        max_inner_combos=cv.max_inner_combos,
        exclude_warmup=cv.exclude_warmup,
        outer_test_groups=outer_ids,
        min_train_samples=MIN_TRAIN_SAMPLES,
    )
    folds = make_outer_folds(n_samples, groups, cv.warmup_len, cv.exclude_warmup, outer_ids)
    splits = {
        fold.k: make_cpcv_splits(
            fold,
            groups,
            cv.warmup_len,
            cv.exclude_warmup,
            cv.q,
            cv.horizon,
            cv.embargo_len,
            cv.max_inner_combos,
        )
        for fold in folds
    }
    return CVStructure(groups, folds, splits)


def _tidy_killed_run(out_dir: Path) -> None:
    """Delete what a killed write left: temp files and, if the run was killed before its
    first file, its empty folders (a folder that is empty from the start stays an error)."""
    if not out_dir.is_dir():
        return
    if remove_stray_temps(out_dir):
        logger.info("removed temp files of a killed run under %s", out_dir)
    if is_empty_start(out_dir):
        shutil.rmtree(out_dir)


def _read_manifest(out_dir: Path) -> dict[str, Any] | None:
    path = out_dir / MANIFEST_FILE
    if not path.is_file():
        return None
    return dict(json.loads(path.read_text(encoding="utf-8")))


def _reuse_or_clear(
    checkpoint: Checkpoint, config: SimulationConfig, loaded: PanelLoad, last: str
) -> dict[str, Any] | None:
    """Decide what an existing run folder is to this run.

    Returns the manifest when the folder holds this run finished at least up to ``last``
    (nothing to do); None when the run is to go on: a new folder, a resumable one (same
    identity), or one without identity (an older version's, or killed before recording
    it: its outputs are removed, its panel reused).

    Raises
    ------
    ConfigError, DataError
        The folder's recorded config or inputs differ from this run's.
    """
    if not loaded.reused:
        return None
    manifest = _read_manifest(checkpoint.out_dir)
    recorded = checkpoint.identity()
    if recorded is None and manifest is not None:
        recorded = manifest.get("identity")
    if recorded is None:
        _clear_previous_run(checkpoint.out_dir)
        return None
    current = run_identity(config, input_files(loaded.panel, loaded.path))
    check_identity(checkpoint.out_dir, recorded, current)
    if manifest is not None and _reaches(manifest["stopped_after"], last):
        checkpoint.remove()  # left by a run killed right after writing its manifest
        return manifest
    logger.info("resuming %s (done: %s)", checkpoint.out_dir, checkpoint.markers())
    return None


def _complete_result(
    out_dir: Path,
    config: SimulationConfig,
    loaded: PanelLoad,
    manifest: dict[str, Any],
    n_candidates: int,
) -> SimulationResult:
    """The result of a re-run on a finished run folder, from its files (nothing is run)."""
    summary_path = out_dir / "cv" / "summary.json"
    summary = json.loads(summary_path.read_text("utf-8")) if summary_path.is_file() else None
    folds = (summary or {}).get("folds", [])
    logger.info("%s is already complete with this config and these inputs", out_dir)
    return SimulationResult(
        out_dir=out_dir,
        mode=config.simulation_mode,
        stopped_after=manifest["stopped_after"],
        reused_inputs=True,
        panel_shape=(
            int(loaded.panel.X.shape[0]),
            len(loaded.panel.assets),
            len(loaded.panel.features),
        ),
        n_folds=len(folds),
        n_candidates=n_candidates if manifest.get("candidates") is not None else 0,
        hooks=manifest.get("hooks"),
        best={f["k"]: f["best_candidate_id"] for f in folds if "best_candidate_id" in f},
        summary=summary,
        already_complete=True,
    )


def _clear_previous_run(out_dir: Path) -> None:
    for name in _RUN_OUTPUTS:
        path = out_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def write_cv(
    out_dir: Path, panel: Panel, cv: CVStructure, config: SimulationConfig, candidates: Candidates
) -> None:
    """``cv/cv_structure.json``, ``cv/timestamps_cv.csv`` and ``cv/candidates.json``."""
    params = config.cv.model_dump(mode="json")
    write_json(
        out_dir / "cv" / "cv_structure.json",
        cv_structure_payload(
            panel.index,
            cv.groups,
            cv.folds,
            cv.splits,
            warmup_len=config.cv.warmup_len,
            q=config.cv.q,
            params=params,
        ),
    )
    frame = timestamps_cv_frame(panel.index, cv.groups, cv.folds, warmup_len=config.cv.warmup_len)
    write_csv(out_dir / "cv" / "timestamps_cv.csv", frame, index=False)
    write_json(out_dir / "cv" / "candidates.json", candidates_payload(candidates))


@dataclass
class _Run:
    """State shared by the phases of one run."""

    out_dir: Path
    config: SimulationConfig
    panel: Panel
    cv: CVStructure | None
    candidates: Candidates
    hooks: Hooks | None
    checkpoint: Checkpoint
    seeds: dict[str, Any] = field(default_factory=dict)
    phases: list[str] = field(default_factory=lambda: ["inputs"])
    best: dict[int, CandidateScore] = field(default_factory=dict)
    outer: dict[int, OuterResult] = field(default_factory=dict)
    selections: dict[int, FoldSelection] = field(default_factory=dict)
    global_selection: SelectionTable | None = None
    trials: dict[int, pd.DataFrame] = field(default_factory=dict)
    summary: dict[str, Any] | None = None

    @property
    def structure(self) -> CVStructure:
        """The CV structure (phases after ``cv`` only run when it exists)."""
        assert self.cv is not None
        return self.cv


def _fold_dir(run: _Run, phase: str, k: int) -> Path:
    return run.out_dir / phase / f"outer_{k}"


def _plan_inner(run: _Run, fold: OuterFold) -> None:
    """dry_run: the fits the inner loop would run, with their seeds (no hook is called)."""
    splits = run.structure.splits[fold.k]
    seeds = {
        cid: {
            str(s.split_id): derive_seed(
                run.config.cv.seed, Stream.INNER_FIT, fold.k, s.split_id, i
            )
            for s in splits
        }
        for i, cid in enumerate(run.candidates)
    }
    run.seeds.setdefault("inner", {})[f"outer_{fold.k}"] = seeds
    write_json(
        _fold_dir(run, "inner", fold.k) / "plan.json",
        {
            "split_ids": [s.split_id for s in splits],
            "candidate_ids": list(run.candidates),
            "seeds": seeds,
        },
    )


def _split_targets(
    run: _Run, fold: OuterFold, prepared: list[PreparedSplit]
) -> dict[int, SplitTarget]:
    n_samples = int(run.panel.X.shape[0])
    labels = sample_group_labels(n_samples, run.structure.groups, run.config.cv.warmup_len)
    return split_targets(prepared, labels, run.panel.timestamps, run.config, fold.k)


def _complexities(
    run: _Run, hooks: Hooks, prepared: list[PreparedSplit]
) -> tuple[dict[str, float | None], str]:
    """Each candidate's declared model complexity, and where it comes from."""
    if hooks.name == "stub":
        return {}, "none: the stub hooks fit no model (seeded random tie-break)"
    # Cleaning may keep a different number of features per split; the median stands in.
    n_features = int(np.median([len(p.kept) for p in prepared]))
    n_assets = len(run.panel.assets)
    values = {
        cid: declared_complexity(with_overrides(run.config, params), n_assets, n_features)
        for cid, params in run.candidates.items()
    }
    return values, f"model.complexity({n_assets} assets, {n_features} features)"


def _select_fold(
    run: _Run,
    fold: OuterFold,
    hooks: Hooks,
    prepared: list[PreparedSplit],
    targets: dict[int, SplitTarget],
    results: list[CandidateScore],
) -> CandidateScore:
    """Post-tune selection of the fold; returns the chosen candidate's inner result."""
    complexity, source = _complexities(run, hooks, prepared)
    chosen = select_fold(
        _fold_dir(run, "inner", fold.k),
        fold.k,
        list(run.candidates),
        targets,
        complexity,
        run.config,
        source,
    )
    run.selections[fold.k] = chosen
    run.seeds.setdefault("model_selection", {})[f"outer_{fold.k}"] = chosen.seeds
    return next(r for r in results if r.candidate_id == chosen.table.winner)


def _inner_fold(run: _Run, fold: OuterFold, hooks: Hooks) -> None:
    """Score every candidate on the fold's inner splits and keep the best."""
    prepared = [
        prepare_split(run.panel, s, run.config, fold.k) for s in run.structure.splits[fold.k]
    ]
    write_json(
        run.out_dir / "preprocessing" / f"outer_{fold.k}" / "inner_splits.json",
        {str(p.split.split_id): {"kept": p.kept, "dropped": p.dropped} for p in prepared},
    )
    selecting = run.config.model_selection.enable
    targets = _split_targets(run, fold, prepared) if selecting else {}
    params = run.config.data.dataset_params
    costs = cost_spec(run.config.cost, run.panel.assets, params.target_scale)
    # One TrialReturns per candidate: a candidate's net returns are checkpointed with it.
    trials = {
        cid: TrialReturns(run.panel, run.structure.splits[fold.k], run.config, hooks, costs)
        for cid in run.candidates
    }
    recorders: list[OnPrediction] = [lambda sid, cid, draws: trials[cid].record(sid, cid, draws)]
    if selecting:
        recorders.append(payload_recorder(_fold_dir(run, "inner", fold.k), targets))

    def on_prediction(split_id: int, candidate_id: str, samples: torch.Tensor) -> None:
        for record in recorders:
            record(split_id, candidate_id, samples)

    total = len(prepared) * len(run.candidates)
    frames: dict[str, pd.DataFrame] = {}
    done: dict[str, CandidateScore] = {}
    for cid, candidate in run.candidates.items():  # a killed run's candidates are read back
        loaded = run.checkpoint.load_candidate(fold.k, cid, candidate)
        if loaded is not None:
            done[cid], frames[cid] = loaded

    def record(result: CandidateScore) -> None:  # after the candidate's payloads are written
        cid = result.candidate_id
        frames[cid] = _net_returns(trials[cid], cid)
        run.checkpoint.save_candidate(fold.k, result, frames[cid])
        done[cid] = result

    work = FoldWork(fold.k, prepared, run.config, hooks, list(run.candidates), run.candidates)
    todo = [cid for cid in run.candidates if cid not in done]
    folder = _fold_dir(run, "inner", fold.k)
    with progress_bar(f"inner outer_{fold.k}", total) as tracker:
        tracker.advance(len(prepared) * len(done))
        evaluate_candidates(work, folder, tracker.advance, on_prediction, record, todo)
    results = [done[cid] for cid in run.candidates]
    best = best_candidate(results)
    run.seeds.setdefault("inner", {})[f"outer_{fold.k}"] = {
        r.candidate_id: {str(k): v for k, v in r.seeds.items()} for r in results
    }
    run.trials[fold.k] = fold_trials([frames[cid] for cid in run.candidates])
    write_trial_returns(folder, run.trials[fold.k])
    write_json(
        folder / "scores.json",
        {
            "hooks": hooks.name,
            "aggregate": run.config.tuning.aggregate,
            "candidates": {r.candidate_id: r.payload() for r in results},
            "best_candidate_id": None if best is None else best.candidate_id,
        },
    )
    if best is None:
        raise DataError(
            f"outer fold {fold.k}: no candidate has a finite inner score (every inner test "
            "split lacks observed targets, or every trial failed)",
            path=folder / "scores.json",
        )
    if selecting:
        best = _select_fold(run, fold, hooks, prepared, targets, results)
        run.checkpoint.mark(f"selection outer_{fold.k}")
    run.best[fold.k] = best
    write_json(
        folder / "best_config.json",
        {
            "candidate_id": best.candidate_id,
            "params": best.params,
            "objective": best.objective,
            "selected_by": "model_selection" if selecting else "inner_objective",
            "config": with_overrides(run.config, best.params).model_dump(mode="json"),
        },
    )
    run.checkpoint.mark(f"inner outer_{fold.k}")


def _net_returns(trials: TrialReturns, candidate_id: str) -> pd.DataFrame:
    """A candidate's net returns as rebuilt from recorded arrays, so that a resumed fold
    writes the same bytes as an uninterrupted one."""
    frame = trials.frame()
    rows, net = np.zeros(0, np.int64), np.zeros(0)
    if candidate_id in frame:  # absent when the candidate failed (on_trial_error: skip)
        rows = pd.DatetimeIndex(frame.index).as_unit("ns").asi8
        net = frame[candidate_id].to_numpy()
    return candidate_frame(candidate_id, rows, net)


def run_inner(run: _Run) -> None:
    """Phase ``inner``: prebuild, then the inner loop of every outer fold."""
    hooks = run.hooks
    if hooks is None:
        for fold in run.structure.folds:
            _plan_inner(run, fold)
        return
    run.config = run_prebuild(run.config, run.panel, run.structure.folds, run.out_dir)
    if run.config.model.prebuild.enabled:
        run.seeds["prebuild"] = derive_seed(run.config.cv.seed, Stream.PREBUILD)
        run.checkpoint.mark("prebuild")
    with tuning_session(run.config.tuning):  # engine ray: one Ray session for the run
        for fold in run.structure.folds:
            _inner_fold(run, fold, hooks)


def _write_outer(
    run: _Run, result: OuterResult, candidate_id: str, config: SimulationConfig
) -> None:
    folder = _fold_dir(run, "outer", result.k)
    write_fold(folder, result, candidate_id, config, run.trials.get(result.k))
    write_json(
        run.out_dir / "preprocessing" / f"outer_{result.k}" / "outer_cleaning.json",
        {"kept": result.kept, "dropped": result.dropped},
    )


def run_global_selection(run: _Run) -> None:
    """The global selection over the folds and, if enabled, the diagnostics of its winner."""
    folds = [run.selections[f.k] for f in run.structure.folds]
    table = select_global(run.out_dir, folds, run.candidates, run.config)
    run.global_selection = table
    config = run.config
    if not config.diagnostics.fan_charts.enable:
        return
    paths = [
        path
        for fold in run.structure.folds
        for split in run.structure.splits[fold.k]
        if (
            path := payload_path(_fold_dir(run, "inner", fold.k), table.winner, split.split_id)
        ).exists()
    ]
    seed = derive_seed(config.cv.seed, Stream.DIAGNOSTICS)
    run.seeds["diagnostics"] = seed
    write_diagnostics(
        run.out_dir, paths, table.winner, config.diagnostics.fan_charts, run.panel.assets, seed
    )


def run_outer(run: _Run) -> None:
    """Phase ``outer``: the global selection (if enabled), then the weekly walk-forward of
    each fold's chosen candidate."""
    hooks = run.hooks
    if hooks is None:
        for fold in run.structure.folds:
            write_json(
                _fold_dir(run, "outer", fold.k) / "plan.json",
                {"test_rows": index_runs(fold.test_idx), "n_weeks": int(fold.test_idx.size)},
            )
        return
    if run.selections:
        run_global_selection(run)
    params = run.config.data.dataset_params
    costs = cost_spec(run.config.cost, run.panel.assets, params.target_scale)
    total = sum(int(f.test_idx.size) for f in run.structure.folds)
    with progress_bar("outer walk-forward", total) as tracker:
        for fold in run.structure.folds:
            best = run.best[fold.k]
            config = with_overrides(run.config, best.params)
            result = evaluate_outer_walk_forward(
                run.panel, fold, config, hooks, costs, tracker, run.checkpoint
            )
            run.outer[fold.k] = result
            run.seeds.setdefault("outer", {})[f"outer_{fold.k}"] = result.seeds
            _write_outer(run, result, best.candidate_id, config)
            run.checkpoint.mark(f"outer outer_{fold.k}")


def summary_payload(run: _Run) -> dict[str, Any]:
    """``cv/summary.json``: per fold the chosen candidate, inner objective and outer result."""
    folds = []
    for fold in run.structure.folds:
        entry: dict[str, Any] = {"k": fold.k, "n_inner_splits": len(run.structure.splits[fold.k])}
        if fold.k in run.best:
            best = run.best[fold.k]
            entry.update(
                best_candidate_id=best.candidate_id,
                inner_objective=best.objective,
                inner_std=best.std,
            )
        if fold.k in run.outer:
            entry["outer"] = run.outer[fold.k].metrics()
        folds.append(entry)
    overall: dict[str, Any] = {}
    if run.outer:
        pnl = pd.concat([r.pnl for r in run.outer.values()])
        net = pnl["net"].to_numpy()
        overall = {
            "n_weeks": int(net.size),
            "total_gross": float(pnl["gross"].sum()),
            "total_cost": float(pnl["cost"].sum()),
            "total_net": float(net.sum()),
            "mean_net": float(net.mean()),
            "std_net": float(net.std()),
        }
    selection = None
    if run.global_selection is not None:
        selection = {
            "global_selected": run.global_selection.winner,
            "fold_selected": {f"outer_{k}": s.table.winner for k, s in run.selections.items()},
        }
    return {
        "mode": run.config.simulation_mode,
        "model_selection": selection,
        "hooks": None if run.hooks is None else run.hooks.name,
        "units": "simple returns per week, as fractions of portfolio value",
        "n_samples": int(run.panel.X.shape[0]),
        "n_candidates": len(run.candidates),
        "folds": folds,
        "overall": overall,
    }


def run_results(run: _Run) -> dict[str, Any]:
    """Phase ``results``: ``cv/summary.json``, the all-fold ``outer/pnl.csv`` and
    ``outer/results.json`` (performance, benchmark, DSR and PBO)."""
    summary = summary_payload(run)
    if run.outer:
        frames = [r.pnl.assign(outer_fold=k) for k, r in run.outer.items()]
        write_csv(run.out_dir / "outer" / "pnl.csv", pd.concat(frames).rename_axis("timestamp"))
        ids = {k: run.best[k].candidate_id for k in run.outer}
        trials = pooled_trials(run.trials) if run.trials else None
        write_results(run.out_dir, results_payload(run.outer, ids, trials))
    write_json(run.out_dir / "cv" / "summary.json", summary)
    return summary


def _load_inputs(settings: Settings, config: SimulationConfig) -> tuple[PanelLoad, Path]:
    out_dir = output_dir(settings, config)
    loader = DATASET_LOADERS.get(FEATURE_STORE_PANEL)
    return loader(settings, config.data.dataset_params, out_dir), out_dir


def _run_phases(run: _Run, cv: CVStructure, last: str) -> None:
    """Phases ``cv`` .. ``last`` (``inputs`` is done by the caller)."""
    write_cv(run.out_dir, run.panel, cv, run.config, run.candidates)
    run.phases.append("cv")
    run.checkpoint.mark("cv")
    for phase, step in (("inner", run_inner), ("outer", run_outer)):
        if _reaches(last, phase):
            step(run)
            run.phases.append(phase)
    if _reaches(last, "results"):
        run.summary = run_results(run)
        run.phases.append("results")


def _write_run_manifest(
    run: _Run,
    loaded: PanelLoad,
    config_path: Path,
    last: str,
    started: str,
    identity: dict[str, Any],
) -> None:
    inputs = {
        **run.panel.sources,
        "panel": {"path": str(loaded.path), "sha256": sha256_file(loaded.path)},
        "config": {"path": str(config_path), "sha256": sha256_file(config_path)},
    }
    write_manifest(
        run.out_dir,
        manifest_payload(
            config=run.config.model_dump(mode="json"),
            config_path=config_path,
            candidates=candidates_payload(run.candidates) if "cv" in run.phases else None,
            seeds=run.seeds,
            inputs=inputs,
            phases=run.phases,
            stopped_after=last,
            hooks=None if run.hooks is None else run.hooks.name,
            started=started,
            identity=identity,
        ),
    )


def run_simulation(settings: Settings, config_path: str | Path) -> SimulationResult:
    """Run the nested-CV simulation of ``config_path`` (see the module doc for the phases).

    Parameters
    ----------
    settings
        Env settings (``SIMULATION_SOURCE`` and the input folders).
    config_path
        The ``simulation.yml``.

    Returns
    -------
    SimulationResult
        Where the run wrote, how far it went and, per fold, the chosen candidate.

    Raises
    ------
    ConfigError
        Invalid config, a CV configuration the panel cannot support, fan charts without
        ``model_selection.enable`` or naming assets the panel lacks (all checked before
        any file is written).
    DataError
        Missing or inconsistent inputs, or an output folder without ``inputs/panel_tensor.pt``.
    TrialFailedError
        A candidate failed under ``tuning.on_trial_error: raise`` (traceback in
        ``inner/outer_<k>/trial_errors.json``).
    """
    started = utc_now()
    config = load_simulation_config(config_path)
    last = last_phase(config)
    check_horizon(config)
    check_diagnostics(config)
    hooks = resolve_hooks(config, last)
    candidates = generate_candidates(config.tuning)
    out_dir = output_dir(settings, config)
    _tidy_killed_run(out_dir)
    loaded, _ = _load_inputs(settings, config)
    if config.diagnostics.fan_charts.enable:
        fan_chart_assets(config.diagnostics.fan_charts, loaded.panel.assets)
    # The CV config is checked against the panel before anything is written.
    cv = build_cv(config, loaded.panel.X.shape[0]) if _reaches(last, "cv") else None
    if hooks is not None:  # allocation and costs, too, are checked before any file is written
        allocation_spec(config, len(loaded.panel.assets))
        cost_spec(config.cost, loaded.panel.assets, config.data.dataset_params.target_scale)
    checkpoint = Checkpoint(out_dir)
    finished = _reuse_or_clear(checkpoint, config, loaded, last)
    if finished is not None:
        return _complete_result(out_dir, config, loaded, finished, len(candidates))
    save_panel(loaded)
    if loaded.reused:
        logger.info("reusing %s (delete it to rebuild the inputs)", loaded.path)
    identity = run_identity(config, input_files(loaded.panel, loaded.path))
    if checkpoint.identity() is None:
        checkpoint.start(identity)
    # A run continued past the phase an earlier run stopped at: its manifest no longer
    # describes the folder until this run writes its own.
    (out_dir / MANIFEST_FILE).unlink(missing_ok=True)
    checkpoint.mark("inputs")
    seeds: dict[str, Any] = {"cv.seed": config.cv.seed, "tuning.seed": config.tuning.seed}
    run = _Run(out_dir, config, loaded.panel, cv, candidates, hooks, checkpoint, seeds)
    if cv is not None:
        _run_phases(run, cv, last)
    _write_run_manifest(run, loaded, Path(config_path), last, started, identity)
    checkpoint.remove()
    logger.info("simulation finished after %s: %s", last, out_dir)
    return SimulationResult(
        out_dir=out_dir,
        mode=config.simulation_mode,
        stopped_after=last,
        reused_inputs=loaded.reused,
        panel_shape=(
            int(loaded.panel.X.shape[0]),
            len(loaded.panel.assets),
            len(loaded.panel.features),
        ),
        n_folds=0 if cv is None else len(cv.folds),
        n_candidates=len(candidates),
        hooks=None if hooks is None else hooks.name,
        best={k: c.candidate_id for k, c in run.best.items()},
        summary=run.summary,
    )

"""Where the inner loop's candidates are evaluated (``tuning.engine``, nestedcv.md sections 7, 9).

``local`` runs the candidates one after another in this process; ``ray`` runs each candidate
as a Ray Tune trial (``tune.grid_search`` over the persisted candidate ids), with
``tuning.resources`` per trial, on a local Ray (``tuning.ray.address: null``) or a cluster
(``auto`` / ``host:port``). Both engines run the same code per candidate
(:func:`run_candidate`), so scores, seeds and every artifact are identical whichever ran:
seeds come from :func:`.inner_objective.derive_seed` and the candidate's position, never from
the execution order, and the predictive draws a trial produced are handed to the run's
``on_prediction`` recorders in candidate order, in this process, after the trial succeeded.

A failing candidate (an exception inside its fit, prediction or score) is recorded with its
traceback in ``inner/outer_<k>/trial_errors.json``; ``tuning.on_trial_error: raise`` then
stops the run at the first failing candidate (in candidate order) and ``skip`` goes on
without it (NaN on every split, no returns or payloads). A project error
(:class:`AlgoTraderError`: bad config or data) is not a trial failure: it always stops the run.

The Ray engine keeps Tune's results table (``ray/results.csv``) and its per-trial folders
(``ray/tune/candidate_<id>/``: params, progress, stdout/stderr) under the fold's folder; Ray's
own process logs stay in Ray's session folder (``/tmp/ray/session_*/logs``), not the console.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

# Ray starts its workers with `uv run` when the driver runs under `uv run`, re-resolving the
# project environment from the worker's own directory (without this run's extras: no ray).
# Workers must use the driver's interpreter and venv instead.
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

from algo_trader.application.simulation.hooks import Hooks
from algo_trader.application.simulation.inner_objective import (
    CandidateScore,
    OnPrediction,
    PreparedSplit,
    Stream,
    derive_seed,
    make_inner_objective,
)
from algo_trader.domain.errors import AlgoTraderError, ConfigError
from algo_trader.domain.simulation.config import SimulationConfig, TuningConfig
from algo_trader.infrastructure.data.atomic import write_csv, write_json

logger = logging.getLogger(__name__)

RAY_INSTALL = "uv sync --extra ray"
TRIAL_ERRORS_FILE = "trial_errors.json"
RAY_FOLDER = "ray"


class TrialFailedError(AlgoTraderError):
    """A candidate's trial failed under ``tuning.on_trial_error: raise``."""


@dataclass(frozen=True)
class CandidateOutcome:
    """What one candidate's trial produced (it travels back from a Ray worker as is).

    Attributes
    ----------
    score
        The inner result; for a failed trial NaN on every split.
    predictions
        ``(split_id, (S, T, A) draws)`` in split order; empty for a failed trial.
    traceback
        The failure's formatted traceback, or None.
    fatal
        A project error the trial raised: it stops the run under either setting.
    """

    score: CandidateScore
    predictions: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    traceback: str | None = None
    fatal: AlgoTraderError | None = None


@dataclass(frozen=True, eq=False)
class FoldWork:
    """Everything a trial needs: put into Ray's object store once per fold."""

    fold_k: int
    prepared: Sequence[PreparedSplit]
    config: SimulationConfig
    hooks: Hooks
    candidate_ids: list[str]
    candidates: Mapping[str, Mapping[str, Any]]


def require_ray() -> Any:
    """The ``ray`` module, imported on demand (``ray[tune]`` is an optional extra).

    Raises
    ------
    ConfigError
        ``tuning.engine: ray`` without Ray installed (names the install command).
    """
    try:
        import ray
        import ray.tune  # the engine needs Tune, not only the core
    except ImportError as err:
        raise ConfigError(
            f"tuning.engine: ray needs the optional Ray Tune extra, which is not installed "
            f"({err}); install it with `{RAY_INSTALL}`, or set tuning.engine: local"
        ) from err
    return ray


def check_engine(tuning: TuningConfig) -> None:
    """Fail before any work if the engine cannot run (Ray missing)."""
    if tuning.engine == "ray":
        require_ray()


@contextmanager
def tuning_session(tuning: TuningConfig) -> Iterator[None]:
    """Hold the engine's session for the whole inner phase (Ray starts once per run).

    ``ray`` with ``tuning.ray.address: null`` starts a private local Ray (all the machine's
    CPUs), ``auto`` or ``host:port`` joins a running cluster; the connection is closed at
    the end. A Ray this process already holds (a notebook, a test) is used as it is.
    """
    if tuning.engine != "ray":
        yield
        return
    ray = require_ray()
    if ray.is_initialized():
        yield
        return
    # "local" always starts a private instance: a bare ray.init() would join a cluster that
    # `ray start` left running on this machine.
    address = tuning.ray.address or "local"
    ray.init(
        address=address,
        include_dashboard=False,
        log_to_driver=False,  # workers' output stays in the trial folders and Ray's logs
        logging_level=logging.WARNING,
    )
    try:
        yield
    finally:
        ray.shutdown()


def _failed_score(
    work: FoldWork, index: int, candidate_id: str, error: BaseException
) -> CandidateScore:
    seeds = {
        p.split.split_id: derive_seed(
            work.config.cv.seed, Stream.INNER_FIT, work.fold_k, p.split.split_id, index
        )
        for p in work.prepared
    }
    nan = float("nan")
    return CandidateScore(
        candidate_id,
        dict(work.candidates[candidate_id]),
        nan,
        nan,
        nan,
        dict.fromkeys(seeds, nan),
        seeds,
        f"{type(error).__name__}: {error}",
    )


def run_candidate(work: FoldWork, candidate_id: str) -> CandidateOutcome:
    """One candidate on every inner split of the fold (a trial of either engine).

    The objective runs with ``on_trial_error: raise`` so that a failure reaches this
    function with its traceback; the predictive draws are kept and handed on only if the
    whole candidate succeeded.
    """
    index = work.candidate_ids.index(candidate_id)
    strict = work.config.model_copy(
        update={"tuning": work.config.tuning.model_copy(update={"on_trial_error": "raise"})}
    )
    predictions: list[tuple[int, torch.Tensor]] = []

    def keep(split_id: int, _cid: str, samples: torch.Tensor) -> None:
        predictions.append((split_id, samples))

    objective = make_inner_objective(work.fold_k, work.prepared, strict, work.hooks, None, keep)
    try:
        score = objective(index, candidate_id, work.candidates[candidate_id])
    except AlgoTraderError as err:
        return CandidateOutcome(_failed_score(work, index, candidate_id, err), fatal=err)
    except Exception as err:
        failed = _failed_score(work, index, candidate_id, err)
        return CandidateOutcome(failed, traceback=traceback.format_exc())
    return CandidateOutcome(score, predictions)


def _error_entry(outcome: CandidateOutcome) -> dict[str, Any]:
    score = outcome.score
    return {
        "candidate_id": score.candidate_id,
        "params": score.params,
        "error": score.error,
        "traceback": outcome.traceback,
    }


def _settle(
    work: FoldWork,
    outcomes: Iterator[CandidateOutcome],
    folder: Path,
    on_prediction: OnPrediction | None,
    on_result: Callable[[CandidateScore], None] | None,
) -> list[CandidateScore]:
    """Hand each outcome on in candidate order; record failures and apply on_trial_error."""
    policy = work.config.tuning.on_trial_error
    results: list[CandidateScore] = []
    errors: list[dict[str, Any]] = []
    try:
        for outcome in outcomes:
            if outcome.fatal is not None:
                raise outcome.fatal
            if outcome.traceback is not None:
                errors.append(_error_entry(outcome))
                if policy == "raise":
                    score = outcome.score
                    raise TrialFailedError(
                        f"outer fold {work.fold_k}: candidate {score.candidate_id} "
                        f"{score.params} failed: {score.error} (traceback in "
                        f"{folder / TRIAL_ERRORS_FILE}); set tuning.on_trial_error: skip "
                        "to go on without a failing candidate"
                    )
            elif on_prediction is not None:
                for split_id, samples in outcome.predictions:
                    on_prediction(split_id, outcome.score.candidate_id, samples)
            if on_result is not None:
                on_result(outcome.score)
            results.append(outcome.score)
    finally:
        if errors:
            write_json(
                folder / TRIAL_ERRORS_FILE,
                {"fold": work.fold_k, "on_trial_error": policy, "errors": errors},
            )
    return results


def evaluate_candidates(
    work: FoldWork,
    folder: Path,
    on_split: Callable[[], None] | None = None,
    on_prediction: OnPrediction | None = None,
    on_result: Callable[[CandidateScore], None] | None = None,
    only: Sequence[str] | None = None,
) -> list[CandidateScore]:
    """Evaluate every candidate of one outer fold with ``tuning.engine``.

    Parameters
    ----------
    work
        The fold's prepared inner splits, run config, hooks and candidates.
    folder
        The fold's ``inner/outer_<k>`` folder (``trial_errors.json``, ``ray/``).
    on_split
        Progress: called ``len(work.prepared)`` times as each candidate finishes.
    on_prediction
        The run's recorders; called in candidate order with each successful candidate's
        split draws.
    on_result
        Called with each candidate's result (a skipped one included) after its draws were
        handed on, in candidate order (a resumable run records the candidate there).
    only
        The candidates to evaluate, default all (e.g. those a killed run did not finish);
        seeds still come from each one's position in ``work.candidate_ids``.

    Returns
    -------
    list[CandidateScore]
        In candidate order (of ``only`` if given); a candidate skipped under
        ``on_trial_error: skip`` has NaN scores and its error message.

    Raises
    ------
    TrialFailedError
        A candidate failed under ``on_trial_error: raise``.
    ConfigError
        ``tuning.engine: ray`` without Ray installed.
    """
    todo = list(work.candidate_ids if only is None else only)
    if work.config.tuning.engine == "ray":
        outcomes = iter(_ray_outcomes(work, todo, folder, on_split))
    else:
        outcomes = (_local_outcome(work, cid, on_split) for cid in todo)
    return _settle(work, outcomes, folder, on_prediction, on_result)


def _local_outcome(
    work: FoldWork, candidate_id: str, on_split: Callable[[], None] | None
) -> CandidateOutcome:
    outcome = run_candidate(work, candidate_id)
    _advance(on_split, len(work.prepared))
    return outcome


class _Outbox:
    """Ray actor: trials leave their outcomes here; the driver collects them in order."""

    def __init__(self) -> None:
        self._items: dict[str, CandidateOutcome] = {}

    def put(self, candidate_id: str, outcome: CandidateOutcome) -> None:
        self._items[candidate_id] = outcome

    def pop(self, candidate_id: str) -> CandidateOutcome | None:
        return self._items.pop(candidate_id, None)


def _trial(params: dict[str, Any], work_ref: Any, outbox: Any) -> None:
    """The Ray Tune trainable: one candidate; its outcome goes to the outbox."""
    import ray
    from ray import tune

    work: FoldWork = ray.get(work_ref) if isinstance(work_ref, ray.ObjectRef) else work_ref
    outcome = run_candidate(work, params["candidate_id"])
    ray.get(outbox.put.remote(params["candidate_id"], outcome))
    score = outcome.score
    tune.report(
        {
            "objective": score.objective,
            "mean": score.mean,
            "std": score.std,
            "failed": outcome.traceback is not None or outcome.fatal is not None,
        }
    )


def _trial_resources(tuning: TuningConfig) -> dict[str, float]:
    resources = tuning.resources
    return {"cpu": resources.cpu, "gpu": resources.gpu if resources.use_gpu else 0.0}


def _progress(on_split: Callable[[], None] | None, n_splits: int) -> Any:
    """A Tune callback (driver side) that advances the progress as each trial ends."""
    from ray import tune

    class Progress(tune.Callback):
        def on_trial_complete(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
            _advance(on_split, n_splits)

        def on_trial_error(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
            _advance(on_split, n_splits)

    return Progress()


def _tuner(
    work: FoldWork,
    todo: list[str],
    refs: tuple[Any, Any],
    storage: Path,
    on_split: Callable[[], None] | None,
) -> Any:
    from ray import tune

    trainable = tune.with_resources(
        tune.with_parameters(_trial, work_ref=refs[0], outbox=refs[1]),
        _trial_resources(work.config.tuning),
    )
    return tune.Tuner(
        trainable,
        param_space={"candidate_id": tune.grid_search(todo)},
        tune_config=tune.TuneConfig(
            reuse_actors=True,  # a trial process imports torch and the models once, not per trial
            trial_name_creator=lambda t: f"candidate_{t.config['candidate_id']}",
            trial_dirname_creator=lambda t: f"candidate_{t.config['candidate_id']}",
        ),
        run_config=tune.RunConfig(
            name="tune",
            storage_path=str(storage.resolve()),
            verbose=0,
            # Each trial's stdout/stderr go to files in its folder, copied next to its results.
            log_to_file=("stdout.log", "stderr.log"),
            sync_config=tune.SyncConfig(sync_artifacts=True),
            callbacks=[_progress(on_split, len(work.prepared))],
        ),
    )


@contextmanager
def _quiet(log_path: Path) -> Iterator[None]:
    """Tune's console output (tables, INFO lines) goes to ``log_path`` instead."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tune_logger = logging.getLogger("ray.tune")
    saved = tune_logger.propagate, tune_logger.handlers[:]
    with log_path.open("a", encoding="utf-8") as stream:
        handler = logging.StreamHandler(stream)
        tune_logger.handlers, tune_logger.propagate = [handler], False
        try:
            with redirect_stdout(stream), redirect_stderr(stream):
                yield
        finally:
            tune_logger.propagate, tune_logger.handlers = saved


def _ray_outcomes(
    work: FoldWork, todo: list[str], folder: Path, on_split: Callable[[], None] | None
) -> list[CandidateOutcome]:
    """Run the fold's candidates as Ray Tune trials; outcomes in candidate order."""
    ray = require_ray()
    with tuning_session(work.config.tuning):
        # The prepared splits go to the object store once; every trial reads the same copy.
        work_ref = ray.put(work)
        outbox = ray.remote(num_cpus=0)(_Outbox).remote()
        storage = folder / RAY_FOLDER
        with _quiet(storage / "driver.log"):
            grid = _tuner(work, todo, (work_ref, outbox), storage, on_split).fit()
        table = grid.get_dataframe()
        write_csv(storage / "results.csv", table, index=False)
        crashed = {r.config["candidate_id"]: r.error for r in grid if r.error is not None}
        outcomes = []
        for cid in todo:
            outcome = ray.get(outbox.pop.remote(cid))
            if outcome is None:  # the trial died outside the objective (worker lost, ...)
                error = crashed.get(cid) or RuntimeError("the trial reported no outcome")
                failed = _failed_score(work, work.candidate_ids.index(cid), cid, error)
                outcome = CandidateOutcome(failed, traceback=_format(error))
            outcomes.append(outcome)
        ray.kill(outbox)
    return outcomes


def _advance(on_split: Callable[[], None] | None, n_splits: int) -> None:
    if on_split is not None:
        for _ in range(n_splits):  # progress ticks, one per split the trial ran
            on_split()


def _format(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))

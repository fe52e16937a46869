"""Checkpoints of a simulation run: what is done, so that a killed run resumes where it stopped.

Layout, under the run folder (``SIMULATION_SOURCE/<label>/checkpoint/``):

- ``identity.json``: the run's identity (resolved config without ``stop_after``, and the
  SHA-256 of every input file), written before any unit of work. A re-run compares its
  own identity with it: equal -> resume; different -> an error naming what differs;
- ``progress.json``: the phase markers reached (``inputs``, ``cv``, ``prebuild``,
  ``inner outer_<k>``, ``selection outer_<k>``, ``outer outer_<k>``), for the log;
- ``inner/outer_<k>/<candidate>.pt``: one inner (fold, candidate) evaluation: its split
  scores and seeds and its inner test-week net returns (the split payloads model selection
  reads are artifacts already, written before the checkpoint);
- ``outer/outer_<k>/week_<step>.pt``: one outer test week: its predictive draws, its
  weights and the fitted model state (it warm-starts the next week).

Every file is written atomically (``atomic.py``), and a unit's checkpoint is written after
its artifacts, so a unit with a checkpoint is complete. The expensive units (fits) are
skipped on resume; the cheap steps between them (CV structure, preprocessing, fold
selection, reports) are recomputed, deterministically, and rewrite the same bytes. The
folder is removed once the manifest is written: a finished run is described by its
manifest, which carries the same identity.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from algo_trader.application.simulation.hooks import PyroState
from algo_trader.application.simulation.inner_objective import CandidateScore
from algo_trader.application.simulation.panel import Panel, sha256_file
from algo_trader.domain.errors import ConfigError, DataError
from algo_trader.domain.simulation.config import SimulationConfig
from algo_trader.infrastructure.data.atomic import fsync_dir, load_tensor, save_tensor, write_json
from algo_trader.pipeline.stages.modeling.registry import build_pair
from algo_trader.pipeline.stages.modeling.trainer import FitState

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
IDENTITY_FILE = "identity.json"
PROGRESS_FILE = "progress.json"
TEMP_GLOB = ".*.tmp"
"""Names ``atomic_path`` gives its temp files; one left behind means a write was killed."""
_FRESH_HINT = "to start fresh, delete the folder or choose another data.simulation_output_path"


def run_identity(config: SimulationConfig, inputs: Mapping[str, Path]) -> dict[str, Any]:
    """What a run folder's results depend on: the config and the input files' bytes.

    ``stop_after`` is left out: it says how far to go, not what is computed, so a run
    stopped after ``cv`` may be continued to ``results`` in the same folder.

    Parameters
    ----------
    config
        The config as loaded (before any prebuild defaults are merged).
    inputs
        Input name -> file (the panel's sources and the panel file itself).

    Returns
    -------
    dict
        ``{"config": {...}, "inputs": {name: sha256 or "missing"}}``, JSON-ready.
    """
    dumped = config.model_dump(mode="json")
    dumped.pop("stop_after", None)
    hashes = {
        name: sha256_file(path) if path.is_file() else "missing"
        for name, path in sorted(inputs.items())
    }
    return {"config": dumped, "inputs": hashes}


def input_files(panel: Panel, panel_path: Path) -> dict[str, Path]:
    """The files a run reads: the panel's sources (as recorded in it) and the panel."""
    files = {name: Path(source["path"]) for name, source in panel.sources.items()}
    files["panel"] = panel_path
    return files


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def identity_differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Human-readable differences, ``[]`` when the identities match.

    Config differences are named by dotted key (``cv.seed: 123 -> 124``), input ones by
    input name (``features/momentum: sha256 abc... -> def...``).
    """
    lines = []
    old, new = _flatten(recorded.get("config", {})), _flatten(current.get("config", {}))
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key, "<absent>"), new.get(key, "<absent>")
        if before != after:
            lines.append(f"config {key}: {before!r} -> {after!r}")
    old_in, new_in = recorded.get("inputs", {}), current.get("inputs", {})
    for name in sorted(old_in.keys() | new_in.keys()):
        a, b = old_in.get(name, "<absent>"), new_in.get(name, "<absent>")
        if a != b:
            lines.append(f"input {name}: sha256 {str(a)[:12]} -> {str(b)[:12]}")
    return lines


def check_identity(out_dir: Path, recorded: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    """Refuse to reuse a run folder whose config or inputs differ from this run's.

    Raises
    ------
    ConfigError
        The config differs (each differing dotted key with both values).
    DataError
        Only input files differ (each input with both hashes).
    """
    diffs = identity_differences(recorded, current)
    if not diffs:
        return
    shown = "; ".join(diffs[:10]) + (f"; ... ({len(diffs) - 10} more)" if len(diffs) > 10 else "")
    message = (
        f"the simulation folder {out_dir} holds a run with a different "
        f"{'config' if any(d.startswith('config') for d in diffs) else 'input'}: {shown}; "
        f"{_FRESH_HINT}"
    )
    if any(d.startswith("config") for d in diffs):
        raise ConfigError(message)
    raise DataError(message, path=out_dir)


def remove_stray_temps(out_dir: Path) -> int:
    """Delete temp files a killed write left behind; returns how many."""
    stray = [p for p in out_dir.rglob(TEMP_GLOB) if p.is_file()]
    for path in stray:
        path.unlink()
    return len(stray)


def is_empty_start(out_dir: Path) -> bool:
    """A run killed before its first file: only empty folders, ``inputs/`` among them."""
    if not (out_dir / "inputs").is_dir():
        return False
    return not any(p.is_file() for p in out_dir.rglob("*"))


def state_payload(state: Any) -> dict[str, Any]:
    """A fitted model state as plain tensors (``save_tensor`` writes it).

    Raises
    ------
    TypeError
        A state that is neither a :class:`PyroState` nor a dict of tensors.
    """
    if isinstance(state, PyroState):
        return {"kind": "pyro", "fit": state.fit.to_payload()}
    if isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values()):
        return {"kind": "tensors", "values": dict(state)}
    raise TypeError(f"cannot checkpoint a model state of type {type(state).__name__}")


def restore_state(payload: Mapping[str, Any], config: SimulationConfig) -> Any:
    """The state :func:`state_payload` saved; a Pyro pair is rebuilt from ``config.model``."""
    if payload["kind"] == "pyro":
        m = config.model
        model, guide = build_pair(m.model_name, m.guide_name, m.params, m.guide_params)
        return PyroState(model, guide, FitState.from_payload(payload["fit"]))
    return dict(payload["values"])


@dataclass(frozen=True)
class Checkpoint:
    """The ``checkpoint/`` folder of one run folder."""

    out_dir: Path

    @property
    def root(self) -> Path:
        """``<run>/checkpoint``."""
        return self.out_dir / CHECKPOINT_DIR

    def identity(self) -> dict[str, Any] | None:
        """The recorded identity, None if none was written."""
        path = self.root / IDENTITY_FILE
        if not path.is_file():
            return None
        return dict(_read_json(path))

    def start(self, identity: Mapping[str, Any]) -> None:
        """Record the identity (before any unit of work)."""
        write_json(self.root / IDENTITY_FILE, dict(identity))
        fsync_dir(self.out_dir)

    def markers(self) -> list[str]:
        """Phase markers reached, in order."""
        path = self.root / PROGRESS_FILE
        return list(_read_json(path)["markers"]) if path.is_file() else []

    def mark(self, marker: str) -> None:
        """Record that ``marker`` (a phase or a fold's step) is done."""
        markers = self.markers()
        if marker not in markers:
            write_json(self.root / PROGRESS_FILE, {"markers": [*markers, marker]})

    def remove(self) -> None:
        """Delete the folder (the run is finished: its manifest is written)."""
        if self.root.exists():
            shutil.rmtree(self.root)
            fsync_dir(self.out_dir)

    # -- inner (fold, candidate) evaluations
    def _candidate_path(self, fold_k: int, candidate_id: str) -> Path:
        return self.root / "inner" / f"outer_{fold_k}" / f"{candidate_id}.pt"

    def save_candidate(self, fold_k: int, result: CandidateScore, trials: pd.DataFrame) -> None:
        """Record one candidate's inner result and its ``weeks x 1`` net returns."""
        column = trials.get(result.candidate_id)
        payload = {
            "candidate_id": result.candidate_id,
            "objective": result.objective,
            "mean": result.mean,
            "std": result.std,
            "split_ids": [int(k) for k in result.scores],
            "scores": [float(v) for v in result.scores.values()],
            "seeds": [int(result.seeds[k]) for k in result.scores],
            "error": result.error,
            "trial_rows": torch.from_numpy(
                _ns(trials.index) if column is not None else np.zeros(0, np.int64)
            ),
            "trial_net": torch.tensor(
                np.asarray(column if column is not None else [], dtype=np.float64)
            ),
        }
        save_tensor(self._candidate_path(fold_k, result.candidate_id), payload)

    def load_candidate(
        self, fold_k: int, candidate_id: str, params: Mapping[str, Any]
    ) -> tuple[CandidateScore, pd.DataFrame] | None:
        """A recorded candidate result and its net-return frame, None if not done yet."""
        path = self._candidate_path(fold_k, candidate_id)
        if not path.is_file():
            return None
        p = load_tensor(path)
        result = CandidateScore(
            candidate_id,
            dict(params),
            p["objective"],
            p["mean"],
            p["std"],
            dict(zip(p["split_ids"], p["scores"], strict=True)),
            dict(zip(p["split_ids"], p["seeds"], strict=True)),
            p["error"],
        )
        return result, candidate_frame(
            candidate_id, p["trial_rows"].numpy(), p["trial_net"].numpy()
        )

    # -- outer weeks
    def _week_path(self, fold_k: int, step: int) -> Path:
        return self.root / "outer" / f"outer_{fold_k}" / f"week_{step:05d}.pt"

    def save_week(
        self, fold_k: int, step: int, draws: np.ndarray, weights: np.ndarray, state: Any
    ) -> None:
        """Record one outer test week: ``(S, A)`` draws, ``(A,)`` weights and the state."""
        payload = {
            "draws": torch.from_numpy(np.ascontiguousarray(draws, dtype=np.float64)),
            "weights": torch.from_numpy(np.ascontiguousarray(weights, dtype=np.float64)),
            "state": state_payload(state),
        }
        save_tensor(self._week_path(fold_k, step), payload)

    def weeks_done(self, fold_k: int, n_weeks: int) -> int:
        """How many of the fold's first weeks are recorded (weeks run in order)."""
        done = 0
        while done < n_weeks and self._week_path(fold_k, done).is_file():
            done += 1
        return done

    def load_week(self, fold_k: int, step: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """``(draws, weights, state payload)`` of a recorded week."""
        p = load_tensor(self._week_path(fold_k, step))
        return p["draws"].numpy(), p["weights"].numpy(), p["state"]


def candidate_frame(candidate_id: str, rows: np.ndarray, net: np.ndarray) -> pd.DataFrame:
    """A candidate's ``weeks x 1`` net-return frame from ns timestamps and values.

    A candidate without a return (every split failed) has no column, as in
    :meth:`TrialReturns.frame`.
    """
    if len(rows) == 0:
        return pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC", name="timestamp"))
    index = pd.DatetimeIndex(pd.to_datetime(np.asarray(rows, np.int64), utc=True), name="timestamp")
    return pd.DataFrame({candidate_id: np.asarray(net, dtype=np.float64)}, index=index)


def fold_trials(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The fold's ``weeks x candidates`` frame: the candidates' columns side by side."""
    if not frames:
        return pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC", name="timestamp"))
    table = pd.concat(list(frames), axis=1, sort=True)
    table.columns.name = None
    return table


def _ns(index: pd.Index) -> np.ndarray:
    """int64 ns since the epoch of a UTC DatetimeIndex."""
    return np.asarray(pd.DatetimeIndex(index).as_unit("ns").asi8, dtype=np.int64)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))

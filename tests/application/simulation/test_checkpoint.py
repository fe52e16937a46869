"""Checkpoint records: identity checks, unit records read back exactly, killed-write tidying."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from algo_trader.application.simulation.checkpoint import (
    Checkpoint,
    candidate_frame,
    check_identity,
    fold_trials,
    identity_differences,
    is_empty_start,
    remove_stray_temps,
    restore_state,
    run_identity,
    state_payload,
)
from algo_trader.application.simulation.hooks import PyroState
from algo_trader.application.simulation.inner_objective import CandidateScore
from algo_trader.domain.errors import ConfigError, DataError
from algo_trader.domain.simulation.config import SimulationConfig
from algo_trader.infrastructure.data.atomic import atomic_path
from algo_trader.pipeline.stages.modeling.trainer import FitState

STAMPS = np.array([1_600_000_000, 1_600_604_800, 1_601_209_600], dtype=np.int64) * 10**9


def _config(**values: object) -> SimulationConfig:
    return SimulationConfig.model_validate(values)


def _inputs(tmp_path: Path, content: bytes = b"features") -> dict[str, Path]:
    path = tmp_path / "features.pt"
    path.write_bytes(content)
    return {"features/momentum": path, "panel": tmp_path / "absent.pt"}


def test_identity_leaves_out_stop_after_and_hashes_inputs(tmp_path: Path) -> None:
    a = run_identity(_config(stop_after="cv"), _inputs(tmp_path))
    b = run_identity(_config(stop_after=None), _inputs(tmp_path))
    assert a == b and "stop_after" not in a["config"]
    assert a["inputs"]["panel"] == "missing"
    # sha256(b"features")
    assert a["inputs"]["features/momentum"].startswith("5b8a8b56")


def test_differences_name_dotted_keys_and_inputs(tmp_path: Path) -> None:
    old = run_identity(_config(), _inputs(tmp_path))
    new = run_identity(_config(cv={"seed": 9}), _inputs(tmp_path, b"other"))
    diffs = identity_differences(old, new)
    assert diffs[0] == "config cv.seed: 123 -> 9"
    assert diffs[1].startswith("input features/momentum: sha256 5b8a8b56")
    assert identity_differences(old, old) == []


def test_check_identity_errors_say_how_to_start_fresh(tmp_path: Path) -> None:
    old = run_identity(_config(), _inputs(tmp_path))
    with pytest.raises(ConfigError, match=r"cv\.seed: 123 -> 9.*delete the folder or choose"):
        check_identity(tmp_path, old, run_identity(_config(cv={"seed": 9}), _inputs(tmp_path)))
    with pytest.raises(DataError, match=r"different input: input features/momentum"):
        check_identity(tmp_path, old, run_identity(_config(), _inputs(tmp_path, b"x")))
    check_identity(tmp_path, old, old)


def test_identity_and_markers_round_trip(tmp_path: Path) -> None:
    checkpoint = Checkpoint(tmp_path)
    assert checkpoint.identity() is None and checkpoint.markers() == []
    identity = run_identity(_config(), _inputs(tmp_path))
    checkpoint.start(identity)
    checkpoint.mark("inputs")
    checkpoint.mark("cv")
    checkpoint.mark("inputs")
    assert checkpoint.identity() == identity
    assert checkpoint.markers() == ["inputs", "cv"]
    checkpoint.remove()
    assert not checkpoint.root.exists()


def test_candidate_record_reads_back_exactly(tmp_path: Path) -> None:
    checkpoint = Checkpoint(tmp_path)
    # Split ids in split order (10 after 2: not sorted as strings), a NaN score, an error.
    result = CandidateScore(
        "0001", {"a": 0.1}, 0.1 + 0.2, 1 / 3, 2 / 7, {2: 1 / 3, 10: math.nan}, {2: 7, 10: 9}, "x"
    )
    frame = candidate_frame("0001", STAMPS, np.array([0.1, np.nan, 1e-300]))
    checkpoint.save_candidate(4, result, frame)
    assert checkpoint.load_candidate(4, "0002", {}) is None
    loaded = checkpoint.load_candidate(4, "0001", {"a": 0.1})
    assert loaded is not None
    got, got_frame = loaded
    assert (got.objective, got.mean, got.std, got.error) == (0.1 + 0.2, 1 / 3, 2 / 7, "x")
    assert list(got.scores) == [2, 10] and math.isnan(got.scores[10])
    assert got.seeds == {2: 7, 10: 9} and got.params == {"a": 0.1}
    pd.testing.assert_frame_equal(got_frame, frame)


def test_candidate_without_returns_has_no_column() -> None:
    empty = candidate_frame("0000", np.zeros(0, np.int64), np.zeros(0))
    assert list(empty.columns) == [] and len(empty) == 0
    a = candidate_frame("0001", STAMPS[1:], np.array([1.0, 2.0]))
    b = candidate_frame("0002", STAMPS[:2], np.array([3.0, 4.0]))
    table = fold_trials([empty, a, b])
    assert list(table.columns) == ["0001", "0002"]
    assert pd.DatetimeIndex(table.index).asi8.tolist() == STAMPS.tolist()
    np.testing.assert_array_equal(table.to_numpy(), [[np.nan, 3.0], [1.0, 4.0], [2.0, np.nan]])


def test_weeks_are_counted_in_order_and_read_back(tmp_path: Path) -> None:
    checkpoint = Checkpoint(tmp_path)
    state = {"mean": torch.tensor([0.5, -1.0], dtype=torch.float64)}
    for step in (0, 1, 3):
        checkpoint.save_week(5, step, np.full((4, 2), step / 3), np.array([0.5, 0.5]), state)
    assert checkpoint.weeks_done(5, 10) == 2 and checkpoint.weeks_done(5, 1) == 1
    draws, weights, saved = checkpoint.load_week(5, 1)
    np.testing.assert_array_equal(draws, np.full((4, 2), 1 / 3))
    assert weights.tolist() == [0.5, 0.5]
    restored = restore_state(saved, _config())
    assert torch.equal(restored["mean"], state["mean"])


def test_pyro_state_is_rebuilt_from_its_fit_params() -> None:
    config = _config()
    fit = FitState({"loc": torch.tensor([1.0, 2.0])}, torch.tensor([3.0]), {"steps": 1})
    payload = state_payload(PyroState(None, None, fit))  # type: ignore[arg-type]
    restored = restore_state(payload, config)
    assert isinstance(restored, PyroState)
    assert torch.equal(restored.fit.params["loc"], fit.params["loc"])
    assert restored.fit.metadata == {"steps": 1}
    assert type(restored.model).__name__ != "NoneType"


def test_unknown_state_type_is_refused() -> None:
    with pytest.raises(TypeError, match="cannot checkpoint a model state of type list"):
        state_payload([1, 2])


def test_killed_write_leaves_a_temp_file_that_is_removed(tmp_path: Path) -> None:
    target = tmp_path / "inputs" / "panel_tensor.pt"
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        stray = tmp.with_name(tmp.name + "x.tmp")  # what SIGKILL leaves (no cleanup runs)
        stray.write_bytes(b"half")
        raise KeyboardInterrupt
    assert not target.exists()
    assert is_empty_start(tmp_path) is False  # the stray temp is still a file
    assert remove_stray_temps(tmp_path) == 1
    assert is_empty_start(tmp_path)
    assert not is_empty_start(tmp_path / "inputs")  # no inputs/ inside: not a killed start

"""Which run ``algotrader report [RUN]`` means."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from algo_trader.application.report.locate import resolve_run
from algo_trader.domain.errors import DataError


def finished_run(root: Path, label: str, finished: str) -> Path:
    folder = root / label
    folder.mkdir(parents=True)
    manifest = {"status": "complete", "config": {}, "finished": finished}
    (folder / "run_manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def test_default_is_the_run_that_finished_last(tmp_path: Path) -> None:
    finished_run(tmp_path, "b", "2024-01-01T00:00:00+00:00")
    latest = finished_run(tmp_path, "a", "2024-02-01T00:00:00+00:00")
    assert resolve_run(tmp_path, None) == latest


def test_label_or_folder(tmp_path: Path) -> None:
    run = finished_run(tmp_path / "sim", "2024-05", "2024-02-01T00:00:00+00:00")
    assert resolve_run(tmp_path / "sim", "2024-05") == tmp_path / "sim" / "2024-05"
    assert resolve_run(tmp_path / "sim", str(run)) == run


def test_unknown_run_lists_the_labels(tmp_path: Path) -> None:
    finished_run(tmp_path, "run_a", "2024-02-01T00:00:00+00:00")
    with pytest.raises(DataError, match=r"RUN 'run_b' .* valid labels: run_a"):
        resolve_run(tmp_path, "run_b")


def test_no_finished_run(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no finished simulation run"):
        resolve_run(tmp_path, None)

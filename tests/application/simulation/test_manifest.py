"""run_manifest.json contents: versions, git revision, and the written file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from algo_trader.application.simulation.manifest import (
    MANIFEST_FILE,
    git_revision,
    manifest_payload,
    package_versions,
    write_manifest,
)


def test_package_versions_are_the_installed_ones() -> None:
    versions = package_versions()
    assert versions["numpy"] == np.__version__
    assert str(torch.__version__).split("+")[0] == str(versions["torch"]).split("+")[0]
    assert versions["algo_trader"] is not None
    assert package_versions(("surely-not-installed-pkg",)) == {"surely-not-installed-pkg": None}


def test_git_revision_outside_a_repo_is_none(tmp_path: Path) -> None:
    assert git_revision(tmp_path) is None


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_git_revision_names_commit_and_dirtiness(tmp_path: Path) -> None:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    git("init", "-q")
    (tmp_path / "a.txt").write_text("1")
    git("add", "a.txt")
    git("commit", "-q", "-m", "one")
    head = git("rev-parse", "HEAD")
    assert git_revision(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "a.txt").write_text("2")
    assert git_revision(tmp_path) == {"commit": head, "dirty": True}


def test_manifest_is_written_with_every_section(tmp_path: Path) -> None:
    payload = manifest_payload(
        config={"cv": {"seed": 1}},
        config_path=Path("config/simulation.yml"),
        candidates={"0000": {"training.svi.learning_rate": 0.01}},
        seeds={"cv.seed": 1},
        inputs={"returns": {"path": "x", "sha256": "ab"}},
        phases=["inputs", "cv"],
        stopped_after="cv",
        hooks=None,
        started="2024-01-01T00:00:00+00:00",
    )
    path = write_manifest(tmp_path, payload)
    assert path == tmp_path / MANIFEST_FILE
    written = json.loads(path.read_text())
    assert written["status"] == "complete"
    assert written["config"] == {"cv": {"seed": 1}}
    assert written["candidates"] == {"0000": {"training.svi.learning_rate": 0.01}}
    assert written["inputs"]["returns"]["sha256"] == "ab"
    assert written["python"] == sys.version.split()[0]
    assert set(written["packages"]) == {
        "algo_trader",
        "numpy",
        "pandas",
        "torch",
        "scipy",
        "pyro-ppl",
    }
    assert written["started"] <= written["finished"]
    assert "git" in written

"""Feature look-ahead across the whole feature store, on the bundled real sample.

The real stages build the data lake (``historical`` with the sample provider, then
``data_cleaning``); then, for a few seeded random weeks ``t``, the lake's two CSV files are
cut after week ``t`` (byte-exact: the kept lines are not rewritten) and
``run_feature_engineering`` runs on the cut lake. Every group's features and missing mask
at week ``t`` must equal, bit for bit, those of the full-history run: no feature reads a
bar after ``t``. (tests/application/feature_engineering/test_lookahead_*.py check each
group's kernels on generated data; this checks the stage end to end, files included.)
A deliberately leaky double of one group (its row ``t`` taken from week ``t + 1``) is
caught by the same comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from algo_trader.application.feature_engineering import run as fe_run
from algo_trader.application.feature_engineering.inputs import (
    DAILY_FILE,
    WEEKLY_FILE,
    GroupResult,
)
from algo_trader.application.feature_engineering.run import run_feature_engineering
from algo_trader.cli.main import main
from algo_trader.infrastructure.data.atomic import load_tensor
from algo_trader.infrastructure.data.layout import latest_week_dir, week_folder_name
from algo_trader.infrastructure.env import load_settings

HEADER_LINES = 3  # (asset, field) header rows and the index-name row
N_CUTS = 3
Tensors = dict[str, dict[str, Any]]


def cut_lake(lake_dir: Path, target_root: Path, t: str) -> None:
    """Copy ``lake_dir``'s two CSVs keeping only the data lines stamped ``<= t``.

    ISO-8601 UTC stamps of one format sort as text, so the comparison is on the line text.
    """
    out = target_root / week_folder_name(pd.Timestamp(t))
    out.mkdir(parents=True)
    for name in (WEEKLY_FILE, DAILY_FILE):
        lines = (lake_dir / name).read_text(encoding="utf-8").splitlines(keepends=True)
        body = [line for line in lines[HEADER_LINES:] if line.split(",", 1)[0] <= t]
        (out / name).write_text("".join(lines[:HEADER_LINES] + body), encoding="utf-8")


def features(lake: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> Tensors:
    """``run_feature_engineering`` on ``lake`` into ``store``; each group's tensor payload."""
    monkeypatch.setenv("DATA_LAKE_SOURCE", str(lake))
    monkeypatch.setenv("FEATURE_STORE_SOURCE", str(store))
    run_feature_engineering(load_settings(), None, None)
    week = latest_week_dir(store)
    return {p.parent.name: load_tensor(p) for p in sorted(week.glob("*/features_tensor.pt"))}


def differences(
    full: Tensors, lake_dir: Path, root: Path, i: int, monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    """Groups whose row ``i`` differs between the full run and the run on the lake cut at i."""
    t = pd.Timestamp(int(full["momentum"]["timestamps"][i]), tz="UTC")
    cut_lake(lake_dir, root / "lake", t.strftime("%Y-%m-%dT%H:%M:%S+00:00"))
    cut = features(root / "lake", root / "fs", monkeypatch)
    assert sorted(cut) == sorted(full)
    differ = []
    for group, payload in cut.items():
        ref = full[group]
        assert int(payload["timestamps"][-1]) == int(ref["timestamps"][i])
        values, mask = payload["values"].numpy()[-1], payload["missing_mask"].numpy()[-1]
        assert np.isfinite(ref["values"].numpy()[i]).any(), group  # past the warm-up
        same = np.array_equal(values, ref["values"].numpy()[i], equal_nan=True)
        if not (same and np.array_equal(mask, ref["missing_mask"].numpy()[i])):
            differ.append(group)
    return differ


def peeking(compute_groups: Callable[..., dict[str, GroupResult]]) -> Callable[..., Any]:
    """A LEAKY double of ``compute_groups``: momentum's row t is its row t + 1 (it reads
    the next week's bars)."""

    def compute(*args: Any, **kwargs: Any) -> dict[str, GroupResult]:
        results = compute_groups(*args, **kwargs)
        mom = results["momentum"]
        ahead = np.concatenate([mom.values[1:], np.full_like(mom.values[:1], np.nan)])
        results["momentum"] = replace(mom, values=ahead)
        return results

    return compute


@pytest.mark.slow
def test_every_group_at_t_equals_its_full_history_value(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["historical"]) == 0
    assert main(["data_cleaning", "--start", "2004-08"]) == 0
    lake_dir = latest_week_dir(isolated_env / "data" / "data_lake", must_contain=WEEKLY_FILE)
    full = features(lake_dir.parent, isolated_env / "full_fs", monkeypatch)
    assert len(full) == 7
    n_weeks = len(full["momentum"]["timestamps"])
    # Past the longest warm-up (26 weeks and the regime window) so the rows hold values.
    for i in sorted(np.random.default_rng(10).choice(np.arange(80, n_weeks - 1), N_CUTS, False)):
        assert differences(full, lake_dir, isolated_env / f"cut_{i}", int(i), monkeypatch) == []

    monkeypatch.setattr(fe_run, "compute_groups", peeking(fe_run.compute_groups))
    leaky_full = features(lake_dir.parent, isolated_env / "leaky_fs", monkeypatch)
    found = differences(leaky_full, lake_dir, isolated_env / "leaky_cut", 100, monkeypatch)
    assert found == ["momentum"]


def test_cut_lake_keeps_header_and_rows_up_to_t(isolated_env: Path) -> None:
    lake = isolated_env / "lake" / "2020-02"
    lake.mkdir(parents=True)
    header = "asset,A\nfield,close\ntimestamp,\n"
    rows = [f"2020-01-{d:02d}T00:00:00+00:00,{d}.0\n" for d in (3, 10, 17)]
    for name in (WEEKLY_FILE, DAILY_FILE):
        (lake / name).write_text(header + "".join(rows), encoding="utf-8")
    cut_lake(lake, isolated_env / "cut", "2020-01-10T00:00:00+00:00")
    out = isolated_env / "cut" / week_folder_name(pd.Timestamp("2020-01-10", tz="UTC"))
    assert (out / WEEKLY_FILE).read_text(encoding="utf-8") == header + "".join(rows[:2])

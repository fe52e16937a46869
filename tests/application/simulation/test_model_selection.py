"""Post-tune model selection: aggregation math, the selection rule, artifacts end to end."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

from algo_trader.application.simulation.model_selection import (
    bootstrap_se,
    collapse_to_groups,
    declared_complexity,
    es_band,
    final_pick,
    group_means,
    min_ranks,
    occurrences,
    payload_path,
    select_fold,
    split_targets,
)
from algo_trader.application.simulation.runner import run_simulation
from algo_trader.application.simulation.scoring import (
    crps_per_week,
    energy_score_per_week,
    quantile_loss_per_week,
)
from algo_trader.domain.errors import DataError
from algo_trader.domain.simulation.config import ESBandConfig, SimulationConfig
from algo_trader.infrastructure.data.atomic import load_tensor, save_tensor
from algo_trader.infrastructure.env import load_settings

NAN = float("nan")


def _runner_fixtures() -> ModuleType:
    """The generated-input helpers of test_runner.py (one source of the fixture data)."""
    path = Path(__file__).with_name("test_runner.py")
    spec = importlib.util.spec_from_file_location("runner_fixtures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------ aggregation math


def test_group_collapse_on_a_hand_example() -> None:
    # split 0 tests groups 0 and 1, split 1 tests groups 1 and 2 (group 1 overlaps).
    week_split = np.array([0, 0, 0, 1, 1, 1, 1])
    week_group = np.array([0, 0, 1, 1, 1, 2, 2])
    es = torch.tensor([[1.0, 3.0, 5.0, 7.0, 9.0, 2.0, NAN]], dtype=torch.float64)
    occ = occurrences(week_split, week_group)
    assert occ.groups.tolist() == [0, 1, 2]
    assert occ.occ_split.tolist() == [0, 0, 1, 1]
    # occurrences: (0,0) = 2, (0,1) = 5, (1,1) = 8, (1,2) = 2 (NaN week skipped);
    # group 1 = mean(5, 8) = 6.5, not the pooled week mean (5 + 7 + 9) / 3 = 7.
    np.testing.assert_allclose(collapse_to_groups(es, occ).numpy(), [[2.0, 6.5, 2.0]])


def test_group_means_is_nan_aware_and_empty_groups_are_nan() -> None:
    values = torch.tensor([[1.0, NAN, 3.0, NAN]], dtype=torch.float64)
    out = group_means(values, torch.tensor([0, 0, 1, 2]), 4)
    np.testing.assert_array_equal(out.numpy(), [[1.0, 3.0, NAN, NAN]])


def test_bootstrap_se_matches_a_plain_loop() -> None:
    es_group = torch.tensor(
        [[1.0, 2.0, 4.0, 8.0, 3.0], [2.0, 2.0, 2.0, 2.0, 2.0]], dtype=torch.float64
    )
    se = bootstrap_se(es_group, num_samples=200, seed=11)
    rng = np.random.default_rng(11)
    idx = rng.integers(0, 5, size=(200, 5))
    medians = [np.median(es_group[0].numpy()[row]) for row in idx]
    assert se[0].item() == pytest.approx(np.std(medians, ddof=1), rel=1e-12)
    assert se[1].item() == 0.0  # constant across groups: no uncertainty
    assert bootstrap_se(es_group, 200, seed=11).equal(se)


# ------------------------------------------------------------------ selection rule

ES = np.array([1.0, 1.1, 1.5, 1.05, NAN])
SE = np.array([0.12, 0.3, 0.1, 0.2, NAN])


def test_es_band_exact_survivor_set() -> None:
    band = es_band(ES, SE, ESBandConfig(c=1.0, min_keep=1, max_keep=10))
    assert band.best == 0 and band.threshold == pytest.approx(1.12)
    assert band.survivors.tolist() == [True, True, False, True, False]
    assert band.rule == "band"


def test_es_band_min_keep_tops_up_by_es() -> None:
    band = es_band(ES, SE, ESBandConfig(c=0.0, min_keep=3, max_keep=10))
    assert band.survivors.tolist() == [True, True, False, True, False]
    assert band.rule == "min_keep"


def test_es_band_max_keep_keeps_the_best_es() -> None:
    band = es_band(ES, SE, ESBandConfig(c=10.0, min_keep=1, max_keep=2))
    assert band.survivors.tolist() == [True, False, False, True, False]
    assert band.rule == "max_keep"


def test_es_band_with_undefined_se_keeps_min_keep() -> None:
    band = es_band(np.array([2.0, 1.0]), np.array([0.1, NAN]), ESBandConfig())
    assert band.survivors.tolist() == [False, True] and band.rule == "min_keep"


def test_es_band_without_a_finite_es_is_an_error() -> None:
    with pytest.raises(ValueError, match="no candidate has a finite energy score"):
        es_band(np.array([NAN, NAN]), np.array([NAN, NAN]), ESBandConfig())


def test_min_ranks_share_ties_and_put_nan_last() -> None:
    ranks = min_ranks(np.array([0.3, 0.1, 0.3, NAN, 0.2]))
    assert ranks.tolist() == [3.0, 1.0, 3.0, 5.0, 2.0]


SURVIVORS = np.array([True, True, True, False])


def test_rank_sum_winner() -> None:
    crps = np.array([0.5, 0.4, 0.6, NAN])
    ql = np.array([0.1, 0.3, 0.2, NAN])
    pick = final_pick(ES[:4], crps, ql, SURVIVORS, np.full(4, NAN), np.zeros(4))
    # crps ranks 2, 1, 3; ql ranks 1, 3, 2 -> sums 3, 4, 5
    assert pick.secondary[:3].tolist() == [3.0, 4.0, 5.0] and np.isnan(pick.secondary[3])
    assert pick.finalists.tolist() == [True, False, False, False]
    assert pick.winner == 0


TIED_CRPS = np.array([0.1, 0.2, 0.9, NAN])
TIED_QL = np.array([0.2, 0.1, 0.9, NAN])  # candidates 0 and 1 tie at rank sum 3


def test_tie_break_prefers_the_simplest_model() -> None:
    complexity = np.array([5.0, 3.0, 1.0, 1.0])
    pick = final_pick(ES[:4], TIED_CRPS, TIED_QL, SURVIVORS, complexity, np.array([0, 0.9, 0, 0]))
    assert pick.finalists.tolist() == [True, True, False, False]
    assert pick.tie_rule == "complexity" and pick.order == [1, 0]


def test_tie_break_on_equal_complexity_takes_the_best_es() -> None:
    pick = final_pick(
        ES[:4], TIED_CRPS, TIED_QL, SURVIVORS, np.full(4, 4.0), np.array([0.9, 0, 0, 0])
    )
    assert pick.tie_rule == "complexity" and pick.order == [0, 1]  # ES 1.0 < 1.1


def test_tie_break_without_declared_complexity_is_the_seeded_draw() -> None:
    complexity = np.array([5.0, NAN, NAN, NAN])  # one finalist declares none
    draws = np.array([0.7, 0.2, 0.0, 0.0])
    pick = final_pick(ES[:4], TIED_CRPS, TIED_QL, SURVIVORS, complexity, draws)
    assert pick.tie_rule == "random" and pick.order == [1, 0]


def test_declared_complexity_comes_from_the_model_registry() -> None:
    config = SimulationConfig.model_validate({"model": {"model_name": "test_model"}})
    assert declared_complexity(config, num_assets=4, num_features=7) == 9.0  # F + 2


# ------------------------------------------------------------- a hand-made fold


def _write_fold(fold_dir: Path, n_weeks: int = 40, n_draws: int = 64) -> dict[int, Any]:
    """Generated payloads: 2 splits, 3 candidates (calibrated, slightly wide, shifted by 3)."""
    from algo_trader.application.simulation.cv_groups import InnerSplit
    from algo_trader.application.simulation.inner_objective import PreparedSplit

    rng = np.random.default_rng(5)
    prepared = []
    for sid, groups in enumerate([(0, 1), (1, 2)]):
        test_idx = np.concatenate([np.arange(g * 20, g * 20 + 20) for g in groups])
        split = InnerSplit(sid, groups, np.arange(0), test_idx, np.arange(0), np.arange(0))
        y_test = torch.from_numpy(rng.normal(size=(n_weeks, 2)))
        y_train = torch.from_numpy(rng.normal(size=(60, 2)))
        prepared.append(PreparedSplit(split, y_train, y_train, y_test, y_test, [], {}))
    labels = np.repeat(np.arange(3), 20)
    stamps = np.arange(60, dtype=np.int64) * 7 * 86_400 * 10**9
    targets = split_targets(prepared, labels, stamps, SimulationConfig(), fold_k=3)
    for t in targets.values():
        for cid, (shift, width) in {"0000": (0, 1), "0001": (0, 1.3), "0002": (3, 1)}.items():
            z = shift + width * torch.from_numpy(rng.normal(size=(n_draws, n_weeks, 2)))
            save_tensor(
                payload_path(fold_dir, cid, t.split_id),
                {
                    "candidate_id": cid,
                    "split_id": t.split_id,
                    "z_true": t.z_true,
                    "z_samples": z / t.whitener.scale,
                    "scale": t.whitener.scale,
                    "W": t.whitener.W,
                    "test_idx": torch.from_numpy(t.test_idx),
                    "test_groups": torch.from_numpy(t.test_groups),
                    "timestamps": torch.from_numpy(t.timestamps),
                },
            )
    return targets


def _tail_reference(fold_dir: Path, cid: str) -> tuple[float, float]:
    """CRPS and 5 % QL of one candidate: split by split, then median_a mean_g mean_k mean_t."""
    per_group: dict[int, list[np.ndarray]] = {0: [], 1: [], 2: []}
    for sid in (0, 1):
        p = load_tensor(payload_path(fold_dir, cid, sid))
        crps = crps_per_week(p["z_samples"], p["z_true"])
        ql = quantile_loss_per_week(p["z_samples"], p["z_true"], 0.05)
        for g in (0, 1, 2):
            weeks = p["test_groups"] == g
            if weeks.any():
                per_group[g].append(np.stack([crps[weeks].mean(0), ql[weeks].mean(0)]))
    groups = np.stack([np.mean(v, axis=0) for v in per_group.values()])  # (G, 2, A)
    crps_a, ql_a = groups.mean(axis=0)
    return float(np.median(crps_a)), float(np.median(ql_a))


def test_fold_selection_scores_es_like_a_plain_loop_and_nans_non_survivors(
    isolated_env: Path,
) -> None:
    fold_dir = isolated_env / "inner" / "outer_3"
    targets = _write_fold(fold_dir)
    config = SimulationConfig.model_validate({"model_selection": {"enable": True}})
    chosen = select_fold(fold_dir, 3, ["0000", "0001", "0002"], targets, {}, config, "none")

    # ES per week from the kernel one split and candidate at a time (whitened by hand).
    ref = np.zeros((3, 3))
    for c, cid in enumerate(["0000", "0001", "0002"]):
        occ_values: dict[int, list[float]] = {0: [], 1: [], 2: []}
        for sid in (0, 1):
            p = load_tensor(payload_path(fold_dir, cid, sid))
            es = energy_score_per_week(p["z_samples"] @ p["W"].T, p["z_true"] @ p["W"].T)
            for g in (0, 1, 2):
                weeks = p["test_groups"] == g
                if weeks.any():
                    occ_values[g].append(float(es[weeks].mean()))
        ref[c] = [np.mean(v) for v in occ_values.values()]
    np.testing.assert_allclose(chosen.es_group, ref, rtol=1e-12)
    np.testing.assert_allclose(chosen.table.es, np.median(ref, axis=1), rtol=1e-12)
    survivors = chosen.table.band.survivors
    for c, cid in enumerate(["0000", "0001", "0002"]):
        expected = _tail_reference(fold_dir, cid) if survivors[c] else (NAN, NAN)
        got = (chosen.table.crps[c], chosen.table.ql[c])
        np.testing.assert_allclose(got, expected, rtol=1e-12)

    metrics = read_json(fold_dir / "postprocessing" / "metrics.json")["candidates"]
    assert metrics["0002"]["survivor_es"] is False
    assert metrics["0002"]["crps"] is None and metrics["0002"]["ql"] is None
    assert metrics["0000"]["crps"] > 0 and metrics["0000"]["ql"] > 0
    selection = read_json(fold_dir / "postprocessing" / "selection.json")
    assert "0002" not in selection["survivors_es"]
    assert selection["selected"] == chosen.table.winner
    assert selection["tie_break"]["order"][0] == selection["selected"]
    metadata = read_json(fold_dir / "postprocessing" / "metadata.json")
    assert metadata["bootstrap"]["num_samples"] == 500 and metadata["split_ids"] == [0, 1]
    assert [o["n_weeks"] for o in metadata["occurrences"]] == [20, 20, 20, 20]


def test_fold_without_payloads_is_a_data_error(isolated_env: Path) -> None:
    with pytest.raises(DataError, match="no split payload"):
        select_fold(isolated_env, 3, ["0000"], {}, {}, SimulationConfig(), "none")


# --------------------------------------------------------------------- end to end


def test_stub_run_with_model_selection_and_fan_charts_writes_every_artifact(
    isolated_env: Path,
) -> None:
    fx = _runner_fixtures()
    fx.write_inputs(isolated_env)
    path = fx.write_config(
        isolated_env,
        model_selection={"enable": True, "es_band": {"c": 0.0}, "bootstrap": {"num_samples": 50}},
        diagnostics={"fan_charts": {"enable": True, "assets": ["BBB"]}},
    )
    result = run_simulation(load_settings(), path)
    out = result.out_dir
    files = set(fx.files_under(out))
    n_splits = {"outer_3": 3, "outer_4": 6, "outer_5": 10}
    for fold, n in n_splits.items():
        for name in ("metadata", "metrics", "selection"):
            assert f"inner/{fold}/postprocessing/{name}.json" in files
        payloads = {f for f in files if f.startswith(f"inner/{fold}/candidates/")}
        assert len(payloads) == 2 * n
    for name in ("metrics", "selection", "best_config"):
        assert f"outer/{name}.json" in files
    diagnostics = {f for f in files if f.startswith("outer/diagnostics/")}
    assert diagnostics == {
        f"outer/diagnostics/{kind}/{stem}.{ext}"
        for kind, stems in {
            "fan_charts": ["fan_chart_BBB"],
            "calibration": ["calibration_fan", "pit_histogram", "coverage_curve"],
        }.items()
        for stem in stems
        for ext in ("csv", "png")
    }

    payload = load_tensor(out / "inner" / "outer_4" / "candidates" / "candidate_0001_split_2.pt")
    assert payload["z_samples"].shape == (32, 16, 3) and payload["W"].shape == (3, 3)
    assert payload["test_groups"].unique().numel() == 2

    for fold in n_splits:
        selection = read_json(out / "inner" / fold / "postprocessing" / "selection.json")
        best = read_json(out / "inner" / fold / "best_config.json")
        assert best["selected_by"] == "model_selection"
        assert best["candidate_id"] == selection["selected"] == result.best[int(fold[-1])]
        # c = 0: the band keeps the best ES alone, so the other candidate has no CRPS/QL.
        metrics = read_json(out / "inner" / fold / "postprocessing" / "metrics.json")
        assert selection["survivors_es"] == [selection["es_best"]["candidate_id"]]
        others = [c for c in metrics["candidates"] if c not in selection["survivors_es"]]
        assert all(metrics["candidates"][c]["crps"] is None for c in others)

    global_metrics = read_json(out / "outer" / "metrics.json")["candidates"]
    es_folds = [v["es"] for v in global_metrics["0000"]["per_fold"].values()]
    assert global_metrics["0000"]["es"] == pytest.approx(np.median(es_folds))
    best_config = read_json(out / "outer" / "best_config.json")
    assert best_config["candidate_id"] == read_json(out / "outer" / "selection.json")["selected"]
    lr = best_config["params"]["training.svi.learning_rate"]
    assert best_config["config"]["training"]["svi"]["learning_rate"] == lr
    summary = read_json(out / "cv" / "summary.json")
    assert summary["model_selection"]["global_selected"] == best_config["candidate_id"]
    seeds = read_json(out / "run_manifest.json")["seeds"]
    assert "diagnostics" in seeds and set(seeds["model_selection"]["outer_4"]) == {
        "bootstrap",
        "tie_break",
    }

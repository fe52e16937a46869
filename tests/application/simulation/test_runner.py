"""The simulation runner end to end on generated feature-store / data-lake folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from algo_trader.application.simulation.panel import sha256_file
from algo_trader.application.simulation.runner import last_phase, run_simulation
from algo_trader.domain.errors import ConfigError, DataError
from algo_trader.domain.simulation.config import SimulationConfig
from algo_trader.infrastructure.data.atomic import load_tensor, save_tensor
from algo_trader.infrastructure.data.layout import tensor_payload
from algo_trader.infrastructure.env import load_settings

N_WEEKS = 61  # 60 panel rows: the last feature week has no next-week return
ASSETS = ["AAA", "BBB", "CCC"]
# cv below: warmup 12 + 6 groups of 8 = 60 rows; outer test groups 3, 4, 5 (q + 1 = 3 first).
CV = {"warmup_len": 12, "group_len": 8, "horizon": 1, "embargo_len": 1, "q": 2, "seed": 3}
CV_FILES = ["cv/candidates.json", "cv/cv_structure.json", "cv/timestamps_cv.csv"]


def write_inputs(root: Path) -> None:
    """Generated data (seeded normal draws), in the stage folders the env points at."""
    rng = np.random.default_rng(0)
    weeks = pd.date_range("2020-01-03", periods=N_WEEKS, freq="7D", tz="UTC")
    mom = rng.normal(size=(N_WEEKS, 3, 2))
    mom[5:9, 1, 0] = np.nan
    brk = (rng.random((N_WEEKS, 3, 1)) < 0.3).astype(float)
    fs = root / "data" / "feature_store" / "2021-09"
    save_tensor(
        fs / "momentum" / "features_tensor.pt",
        tensor_payload(
            np.concatenate([mom, brk], axis=2),
            weeks,
            ASSETS,
            ["z_mom_4w", "z_mom_12w", "brk_up_4w"],
        ),
    )
    vol = np.abs(rng.normal(size=(N_WEEKS, 3, 1))) + 0.1
    save_tensor(
        fs / "volatility" / "features_tensor.pt",
        tensor_payload(vol, weeks, ASSETS, ["vol_cc_d_4w"]),
    )
    returns = rng.normal(0.001, 0.02, size=(N_WEEKS, 3))
    returns[0] = np.nan
    save_tensor(
        root / "data" / "data_lake" / "2021-09" / "return_tensor.pt",
        tensor_payload(returns, weeks, ASSETS),
    )


def write_config(root: Path, **overrides: Any) -> Path:
    config: dict[str, Any] = {
        "simulation_mode": "stub",
        "stop_after": None,
        "data": {"simulation_output_path": "run_a"},
        "cv": dict(CV),
        "tuning": {
            "num_samples": 2,
            "seed": 1,
            "space": [
                {
                    "path": "training.svi.learning_rate",
                    "type": "float",
                    "bounds": [0.001, 0.1],
                    "transform": "log10",
                }
            ],
        },
        "predictive": {"num_samples": 32},
        "cost": {"bps": 10.0},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    path = root / "simulation.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture
def work(isolated_env: Path) -> Path:
    write_inputs(isolated_env)
    return isolated_env


def test_dry_run_stop_after_cv_writes_inputs_and_cv_only(work: Path) -> None:
    result = run_simulation(
        load_settings(), write_config(work, simulation_mode="dry_run", stop_after="cv")
    )
    out = work / "data" / "simulation" / "run_a"
    assert result.out_dir.resolve() == out
    assert files_under(out) == [*CV_FILES, "inputs/panel_tensor.pt", "run_manifest.json"]
    manifest = read_json(out / "run_manifest.json")
    assert manifest["phases"] == ["inputs", "cv"] and manifest["hooks"] is None
    structure = read_json(out / "cv" / "cv_structure.json")
    assert [f["k"] for f in structure["outer_folds"]] == [3, 4, 5]
    assert [f["inner"]["n_splits"] for f in structure["outer_folds"]] == [3, 6, 10]
    assert list(read_json(out / "cv" / "candidates.json")) == ["0000", "0001"]
    stamps = pd.read_csv(out / "cv" / "timestamps_cv.csv")
    assert len(stamps) == 60 and stamps["outer_3"].value_counts()["test"] == 8


def test_stub_run_through_results_writes_every_artifact(work: Path) -> None:
    result = run_simulation(load_settings(), write_config(work))
    out = result.out_dir
    folds = ("outer_3", "outer_4", "outer_5")
    expected = {
        *CV_FILES,
        "cv/summary.json",
        "inputs/panel_tensor.pt",
        "outer/pnl.csv",
        "outer/results.json",
        "run_manifest.json",
    }
    for fold in folds:
        expected |= {
            f"inner/{fold}/scores.json",
            f"inner/{fold}/best_config.json",
            f"inner/{fold}/candidate_returns.csv",
            f"outer/{fold}/pnl.csv",
            f"outer/{fold}/weights.csv",
            f"outer/{fold}/predictive.csv",
            f"outer/{fold}/metrics.json",
            f"outer/{fold}/config.json",
            f"preprocessing/{fold}/inner_splits.json",
            f"preprocessing/{fold}/outer_cleaning.json",
        }
    assert files_under(out) == sorted(expected)
    assert result.stopped_after == "results" and set(result.best) == {3, 4, 5}

    scores = read_json(out / "inner" / "outer_4" / "scores.json")
    assert scores["hooks"] == "stub"
    for entry in scores["candidates"].values():
        split_scores = np.array(list(entry["scores"].values()))
        assert len(split_scores) == 6
        assert entry["mean"] == pytest.approx(split_scores.mean())
        assert entry["std"] == pytest.approx(split_scores.std())
    best = max(scores["candidates"].values(), key=lambda c: c["objective"])
    assert scores["best_candidate_id"] == best["candidate_id"] == result.best[4]

    pnl = pd.read_csv(out / "outer" / "outer_3" / "pnl.csv", index_col="timestamp")
    weights = pd.read_csv(out / "outer" / "outer_3" / "weights.csv", index_col="timestamp")
    assert len(pnl) == 8 and list(weights.columns) == ASSETS
    np.testing.assert_allclose(weights.to_numpy(), 1 / 3)
    # Equal weights from zero: turnover 1 in the first week only; cost = 10 bps of it.
    # PnL is in return units (fractions of capital): y / target_scale.
    np.testing.assert_allclose(pnl["turnover"], [1.0] + [0.0] * 7, atol=1e-12)
    np.testing.assert_allclose(pnl["cost"], [0.001] + [0.0] * 7, atol=1e-15)
    panel = load_tensor(out / "inputs" / "panel_tensor.pt")
    y = panel["y"].numpy()[CV["warmup_len"] + 3 * 8 : CV["warmup_len"] + 4 * 8]
    np.testing.assert_allclose(pnl["gross"], np.nansum(y / 3e6, axis=1), atol=1e-15)

    summary = read_json(out / "cv" / "summary.json")
    assert [f["k"] for f in summary["folds"]] == [3, 4, 5]
    assert summary["overall"]["n_weeks"] == 24
    assert summary["overall"]["total_net"] == pytest.approx(
        sum(f["outer"]["total_net"] for f in summary["folds"])
    )
    manifest = read_json(out / "run_manifest.json")
    assert manifest["phases"] == ["inputs", "cv", "inner", "outer", "results"]
    assert set(manifest["inputs"]) == {
        "config",
        "features/momentum",
        "features/volatility",
        "panel",
        "returns",
    }
    assert manifest["inputs"]["panel"]["sha256"] == sha256_file(out / "inputs" / "panel_tensor.pt")
    assert manifest["candidates"] == read_json(out / "cv" / "candidates.json")
    assert manifest["config"]["simulation_mode"] == "stub"
    assert set(manifest["seeds"]["inner"]["outer_5"]) == {"0000", "0001"}
    assert len(manifest["seeds"]["outer"]["outer_5"]) == 8


def test_same_config_gives_identical_results(work: Path) -> None:
    first = run_simulation(load_settings(), write_config(work))
    second = run_simulation(
        load_settings(), write_config(work, data={"simulation_output_path": "run_b"})
    )
    for name in ("inner/outer_5/scores.json", "cv/summary.json", "outer/outer_5/pnl.csv"):
        assert (first.out_dir / name).read_bytes() == (second.out_dir / name).read_bytes()


@pytest.mark.parametrize(
    ("mode", "stop_after", "expected"),
    [
        ("dry_run", None, "cv"),
        ("stub", None, "results"),
        ("full", None, "results"),
        ("stub", "cv", "cv"),
        ("dry_run", "outer", "outer"),
        ("full", "inputs", "inputs"),
    ],
)
def test_stop_after_wins_over_mode(mode: str, stop_after: str | None, expected: str) -> None:
    config = SimulationConfig.model_validate({"simulation_mode": mode, "stop_after": stop_after})
    assert last_phase(config) == expected


def test_stub_stop_after_cv_runs_no_inner_loop(work: Path) -> None:
    result = run_simulation(load_settings(), write_config(work, stop_after="cv"))
    assert files_under(result.out_dir) == [
        *CV_FILES,
        "inputs/panel_tensor.pt",
        "run_manifest.json",
    ]


def test_stop_after_inputs(work: Path) -> None:
    result = run_simulation(load_settings(), write_config(work, stop_after="inputs"))
    assert files_under(result.out_dir) == ["inputs/panel_tensor.pt", "run_manifest.json"]
    assert read_json(result.out_dir / "run_manifest.json")["candidates"] is None


def test_dry_run_past_cv_writes_plans_and_calls_no_hook(work: Path) -> None:
    result = run_simulation(
        load_settings(), write_config(work, simulation_mode="dry_run", stop_after="outer")
    )
    files = files_under(result.out_dir)
    assert "inner/outer_3/plan.json" in files and "outer/outer_5/plan.json" in files
    assert not [f for f in files if f.endswith(("scores.json", "pnl.csv", "summary.json"))]
    plan = read_json(result.out_dir / "inner" / "outer_4" / "plan.json")
    assert plan["split_ids"] == list(range(6)) and set(plan["seeds"]) == {"0000", "0001"}


def test_infeasible_allocation_fails_before_any_work(work: Path) -> None:
    path = write_config(work, allocation={"max_weight": 0.2})  # 3 x 0.2 cannot sum to 1
    with pytest.raises(ConfigError, match=r"allocation\.max_weight"):
        run_simulation(load_settings(), path)
    assert not (work / "data" / "simulation").exists()


def test_full_mode_may_stop_after_cv(work: Path) -> None:
    path = write_config(work, simulation_mode="full", stop_after="cv")
    assert run_simulation(load_settings(), path).stopped_after == "cv"


def test_bad_cv_fails_before_writing(work: Path) -> None:
    path = write_config(
        work, cv={**CV, "q": 4}, outer={"test_groups": "ids", "ids": [3], "min_train_groups": 3}
    )
    with pytest.raises(ConfigError, match=r"cv.q=4 is larger than the 3 inner groups"):
        run_simulation(load_settings(), path)
    assert not (work / "data" / "simulation").exists()


def test_horizon_below_target_shift_is_refused(work: Path) -> None:
    path = write_config(work, data={"dataset_params": {"target_shift": 2}})
    with pytest.raises(ConfigError, match=r"cv.horizon: 1 is below .*target_shift \(2\)"):
        run_simulation(load_settings(), path)


def test_rerun_of_a_finished_run_is_a_no_op(work: Path) -> None:
    settings = load_settings()
    first = run_simulation(settings, write_config(work))
    panel_bytes = (first.out_dir / "inputs" / "panel_tensor.pt").read_bytes()
    second = run_simulation(settings, write_config(work, stop_after="cv"))
    assert second.reused_inputs and second.already_complete
    assert (second.out_dir / "inputs" / "panel_tensor.pt").read_bytes() == panel_bytes
    assert "outer/results.json" in files_under(second.out_dir)


def test_output_folder_without_panel_is_an_error(work: Path) -> None:
    (work / "data" / "simulation" / "run_a").mkdir(parents=True)
    with pytest.raises(DataError, match="delete the folder or choose another label"):
        run_simulation(load_settings(), write_config(work))


def test_default_label_is_latest_feature_week(work: Path) -> None:
    path = write_config(work, stop_after="inputs", data={"simulation_output_path": None})
    assert run_simulation(load_settings(), path).out_dir.name == "2021-09"


def _bundled_sample_feature_store() -> None:
    """The real stages on the bundled sample: download, cleaning, features."""
    from algo_trader.application.feature_engineering.run import run_feature_engineering
    from algo_trader.cli.main import main

    assert main(["historical"]) == 0
    assert main(["data_cleaning", "--start", "2004-08"]) == 0
    run_feature_engineering(load_settings(), None, None)


@pytest.mark.slow
def test_committed_stub_config_on_bundled_sample(isolated_env: Path) -> None:
    """The committed stub config runs through results on the bundled sample."""
    _bundled_sample_feature_store()
    config = Path(__file__).resolve().parents[3] / "config" / "simulation_stub.yml"
    result = run_simulation(load_settings(), config)
    files = files_under(result.out_dir)
    assert result.stopped_after == "results"
    assert {*CV_FILES, "cv/summary.json", "run_manifest.json", "outer/pnl.csv"} <= set(files)
    summary = read_json(result.out_dir / "cv" / "summary.json")
    assert summary["hooks"] == "stub" and summary["overall"]["n_weeks"] > 0
    panel = load_tensor(result.out_dir / "inputs" / "panel_tensor.pt")
    assert panel["assets"] == ["AAPL", "GOOG", "IBM", "MSFT", "NASDAQ", "SP500"]


@pytest.mark.slow
def test_committed_full_config_on_bundled_sample(isolated_env: Path) -> None:
    """Full mode: factor_model_v1 by SVI, energy score, model selection, fan charts."""
    _bundled_sample_feature_store()
    config = Path(__file__).resolve().parents[3] / "config" / "simulation.yml"
    result = run_simulation(load_settings(), config)
    files = set(files_under(result.out_dir))
    assert result.stopped_after == "results"
    assert {
        "outer/best_config.json",
        "outer/selection.json",
        "outer/metrics.json",
        "outer/results.json",
        "artifacts/prebuild/prebuild.json",
    } <= files
    assert any(f.startswith("outer/diagnostics/fan_charts/") and f.endswith(".png") for f in files)
    assert any(f.startswith("outer/diagnostics/calibration/") for f in files)
    summary = read_json(result.out_dir / "cv" / "summary.json")
    assert summary["hooks"] == "full"
    scores = read_json(result.out_dir / "inner" / "outer_6" / "scores.json")
    assert scores  # real energy scores per candidate


def test_no_finite_inner_score_is_named(work: Path) -> None:
    lake = work / "data" / "data_lake" / "2021-09" / "return_tensor.pt"
    payload = load_tensor(lake)
    weeks = pd.DatetimeIndex(pd.to_datetime(payload["timestamps"].numpy(), utc=True))
    save_tensor(lake, tensor_payload(np.full((N_WEEKS, 3), np.nan), weeks, ASSETS))
    with pytest.raises(DataError, match="outer fold 3: no candidate has a finite inner score"):
        run_simulation(load_settings(), write_config(work))
    assert (work / "data" / "simulation" / "run_a" / "inner" / "outer_3" / "scores.json").exists()

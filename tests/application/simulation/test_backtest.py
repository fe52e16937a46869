"""``algotrader backtest`` on generated stage folders: replays a stub simulation exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from algo_trader.application.simulation.backtest import latest_run, run_backtest
from algo_trader.application.simulation.outer_report import benchmark_returns
from algo_trader.application.simulation.runner import run_simulation
from algo_trader.domain.errors import ConfigError, DataError
from algo_trader.infrastructure.data.atomic import load_tensor, save_tensor
from algo_trader.infrastructure.data.layout import tensor_payload
from algo_trader.infrastructure.env import load_settings

N_WEEKS = 45  # 44 panel rows: warmup 12 + 4 groups of 8; outer test groups 3 (and 2 with q=1)
ASSETS = ["AAA", "BBB", "CCC"]


def write_inputs(root: Path) -> None:
    """Generated data (seeded normal draws) in the stage folders the env points at."""
    rng = np.random.default_rng(0)
    weeks = pd.date_range("2020-01-03", periods=N_WEEKS, freq="7D", tz="UTC")
    fs = root / "data" / "feature_store" / "2020-45"
    save_tensor(
        fs / "momentum" / "features_tensor.pt",
        tensor_payload(rng.normal(size=(N_WEEKS, 3, 2)), weeks, ASSETS, ["z_a", "z_b"]),
    )
    returns = rng.normal(0.002, 0.03, size=(N_WEEKS, 3))
    save_tensor(
        root / "data" / "data_lake" / "2020-45" / "return_tensor.pt",
        tensor_payload(returns, weeks, ASSETS),
    )


def write_config(root: Path, name: str = "simulation.yml", **overrides: Any) -> Path:
    config: dict[str, Any] = {
        "simulation_mode": "stub",
        "data": {"simulation_output_path": "run_a"},
        "cv": {"warmup_len": 12, "group_len": 8, "horizon": 1, "embargo_len": 1, "q": 1},
        "outer": {"test_groups": "last_n", "last_n": 2},
        "tuning": {
            "num_samples": 2,
            "seed": 1,
            "space": [
                {"path": "training.svi.learning_rate", "type": "float", "bounds": [0.001, 0.1]}
            ],
        },
        "predictive": {"num_samples": 32},
        "allocation": {"policy": "mean_variance", "risk_aversion": 20.0},
        "cost": {"bps": 10.0},
    }
    config.update(overrides)
    path = root / name
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, index_col="timestamp")


@pytest.fixture
def simulated(isolated_env: Path) -> Path:
    write_inputs(isolated_env)
    return run_simulation(load_settings(), write_config(isolated_env)).out_dir


def test_backtest_reproduces_the_simulation_outer_results(simulated: Path) -> None:
    result = run_backtest(load_settings())
    assert result.run_dir == simulated and result.out_dir == simulated / "backtest"
    pnl, weights = read_csv(result.out_dir / "pnl.csv"), read_csv(result.out_dir / "weights.csv")
    for k in (2, 3):
        sim_pnl = read_csv(simulated / "outer" / f"outer_{k}" / "pnl.csv")
        sim_weights = read_csv(simulated / "outer" / f"outer_{k}" / "weights.csv")
        ours = pnl[pnl["outer_fold"] == k].drop(columns="outer_fold")
        pd.testing.assert_frame_equal(ours, sim_pnl, check_exact=True)
        held = weights[weights["outer_fold"] == k].drop(columns="outer_fold")
        pd.testing.assert_frame_equal(held, sim_weights, check_exact=True)
    assert weights[ASSETS].std().max() > 0.01  # mean-variance weights move week to week
    assert result.metrics["n_weeks"] == 16
    assert result.metrics["performance"]["total_cost"] == pytest.approx(pnl["cost"].sum())
    assert set(result.metrics["folds"]) == {"outer_2", "outer_3"}
    # The simulation's own report is reproduced bit for bit, DSR and PBO included.
    sim = json.loads((simulated / "outer" / "results.json").read_text())
    ours = json.loads((result.out_dir / "metrics.json").read_text())
    for key in ("performance", "benchmark", "overfitting", "folds"):
        assert ours[key] == sim[key]
    assert ours["overfitting"]["available"] is True
    assert result.source.endswith("outer/outer_2/config.json, outer/outer_3/config.json")


def test_report_files_and_the_numbers_behind_the_plots(simulated: Path) -> None:
    result = run_backtest(load_settings(), run_dir=simulated)
    out = result.out_dir
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            "config.json",
            "curves.csv",
            "equity_drawdown.png",
            "metrics.json",
            "pnl.csv",
            "predictive.csv",
            "weights.csv",
            "weights.png",
        ]
    )
    assert [p.name for p in result.plots] == ["equity_drawdown.png", "weights.png"]
    curves, pnl = read_csv(out / "curves.csv"), read_csv(out / "pnl.csv")
    np.testing.assert_array_equal(curves["strategy_return"], pnl["net"])
    panel = load_tensor(simulated / "inputs" / "panel_tensor.pt")
    rows = panel["y"].numpy()[28:44] / 1e6  # the decision weeks' label returns
    index = pd.DatetimeIndex(pd.to_datetime(curves.index, utc=True))
    bench = benchmark_returns(pd.DataFrame(rows, index=index))
    np.testing.assert_allclose(curves["benchmark_return"], bench, rtol=1e-15)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(result.metrics, allow_nan=True).replace("NaN", "null"))
    lines = "\n".join(result.summary_lines())
    assert "Sharpe" in lines and "buy-and-hold" in lines and str(result.plots[0]) in lines
    assert set(result.headline()) >= {"sharpe", "max_drawdown", "dsr", "pbo"}


def test_candidate_and_explicit_config(simulated: Path, isolated_env: Path) -> None:
    settings = load_settings()
    result = run_backtest(settings, candidate="0001")
    assert {f["candidate_id"] for f in result.metrics["folds"].values()} == {"0001"}
    assert result.source.startswith("candidate 0001")
    with pytest.raises(ConfigError, match=r"--candidate '9999'.*valid: 0000, 0001"):
        run_backtest(settings, candidate="9999")
    path = write_config(
        isolated_env, "other.yml", allocation={"policy": "equal_weight"}, cost={"bps": 0.0}
    )
    plain = run_backtest(settings, simulation_config=path)
    assert plain.metrics["performance"]["total_cost"] == 0.0
    weights = read_csv(plain.out_dir / "weights.csv")
    np.testing.assert_allclose(weights[ASSETS], 1 / 3)
    assert (
        json.loads((plain.out_dir / "config.json").read_text())["outer_2"]["candidate_id"] is None
    )


def test_latest_run_and_clear_errors(isolated_env: Path) -> None:
    settings = load_settings()
    with pytest.raises(DataError, match="no finished simulation run"):
        run_backtest(settings)
    write_inputs(isolated_env)
    cv_only = write_config(isolated_env, data={"simulation_output_path": "run_b"}, stop_after="cv")
    run_b = run_simulation(settings, cv_only).out_dir
    assert latest_run(settings.simulation_source) == run_b
    with pytest.raises(DataError, match="no saved configuration for outer fold 2"):
        run_backtest(settings)
    stub = write_config(isolated_env, "stub.yml")  # a config may run on a cv-only run
    assert run_backtest(settings, simulation_config=stub).metrics["n_weeks"] == 16
    dry = write_config(isolated_env, "dry.yml", simulation_mode="dry_run")
    with pytest.raises(ConfigError, match="dry_run"):
        run_backtest(settings, simulation_config=dry)
    panel_path = run_b / "inputs" / "panel_tensor.pt"
    payload = load_tensor(panel_path)
    payload["y"] = payload["y"] * 2
    save_tensor(panel_path, payload)
    with pytest.raises(DataError, match="panel changed"):
        run_backtest(settings, simulation_config=stub)


def test_a_broken_saved_config_names_file_and_key(simulated: Path) -> None:
    saved = json.loads((simulated / "inner" / "outer_3" / "best_config.json").read_text())
    saved["config"]["cost"]["bps"] = -1.0
    # What the outer loop ran is read first (outer/outer_<k>/config.json).
    (simulated / "outer" / "outer_3" / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match=r"outer_3/config.json .*cost\.bps"):
        run_backtest(load_settings())

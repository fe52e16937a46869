"""Calibration diagnostics: the numbers behind the plots, config errors, the written files."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from algo_trader.application.simulation.diagnostics import (
    Forecasts,
    coverage_by_week,
    coverage_curve_frame,
    coverage_indicators,
    fan_chart_assets,
    load_forecasts,
    pit_histogram,
    pooled_fan,
    randomized_pit,
    write_diagnostics,
)
from algo_trader.application.simulation.runner import run_simulation
from algo_trader.domain.errors import ConfigError
from algo_trader.domain.simulation.config import FanChartsConfig, load_simulation_config
from algo_trader.infrastructure.data.atomic import save_tensor
from algo_trader.infrastructure.env import load_settings

WEEK_NS = 7 * 86_400 * 10**9


def generated_forecasts(width: float, n_weeks: int = 3000, n_draws: int = 40) -> Forecasts:
    """Generated data: truth ~ N(0, 1), forecasts ~ N(0, width^2), one split per week."""
    rng = np.random.default_rng(0)
    return Forecasts(
        z_true=torch.from_numpy(rng.normal(size=(n_weeks, 2))),
        z_samples=torch.from_numpy(width * rng.normal(size=(n_draws, n_weeks, 2))),
        rescale=torch.ones(n_weeks, 2, dtype=torch.float64),
        week=torch.arange(n_weeks),
        timestamps=np.arange(n_weeks, dtype=np.int64) * WEEK_NS,
    )


def pit_density(width: float) -> pd.DataFrame:
    pit = randomized_pit(generated_forecasts(width), torch.Generator().manual_seed(1))
    return pit_histogram(pit.numpy().ravel())


def test_calibrated_pit_histogram_is_flat_within_sampling_error() -> None:
    frame = pit_density(1.0)
    n = int(frame["count"].sum())
    assert n == 6000 and frame["density"].mean() == pytest.approx(1.0)
    expected = n / len(frame)
    chi2 = float(((frame["count"] - expected) ** 2 / expected).sum())
    assert chi2 < stats.chi2.ppf(0.999, df=len(frame) - 1)
    assert (abs(frame["density"] - 1) < 4 * frame["density_se"]).all()


def test_under_dispersed_pit_histogram_is_u_shaped() -> None:
    density = pit_density(0.5)["density"].to_numpy()
    assert density[0] > 2 and density[-1] > 2  # truth often beyond every draw
    assert (density[3:7] < 0.7).all()


def test_over_dispersed_pit_histogram_is_hump_shaped() -> None:
    density = pit_density(2.0)["density"].to_numpy()
    assert density[0] < 0.5 and density[-1] < 0.5 and (density[4:6] > 1.5).all()


def test_coverage_of_calibrated_forecasts_is_nominal_up_to_finite_draws() -> None:
    f = generated_forecasts(1.0)
    curve = coverage_curve_frame(f, [0.5, 0.9])
    # S = 40 draws: a calibrated forecast's sample interval covers c * 39 / 41.
    np.testing.assert_allclose(curve["calibrated_expected"], [0.5 * 39 / 41, 0.9 * 39 / 41])
    np.testing.assert_allclose(curve["empirical"], curve["calibrated_expected"], atol=0.015)
    narrow = coverage_curve_frame(generated_forecasts(0.5), [0.5, 0.9])
    assert (narrow["empirical"] < narrow["nominal"] - 0.15).all()


def test_coverage_per_week_pools_splits_and_assets_and_skips_missing() -> None:
    # Week 0 is tested by two splits; draws -1, 0, 1 (central 50 % interval [-0.5, 0.5]).
    draws = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64).reshape(3, 1, 1).expand(3, 3, 2)
    f = Forecasts(
        z_true=torch.tensor([[0.0, 2.0], [0.1, float("nan")], [0.0, 0.0]], dtype=torch.float64),
        z_samples=draws.clone(),
        rescale=torch.ones(3, 2, dtype=torch.float64),
        week=torch.tensor([0, 0, 1]),
        timestamps=np.array([0, WEEK_NS]),
    )
    weekly = coverage_by_week(f, coverage_indicators(f, [0.5]))
    np.testing.assert_allclose(weekly.numpy(), [[2 / 3, 1.0]])


def test_fan_pools_the_splits_of_a_week_at_the_median_split_scale(isolated_env: Path) -> None:
    # One week tested by three splits with scales 1, 2, 4 (median 2) for a y of 4.
    paths = []
    for sid, scale in enumerate([1.0, 2.0, 4.0]):
        y_draws = torch.tensor([2.0, 6.0], dtype=torch.float64).reshape(2, 1, 1)
        path = isolated_env / f"candidate_0000_split_{sid}.pt"
        save_tensor(
            path,
            {
                "z_true": torch.tensor([[4.0 / scale]], dtype=torch.float64),
                "z_samples": y_draws / scale,
                "scale": torch.tensor([scale], dtype=torch.float64),
                "timestamps": torch.tensor([WEEK_NS]),
            },
        )
        paths.append(path)
    f = load_forecasts(paths)
    realized, quantiles = pooled_fan(f, [0.0, 0.5, 1.0])
    assert realized.item() == pytest.approx(2.0)  # 4 / median scale 2, from every split
    np.testing.assert_allclose(quantiles[:, 0, 0].numpy(), [1.0, 2.0, 3.0])


def test_fan_chart_assets_are_checked_against_the_panel() -> None:
    assets = ["AAA", "BBB"]
    assert fan_chart_assets(FanChartsConfig(), assets) == assets
    assert fan_chart_assets(FanChartsConfig(assets=["BBB"]), assets) == ["BBB"]
    with pytest.raises(ConfigError, match=r"fan_charts.assets: \['ZZZ'\] are not panel assets"):
        fan_chart_assets(FanChartsConfig(assets=["BBB", "ZZZ"]), assets)


@pytest.mark.parametrize(
    ("key", "value"),
    [("quantiles", [0.0, 0.5]), ("quantiles", [0.5, 1.2]), ("coverage_levels", [0.5, 1.0])],
)
def test_levels_outside_the_unit_interval_are_config_errors(
    isolated_env: Path, key: str, value: list[float]
) -> None:
    path = isolated_env / "simulation.yml"
    path.write_text(f"diagnostics:\n  fan_charts:\n    {key}: {value}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"diagnostics.fan_charts.{key}"):
        load_simulation_config(path)


def _runner_fixtures() -> ModuleType:
    path = Path(__file__).with_name("test_runner.py")
    spec = importlib.util.spec_from_file_location("runner_fixtures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {
                "model_selection": {"enable": True},
                "diagnostics": {"fan_charts": {"enable": True, "assets": ["ZZZ"]}},
            },
            "are not panel assets",
        ),
        ({"diagnostics": {"fan_charts": {"enable": True}}}, "needs model_selection.enable"),
    ],
)
def test_runner_refuses_bad_diagnostics_before_any_work(
    isolated_env: Path, overrides: dict[str, object], message: str
) -> None:
    fx = _runner_fixtures()
    fx.write_inputs(isolated_env)
    with pytest.raises(ConfigError, match=message):
        run_simulation(load_settings(), fx.write_config(isolated_env, **overrides))
    assert not (isolated_env / "data" / "simulation").exists()


def test_write_diagnostics_writes_each_plot_with_its_csv(isolated_env: Path) -> None:
    rng = np.random.default_rng(3)
    path = isolated_env / "candidate_0000_split_0.pt"
    save_tensor(
        path,
        {
            "z_true": torch.from_numpy(rng.normal(size=(30, 2))),
            "z_samples": torch.from_numpy(rng.normal(size=(50, 30, 2))),
            "scale": torch.ones(2, dtype=torch.float64),
            "timestamps": torch.arange(30) * WEEK_NS + 1_600_000_000 * 10**9,
        },
    )
    config = FanChartsConfig(enable=True, assets=["B"], quantiles=[0.1, 0.25, 0.75, 0.9])
    written = write_diagnostics(isolated_env, [path], "0000", config, ["A", "B"], seed=1)
    root = isolated_env / "outer" / "diagnostics"
    assert sorted(p.relative_to(root).as_posix() for p in written) == sorted(
        [
            "fan_charts/fan_chart_B.csv",
            "fan_charts/fan_chart_B.png",
            *(
                f"calibration/{n}.{e}"
                for n in ("calibration_fan", "pit_histogram", "coverage_curve")
                for e in ("csv", "png")
            ),
        ]
    )
    assert all(p.stat().st_size > 0 for p in written)
    assert (root / "fan_charts" / "fan_chart_B.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fan = pd.read_csv(root / "fan_charts" / "fan_chart_B.csv", index_col="timestamp")
    assert list(fan.columns) == ["realized", "q_0.1", "q_0.25", "q_0.5", "q_0.75", "q_0.9"]
    assert len(fan) == 30 and fan.index[0] == "2020-09-13T12:26:40+00:00"
    assert (fan["q_0.1"] <= fan["q_0.5"]).all() and (fan["q_0.5"] <= fan["q_0.9"]).all()
    calibration = pd.read_csv(root / "calibration" / "calibration_fan.csv")
    assert {"coverage_0.5", "coverage_0.95_rolling", "n_forecasts"} <= set(calibration.columns)
    assert calibration["n_forecasts"].eq(2).all()

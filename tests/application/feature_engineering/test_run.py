"""``run_feature_engineering`` end to end on a generated data lake folder."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from algo_trader.application.feature_engineering.inputs import load_inputs
from algo_trader.application.feature_engineering.registry import default_group_registry
from algo_trader.application.feature_engineering.run import (
    compute_groups,
    plan_keys,
    run_feature_engineering,
)
from algo_trader.domain.errors import ConfigError, DataError
from algo_trader.infrastructure.data.atomic import load_tensor, write_csv
from algo_trader.infrastructure.env import Settings, load_settings

WEEKLY = ["momentum", "mean_reversion", "breakout", "cross_sectional"]
LakeWriter = Callable[[Path, pd.DataFrame], Path]


@pytest.fixture
def settings() -> Settings:
    return load_settings(None)  # conftest isolates env and chdirs into a tmp folder


@pytest.fixture
def lake(
    settings: Settings, daily_factory: Callable[..., pd.DataFrame], lake_writer: LakeWriter
) -> Path:
    daily = daily_factory(n_assets=4, n_weeks=60, seed=11)
    daily.loc[daily.index[:100], "GEN2"] = np.nan  # starts 20 weeks late
    return lake_writer(settings.data_lake_source, daily)


def test_one_group_one_key_writes_only_those_columns(settings: Settings, lake: Path) -> None:
    result = run_feature_engineering(settings, ["momentum"], ["ema_spread"])
    folder = result.group_dirs["momentum"]
    assert folder == settings.feature_store_source / lake.name / "momentum"
    assert sorted(folder.iterdir()) == sorted(result.files["momentum"])
    assert sorted(p.name for p in folder.iterdir()) == [
        "features.csv",
        "features_tensor.pt",
        "goodness.json",
        "metadata.json",
    ]
    frame = pd.read_csv(folder / "features.csv", header=[0, 1], index_col=0)
    assert frame.columns.names == ["asset", "feature"]
    assert sorted(set(frame.columns.get_level_values(1))) == [
        "ema_spread_12w_26w",
        "ema_spread_4w_26w",
    ]
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["features"] == ["ema_spread"]
    assert meta["feature_name_units"] == "weeks"
    assert meta["days_to_weeks"] == {"5": 1, "20": 4, "60": 12, "130": 26}
    assert meta["goodness_rule"] == "missing/horizon"
    assert set(meta["inputs_sha256"]) == {"weekly_ohlc.csv", "daily_ohlc.csv"}
    assert result.summary_lines()[-1].startswith("momentum: 2 features")


def test_all_groups_files_agree(settings: Settings, lake: Path) -> None:
    result = run_feature_engineering(settings, None, None)
    assert set(WEEKLY) <= set(result.group_dirs)
    inputs = load_inputs(lake)
    for group in WEEKLY:
        folder = result.group_dirs[group]
        payload = load_tensor(folder / "features_tensor.pt")
        values = payload["values"].numpy()
        assert payload["features"] == result.feature_names[group]
        assert payload["assets"] == inputs.assets
        np.testing.assert_array_equal(payload["missing_mask"].numpy(), np.isnan(values))
        assert not np.isinf(values).any()
        frame = pd.read_csv(folder / "features.csv", header=[0, 1], index_col=0)
        np.testing.assert_allclose(frame.to_numpy().reshape(values.shape), values, rtol=1e-15)
        goodness = json.loads((folder / "goodness.json").read_text())
        assert len(goodness) == len(inputs.weekly_index)
        key = next(iter(goodness))
        assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d:\d\d:\d\d\+00:00", key)
        assert set(goodness[key]) == set(inputs.assets)
        ratios = np.array(
            [[list(goodness[k][a].values()) for a in sorted(inputs.assets)] for k in goodness]
        )
        assert ((ratios >= 0) & (ratios <= 1)).all()
    assert not list(result.out_dir.glob(".*"))  # no staging leftovers


def test_rerun_replaces_the_group_folder(settings: Settings, lake: Path) -> None:
    first = run_feature_engineering(settings, ["breakout"], None)
    second = run_feature_engineering(settings, ["breakout"], ["brk_dn"])
    frame = pd.read_csv(second.group_dirs["breakout"] / "features.csv", header=[0, 1], index_col=0)
    assert set(frame.columns.get_level_values(1)) == {"brk_dn_4w", "brk_dn_26w"}
    assert first.group_dirs == second.group_dirs


def test_unknown_feature_lists_the_group_keys(settings: Settings, lake: Path) -> None:
    with pytest.raises(ConfigError, match="valid: vol_scaled_momentum, ema_spread"):
        run_feature_engineering(settings, ["momentum"], ["rsi"])
    with pytest.raises(ConfigError, match=r"'nope'.*breakout: brk_up, brk_dn"):
        run_feature_engineering(settings, ["momentum", "breakout"], ["nope"])


def test_unknown_group_lists_the_groups(settings: Settings, lake: Path) -> None:
    with pytest.raises(ConfigError, match=r"'trend'.*breakout.*momentum.*all"):
        run_feature_engineering(settings, ["trend"], None)


def test_features_spread_over_groups(settings: Settings) -> None:
    registry = default_group_registry()
    plan = plan_keys(
        registry, ["momentum", "breakout", "cross_sectional"], ["ema_spread", "brk_up"]
    )
    assert plan == {"momentum": ["ema_spread"], "breakout": ["brk_up"]}


def test_missing_weekly_ohlc_names_asset_and_week(
    settings: Settings,
    daily_factory: Callable[..., pd.DataFrame],
    weekly_of: Callable[[pd.DataFrame], pd.DataFrame],
    lake_writer: LakeWriter,
) -> None:
    daily = daily_factory(n_assets=3, n_weeks=40, seed=2)
    folder = lake_writer(settings.data_lake_source, daily)
    weekly = weekly_of(daily)
    weekly.loc[weekly.index[12], ("GEN1", "low")] = np.nan
    write_csv(folder / "weekly_ohlc.csv", weekly)
    week = weekly.index[12].strftime("%Y-%m-%dT%H:%M:%S+00:00")
    with pytest.raises(
        DataError,
        match=rf"line 16.*GEN1/low.*missing weekly low for asset "
        rf"'GEN1' in week {re.escape(week)}",
    ):
        run_feature_engineering(settings, ["momentum"], None)


def test_no_data_lake_folder(settings: Settings) -> None:
    with pytest.raises(DataError, match=r"weekly_ohlc\.csv"):
        run_feature_engineering(settings, None, None)


def test_non_positive_price_is_rejected(
    settings: Settings,
    daily_factory: Callable[..., pd.DataFrame],
    weekly_of: Callable[[pd.DataFrame], pd.DataFrame],
    lake_writer: LakeWriter,
) -> None:
    daily = daily_factory(n_assets=2, n_weeks=30, seed=3)
    folder = lake_writer(settings.data_lake_source, daily)
    weekly = weekly_of(daily)
    weekly.loc[weekly.index[5], ("GEN0", "close")] = 0.0
    write_csv(folder / "weekly_ohlc.csv", weekly)
    with pytest.raises(DataError, match=r"line 9.*GEN0/close.*> 0"):
        run_feature_engineering(settings, ["breakout"], None)


@pytest.mark.slow
def test_parallel_equals_sequential(lake: Path) -> None:
    inputs = load_inputs(lake)
    plan = plan_keys(default_group_registry(), WEEKLY, None)
    parallel = compute_groups(plan, inputs, workers=2)
    sequential = compute_groups(plan, inputs, workers=1)
    for name in WEEKLY:
        np.testing.assert_array_equal(parallel[name].values, sequential[name].values)

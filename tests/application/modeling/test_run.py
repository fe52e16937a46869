"""``algotrader modeling`` end to end on generated feature-store / data-lake folders.

Every number here is generated (a known linear signal plus noise), not market data.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from algo_trader.application.modeling.run import ModelingResult, run_modeling
from algo_trader.application.simulation.panel import build_panel, sha256_file
from algo_trader.domain.errors import ConfigError, DataError
from algo_trader.domain.simulation.config import SVIConfig
from algo_trader.infrastructure.data.atomic import save_tensor
from algo_trader.infrastructure.data.layout import tensor_payload, week_folder_name
from algo_trader.infrastructure.env import load_settings

# regime_switching's scan leaves TraceEnum_ELBO nothing to enumerate, which it warns about.
pytestmark = pytest.mark.filterwarnings("ignore:TraceEnum_ELBO found no sample sites")

WEEKS = pd.date_range("2023-01-06", periods=60, freq="7D", tz="UTC")
ASSETS = ["AAA", "BBB", "CCC"]
QUICK = SVIConfig(num_steps=25, learning_rate=0.05, log_every=None)


def write_stores(root: Path) -> tuple[Path, Path, Path]:
    """Generated stores: groups ``mom`` (2 features) and ``vol`` (3), and weekly returns
    ``0.01 * mom_0[t-1] + noise`` so that next week's return follows this week's feature."""
    rng = np.random.default_rng(0)
    T, A = len(WEEKS), len(ASSETS)
    mom = rng.normal(size=(T, A, 2))
    vol = np.abs(rng.normal(size=(T, A, 3)))
    vol[5, 1, 2] = np.nan
    returns = 0.02 * rng.standard_t(5, size=(T, A))
    returns[1:] += 0.01 * mom[:-1, :, 0]
    returns[7, 2] = np.nan
    week = "2024-09"
    fs = root / "feature_store" / week
    save_tensor(fs / "mom" / "features_tensor.pt", tensor_payload(mom, WEEKS, ASSETS, ["a", "b"]))
    save_tensor(
        fs / "vol" / "features_tensor.pt", tensor_payload(vol, WEEKS, ASSETS, ["c", "d", "e"])
    )
    lake = root / "data_lake" / week / "return_tensor.pt"
    save_tensor(lake, tensor_payload(returns, WEEKS, ASSETS))
    return fs / "mom" / "features_tensor.pt", fs / "vol" / "features_tensor.pt", lake


@pytest.fixture
def stores() -> tuple[Path, Path, Path]:
    """The generated stores where the default settings look (``./data`` in the test's cwd)."""
    return write_stores(Path("data"))


def _run(model: str, guide: str, **kwargs) -> ModelingResult:
    args = {"input_dir": None, "render": None, "params": None, "seed": 3} | kwargs
    return run_modeling(load_settings(), model, guide, svi=QUICK, num_samples=50, **args)


def test_run_writes_params_csv_and_metadata(stores) -> None:
    result = _run("horseshoe_regression", "horseshoe_guide", pipeline="exp1")
    # 60 feature weeks, the last one has no next-week return yet: 59 rows.
    week = week_folder_name(WEEKS[-2])
    assert (
        result.out_dir == Path("data/model_store/horseshoe_regression/horseshoe_guide/exp1") / week
    )
    assert sorted(p.name for p in result.out_dir.iterdir()) == ["metadata.json", "params.csv"]
    table = pd.read_csv(result.out_dir / "params.csv", keep_default_na=False)
    assert list(table.columns) == ["name", "index", "mean", "sd", "q05", "q50", "q95"]
    F, A = 5, 3
    counts = table.groupby("name", sort=False).size().to_dict()
    assert counts == {"tau": 1, "lambda": F, "c2": 1, "beta": F, "alpha": A, "sigma": A, "nu": 1}
    assert table.loc[table.name == "beta", "index"].tolist() == ["0", "1", "2", "3", "4"]
    assert (table.q05 <= table.q50).all() and (table.q50 <= table.q95).all()
    assert (table.sd > 0).all()
    meta = json.loads((result.out_dir / "metadata.json").read_text())
    assert meta["model"] == "horseshoe_regression" and meta["seed"] == 3
    assert meta["training"]["num_steps"] == 25 and meta["loss"]["steps_run"] == 25
    assert len(meta["loss"]["thinned"]["loss"]) == 25
    assert meta["data"]["rows"] == 59 and meta["data"]["assets"] == ASSETS
    assert meta["data"]["features"] == ["mom__a", "mom__b", "vol__c", "vol__d", "vol__e"]
    for name, path in zip(("features/mom", "features/vol", "returns"), stores, strict=True):
        assert meta["inputs"][name] == {"path": str(path), "sha256": sha256_file(path)}
    # The unit of the priors comes from the targets (returns x 1e6), by the prebuild hook.
    scale = meta["params"]["likelihood"]["sigma_scale"]
    assert meta["prebuild"]["name"] == "factor_prior_init" and 5e3 < scale < 1e5
    assert meta["complexity"] == 1.0 + 2 * A + 1
    assert set(meta["versions"]) >= {"algo_trader", "torch", "pyro"}
    assert result.summary_lines()[0].startswith("horseshoe_regression / horseshoe_guide")


def test_explicit_sigma_scale_wins_and_reruns_replace_the_folder(stores) -> None:
    params = {"likelihood": {"sigma_scale": 20000.0}}
    first = _run("horseshoe_regression", "horseshoe_guide", params=params)
    again = _run("horseshoe_regression", "horseshoe_guide", params=params, seed=4)
    assert first.out_dir == again.out_dir
    meta = json.loads((again.out_dir / "metadata.json").read_text())
    assert meta["seed"] == 4 and meta["params"]["likelihood"]["sigma_scale"] == 20000.0
    assert meta["prebuild"]["name"] is None
    assert sorted(p.name for p in again.out_dir.parent.iterdir()) == [again.out_dir.name]


def test_input_folder_with_a_simulation_panel(stores, tmp_path: Path) -> None:
    _, _, lake = stores
    panel = build_panel(Path("data/feature_store/2024-09"), lake, "all", 1, 1_000_000, True)
    inputs = tmp_path / "sim" / "inputs"
    save_tensor(inputs / "panel_tensor.pt", panel.payload())
    result = _run("regime_switching", "regime_guide", input_dir=inputs)
    meta = json.loads((result.out_dir / "metadata.json").read_text())
    panel_file = inputs / "panel_tensor.pt"
    assert meta["inputs"]["panel"] == {"path": str(panel_file), "sha256": sha256_file(panel_file)}
    table = pd.read_csv(result.out_dir / "params.csv", keep_default_na=False)
    assert table.loc[table.name == "transition", "index"].tolist() == ["0,0", "0,1", "1,0", "1,1"]


def test_input_folder_without_panel_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no panel_tensor\.pt"):
        _run("horseshoe_regression", "horseshoe_guide", input_dir=tmp_path)


def test_unknown_names_list_the_registered_ones(stores) -> None:
    with pytest.raises(ConfigError, match=r"unknown model 'nope'; valid: .*horseshoe_regression"):
        _run("nope", "horseshoe_guide")
    with pytest.raises(ConfigError, match=r"unknown guide 'nope'; valid: .*regime_guide"):
        _run("regime_switching", "nope")
    with pytest.raises(ConfigError, match=r"--pipeline '\.\./x'"):
        _run("regime_switching", "regime_guide", pipeline="../x")


@pytest.mark.skipif(importlib.util.find_spec("graphviz") is not None, reason="graphviz installed")
def test_render_without_graphviz_says_how_to_install(stores, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"uv sync --extra graphviz.*Graphviz binary"):
        _run("horseshoe_regression", "horseshoe_guide", render=tmp_path / "model.svg")
    assert not Path("data/model_store").exists()


@pytest.mark.skipif(importlib.util.find_spec("graphviz") is None, reason="graphviz not installed")
def test_render_draws_the_model_graph(stores, tmp_path: Path) -> None:
    target = tmp_path / "model.svg"
    result = _run("horseshoe_regression", "horseshoe_guide", render=target)
    assert result.render == target
    assert b"<svg" in target.read_bytes()

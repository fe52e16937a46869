"""``tuning.engine``: the local loop and Ray Tune give the same results; failing trials.

The Ray tests share one local Ray (2 CPUs) per module; the cluster test starts its own
head node on loopback and stops it. Data are generated (seeded normal draws).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from algo_trader.application.simulation.candidates import generate_candidates
from algo_trader.application.simulation.cv_groups import InnerSplit
from algo_trader.application.simulation.hooks import HookConfig, Hooks, stub_fit_model, stub_hooks
from algo_trader.application.simulation.inner_objective import PreparedSplit
from algo_trader.application.simulation.runner import run_simulation
from algo_trader.application.simulation.tuning_engine import (
    RAY_INSTALL,
    TRIAL_ERRORS_FILE,
    FoldWork,
    TrialFailedError,
    check_engine,
    evaluate_candidates,
)
from algo_trader.domain.errors import ConfigError
from algo_trader.domain.simulation.config import SimulationConfig, load_simulation_config
from algo_trader.infrastructure.data.atomic import save_tensor
from algo_trader.infrastructure.data.layout import tensor_payload
from algo_trader.infrastructure.env import load_settings

# Set before any ray.init in this module (the engine module sets it too): workers use this
# interpreter, not a `uv run` of their own (which would lack the ray extra).
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

STUB_CONFIG = Path(__file__).resolve().parents[3] / "config" / "simulation_stub.yml"
N_WEEKS = 61  # 60 panel rows: the last feature week has no next-week return
ASSETS = ["AAA", "BBB", "CCC"]
# warmup 12 + 6 groups of 8 = 60 rows; the last 2 groups are the outer test groups.
CV = {"warmup_len": 12, "group_len": 8, "horizon": 1, "embargo_len": 1, "q": 2, "seed": 3}
RESULT_FILES = [
    "cv/candidates.json",
    "cv/summary.json",
    "outer/best_config.json",
    "outer/selection.json",
    "outer/results.json",
    "inner/outer_4/scores.json",
    "inner/outer_5/scores.json",
    "inner/outer_5/candidate_returns.csv",
    "inner/outer_5/best_config.json",
]


def write_inputs(root: Path) -> None:
    """Generated feature store and data lake (seeded normal draws)."""
    rng = np.random.default_rng(0)
    weeks = pd.date_range("2020-01-03", periods=N_WEEKS, freq="7D", tz="UTC")
    save_tensor(
        root / "data" / "feature_store" / "2021-09" / "momentum" / "features_tensor.pt",
        tensor_payload(rng.normal(size=(N_WEEKS, 3, 2)), weeks, ASSETS, ["z_4w", "z_12w"]),
    )
    returns = rng.normal(0.001, 0.02, size=(N_WEEKS, 3))
    returns[0] = np.nan
    save_tensor(
        root / "data" / "data_lake" / "2021-09" / "return_tensor.pt",
        tensor_payload(returns, weeks, ASSETS),
    )


def write_config(root: Path, name: str, tuning: dict[str, Any]) -> Path:
    """``config/simulation_stub.yml`` (4 candidates in 2 strata) sized for the generated panel,
    with the post-tune model selection on."""
    config = yaml.safe_load(STUB_CONFIG.read_text(encoding="utf-8"))
    config["data"]["simulation_output_path"] = "run"
    config["cv"] = dict(CV)
    config["predictive"] = {"num_samples": 32}
    config["model_selection"] = {"enable": True}
    config["tuning"].update(tuning)
    path = root / f"{name}.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def read(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else text


def engine_free(path: Path) -> Any:
    """The file's content without ``tuning.engine`` (the one setting the two runs differ in),
    which ``best_config.json`` records inside the chosen candidate's full config."""
    content = read(path)
    if isinstance(content, dict) and "config" in content:
        assert content["config"]["tuning"].pop("engine") in ("local", "ray")
    return content


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    """One local Ray with 2 CPUs for the module (Ray takes seconds to start)."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_engine_ray_without_ray_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without the extra sees
    config = load_simulation_config(STUB_CONFIG)
    with pytest.raises(ConfigError, match=RAY_INSTALL):
        check_engine(config.tuning.model_copy(update={"engine": "ray"}))
    check_engine(config.tuning)  # the local engine needs nothing


@pytest.mark.ray
def test_local_and_ray_engines_write_identical_results(
    isolated_env: Path, local_ray: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_inputs(isolated_env)
    runs = {}
    for engine in ("local", "ray"):  # same label (it is in best_config.json), own root
        monkeypatch.setenv("SIMULATION_SOURCE", str(isolated_env / engine))
        path = write_config(isolated_env, engine, {"engine": engine})
        runs[engine] = run_simulation(load_settings(), path)
    local, ray = runs["local"], runs["ray"]
    assert ray.best == local.best and len(ray.best) == 2
    for name in RESULT_FILES:
        assert engine_free(ray.out_dir / name) == engine_free(local.out_dir / name), name
    fold = ray.out_dir / "inner" / "outer_5"
    table = pd.read_csv(fold / "ray" / "results.csv")
    assert sorted(table["config/candidate_id"].astype(str).str.zfill(4)) == [
        "0000",
        "0001",
        "0002",
        "0003",
    ]
    assert (fold / "ray" / "tune" / "candidate_0002" / "result.json").exists()
    assert (fold / "ray" / "tune" / "candidate_0002" / "stderr.log").exists()
    assert not (local.out_dir / "inner" / "outer_5" / "ray").exists()
    assert not (fold / TRIAL_ERRORS_FILE).exists()


def fold_work(engine: str, policy: str) -> FoldWork:
    """Generated prepared splits; the fit of candidate 0001 raises (a test-only hook)."""
    base = load_simulation_config(STUB_CONFIG)
    tuning = base.tuning.model_copy(update={"engine": engine, "on_trial_error": policy})
    config = base.model_copy(update={"tuning": tuning})
    candidates = generate_candidates(config.tuning)
    bad_rate = candidates["0001"]["training.svi.learning_rate"]

    def failing_fit(X: torch.Tensor, y: torch.Tensor, hc: HookConfig, init: Any) -> Any:
        if hc.config.training.svi.learning_rate == bad_rate:
            raise FloatingPointError(f"diverged at learning rate {bad_rate}")
        return stub_fit_model(X, y, hc, init)

    gen = torch.Generator().manual_seed(0)
    X = torch.randn(40, 3, 2, generator=gen, dtype=torch.float64)
    y = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    empty = np.empty(0, dtype=np.int64)
    prepared = []
    for sid, test in enumerate((np.arange(0, 10), np.arange(30, 40))):
        train = np.setdiff1d(np.arange(40), test)
        split = InnerSplit(sid, (sid,), train, test, empty, empty)
        prepared.append(PreparedSplit(split, X[train], y[train], X[test], y[test], ["a"], {}))
    hooks = Hooks(**{**stub_hooks().__dict__, "name": "failing", "fit_model": failing_fit})
    return FoldWork(7, prepared, config, hooks, list(candidates), candidates)


ENGINES = ["local", pytest.param("ray", marks=pytest.mark.ray)]


@pytest.mark.parametrize("engine", ENGINES)
def test_failing_trial_raise_stops_with_the_traceback(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if engine == "ray":
        request.getfixturevalue("local_ray")
    recorded: list[str] = []
    with pytest.raises(TrialFailedError, match=r"candidate 0001 .*FloatingPointError"):
        evaluate_candidates(
            fold_work(engine, "raise"), tmp_path, None, lambda s, c, x: recorded.append(c)
        )
    errors = read(tmp_path / TRIAL_ERRORS_FILE)
    assert [e["candidate_id"] for e in errors["errors"]] == ["0001"]
    assert "failing_fit" in errors["errors"][0]["traceback"]
    assert recorded == ["0000", "0000"]  # predictions are handed on in candidate order


@pytest.mark.parametrize("engine", ENGINES)
def test_failing_trial_skip_goes_on_without_it(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if engine == "ray":
        request.getfixturevalue("local_ray")
    recorded: list[tuple[int, str]] = []
    ticks: list[int] = []
    results = evaluate_candidates(
        fold_work(engine, "skip"),
        tmp_path,
        lambda: ticks.append(1),
        lambda s, c, x: recorded.append((s, c)),
    )
    assert [r.candidate_id for r in results] == ["0000", "0001", "0002", "0003"]
    failed = results[1]
    assert np.isnan(failed.objective) and failed.error is not None
    assert failed.error.startswith("FloatingPointError: diverged")
    assert all(np.isfinite(r.objective) for r in results if r.candidate_id != "0001")
    assert [c for _, c in recorded] == ["0000", "0000", "0002", "0002", "0003", "0003"]
    errors = read(tmp_path / TRIAL_ERRORS_FILE)
    assert errors["on_trial_error"] == "skip" and errors["fold"] == 7
    assert [e["candidate_id"] for e in errors["errors"]] == ["0001"]
    assert "FloatingPointError" in errors["errors"][0]["traceback"]
    assert len(ticks) == 8  # 2 splits per candidate, failed or not


def test_only_some_candidates_keep_their_seeds_and_report_each_result(tmp_path: Path) -> None:
    work = fold_work("local", "skip")
    full = {r.candidate_id: r for r in evaluate_candidates(work, tmp_path / "all")}
    reported: list[str] = []
    part = evaluate_candidates(
        work, tmp_path / "part", on_result=lambda r: reported.append(r.candidate_id),
        only=["0002", "0003"],
    )  # fmt: skip
    assert reported == ["0002", "0003"]
    expected = [(full[c].seeds, full[c].scores) for c in reported]
    assert [(r.seeds, r.scores) for r in part] == expected


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.ray
def test_simulation_on_a_loopback_cluster(isolated_env: Path) -> None:
    ray = pytest.importorskip("ray")
    ray.shutdown()  # leave the module's local Ray: this test joins the cluster it starts
    ray_cli = Path(sys.executable).with_name("ray")
    port = _free_port()
    # A short temp dir: Ray's socket paths must stay under the OS limit of ~107 characters.
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    head = subprocess.Popen(
        [
            *(str(ray_cli), "start", "--head", "--block", "--node-ip-address", "127.0.0.1"),
            *("--port", str(port), "--num-cpus", "2", "--include-dashboard", "false"),
            *("--temp-dir", temp_dir, "--disable-usage-stats"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: stopped below by its id alone
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        write_inputs(isolated_env)
        address = f"127.0.0.1:{port}"
        path = write_config(isolated_env, "cluster", {"engine": "ray", "ray": {"address": address}})
        result = _run_when_up(path, head)
        assert len(result.best) == 2
        summary = read(result.out_dir / "cv" / "summary.json")
        assert summary["n_candidates"] == 4 and summary["overall"]["n_weeks"] == 16
        assert (result.out_dir / "inner" / "outer_4" / "ray" / "results.csv").exists()
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=60)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _run_when_up(path: Path, head: subprocess.Popen[bytes]) -> Any:
    """The head takes a few seconds to accept drivers: retry the join, not the run."""
    config: SimulationConfig = load_simulation_config(path)
    assert config.tuning.ray.address is not None
    port = int(config.tuning.ray.address.rsplit(":", 1)[1])
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port)):
                break
        except OSError:
            assert head.poll() is None, "ray start --head exited"
            assert time.monotonic() < deadline, "the Ray head did not come up in 60 s"
            time.sleep(0.5)
    return run_simulation(load_settings(), path)

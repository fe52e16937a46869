"""Resume after ``kill -9``: a killed simulation, re-run, ends with the uninterrupted bytes.

The simulation runs as the CLI in a subprocess on generated data (seeded normal draws), is
killed with SIGKILL at a delay drawn with a fixed seed from points spread over its working
time, and is re-run to completion; every file is compared byte for byte with an
uninterrupted run, except the manifest's wall-clock fields (``manifest.WALL_CLOCK_FIELDS``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from algo_trader.application.simulation.checkpoint import CHECKPOINT_DIR
from algo_trader.application.simulation.manifest import MANIFEST_FILE, WALL_CLOCK_FIELDS
from algo_trader.application.simulation.runner import run_simulation
from algo_trader.domain.errors import ConfigError, DataError
from algo_trader.infrastructure.data.atomic import load_tensor, save_tensor
from algo_trader.infrastructure.data.layout import tensor_payload
from algo_trader.infrastructure.env import load_settings

N_WEEKS = 61
ASSETS = ["AAA", "BBB", "CCC"]
LABEL = "run_a"
KILL_SEED = 20241126
MOMENTUM = Path("data/feature_store/2021-09/momentum/features_tensor.pt")


def write_inputs(root: Path) -> None:
    """Generated feature store and data lake (seeded normal draws, not market data)."""
    rng = np.random.default_rng(0)
    weeks = pd.date_range("2020-01-03", periods=N_WEEKS, freq="7D", tz="UTC")
    mom = rng.normal(size=(N_WEEKS, 3, 2))
    save_tensor(root / MOMENTUM, tensor_payload(mom, weeks, ASSETS, ["z_mom_4w", "z_mom_12w"]))
    vol = np.abs(rng.normal(size=(N_WEEKS, 3, 1))) + 0.1
    save_tensor(
        root / "data/feature_store/2021-09/volatility/features_tensor.pt",
        tensor_payload(vol, weeks, ASSETS, ["vol_cc_d_4w"]),
    )
    returns = rng.normal(0.001, 0.02, size=(N_WEEKS, 3))
    returns[0] = np.nan
    save_tensor(
        root / "data/data_lake/2021-09/return_tensor.pt", tensor_payload(returns, weeks, ASSETS)
    )


def write_config(root: Path, **overrides: Any) -> Path:
    """A small stub config: 2 outer folds (6 and 10 inner splits) x 2 candidates."""
    config: dict[str, Any] = {
        "simulation_mode": "stub",
        "data": {"simulation_output_path": LABEL},
        "cv": {"warmup_len": 12, "group_len": 8, "horizon": 1, "embargo_len": 1, "q": 2},
        "outer": {"test_groups": "last_n", "last_n": 2},
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
        "predictive": {"num_samples": 64},
        "cost": {"bps": 10.0},
    }
    for key, value in overrides.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    path = root / "simulation.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def run_bytes(folder: Path) -> dict[str, bytes]:
    """Every file's bytes; the manifest without its wall-clock fields."""
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name == MANIFEST_FILE:
            manifest = json.loads(data)
            for key in WALL_CLOCK_FIELDS:
                manifest.pop(key)
            data = json.dumps(manifest, sort_keys=True).encode()
        out[path.relative_to(folder).as_posix()] = data
    return out


def assert_same_run(actual: Path, expected: dict[str, bytes]) -> None:
    got = run_bytes(actual)
    assert sorted(got) == sorted(expected)
    differing = [name for name in expected if got[name] != expected[name]]
    assert differing == []


@pytest.fixture
def work(isolated_env: Path) -> Path:
    write_inputs(isolated_env)
    return isolated_env


def out_dir(work: Path) -> Path:
    return work / "data" / "simulation" / LABEL


def reference(work: Path, config: Path) -> tuple[dict[str, bytes], float]:
    """An uninterrupted run's bytes and working time; its folder is removed after."""
    start = time.perf_counter()
    run_simulation(load_settings(), config)
    elapsed = time.perf_counter() - start
    expected = run_bytes(out_dir(work))
    shutil.rmtree(out_dir(work))
    return expected, elapsed


def kill_cli_run(work: Path, config: Path, delay: float, after: str = "inputs") -> int:
    """Start ``algotrader simulation`` as a subprocess and SIGKILL it ``delay`` seconds
    after ``after`` appears in its folder (by default its first folder: imports are not
    part of the delay); returns its exit code."""
    env = {**os.environ, "UV_NO_SYNC": "1"}
    command = [sys.executable, "-m", "algo_trader.cli.main", "simulation"]
    proc = subprocess.Popen(
        [*command, "--simulation-config", str(config)],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not (out_dir(work) / after).exists() and proc.poll() is None:
        assert time.monotonic() < deadline, "the simulation subprocess never started writing"
        time.sleep(0.01)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    return proc.wait()


def kill_and_resume(work: Path, config: Path, delay: float, expected: dict[str, bytes]) -> int:
    code = kill_cli_run(work, config, delay)
    result = run_simulation(load_settings(), config)
    assert not result.already_complete or code == 0
    assert_same_run(out_dir(work), expected)
    assert not (out_dir(work) / CHECKPOINT_DIR).exists()
    shutil.rmtree(out_dir(work))
    return code


def test_one_kill_resumes_to_identical_artifacts(work: Path) -> None:
    config = write_config(work)
    expected, elapsed = reference(work, config)
    delay = float(np.random.default_rng(KILL_SEED).uniform(0.2, 0.6) * elapsed)
    code = kill_and_resume(work, config, delay, expected)
    assert code == -signal.SIGKILL  # killed mid-run, not finished


@pytest.mark.slow
def test_kills_at_points_spread_over_the_run_resume_identically(work: Path) -> None:
    config = write_config(work)
    expected, elapsed = reference(work, config)
    # Six points spread over the working time (one per sixth, jittered with a fixed seed).
    rng = np.random.default_rng(KILL_SEED)
    delays = (np.arange(6) + rng.uniform(0.0, 1.0, size=6)) / 6 * elapsed
    codes = [kill_and_resume(work, config, float(d), expected) for d in delays]
    assert sum(c == -signal.SIGKILL for c in codes) >= 4


@pytest.mark.slow
def test_repeated_kills_then_resume(work: Path) -> None:
    """Killed again while resuming, twice, then finished: still the same bytes."""
    config = write_config(work)
    expected, elapsed = reference(work, config)
    for delay in np.random.default_rng(KILL_SEED + 1).uniform(0.1, 0.5, size=3) * elapsed:
        kill_cli_run(work, config, float(delay))
    run_simulation(load_settings(), config)
    assert_same_run(out_dir(work), expected)


@pytest.mark.slow
def test_stopped_run_continues_to_the_same_bytes(work: Path) -> None:
    expected, _ = reference(work, write_config(work))
    first = run_simulation(load_settings(), write_config(work, stop_after="inner"))
    assert first.stopped_after == "inner"
    run_simulation(load_settings(), write_config(work))
    assert_same_run(out_dir(work), expected)


def test_finished_run_is_reported_complete_and_left_alone(work: Path) -> None:
    config = write_config(work, stop_after="cv")
    run_simulation(load_settings(), config)
    before = {p: p.stat().st_mtime_ns for p in out_dir(work).rglob("*") if p.is_file()}
    again = run_simulation(load_settings(), config)
    assert again.already_complete and again.stopped_after == "cv" and again.n_candidates == 2
    assert "already complete" in again.summary_lines()[1]
    assert {p: p.stat().st_mtime_ns for p in out_dir(work).rglob("*") if p.is_file()} == before
    # Asking for less than was run is complete too.
    less = run_simulation(load_settings(), write_config(work, stop_after="inputs"))
    assert less.already_complete and less.stopped_after == "cv"


def test_changed_config_is_refused_with_the_difference(work: Path) -> None:
    run_simulation(load_settings(), write_config(work, stop_after="cv"))
    changed = write_config(work, cv={"seed": 4})
    with pytest.raises(ConfigError, match=r"config cv\.seed: 123 -> 4") as err:
        run_simulation(load_settings(), changed)
    assert "delete the folder or choose another data.simulation_output_path" in str(err.value)


def test_changed_input_tensor_is_refused(work: Path) -> None:
    config = write_config(work, stop_after="cv")
    run_simulation(load_settings(), config)
    payload = load_tensor(work / MOMENTUM)
    payload["values"][3, 0, 0] += 1.0
    save_tensor(work / MOMENTUM, payload)
    with pytest.raises(DataError, match=r"input features/momentum: sha256 [0-9a-f]{12} -> "):
        run_simulation(load_settings(), config)


def test_temp_files_of_a_killed_write_are_removed(work: Path) -> None:
    config = write_config(work, stop_after="cv")
    expected, _ = reference(work, config)
    stray = out_dir(work) / "inputs" / ".panel_tensor.pt.abc123.tmp"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"half")  # a run killed inside its first write
    run_simulation(load_settings(), config)
    assert_same_run(out_dir(work), expected)


@pytest.mark.slow
def test_killed_run_with_changed_input_is_refused(work: Path) -> None:
    """A killed run (its identity only in ``checkpoint/``) is refused too."""
    config = write_config(work)
    code = kill_cli_run(work, config, 0.0, after=f"{CHECKPOINT_DIR}/identity.json")
    assert code == -signal.SIGKILL and not (out_dir(work) / MANIFEST_FILE).exists()
    payload = load_tensor(work / MOMENTUM)
    payload["values"][3, 0, 0] += 1.0
    save_tensor(work / MOMENTUM, payload)
    with pytest.raises(DataError, match=r"input features/momentum"):
        run_simulation(load_settings(), config)


@pytest.mark.slow
def test_full_mode_kill_resumes_to_identical_artifacts(work: Path) -> None:
    """Full mode: recorded outer weeks warm-start the next week from the saved Pyro state."""
    svi = {"svi": {"num_steps": 5, "log_every": 5}}
    outer = {"test_groups": "last_n", "last_n": 2, "warm_start_steps": 2}
    config = write_config(work, simulation_mode="full", training=svi, outer=outer)
    expected, elapsed = reference(work, config)
    rng = np.random.default_rng(KILL_SEED + 2)
    for fraction in (rng.uniform(0.3, 0.6), rng.uniform(0.6, 0.95)):
        kill_and_resume(work, config, float(fraction * elapsed), expected)


class InjectedCrash(Exception):
    """Stands in for a kill inside an outer week (fault injection, not a mock)."""


def crash_on_allocation(monkeypatch: pytest.MonkeyPatch, mode: str, after: float) -> dict[str, int]:
    """Make the real hooks of ``mode`` fail after ``after`` allocations; returns the count."""
    import dataclasses

    from algo_trader.application.simulation import runner

    real = runner.stub_hooks() if mode == "stub" else runner.full_hooks()
    calls = {"n": 0}

    def allocate(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > after:
            raise InjectedCrash
        return real.allocate(*args)

    crashing = dataclasses.replace(real, allocate=allocate)
    monkeypatch.setattr(runner, "stub_hooks" if mode == "stub" else "full_hooks", lambda: crashing)
    return calls


@pytest.mark.parametrize(
    "mode", ["stub", pytest.param("full", marks=pytest.mark.slow)], ids=["stub", "full"]
)
def test_crash_inside_the_outer_loop_resumes_from_recorded_weeks(
    work: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Weeks recorded before the crash are read back (the last one's fitted state
    warm-starts the next week); the result equals an uninterrupted run."""
    svi = {"svi": {"num_steps": 5, "log_every": 5}}
    outer = {"test_groups": "last_n", "last_n": 2, "warm_start_steps": 2}
    config = write_config(work, simulation_mode=mode, training=svi, outer=outer)
    with monkeypatch.context() as patch:
        calls = crash_on_allocation(patch, mode, after=math.inf)  # counts only
        expected, _ = reference(work, config)
    # The outer loop's 16 weeks (folds 4 and 5) make the last 16 allocations.
    with monkeypatch.context() as patch:
        crash_on_allocation(patch, mode, after=calls["n"] - 16 + 8 + 3)
        with pytest.raises(InjectedCrash):
            run_simulation(load_settings(), config)
    checkpoint = out_dir(work) / CHECKPOINT_DIR
    assert len(list((checkpoint / "outer" / "outer_4").glob("week_*.pt"))) == 8
    assert len(list((checkpoint / "outer" / "outer_5").glob("week_*.pt"))) == 3
    assert not (out_dir(work) / MANIFEST_FILE).exists()
    run_simulation(load_settings(), config)
    assert_same_run(out_dir(work), expected)

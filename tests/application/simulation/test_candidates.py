import json
import math
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algo_trader.application.simulation.candidates import (
    candidates_payload,
    generate_candidates,
    map_unit,
)
from algo_trader.domain.errors import ConfigError
from algo_trader.domain.simulation.config import TuningConfig, load_simulation_config

CONFIGS = Path(__file__).resolve().parents[3] / "config"
SAMPLE = CONFIGS / "simulation_stub.yml"
LR = "training.svi.learning_rate"
ES = "training.svi.early_stopping.enabled"
PATIENCE = "training.svi.early_stopping.patience"


def tuning(num_samples: int, *entries: dict[str, Any], seed: int = 7) -> TuningConfig:
    return TuningConfig.model_validate(
        {"num_samples": num_samples, "seed": seed, "space": list(entries)}
    )


def conditional(seed: int = 7) -> TuningConfig:
    return tuning(
        8,
        {"path": ES, "type": "bool"},
        {"path": LR, "type": "float", "bounds": [1e-3, 3e-2], "transform": "log10"},
        {"path": PATIENCE, "type": "int", "bounds": [20, 100], "when": {ES: True}},
        seed=seed,
    )


def test_same_seed_same_candidates_json() -> None:
    first = json.dumps(candidates_payload(generate_candidates(conditional())), allow_nan=False)
    second = json.dumps(candidates_payload(generate_candidates(conditional())), allow_nan=False)
    assert first == second


def test_different_seed_differs() -> None:
    a, b = generate_candidates(conditional(seed=7)), generate_candidates(conditional(seed=8))
    assert a.keys() == b.keys()
    assert [c[LR] for c in a.values()] != [c[LR] for c in b.values()]
    # The categorical part of the design does not depend on the seed.
    assert [c[ES] for c in a.values()] == [c[ES] for c in b.values()]


def test_bad_num_samples_raises_before_sampling() -> None:
    bad = conditional().model_copy(update={"num_samples": 6})  # skips validation
    with pytest.raises(
        ConfigError,
        match=r"^tuning\.num_samples: 6 does not give a power of two per stratum: "
        r"tuning\.space has 2 categorical/bool strata, so num_samples must be 2 x 2\^k; "
        r"nearest valid: 4 or 8$",
    ):
        generate_candidates(bad)


def test_when_switches_parameters_off() -> None:
    candidates = generate_candidates(conditional())
    assert list(candidates) == [f"{i:04d}" for i in range(8)]
    off = [c for c in candidates.values() if c[ES] is False]
    on = [c for c in candidates.values() if c[ES] is True]
    assert len(off) == len(on) == 4
    assert all(set(c) == {ES, LR} for c in off)
    assert all(set(c) == {ES, LR, PATIENCE} for c in on)
    patience = [c[PATIENCE] for c in on]
    assert all(type(v) is int for v in patience)
    assert all(20 <= cast(int, v) <= 100 for v in patience)


def test_strata_count_and_split() -> None:
    config = tuning(
        12,
        {"path": "model.params.kind", "type": "categorical", "values": ["a", "b", "c"]},
        {"path": "model.params.flag", "type": "bool"},
        {"path": "model.params.x", "type": "float", "bounds": [0, 1]},
    )
    assert len(config.strata()) == 6
    candidates = generate_candidates(config)
    assert len(candidates) == 12
    pairs = [(c["model.params.kind"], c["model.params.flag"]) for c in candidates.values()]
    assert pairs == [(k, f) for k in "abc" for f in (False, True) for _ in range(2)]


def test_stratum_without_numeric_entries_gives_one_candidate() -> None:
    config = tuning(
        4,
        {"path": "model.params.kind", "type": "categorical", "values": ["a", "b"]},
        {
            "path": "model.params.x",
            "type": "float",
            "bounds": [0, 1],
            "when": {"model.params.kind": "a"},
        },
    )
    candidates = generate_candidates(config)
    kinds = [c["model.params.kind"] for c in candidates.values()]
    assert kinds == ["a", "a", "b"]
    assert candidates["0002"] == {"model.params.kind": "b"}


def test_empty_space_is_one_empty_candidate() -> None:
    assert generate_candidates(TuningConfig()) == {"0000": {}}


def test_int_bounds_are_inclusive_and_balanced() -> None:
    # 8 scrambled Sobol points put one point in each eighth of [0, 1): flooring over
    # [0, 2) gives exactly four 0s and four 1s.
    config = tuning(8, {"path": "model.params.k", "type": "int", "bounds": [0, 1]})
    values = [c["model.params.k"] for c in generate_candidates(config).values()]
    assert all(type(v) is int for v in values)
    assert sorted(cast(list[int], values)) == [0, 0, 0, 0, 1, 1, 1, 1]


@pytest.mark.parametrize(("transform", "to_unit"), [("log10", np.log10), ("log", np.log)])
def test_log_spacing(transform: str, to_unit: Any) -> None:
    # One point per equal slice of [log low, log high]: log-uniform, stratified.
    n, low, high = 16, 1e-4, 1.0
    config = tuning(n, {"path": LR, "type": "float", "bounds": [low, high], "transform": transform})
    values = np.array([c[LR] for c in generate_candidates(config).values()])
    position = (to_unit(values) - to_unit(low)) / (to_unit(high) - to_unit(low))
    assert sorted(np.floor(position * n).astype(int).tolist()) == list(range(n))


def test_linear_spacing_and_dimensions_are_each_stratified() -> None:
    n = 32
    config = tuning(
        n,
        {"path": "model.params.a", "type": "float", "bounds": [-2, 2]},
        {"path": "model.params.b", "type": "float", "bounds": [10, 20], "transform": "none"},
    )
    rows = list(generate_candidates(config).values())
    a = np.array([r["model.params.a"] for r in rows])
    b = np.array([r["model.params.b"] for r in rows])
    assert sorted(np.floor((a + 2) / 4 * n).astype(int).tolist()) == list(range(n))
    assert sorted(np.floor((b - 10) / 10 * n).astype(int).tolist()) == list(range(n))


def test_sample_config_candidates() -> None:
    candidates = generate_candidates(load_simulation_config(SAMPLE).tuning)
    assert len(candidates) == 4
    assert [c[ES] for c in candidates.values()] == [False, False, True, True]
    assert [PATIENCE in c for c in candidates.values()] == [False, False, True, True]


def test_full_config_candidates() -> None:
    candidates = generate_candidates(load_simulation_config(CONFIGS / "simulation.yml").tuning)
    assert [c["model.params.num_factors"] for c in candidates.values()] == [1, 1, 2, 2]
    assert all(3.0 <= c["model.params.nu"] <= 12.0 for c in candidates.values())


def test_payload_is_sorted_plain_json() -> None:
    payload = candidates_payload(generate_candidates(conditional()))
    assert list(payload) == sorted(payload)
    assert all(list(p) == sorted(p) for p in payload.values())
    assert json.loads(json.dumps(payload, allow_nan=False)) == payload


# ------------------------------------------------------------------ properties


bounds = st.tuples(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    st.floats(min_value=1e-6, max_value=1e6, allow_nan=False),
).map(lambda pair: (pair[0], pair[0] + pair[1]))
positive_bounds = st.tuples(
    st.floats(min_value=1e-8, max_value=1e4), st.floats(min_value=1.0001, max_value=1e6)
).map(lambda pair: (pair[0], pair[0] * pair[1]))


@settings(max_examples=60, deadline=None)
@given(
    pair=st.one_of(bounds, positive_bounds),
    transform=st.sampled_from(["linear", "none", "log", "log10"]),
    kind=st.sampled_from(["float", "int"]),
    log2_n=st.integers(min_value=0, max_value=6),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_values_stay_inside_bounds(
    pair: tuple[float, float], transform: str, kind: str, log2_n: int, seed: int
) -> None:
    low, high = pair
    if kind == "int":
        low, high = float(math.floor(low)), float(math.floor(high)) + 1.0
    if transform in ("log", "log10") and low <= 0:
        transform = "linear"
    config = tuning(
        2**log2_n,
        {"path": "model.params.v", "type": kind, "bounds": [low, high], "transform": transform},
        seed=seed,
    )
    values = [c["model.params.v"] for c in generate_candidates(config).values()]
    assert len(values) == 2**log2_n
    assert all(low <= cast(float, v) <= high for v in values)
    if kind == "int":
        assert all(type(v) is int for v in values)


@settings(max_examples=40, deadline=None)
@given(
    unit=st.lists(st.floats(min_value=0.0, max_value=1.0, exclude_max=True), min_size=2),
    transform=st.sampled_from(["linear", "log10"]),
)
def test_map_unit_is_monotone(unit: list[float], transform: str) -> None:
    config = tuning(
        1,
        {
            "path": "model.params.v",
            "type": "float",
            "bounds": [0.01, 100.0],
            "transform": transform,
        },
    )
    u = np.sort(np.array(unit))[:, None]
    mapped = map_unit(u, config.space)[:, 0]
    assert np.all(np.diff(mapped) >= 0)
    assert np.all((mapped >= 0.01) & (mapped <= 100.0))

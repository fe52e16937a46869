import re
from pathlib import Path

import pytest

from algo_trader.domain.errors import ConfigError
from algo_trader.domain.simulation.config import (
    OuterConfig,
    SimulationConfig,
    TuningConfig,
    check_num_samples,
    load_simulation_config,
    tunable_path_problem,
    with_overrides,
)

SAMPLE = Path(__file__).resolve().parents[3] / "config" / "simulation_stub.yml"
FULL = SAMPLE.with_name("simulation.yml")


def load(tmp_path: Path, text: str) -> SimulationConfig:
    path = tmp_path / "sim.yml"
    path.write_text(text, encoding="utf-8")
    return load_simulation_config(path)


def space(*entries: str, num_samples: int = 2) -> str:
    body = "".join(f"    - {e}\n" for e in entries)
    return f"tuning:\n  num_samples: {num_samples}\n  space:\n{body}"


# ------------------------------------------------------------------ the sample config


def test_committed_sample_config_loads() -> None:
    config = load_simulation_config(SAMPLE)
    assert config.simulation_mode == "stub"
    assert config.stop_after is None
    assert (config.cv.warmup_len, config.cv.group_len, config.cv.q) == (52, 52, 2)
    assert (config.cv.horizon, config.cv.embargo_len) == (1, 4)
    assert config.tuning.space[1].bounds == (0.001, 0.03)  # YAML 1.2: 1.0e-3 is a float
    assert len(config.tuning.strata()) == 2
    # ~440 weekly rows: (440 - 52) // 52 = 7 groups; the last two are outer test groups.
    assert config.outer.select(n_groups=7, q=config.cv.q) == [5, 6]


def test_committed_full_config_loads() -> None:
    config = load_simulation_config(FULL)
    assert config.simulation_mode == "full" and config.model.prebuild.enabled
    assert config.scoring.spec.metric_name == "energy_score"
    assert config.model_selection.enable and config.diagnostics.fan_charts.enable


def test_defaults_are_a_valid_config(tmp_path: Path) -> None:
    config = load(tmp_path, "simulation_mode: dry_run\n")
    assert config == SimulationConfig(simulation_mode="dry_run")
    assert config.data.dataset_params.target_scale == 1_000_000
    assert config.scoring.spec.metric_name == "neg_mse"
    assert config.scoring.spec.mad_eps == 1e-12
    assert config.scoring.spec.eps == 1e-5
    assert config.tuning.strata() == [{}]


# ------------------------------------------------- issue 4 acceptance: bad configs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "cv:\n  q: 0\n",
            r"sim\.yml: cv\.q: Input should be greater than or equal to 1 \(got 0\)",
        ),
        (
            "cv:\n  embargo_len: -4\n",
            r"sim\.yml: cv\.embargo_len: Input should be greater than or equal to 0 \(got -4\)",
        ),
        (
            "stop_after: bogus\n",
            r"sim\.yml: stop_after: Input should be 'inputs', 'cv', 'inner', 'outer' or "
            r"'results' \(got 'bogus'\)",
        ),
        (
            space("{path: training.svi.learnin_rate, type: float, bounds: [0.001, 0.1]}"),
            r"sim\.yml: tuning\.space\.0\.path: .*'training\.svi\.learnin_rate' is not a key "
            r"of the simulation config; nearest valid: training\.svi\.learning_rate",
        ),
    ],
)
def test_acceptance_bad_configs_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load(tmp_path, text)


def test_unknown_path_names_entry_index(tmp_path: Path) -> None:
    text = space(
        "{path: training.svi.learning_rate, type: float, bounds: [0.001, 0.1]}",
        "{path: model.parms.k, type: int, bounds: [1, 4]}",
    )
    with pytest.raises(ConfigError, match=r"tuning\.space\.1\.path: .*'model\.parms\.k'"):
        load(tmp_path, text)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, "stop_after: bogus\ncv:\n  q: 0\n  embargo_len: -1\n")
    assert [line.split(": ")[1] for line in str(err.value).splitlines()] == [
        "stop_after",
        "cv.embargo_len",
        "cv.q",
    ]


# ------------------------------------------------------------------------ YAML traps


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # YAML 1.1 habits: `no` is the string 'no' under YAML 1.2, not null or false.
        ("stop_after: no\n", r"stop_after: Input should be .* \(got 'no'\)"),
        ("cv:\n  q: 2.5\n", r"cv\.q: .*fractional part \(got 2\.5\)"),
        ("cv:\n  embargo: 4\n", r"cv\.embargo: unknown key \(misspelt\?\)"),
        ("data:\n  dataset_params:\n    groups: momentum\n", r"data\.dataset_params\.groups"),
        (
            "data:\n  dataset_params:\n    groups: [momentum, momentum]\n",
            r"data\.dataset_params\.groups: .*listed twice",
        ),
        ("cv:\n  q: 2\n  q: 3\n", r"duplicate key 'q' at line 3 \(first at line 2\)"),
        (
            space("{path: model.params.start, type: categorical, values: [2020-01-01, x]}"),
            r"tuning\.space\.0: .*candidates\.json can hold them .*quote the value",
        ),
        (
            space("{path: training.svi.early_stopping.enabled, type: bool, values: [yes, no]}"),
            r"tuning\.space\.0: .*bool values must be true/false \(got \['yes', 'no'\]\)",
        ),
        ("data:\n  simulation_output_path: ../elsewhere\n", r"data\.simulation_output_path"),
        ("data:\n  simulation_output_path: '..'\n", r"data\.simulation_output_path: .*dots"),
    ],
)
def test_yaml_traps_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load(tmp_path, text)


# ------------------------------------------------------------------ cross-field rules


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "preprocessing:\n  winsor_low_q: 0.9\n  winsor_high_q: 0.1\n",
            r"preprocessing: .*winsor_low_q \(0\.9\) must be below winsor_high_q \(0\.1\)",
        ),
        (
            "preprocessing:\n  clip_min: 5\n  clip_max: -5\n",
            r"preprocessing: .*clip_min \(5\.0\) must be below clip_max \(-5\.0\)",
        ),
        ("preprocessing:\n  winsor_high_q: 1.5\n", r"preprocessing\.winsor_high_q"),
        ("preprocessing:\n  max_abs_corr: 0\n", r"preprocessing\.max_abs_corr"),
        (
            "training:\n  svi:\n    tbptt_window_len: 8\n    tbptt_burn_in_len: 8\n",
            r"training\.svi: .*tbptt_burn_in_len \(8\) must be below tbptt_window_len \(8\)",
        ),
        ("model:\n  prebuild:\n    enabled: true\n", r"model\.prebuild: .*needs name"),
        ("outer:\n  test_groups: last_n\n", r"outer: .*needs last_n"),
        ("outer:\n  last_n: 2\n", r"outer: .*last_n is set but test_groups is 'all'"),
        ("outer:\n  test_groups: ids\n  ids: [3, 3]\n", r"outer: .*repeats a group"),
        ("tuning:\n  resources:\n    use_gpu: true\n", r"tuning\.resources: .*needs gpu > 0"),
        ("tuning:\n  ray:\n    address: somewhere\n", r"tuning\.ray\.address"),
        ("tuning:\n  engine: dask\n", r"tuning\.engine: Input should be 'local' or 'ray'"),
        ("model_selection:\n  es_band:\n    min_keep: 5\n    max_keep: 2\n", r"es_band"),
        (
            "diagnostics:\n  fan_charts:\n    quantiles: [0.1, 1.0]\n",
            r"diagnostics\.fan_charts\.quantiles\.1: Input should be less than 1",
        ),
        (
            "diagnostics:\n  fan_charts:\n    quantiles: [0.9, 0.1]\n",
            r"diagnostics\.fan_charts\.quantiles: .*strictly increasing",
        ),
        ("scoring:\n  spec:\n    mad_eps: 0\n", r"scoring\.spec\.mad_eps"),
        ("flags:\n  use_gpus: true\n", r"flags\.use_gpus: unknown key"),
    ],
)
def test_cross_field_rules(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load(tmp_path, text)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("{path: model.params.a, type: float}", r"type float needs bounds"),
        ("{path: model.params.a, type: float, bounds: [2, 1]}", r"low < high"),
        ("{path: model.params.a, type: float, bounds: [1, .inf]}", r"must be finite"),
        ("{path: model.params.a, type: float, bounds: [1, 2], values: [1]}", r"not values"),
        (
            "{path: model.params.a, type: float, bounds: [0, 1], transform: log10}",
            r"transform log10 needs bounds > 0 \(got low 0\.0\)",
        ),
        ("{path: model.params.a, type: int, bounds: [1, 2.5]}", r"integer bounds"),
        ("{path: model.params.a, type: categorical}", r"non-empty values"),
        ("{path: model.params.a, type: categorical, values: []}", r"non-empty values"),
        ("{path: model.params.a, type: categorical, values: [x, x]}", r"repeat a value"),
        ("{path: model.params.a, type: categorical, values: [x], bounds: [1, 2]}", "not bounds"),
        ("{path: model.params.a, type: bool, transform: log}", r"takes no transform"),
        ("{path: model.params.a, type: float, bounds: [1, 2], when: {b: []}}", r"empty list"),
    ],
)
def test_space_entry_consistency(tmp_path: Path, entry: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=rf"tuning\.space\.0(\.when)?: .*{expected}"):
        load(tmp_path, space(entry))


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        (
            (
                "{path: model.params.a, type: float, bounds: [1, 2]}",
                "{path: model.params.a, type: float, bounds: [1, 3]}",
            ),
            r"tuning\.space: .*entry 1: path 'model\.params\.a' is already entry 0",
        ),
        (
            (
                "{path: model.params.a, type: float, bounds: [1, 2], when: {model.params.b: x}}",
                "{path: model.params.b, type: categorical, values: [x, y]}",
            ),
            r"tuning\.space: .*entry 0: when names 'model\.params\.b', which is not a "
            r"categorical/bool entry listed before entry 0; valid: none",
        ),
        (
            (
                "{path: model.params.b, type: categorical, values: [x, y]}",
                "{path: model.params.a, type: float, bounds: [1, 2], when: {model.params.b: z}}",
            ),
            r"tuning\.space: .*entry 1: when\.model\.params\.b \['z'\] is not among its "
            r"values \['x', 'y'\]",
        ),
        (
            (
                "{path: model.params.c, type: float, bounds: [1, 2]}",
                "{path: model.params.a, type: float, bounds: [1, 2], when: {model.params.c: 1}}",
            ),
            r"entry 1: when names 'model\.params\.c', which is not a categorical/bool entry",
        ),
    ],
)
def test_space_cross_entry_rules(tmp_path: Path, entries: tuple[str, ...], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load(tmp_path, space(*entries))


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        # A float range on an integer key: 10.000000000000002 is no step count.
        (
            "{path: training.svi.num_steps, type: float, bounds: [10, 100]}",
            r"training\.svi\.num_steps would receive 10\.000000000000002, which it rejects: "
            r"Input should be a valid integer, got a number with a fractional part",
        ),
        (
            "{path: training.svi.learning_rate, type: float, bounds: [-1, 1]}",
            r"training\.svi\.learning_rate would receive -1\.0, .*greater than 0",
        ),
        (
            "{path: model.model_name, type: categorical, values: [ok_name, 'bad name']}",
            r"model\.model_name would receive 'bad name'",
        ),
    ],
)
def test_space_values_must_fit_their_key(tmp_path: Path, entry: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=rf"tuning: .*space\.0: {expected}"):
        load(tmp_path, space(entry, num_samples=4))


def test_tbptt_pair_is_not_checked_against_the_base_window(tmp_path: Path) -> None:
    # Burn-in 12 is above the base window 8, but the candidate also tunes the window:
    # only errors of the tuned key itself count.
    text = "training:\n  svi:\n    tbptt_window_len: 8\n" + space(
        "{path: training.svi.tbptt_burn_in_len, type: int, bounds: [0, 12]}",
        "{path: training.svi.tbptt_window_len, type: int, bounds: [16, 32]}",
        num_samples=4,
    )
    assert load(tmp_path, text).tuning.space[0].bounds == (0.0, 12.0)


def test_num_samples_must_split_into_powers_of_two(tmp_path: Path) -> None:
    text = space(
        "{path: model.params.kind, type: categorical, values: [a, b, c]}",
        "{path: model.params.x, type: float, bounds: [0, 1]}",
        num_samples=9,
    )
    with pytest.raises(
        ConfigError,
        match=r"tuning\.num_samples: Value error, 9 does not give a power of two per "
        r"stratum: tuning\.space has 3 categorical/bool strata, so num_samples must be "
        r"3 x 2\^k; nearest valid: 6 or 12 \(got 9\)",
    ):
        load(tmp_path, text)


@pytest.mark.parametrize(
    ("num_samples", "n_strata", "nearest"),
    [(9, 3, "6 or 12"), (2, 3, "3"), (6, 4, "4 or 8"), (7, 1, "4 or 8"), (12, 2, "8 or 16")],
)
def test_check_num_samples_nearest(num_samples: int, n_strata: int, nearest: str) -> None:
    with pytest.raises(ConfigError, match=rf"nearest valid: {nearest}$"):
        check_num_samples(num_samples, n_strata)


@pytest.mark.parametrize(("num_samples", "n_strata", "per"), [(1, 1, 1), (12, 3, 4), (6, 6, 1)])
def test_check_num_samples_valid(num_samples: int, n_strata: int, per: int) -> None:
    assert check_num_samples(num_samples, n_strata) == per


# ------------------------------------------------------------------- tunable paths


@pytest.mark.parametrize(
    "path",
    [
        "training.svi.learning_rate",
        "training.svi.early_stopping.patience",
        "model.model_name",
        "model.params.anything",
        "model.params.nested.deeper",
        "model.guide_params.rank",
    ],
)
def test_tunable_paths(path: str) -> None:
    assert tunable_path_problem(path) is None


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("cv.q", r"'cv\.q' is a config key but cannot be tuned"),
        ("preprocessing.mad_eps", r"cannot be tuned"),
        ("model.prebuild.enabled", r"cannot be tuned"),
        ("model.prebuild.params.k", r"cannot be tuned"),
        ("model.params", r"'model\.params' is a mapping; name a key inside it"),
        ("model.params.", r"'model\.params\.' is not a dotted key path"),
        ("model..params", r"not a dotted key path"),
        ("nonsense", r"'nonsense' is not a key .*tunable: model\.params\.<any key>"),
    ],
)
def test_untunable_paths(path: str, expected: str) -> None:
    problem = tunable_path_problem(path)
    assert problem is not None
    assert re.search(expected, problem)


# ------------------------------------------------------------------------- strata


def test_bool_values_default_to_false_true() -> None:
    tuning = TuningConfig.model_validate(
        {"num_samples": 2, "space": [{"path": "model.params.flag", "type": "bool"}]}
    )
    assert tuning.space[0].values == [False, True]
    assert tuning.strata() == [{"model.params.flag": False}, {"model.params.flag": True}]


def test_conditional_categoricals_make_no_duplicate_strata() -> None:
    tuning = TuningConfig.model_validate(
        {
            "num_samples": 3,
            "space": [
                {"path": "model.params.a", "type": "categorical", "values": ["x", "y"]},
                {
                    "path": "model.params.b",
                    "type": "categorical",
                    "values": [1, 2],
                    "when": {"model.params.a": "x"},
                },
            ],
        }
    )
    assert tuning.strata() == [
        {"model.params.a": "x", "model.params.b": 1},
        {"model.params.a": "x", "model.params.b": 2},
        {"model.params.a": "y"},
    ]


def test_when_keeps_true_apart_from_one() -> None:
    with pytest.raises(ValueError, match=r"when\.model\.params\.a \[1\] is not among"):
        TuningConfig.model_validate(
            {
                "num_samples": 2,
                "space": [
                    {"path": "model.params.a", "type": "bool"},
                    {
                        "path": "model.params.b",
                        "type": "float",
                        "bounds": [0, 1],
                        "when": {"model.params.a": 1},
                    },
                ],
            }
        )


# --------------------------------------------------------------------------- outer


@pytest.mark.parametrize(
    ("outer", "n_groups", "q", "expected"),
    [
        ({}, 7, 2, [3, 4, 5, 6]),
        ({"min_train_groups": 5}, 7, 2, [5, 6]),
        ({"test_groups": "last_n", "last_n": 1}, 7, 2, [6]),
        ({"test_groups": "ids", "ids": [6, 4]}, 7, 2, [4, 6]),
        ({}, 4, 3, []),
    ],
)
def test_outer_select(outer: dict[str, object], n_groups: int, q: int, expected: list[int]) -> None:
    config = OuterConfig.model_validate(outer)
    if expected:
        assert config.select(n_groups, q) == expected
    else:
        with pytest.raises(ConfigError, match=r"outer: no outer test group: the panel has 4"):
            config.select(n_groups, q)


def test_outer_select_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"outer\.last_n: 5 but only 4 groups .*last_n <= 4"):
        OuterConfig(test_groups="last_n", last_n=5).select(7, 2)
    with pytest.raises(ConfigError, match=r"outer\.ids: \[1, 9\] are not eligible .*3\.\.6"):
        OuterConfig(test_groups="ids", ids=[1, 4, 9]).select(7, 2)


# ----------------------------------------------------------------------- overrides


def test_with_overrides_applies_and_revalidates() -> None:
    base = load_simulation_config(SAMPLE)
    new = with_overrides(
        base,
        {
            "training.svi.learning_rate": 0.003,
            "training.svi.early_stopping.enabled": True,
            "model.params.prior.scale": 2.5,
        },
    )
    assert new.training.svi.learning_rate == 0.003
    assert new.training.svi.early_stopping.enabled is True
    assert new.model.params == {"prior": {"scale": 2.5}}
    assert base.training.svi.learning_rate == 0.01  # the base is untouched
    assert new.cv == base.cv


def test_with_overrides_rejects_bad_values_and_paths() -> None:
    base = SimulationConfig()
    with pytest.raises(ConfigError, match=r"training\.svi\.learning_rate: .*greater than 0"):
        with_overrides(base, {"training.svi.learning_rate": -1.0})
    with pytest.raises(ConfigError, match=r"override cv\.q: 'cv\.q' is a config key but"):
        with_overrides(base, {"cv.q": 3})
    nested = with_overrides(base, {"model.params.a": 1})
    with pytest.raises(ConfigError, match=r"model\.params\.a\.b: model\.params\.a holds 1"):
        with_overrides(nested, {"model.params.a.b": 2})


def test_group_names_match_the_feature_registry() -> None:
    from typing import get_args

    from algo_trader.application.feature_engineering.registry import GROUP_MODULES
    from algo_trader.domain.simulation.config import FeatureGroupName

    assert set(get_args(FeatureGroupName)) == set(GROUP_MODULES)

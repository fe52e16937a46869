"""Leakage-safe cleaning and scaling: every rule on hand-made tensors, and leakage properties.

Expected numbers are worked out by hand in the comments (quantiles: numpy's linear method,
position ``q * (n - 1)`` in the sorted observed values).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algo_trader.application.simulation.preprocessing import (
    CleaningState,
    ScalingState,
    _pairwise_corr,
    _quantile,
    _sorted_rows,
    feature_kind,
    fit_cleaning,
    fit_scaling,
    transform,
)
from algo_trader.domain.errors import DataError
from algo_trader.domain.simulation.config import PreprocessingConfig

NAN = np.nan


def cfg(**overrides: object) -> PreprocessingConfig:
    return PreprocessingConfig(**overrides)  # type: ignore[arg-type]


def panel(*assets: list[float]) -> np.ndarray:
    """(T, A, 1) tensor of one feature from one list of values per asset."""
    return np.array(assets, dtype=np.float64).T[:, :, None]


def all_rows(X: np.ndarray) -> np.ndarray:
    return np.arange(X.shape[0])


NO_WINSOR = {"winsor_low_q": 0.0, "winsor_high_q": 1.0}


# --- feature kinds ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("brk_up_4w", "breakout"),
        ("breakout__brk_dn_26w", "breakout"),
        ("cs_rank_rev_1w", "passthrough"),
        ("cross_sectional__cs_rank_z_mom_4w", "passthrough"),
        ("z_mom_4w", "robust"),
        ("momentum__z_mom_4w", "robust"),
        ("x_brk_up_4w", "robust"),
    ],
)
def test_feature_kind_by_name_suffix(name: str, kind: str) -> None:
    assert feature_kind(name) == kind


# --- cleaning -----------------------------------------------------------------------------


def test_usable_ratio_variance_and_empty_drops() -> None:
    # 4 rows x 2 assets = 8 entries per feature.
    rows = np.arange(4.0)
    X = np.stack(
        [
            np.stack([rows, rows[::-1]], axis=1),  # a: full, variance 1.25
            np.stack([[1, NAN, NAN, 2], [NAN, 3, NAN, NAN]], axis=1),  # b: 3/8 usable
            np.full((4, 2), 5.0),  # c: constant -> variance 0
            np.full((4, 2), NAN),  # d: nothing
            np.stack([[1, 2, 3, NAN], [np.inf, 5, 6, 7]], axis=1),  # e: 6/8 (inf missing)
        ],
        axis=2,
    )
    state = fit_cleaning(X, list("abcde"), all_rows(X), cfg(min_usable_ratio=0.7), seed=0)
    assert state.kept == ["a", "e"]
    np.testing.assert_array_equal(state.kept_index, [0, 4])
    np.testing.assert_array_equal(state.usable_ratio, [1.0, 3 / 8, 1.0, 0.0, 6 / 8])
    assert state.variance[0] == 1.25  # values 0..3 twice: mean 1.5, ddof 0
    assert state.variance[2] == 0.0
    assert np.isnan(state.variance[3])
    assert state.dropped == {
        "b": "usable ratio 0.375 < min_usable_ratio 0.7",
        "c": "variance 0 < min_variance 1e-12",
        "d": "no finite training value",
    }
    np.testing.assert_array_equal(state.select(X), X[..., [0, 4]])


def test_duplicate_tie_rule_keeps_earlier_on_equal_usability() -> None:
    base = np.array([[1.0, 2.0], [3.0, 5.0], [4.0, 4.0], [0.0, 7.0]])
    X = np.stack([base, 2 * base + 1, -base], axis=2)  # |corr| 1 for every pair
    state = fit_cleaning(X, ["a", "b", "c"], all_rows(X), cfg(), seed=0)
    assert state.kept == ["a"]
    assert state.dropped == {
        "b": "|corr| 1 with 'a' > max_abs_corr 0.95",
        "c": "|corr| 1 with 'a' > max_abs_corr 0.95",
    }


def test_duplicate_keeps_the_more_usable_feature() -> None:
    base = np.array([[1.0, 2.0], [3.0, 5.0], [4.0, 4.0], [0.0, 7.0], [2.0, 9.0]])
    early = base.copy()
    early[0, 0] = NAN  # 'a' comes first but is less usable (9/10 vs 10/10)
    X = np.stack([early, 3 * base], axis=2)
    state = fit_cleaning(X, ["a", "b"], all_rows(X), cfg(), seed=0)
    assert state.kept == ["b"]
    assert list(state.dropped) == ["a"]


def test_duplicate_filter_is_greedy_over_kept_features() -> None:
    # u, v orthogonal with mean 0: corr(u, u+v) = corr(u+v, v) = 1/sqrt(2), corr(u, v) = 0.
    u = np.array([1.0, -1.0, 1.0, -1.0])[:, None]
    v = np.array([1.0, 1.0, -1.0, -1.0])[:, None]
    X = np.stack([u, u + v, v], axis=2)
    state = fit_cleaning(X, ["u", "uv", "v"], all_rows(X), cfg(max_abs_corr=0.6), seed=0)
    # 'uv' goes (clashes with kept 'u'); 'v' then clashes with nothing kept, so it stays.
    assert state.kept == ["u", "v"]
    assert state.dropped == {"uv": "|corr| 0.707107 with 'u' > max_abs_corr 0.6"}
    assert state.abs_corr[0, 2] == 0.0


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), missing=st.floats(0.0, 0.6))
def test_pairwise_corr_matches_pandas_pairwise_complete(seed: int, missing: float) -> None:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(40, 5)) @ rng.normal(size=(5, 5)) + rng.normal(size=5) * 100
    values[rng.random(values.shape) < missing] = NAN
    expected = pd.DataFrame(values).corr(min_periods=2).to_numpy()
    got = _pairwise_corr(values)
    defined = ~np.isnan(got)
    np.testing.assert_array_equal(defined, ~np.isnan(expected))
    np.testing.assert_allclose(got[defined], expected[defined], rtol=1e-9, atol=1e-12)


def test_corr_subsample_is_seeded_and_uses_the_drawn_rows() -> None:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(30, 4, 3))
    config = cfg(corr_subsample=25)
    first = fit_cleaning(X, ["a", "b", "c"], all_rows(X), config, seed=11)
    again = fit_cleaning(X, ["a", "b", "c"], all_rows(X), config, seed=11)
    np.testing.assert_array_equal(first.abs_corr, again.abs_corr)
    rows = np.sort(np.random.default_rng(11).choice(120, size=25, replace=False))
    expected = pd.DataFrame(X.reshape(120, 3)[rows]).corr().abs().to_numpy()
    np.testing.assert_allclose(first.abs_corr, expected, rtol=1e-12)
    other = fit_cleaning(X, ["a", "b", "c"], all_rows(X), config, seed=12)
    assert not np.array_equal(first.abs_corr, other.abs_corr)


# --- scaling: robust ----------------------------------------------------------------------


def test_winsor_bounds_median_and_mad_scale() -> None:
    X = panel([1, 2, 3, 4, 100], [5, 6, 7, 8, 9])
    config = cfg(winsor_low_q=0.1, winsor_high_q=0.9, mad_eps=1e-12)
    state = fit_scaling(X, ["z"], all_rows(X), config)
    # Pooled sorted: 1 2 3 4 5 6 7 8 9 100. q0.1 at 0.9: 1.9; q0.9 at 8.1: 9 + 91 * 0.1 = 18.1.
    assert state.winsor_low[0] == pytest.approx(1.9, rel=1e-15)
    assert state.winsor_high[0] == pytest.approx(18.1, rel=1e-15)
    # Winsorized: 1.9 2 3 4 5 6 7 8 9 18.1 -> median 5.5; |dev| sorted: .5 .5 1.5 1.5 2.5 2.5
    # 3.5 3.5 3.6 12.6 -> MAD 2.5; IQR 7.75 - 3.25 = 4.5, 4.5 / 1.349 = 3.336 < 1.4826 * 2.5.
    assert state.median[0] == 5.5
    assert state.scale[0] == pytest.approx(1.4826 * (2.5 + 1e-12), rel=1e-15)
    scaled, missing = transform(X, state, config)
    expected = (np.clip(X, state.winsor_low[0], state.winsor_high[0]) - 5.5) / state.scale[0]
    np.testing.assert_array_equal(scaled, expected)
    assert scaled[4, 0, 0] == pytest.approx((18.1 - 5.5) / 3.7065, rel=1e-12)
    assert not missing.any()


def test_iqr_wins_the_composite_scale() -> None:
    X = panel([0, 0, 0, 10, 10], [0, 0, 0, 10, 10])
    state = fit_scaling(X, ["z"], all_rows(X), cfg(**NO_WINSOR))
    # Pooled: six 0s, four 10s -> median 0, MAD 0, q25 0, q75 (pos 6.75) 10 -> IQR 10.
    assert state.median[0] == 0.0
    assert state.scale[0] == 10 / 1.349
    assert not state.zeroed.any()  # per asset: IQR 10 as well


def test_scale_floor_and_fail_fast_message() -> None:
    X = panel([7, 7, 7, 7], [7, 7, 7, 9])
    # Pooled: seven 7s and a 9 -> MAD 0, IQR 0 -> scale = scale_floor. Asset 1 alone has
    # q75 (pos 2.25) 7.5 -> IQR 0.5, so it is not near-constant and its 9 scales to 2/floor.
    state = fit_scaling(X, ["z"], all_rows(X), cfg(scale_floor=0.5, **NO_WINSOR))
    assert state.scale[0] == 0.5
    assert state.zeroed.tolist() == [[True], [False]]  # asset 0 constant
    scaled, _ = transform(X, state, cfg(scale_floor=0.5, **NO_WINSOR))
    assert scaled[:, 1, 0].tolist() == [0.0, 0.0, 0.0, 4.0]
    assert scaled[:, 0, 0].tolist() == [0.0] * 4

    # With the default floor 1e-6 the 9 scales to 2e6 > max_abs_fail. A leading non-training
    # row shows that the message names the row of X.
    X = np.concatenate([np.full((1, 2, 1), NAN), X])
    train = np.array([1, 2, 3, 4])
    with pytest.raises(DataError) as err:
        fit_scaling(X, ["grp__z"], train, cfg(**NO_WINSOR), assets=["AAA", "BBB"])
    message = str(err.value)
    for part in ("'grp__z'", "asset 'BBB'", "row 4", "max_abs_fail 1000", "scale_floor"):
        assert part in message
    assert err.value.column == "grp__z"
    assert err.value.value == pytest.approx(2 / 1e-6)


def test_fail_fast_on_non_finite_training_value() -> None:
    # Only reachable with thresholds the config validation forbids (a zero divisor), so the
    # config is built unvalidated: a constant feature, no guard, zero floors -> 0 / 0.
    config = cfg(**NO_WINSOR).model_copy(
        update={"scale_floor": 0.0, "mad_eps": 0.0, "guard_abs_eps": 0.0, "guard_rel_eps": 0.0}
    )
    X = panel([3, 3, 3], [3, 3, 3])
    with pytest.raises(DataError, match=r"'z', asset '#0', row 0 .*must be finite"):
        fit_scaling(X, ["z"], all_rows(X), config)


def test_robust_feature_without_training_values_is_an_error() -> None:
    X = panel([NAN, NAN, 1.0], [NAN, NAN, 2.0])
    with pytest.raises(DataError, match="'z' has no finite value on the training rows"):
        fit_scaling(X, ["z"], np.array([0, 1]), cfg())


def test_near_constant_guard_absolute_and_relative() -> None:
    X = panel([5, 5, 5, 5], [100, 101, 102, 103], [0, 1, 2, 3], [NAN, NAN, NAN, NAN])
    config = cfg(guard_abs_eps=0.5, guard_rel_eps=0.1, guard_rel_offset=1.0, **NO_WINSOR)
    state = fit_scaling(X, ["z"], all_rows(X), config)
    # Asset 0: g = 0 < 0.5 (absolute). Asset 1: MAD 1 -> 1.4826 > IQR 1.5 / 1.349; 1.4826
    # >= 0.5 but < 0.1 * (101.5 + 1) (relative). Asset 2: 1.4826 >= 0.1 * (1.5 + 1) -> kept.
    # Asset 3 has no training values: not guarded (NaN spread).
    np.testing.assert_allclose(state.guard_spread[:3, 0], [0.0, 1.4826, 1.4826], rtol=1e-15)
    assert np.isnan(state.guard_spread[3, 0])
    assert state.zeroed[:, 0].tolist() == [True, True, False, False]
    X_test = X.copy()
    X_test[1, 0, 0] = NAN
    X_test[:, 3, 0] = 100.0
    scaled, missing = transform(X_test, state, config)
    assert scaled[:, 0, 0].tolist() == [0.0, 0.0, 0.0, 0.0]  # the missing one imputed
    assert missing[:, 0, 0].tolist() == [False, True, False, False]
    assert scaled[:, 1, 0].tolist() == [0.0] * 4
    np.testing.assert_array_equal(scaled[:, 2, 0], (X[:, 2, 0] - state.median[0]) / state.scale[0])
    np.testing.assert_array_equal(scaled[:, 3, 0], (100.0 - state.median[0]) / state.scale[0])


# --- scaling: breakout, passthrough, clip, imputation, mask channels ------------------------


def test_breakout_centring_constant_columns_and_clip() -> None:
    X = panel([0, 1, 0, 1], [0, 0, 0, 0], [NAN, NAN, NAN, NAN], [0, 0, 0, 1])
    config = cfg(breakout_var_floor=0.001, clip_max=1.5)
    state = fit_scaling(X, ["breakout__brk_up_4w"], all_rows(X), config)
    np.testing.assert_array_equal(state.breakout_p[:, 0], [0.5, 0.0, NAN, 0.25])
    assert state.zeroed[:, 0].tolist() == [False, True, True, False]
    assert np.isinf(state.winsor_low[0]) and np.isinf(state.winsor_high[0])  # no winsor
    X_test = X.copy()
    X_test[:, 2, 0] = [1, 0, 1, NAN]  # asset 2 observed only outside training
    X_test[:, 3, 0] = [0, 1, 0, 0]
    scaled, missing = transform(
        X_test, state, config.model_copy(update={"impute_missing_to_zero": False})
    )
    half = 0.5 / np.sqrt(0.25 + 0.001)
    np.testing.assert_array_equal(scaled[:, 0, 0], [-half, half, -half, half])
    assert scaled[:, 1, 0].tolist() == [0.0] * 4
    np.testing.assert_array_equal(scaled[:, 2, 0], [0.0, 0.0, 0.0, NAN])
    low = -0.25 / np.sqrt(0.1875 + 0.001)  # 0.75 / 0.434 = 1.727 clips to 1.5
    np.testing.assert_array_equal(scaled[:, 3, 0], [low, 1.5, low, low])
    assert missing[:, 2, 0].tolist() == [False, False, False, True]
    with pytest.raises(DataError, match=r"asset '#3', row 3 .*raise preprocessing.breakout_var"):
        fit_scaling(X, ["brk_up_4w"], all_rows(X), cfg(max_abs_fail=1.5))


def test_cs_rank_passes_through_and_robust_is_winsorized_then_clipped() -> None:
    ranks = np.array([[0.1, 0.9], [0.3, NAN], [0.5, 0.5], [0.7, 0.2], [-50.0, 40.0]])
    robust = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 100.0], [-1000.0, 50.0]])
    X = np.stack([ranks, robust], axis=2)
    config = cfg(impute_missing_to_zero=False, **NO_WINSOR)
    state = fit_scaling(X, ["cs_rank_rev_1w", "rev_1w"], np.arange(4), config)
    assert state.kinds.tolist() == ["passthrough", "robust"]
    assert np.isnan(state.median[0]) and np.isnan(state.scale[0])
    assert state.shift[:, 0].tolist() == [0.0, 0.0] and state.divisor[:, 0].tolist() == [1, 1]
    scaled, missing = transform(X, state, config)
    np.testing.assert_array_equal(scaled[..., 0], ranks)  # -50 and 40 untouched
    assert missing[..., 0].tolist() == [[False, False], [False, True]] + [[False, False]] * 3
    # Robust training values 0..6 and 100: winsor bounds 0 and 100, median 3.5, |dev| median
    # 2 -> 1.4826 * 2 = 2.965 > IQR 3.5 / 1.349. The training 100 scales to 32.5 -> clip 10;
    # the test -1000 is winsorized to 0 first: (0 - 3.5) / 2.965; the test 50 clips to 10.
    assert (state.winsor_low[1], state.winsor_high[1], state.median[1]) == (0.0, 100.0, 3.5)
    assert state.scale[1] == pytest.approx(2.9652, rel=1e-12)
    assert scaled[3, 1, 1] == 10.0
    assert scaled[4, :, 1].tolist() == [-3.5 / state.scale[1], 10.0]


def test_imputation_and_mask_channels() -> None:
    a = [[1.0, 2.0], [NAN, 4.0], [5.0, 6.0]]  # rows x assets
    ranks = [[0.2, 0.3], [0.4, NAN], [NAN, 0.5]]
    X = np.stack([a, ranks], axis=2)
    names = ["a", "cs_rank_a"]
    config = cfg(append_mask_as_features=True, **NO_WINSOR)
    state = fit_scaling(X, names, all_rows(X), config)
    assert state.output_names == ("a", "cs_rank_a", "a__missing", "cs_rank_a__missing")
    scaled, missing = transform(X, state, config)
    assert scaled.shape == (3, 2, 4) and missing.shape == (3, 2, 4)
    expected_mask = ~np.isfinite(X)
    np.testing.assert_array_equal(missing[..., :2], expected_mask)
    assert not missing[..., 2:].any()
    np.testing.assert_array_equal(scaled[..., 2:], expected_mask.astype(float))
    assert np.all(scaled[..., :2][expected_mask] == 0.0)
    with pytest.raises(ValueError, match="append_mask_as_features"):
        transform(X, state, cfg(**NO_WINSOR))


def test_transform_is_row_wise_and_matches_the_fitting_transform() -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(20, 3, 3))
    X[:, :, 1] = rng.integers(0, 2, size=(20, 3))
    X[rng.random(X.shape) < 0.1] = NAN
    names = ["z", "brk_up_4w", "cs_rank_z"]
    config = cfg()
    train = np.arange(0, 20, 2)
    state = fit_scaling(X, names, train, config)
    full, full_mask = transform(X, state, config)
    part, part_mask = transform(X[train], state, config)
    np.testing.assert_array_equal(full[train], part)
    np.testing.assert_array_equal(full_mask[train], part_mask)


# --- quantiles -----------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(1, 30),
    q=st.floats(0.0, 1.0),
)
def test_sorted_quantile_matches_numpy_nanquantile(seed: int, rows: int, q: float) -> None:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(rows, 6)) * 10
    values[rng.random(values.shape) < 0.3] = NAN
    values[:, 0] = NAN
    got = _quantile(*_sorted_rows(values.T), q)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the all-NaN column
        expected = np.nanquantile(values, q, axis=0)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


# --- leakage --------------------------------------------------------------------------------

LEAK_NAMES = ["g__z_a", "g__z_b", "g__z_dup", "g__z_sparse", "brk_up_4w", "cs_rank_z_a"]


def generated_panel(rng: np.random.Generator, n_rows: int, n_assets: int) -> np.ndarray:
    """GENERATED features: normals, a duplicate, a sparse one, a binary and a rank."""
    a = rng.normal(size=(n_rows, n_assets))
    sparse = rng.normal(size=(n_rows, n_assets))
    sparse[rng.random(sparse.shape) < 0.5] = NAN
    X = np.stack(
        [
            a,
            rng.normal(size=(n_rows, n_assets)) * 3 + 1,
            2 * a + 0.01 * rng.normal(size=(n_rows, n_assets)),
            sparse,
            (rng.random((n_rows, n_assets)) < 0.3).astype(float),
            rng.random((n_rows, n_assets)),
        ],
        axis=2,
    )
    X[rng.random(X.shape) < 0.05] = NAN
    return X


def assert_states_identical(first: object, second: object) -> None:
    assert dataclasses.is_dataclass(first) and dataclasses.is_dataclass(second)
    for field in dataclasses.fields(first):
        left, right = getattr(first, field.name), getattr(second, field.name)
        if isinstance(left, np.ndarray) and left.dtype.kind == "f":
            assert left.dtype == right.dtype, field.name
            assert np.array_equal(left, right, equal_nan=True), field.name
        elif isinstance(left, np.ndarray):
            assert np.array_equal(left, right), field.name
        else:
            assert left == right, field.name


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_rows=st.integers(4, 24),
    n_assets=st.integers(1, 4),
    train_share=st.floats(0.2, 0.9),
    subsample=st.sampled_from([None, 5, 17]),
)
def test_fitted_state_ignores_every_non_training_row(
    seed: int, n_rows: int, n_assets: int, train_share: float, subsample: int | None
) -> None:
    rng = np.random.default_rng(seed)
    X = generated_panel(rng, n_rows, n_assets)
    is_train = rng.random(n_rows) < train_share
    is_train[rng.integers(n_rows)] = True
    train_idx = np.flatnonzero(is_train)
    test_idx = np.flatnonzero(~is_train)
    # Leakage, not fail-fast, is under test: tiny training sets may legitimately trip it.
    config = cfg(min_usable_ratio=0.3, corr_subsample=subsample, max_abs_fail=1e300)

    def fit(values: np.ndarray) -> tuple[CleaningState, ScalingState]:
        cleaning = fit_cleaning(values, LEAK_NAMES, train_idx, config, seed=seed)
        kept = cleaning.select(values)
        return cleaning, fit_scaling(kept, cleaning.kept, train_idx, config)

    reference = fit(X)
    for fill in (NAN, 1e9, None):
        changed = X.copy()
        changed[test_idx] = rng.normal(size=changed[test_idx].shape) * 1e3 if fill is None else fill
        cleaning, scaling = fit(changed)
        assert_states_identical(reference[0], cleaning)
        assert_states_identical(reference[1], scaling)
        # Training rows transform the same whatever the other rows hold.
        before, _ = transform(reference[0].select(X), reference[1], config)
        after, _ = transform(cleaning.select(changed), scaling, config)
        np.testing.assert_array_equal(before[train_idx], after[train_idx])


def test_without_name_rules_every_feature_is_robust_scaled() -> None:
    """``flags.use_feature_names_for_scaling: false`` drops the brk_/cs_rank_ policies."""
    from algo_trader.domain.simulation.config import PreprocessingConfig

    rng = np.random.default_rng(0)
    X = np.stack(
        [rng.integers(0, 2, size=(40, 3)).astype(float), rng.uniform(size=(40, 3))], axis=-1
    )
    names = ["breakout__brk_up_4w", "cross_sectional__cs_rank_rev_1w"]
    cfg = PreprocessingConfig()
    by_name = fit_scaling(X, names, np.arange(30), cfg)
    plain = fit_scaling(X, names, np.arange(30), cfg, use_names=False)
    assert by_name.kinds.tolist() == ["breakout", "passthrough"]
    assert plain.kinds.tolist() == ["robust", "robust"]

"""CV structure: exact indices on small hand-checked layouts, then properties over random ones.

Every expected index list below was worked out by hand from the rules in the module
docstring (closed label intervals [t, t+h]; purge |t - s| <= h against inner and outer test
samples; embargo = the embargo_len samples after each test block; purge wins).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algo_trader.application.simulation.cv_groups import (
    InnerSplit,
    OuterFold,
    _greedy_combos,
    balanced_combinations,
    build_equal_groups,
    cv_structure_payload,
    group_test_counts,
    index_runs,
    make_cpcv_splits,
    make_outer_folds,
    n_backtest_paths,
    timestamps_cv_frame,
    validate_cv,
)
from algo_trader.domain.errors import ConfigError
from algo_trader.infrastructure.data.atomic import write_csv, write_json


def r(a: int, b: int) -> list[int]:
    """Sample indices a..b inclusive."""
    return list(range(a, b + 1))


def splits_of(fold: OuterFold, groups: list[np.ndarray], **kw: object) -> list[InnerSplit]:
    params: dict[str, Any] = {"warmup_len": 6, "exclude_warmup": False, "q": 2, "horizon": 1}
    params |= {"embargo_len": 2, "max_inner_combos": None} | kw
    return make_cpcv_splits(fold, groups, **params)


def by_groups(splits: list[InnerSplit], test_groups: tuple[int, ...]) -> InnerSplit:
    return next(s for s in splits if s.test_groups == test_groups)


# T=30, warmup 6, group_len 2 -> 12 groups [6,7], [8,9], ..., [28,29]; q=2, horizon 1, embargo 2.
GROUPS_12 = build_equal_groups(30, 6, 2)


def test_twelve_groups_layout() -> None:
    assert len(GROUPS_12) == 12
    assert GROUPS_12[0].tolist() == [6, 7]
    assert GROUPS_12[11].tolist() == [28, 29]
    assert GROUPS_12[0].dtype == np.int64
    assert not GROUPS_12[0].flags.writeable


def test_last_outer_fold_exact_indices() -> None:
    (fold,) = make_outer_folds(30, GROUPS_12, 6, False, [11])
    assert fold.k == 11
    assert fold.train_idx.tolist() == r(0, 27)
    assert fold.test_idx.tolist() == [28, 29]
    assert fold.inner_groups == r(0, 10)

    splits = splits_of(fold, GROUPS_12)
    assert len(splits) == math.comb(11, 2) == 55

    s = splits[1]  # lexicographic: (0, 1) is split 0, (0, 2) is split 1
    assert (s.split_id, s.test_groups) == (1, (0, 2))
    assert s.test_idx.tolist() == [6, 7, 10, 11]
    # 5 touches 6; 8, 9 touch 7/10; 12 touches 11; 27 touches the outer test sample 28.
    assert s.purged_idx.tolist() == [5, 8, 9, 12, 27]
    # embargo after 7 is {8, 9} and after 11 is {12, 13}; all but 13 were purged already.
    assert s.embargoed_idx.tolist() == [13]
    assert s.train_idx.tolist() == r(0, 4) + r(14, 26)

    s = splits[0]
    assert s.test_groups == (0, 1)
    assert s.test_idx.tolist() == r(6, 9)
    assert s.purged_idx.tolist() == [5, 10, 27]
    assert s.embargoed_idx.tolist() == [11]
    assert s.train_idx.tolist() == r(0, 4) + r(12, 26)

    s = splits[54]
    assert s.test_groups == (9, 10)
    assert s.test_idx.tolist() == r(24, 27)
    assert s.purged_idx.tolist() == [23]
    assert s.embargoed_idx.tolist() == []  # what follows 27 is the outer test group
    assert s.train_idx.tolist() == r(0, 22)


def test_purge_can_swallow_the_embargo() -> None:
    (fold,) = make_outer_folds(30, GROUPS_12, 6, False, [5])
    assert fold.train_idx.tolist() == r(0, 15)
    assert fold.test_idx.tolist() == [16, 17]
    splits = splits_of(fold, GROUPS_12)
    assert len(splits) == 10
    s = by_groups(splits, (1, 3))
    assert s.split_id == 5
    assert s.test_idx.tolist() == [8, 9, 12, 13]
    assert s.purged_idx.tolist() == [7, 10, 11, 14, 15]
    assert s.embargoed_idx.tolist() == []
    assert s.train_idx.tolist() == r(0, 6)


def test_exclude_warmup() -> None:
    (fold,) = make_outer_folds(30, GROUPS_12, 6, True, [11])
    assert fold.train_idx.tolist() == r(6, 27)
    s = by_groups(splits_of(fold, GROUPS_12, exclude_warmup=True), (0, 2))
    # Warmup rows are not candidates, so 5 is neither trained on nor reported as purged.
    assert s.purged_idx.tolist() == [8, 9, 12, 27]
    assert s.embargoed_idx.tolist() == [13]
    assert s.train_idx.tolist() == r(14, 26)


def test_longer_groups_show_the_embargo() -> None:
    groups = build_equal_groups(30, 6, 4)  # [6..9], [10..13], ..., [26..29]
    assert [g.tolist() for g in groups] == [r(6 + 4 * i, 9 + 4 * i) for i in range(6)]
    (fold,) = make_outer_folds(30, groups, 6, False, [5])
    s = by_groups(splits_of(fold, groups), (1, 3))
    assert s.test_idx.tolist() == r(10, 13) + r(18, 21)
    assert s.purged_idx.tolist() == [9, 14, 17, 22, 25]
    assert s.embargoed_idx.tolist() == [15, 23]
    assert s.train_idx.tolist() == [*r(0, 8), 16, 24]


def test_remainder_after_warmup_is_dropped() -> None:
    groups = build_equal_groups(31, 6, 2)  # 25 rows after warmup: 12 groups, row 6 dropped
    assert len(groups) == 12
    assert groups[0].tolist() == [7, 8]
    assert groups[-1].tolist() == [29, 30]
    (fold,) = make_outer_folds(31, groups, 6, False, [2])
    assert fold.train_idx.tolist() == r(0, 5) + r(7, 10)
    (s0, s1) = splits_of(fold, groups, q=1, embargo_len=0)
    assert s0.test_idx.tolist() == [7, 8]
    # 5 is two weeks before 7 (row 6 lies between), so it stays; 10 touches outer test 11.
    assert s0.purged_idx.tolist() == [9, 10]
    assert s0.train_idx.tolist() == r(0, 5)
    assert s1.test_idx.tolist() == [9, 10]
    assert s1.purged_idx.tolist() == [8]
    assert s1.train_idx.tolist() == [*r(0, 5), 7]


def test_groups_without_warmup_or_remainder() -> None:
    assert [g.tolist() for g in build_equal_groups(6, 0, 3)] == [[0, 1, 2], [3, 4, 5]]


def test_outer_folds_keep_requested_order() -> None:
    folds = make_outer_folds(30, GROUPS_12, 6, False, [9, 3])
    assert [f.k for f in folds] == [9, 3]
    assert folds[1].train_idx.tolist() == r(0, 11)
    assert folds[1].inner_groups == [0, 1, 2]


def test_max_inner_combos_caps_and_balances() -> None:
    (fold,) = make_outer_folds(30, GROUPS_12, 6, False, [6])
    splits = splits_of(fold, GROUPS_12, max_inner_combos=4)
    assert [s.split_id for s in splits] == [0, 1, 2, 3]
    counts = group_test_counts(splits, 6)
    assert counts.sum() == 8
    assert counts.max() - counts.min() <= 1


def test_greedy_alone_gets_stuck_and_the_repair_balances() -> None:
    # Greedy: (0,1), (2,3), (4,5), (0,2), (1,3); (4,5) is used up, so it takes (0,3).
    stuck = _greedy_combos(6, 2, 6)
    assert np.bincount(stuck.ravel(), minlength=6).tolist() == [3, 2, 2, 3, 1, 1]
    # Repair: (0,1) -> (1,4) (most 0, least 4), then (0,3) -> (0,5) (most 3, least 5).
    assert balanced_combinations(6, 2, 6) == [(0, 2), (0, 5), (1, 3), (1, 4), (2, 3), (4, 5)]


def test_balanced_combinations_full_set_is_lexicographic() -> None:
    assert balanced_combinations(4, 2) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert balanced_combinations(4, 2, 99) == balanced_combinations(4, 2)


def test_n_backtest_paths() -> None:
    assert n_backtest_paths(5, 2) == 4  # skfolio's 5 folds, 2 test folds
    assert n_backtest_paths(3, 2) == 2
    assert n_backtest_paths(11, 2) == 10
    assert n_backtest_paths(6, 1) == 1
    with pytest.raises(ConfigError, match=r"cv\.q=3 must lie in 1\.\.2"):
        n_backtest_paths(2, 3)


def test_index_runs() -> None:
    assert index_runs(np.array([0, 1, 2, 5, 6, 9])) == [[0, 3], [5, 7], [9, 10]]
    assert index_runs(np.array([], dtype=np.int64)) == []


# --- cv_structure.json and timestamps_cv.csv --------------------------------------------
# T=15, warmup 2, group_len 3: 4 groups [3..5], [6..8], [9..11], [12..14]; row 2 dropped.
STAMPS = pd.date_range("2024-01-05", periods=15, freq="7D", tz="UTC")
SMALL_GROUPS = build_equal_groups(15, 2, 3)


def test_cv_structure_payload_exact(tmp_path: Path) -> None:
    folds = make_outer_folds(15, SMALL_GROUPS, 2, False, [3])
    kw: dict[str, Any] = {
        "warmup_len": 2,
        "exclude_warmup": False,
        "q": 1,
        "horizon": 1,
        "embargo_len": 1,
    }
    splits = {3: make_cpcv_splits(folds[0], SMALL_GROUPS, max_inner_combos=None, **kw)}
    params = {"group_len": 3, "max_inner_combos": None, **kw}
    payload = cv_structure_payload(
        STAMPS, SMALL_GROUPS, folds, splits, warmup_len=2, q=1, params=params
    )
    day = "T00:00:00+00:00"
    assert payload["params"] == params
    assert payload["n_samples"] == 15
    assert payload["warmup"] == {
        "start": 0,
        "end": 2,
        "n_samples": 2,
        "first_timestamp": "2024-01-05" + day,
        "last_timestamp": "2024-01-12" + day,
    }
    assert payload["dropped"] == {
        "start": 2,
        "end": 3,
        "n_samples": 1,
        "first_timestamp": "2024-01-19" + day,
        "last_timestamp": "2024-01-19" + day,
    }
    assert payload["groups"][1] == {
        "group": 1,
        "start": 6,
        "end": 9,
        "n_samples": 3,
        "first_timestamp": "2024-02-16" + day,
        "last_timestamp": "2024-03-01" + day,
    }
    assert payload["groups"][3]["last_timestamp"] == "2024-04-12" + day
    (fold,) = payload["outer_folds"]
    assert {k: fold[k] for k in ("k", "train", "test", "n_train", "inner_groups")} == {
        "k": 3,
        "train": [[0, 2], [3, 12]],
        "test": [[12, 15]],
        "n_train": 11,
        "inner_groups": [0, 1, 2],
    }
    inner = fold["inner"]
    assert {k: v for k, v in inner.items() if k != "splits"} == {
        "n_inner_groups": 3,
        "n_splits": 3,
        "n_combinations": 3,
        "test_appearances": [1, 1, 1],
        "n_backtest_paths": 1,
        "n_backtest_paths_full_set": 1,
    }
    assert inner["splits"] == [
        {
            "split_id": 0,
            "test_groups": [0],
            "n_train": 6,
            "train": [[0, 2], [7, 11]],
            "test": [[3, 6]],
            "purged": [[6, 7], [11, 12]],
            "embargoed": [],
        },
        {
            "split_id": 1,
            "test_groups": [1],
            "n_train": 5,
            "train": [[0, 2], [3, 5], [10, 11]],
            "test": [[6, 9]],
            "purged": [[5, 6], [9, 10], [11, 12]],
            "embargoed": [],
        },
        {
            "split_id": 2,
            "test_groups": [2],
            "n_train": 7,
            "train": [[0, 2], [3, 8]],
            "test": [[9, 12]],
            "purged": [[8, 9]],
            "embargoed": [],
        },
    ]
    write_json(tmp_path / "cv_structure.json", payload)
    assert json.loads((tmp_path / "cv_structure.json").read_text()) == payload


def test_payload_reports_paths_of_a_balanced_subset() -> None:
    (fold,) = make_outer_folds(30, GROUPS_12, 6, False, [6])
    splits = splits_of(fold, GROUPS_12, max_inner_combos=4)
    payload = cv_structure_payload(
        pd.date_range("2020-01-03", periods=30, freq="7D", tz="UTC"),
        GROUPS_12,
        [fold],
        {6: splits},
        warmup_len=6,
        q=2,
        params={},
    )
    inner = payload["outer_folds"][0]["inner"]
    # 4 splits x 2 test groups over 6 groups: counts 1 or 2; one complete path.
    assert sorted(inner["test_appearances"]) == [1, 1, 1, 1, 2, 2]
    assert inner["n_backtest_paths"] == 1
    assert inner["n_backtest_paths_full_set"] == 5


def test_timestamps_cv_frame(tmp_path: Path) -> None:
    folds = make_outer_folds(15, SMALL_GROUPS, 2, False, [2, 3])
    frame = timestamps_cv_frame(STAMPS, SMALL_GROUPS, folds, warmup_len=2)
    assert list(frame.columns) == ["timestamp", "index", "group", "outer_2", "outer_3"]
    assert frame["index"].tolist() == r(0, 14)
    assert frame["group"].tolist() == ["warmup"] * 2 + ["dropped"] + [
        str(g) for g in (0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3)
    ]
    assert frame["outer_2"].tolist() == (
        ["train"] * 2 + ["-"] + ["train"] * 6 + ["test"] * 3 + ["-"] * 3
    )
    assert frame["outer_3"].tolist() == ["train"] * 2 + ["-"] + ["train"] * 9 + ["test"] * 3
    write_csv(tmp_path / "timestamps_cv.csv", frame, index=False)
    lines = (tmp_path / "timestamps_cv.csv").read_text().splitlines()
    assert lines[:4] == [
        "timestamp,index,group,outer_2,outer_3",
        "2024-01-05T00:00:00+00:00,0,warmup,train,train",
        "2024-01-12T00:00:00+00:00,1,warmup,train,train",
        "2024-01-19T00:00:00+00:00,2,dropped,-,-",
    ]


# --- validate_cv ----------------------------------------------------------------------------
GOOD: dict[str, Any] = {
    "warmup_len": 6,
    "group_len": 2,
    "horizon": 1,
    "embargo_len": 2,
    "q": 2,
    "max_inner_combos": None,
    "exclude_warmup": False,
    "outer_test_groups": [5, 11],
    "min_train_samples": 6,
}


def test_validate_accepts_a_workable_config() -> None:
    validate_cv(30, **GOOD)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"outer_test_groups": [1, 5]},
            r"cv\.q=2 is larger than the 1 inner groups before outer test group 1; lower cv\.q "
            r"to at most 1 or choose outer test groups >= 2",
        ),
        ({"embargo_len": -1}, r"cv\.embargo_len=-1 is invalid; it must be >= 0"),
        ({"group_len": 0}, r"cv\.group_len=0 is invalid; it must be an integer >= 1"),
        ({"warmup_len": -3}, r"cv\.warmup_len=-3 is invalid"),
        (
            {"warmup_len": 29, "outer_test_groups": [0]},
            r"cv\.warmup_len=29 leaves 1 of the 30 samples, fewer than one group of "
            r"cv\.group_len=2; lower cv\.warmup_len or cv\.group_len, or supply more history",
        ),
        ({"horizon": 0}, r"cv\.horizon=0 is invalid; y\[t\] spans at least one week"),
        ({"q": 0}, r"cv\.q=0 is invalid"),
        ({"max_inner_combos": 0}, r"cv\.max_inner_combos=0 is invalid; use null or an integer"),
        (
            {"outer_test_groups": [5, 12]},
            r"outer test groups \[12\] do not exist; there are 12 groups, valid ids are 0\.\.11",
        ),
        ({"outer_test_groups": [5, 5]}, r"outer test groups \[5, 5\] repeat a group"),
        ({"outer_test_groups": []}, r"outer test groups are empty"),
        # Fold 5's splits (0, 2) and (0, 3) keep only rows 0..4 plus one more: 6 < 8.
        (
            {"min_train_samples": 8},
            r"outer fold k=5, inner split 1 \(test groups \(0, 2\)\) keeps 6 training samples "
            r"after purging 5 \(cv\.horizon\) and embargoing 1 \(cv\.embargo_len\), below the "
            r"minimum of 8; raise cv\.group_len or cv\.warmup_len, lower cv\.q, cv\.horizon or "
            r"cv\.embargo_len, or start the outer test groups later",
        ),
        (
            {"exclude_warmup": True, "q": 1, "outer_test_groups": [1], "min_train_samples": 3},
            r"outer fold k=1 has 2 training samples, below the minimum of 3",
        ),
    ],
)
def test_validate_rejects_with_numbers(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_cv(30, **(GOOD | change))


def test_validate_rejects_too_many_combinations() -> None:
    # 21 one-week groups: fold 20 has 20 inner groups and C(20, 10) = 184,756 combinations.
    change = {"group_len": 1, "q": 10, "outer_test_groups": [20], "min_train_samples": 1}
    with pytest.raises(
        ConfigError,
        match=r"cv\.q=10 over the 20 inner groups of outer fold k=20 gives 184,756 "
        r"combinations, more than the 100,000 this engine enumerates",
    ):
        validate_cv(27, **(GOOD | change))


def test_timestamps_must_match_the_layout() -> None:
    folds = make_outer_folds(15, SMALL_GROUPS, 2, False, [3])
    with pytest.raises(ValueError, match="14 timestamps for a CV layout of 15 samples"):
        timestamps_cv_frame(STAMPS[:14], SMALL_GROUPS, folds, warmup_len=2)


def test_validate_counts_only_the_selected_splits() -> None:
    # The balanced subset of 3 combinations of fold 5 avoids (0, 2) and (0, 3).
    chosen = balanced_combinations(5, 2, 3)
    assert (0, 2) not in chosen and (0, 3) not in chosen
    validate_cv(
        30, **(GOOD | {"outer_test_groups": [5], "min_train_samples": 7, "max_inner_combos": 3})
    )


# --- properties ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    n_samples: int
    warmup_len: int
    group_len: int
    remainder: int
    n_groups: int
    k: int
    q: int
    horizon: int
    embargo_len: int
    exclude_warmup: bool
    max_inner_combos: int | None


@st.composite
def cases(draw: st.DrawFn) -> Case:
    group_len = draw(st.integers(1, 5))
    n_groups = draw(st.integers(2, 8))
    warmup_len = draw(st.integers(0, 8))
    remainder = draw(st.integers(0, group_len - 1))
    q = draw(st.integers(1, n_groups - 1))
    k = draw(st.integers(q, n_groups - 1))
    cap = draw(st.none() | st.integers(1, math.comb(k, q) + 2))
    return Case(
        warmup_len + remainder + n_groups * group_len,
        warmup_len,
        group_len,
        remainder,
        n_groups,
        k,
        q,
        draw(st.integers(1, 4)),
        draw(st.integers(0, 5)),
        draw(st.booleans()),
        cap,
    )


def build(case: Case) -> tuple[list[np.ndarray], OuterFold, list[InnerSplit]]:
    groups = build_equal_groups(case.n_samples, case.warmup_len, case.group_len)
    (fold,) = make_outer_folds(
        case.n_samples, groups, case.warmup_len, case.exclude_warmup, [case.k]
    )
    splits = make_cpcv_splits(
        fold,
        groups,
        case.warmup_len,
        case.exclude_warmup,
        case.q,
        case.horizon,
        case.embargo_len,
        case.max_inner_combos,
    )
    return groups, fold, splits


@settings(max_examples=150, deadline=None)
@given(cases())
def test_groups_and_outer_fold_properties(case: Case) -> None:
    groups, fold, _ = build(case)
    assert len(groups) == case.n_groups
    flat = np.concatenate(groups)
    assert flat.tolist() == r(case.warmup_len + case.remainder, case.n_samples - 1)
    assert fold.test_idx.tolist() == groups[case.k].tolist()
    assert fold.train_idx.max() < fold.test_idx.min()
    expected = [] if case.exclude_warmup else r(0, case.warmup_len - 1)
    expected += np.concatenate(groups[: case.k]).tolist()
    assert fold.train_idx.tolist() == expected


@settings(max_examples=150, deadline=None)
@given(cases())
def test_inner_split_properties(case: Case) -> None:
    groups, fold, splits = build(case)
    h, e = case.horizon, case.embargo_len
    outer_start = int(fold.test_idx[0])
    for s in splits:
        train, test = s.train_idx, s.test_idx
        parts = [train, test, s.purged_idx, s.embargoed_idx]
        # The four sets partition the outer training set: nothing lost, nothing shared.
        assert np.array_equal(np.sort(np.concatenate(parts)), fold.train_idx)
        assert test.tolist() == np.concatenate([groups[g] for g in s.test_groups]).tolist()
        if train.size:
            # Closed label intervals [t, t+h] and [u, u+h] touch iff |t - u| <= h.
            assert np.abs(train[:, None] - test[None, :]).min() > h
            assert train.max() + h < outer_start
        block_ends = test[~np.isin(test + 1, test)]
        window = (block_ends[:, None] + np.arange(1, e + 1)[None, :]).ravel()
        assert not np.isin(train, window).any()
        # Nothing is dropped without a reason.
        touching = np.abs(s.purged_idx[:, None] - test[None, :]).min(axis=1, initial=h + 1)
        assert ((touching <= h) | (s.purged_idx + h >= outer_start)).all()
        assert np.isin(s.embargoed_idx, window).all()


@settings(max_examples=150, deadline=None)
@given(cases())
def test_split_count_and_balance(case: Case) -> None:
    _, _, splits = build(case)
    total = math.comb(case.k, case.q)
    cap = case.max_inner_combos
    assert len(splits) == (total if cap is None else min(cap, total))
    assert [s.split_id for s in splits] == list(range(len(splits)))
    combos = [s.test_groups for s in splits]
    assert combos == sorted(set(combos))
    counts = group_test_counts(splits, case.k)
    assert counts.max() - counts.min() <= 1
    if len(splits) == total:
        assert (counts == n_backtest_paths(case.k, case.q)).all()


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 9)
    .flatmap(lambda n: st.tuples(st.just(n), st.integers(1, n)))
    .flatmap(
        lambda nq: st.tuples(
            st.just(nq[0]), st.just(nq[1]), st.integers(1, math.comb(nq[0], nq[1]))
        )
    )
)
def test_balanced_combinations_within_one(nqm: tuple[int, int, int]) -> None:
    n, q, m = nqm
    chosen = balanced_combinations(n, q, m)
    assert len(chosen) == m == len(set(chosen))
    assert all(len(c) == q and list(c) == sorted(c) and c[-1] < n for c in chosen)
    counts = np.bincount(np.array(chosen).ravel(), minlength=n)
    assert counts.max() - counts.min() <= 1
    assert balanced_combinations(n, q, m) == chosen


@given(st.integers(1, 25).flatmap(lambda n: st.tuples(st.just(n), st.integers(1, n))))
def test_n_backtest_paths_formula(nq: tuple[int, int]) -> None:
    n, q = nq
    assert n_backtest_paths(n, q) * n == math.comb(n, q) * q

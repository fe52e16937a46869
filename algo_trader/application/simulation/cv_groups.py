"""CV structure of the nested simulation (spec ``simulation/nestedcv.md`` sections 3-4).

Samples are the weekly rows ``0..T-1`` of the panel. ``X[t]`` is known after week ``t`` and
``y[t]`` is the return over the following ``horizon`` weeks, so sample ``t`` carries the
**label interval** ``[t, t + horizon]`` (closed: two intervals that share an end point touch,
and touching counts as overlap).

Layout of the time axis::

    | warmup (warmup_len) | dropped (< group_len) | group 0 | group 1 | ... | group n-1 |

* **Warmup**: the first ``warmup_len`` samples; never a test sample, used for training unless
  ``exclude_warmup``.
* **Dropped remainder**: when ``T - warmup_len`` is not a multiple of ``group_len``, the
  leading remainder after the warmup is dropped so that the groups end on the latest week.
  "Dropped" means dropped: these rows are neither trained on nor tested anywhere (treating them
  as extra warmup would be a second, unlisted training set). ``timestamps_cv.csv`` marks them.
* **Outer fold k**: test = group ``k``; train = every group before ``k`` plus the warmup.
  Its training set is *not* purged here; the weekly outer loop must fit, at test week ``s``,
  only on rows whose labels are realized (``t + horizon <= s``).
* **Inner CPCV in fold k**: over groups ``0..k-1``; each combination of ``q`` of them is a
  test set. The candidate training rows are the other inner groups plus the warmup, then

  - *purge*: a candidate whose label interval touches the label interval of a test sample is
    dropped, i.e. ``|t - s| <= horizon`` for some test sample ``s``. The outer test group
    ``k`` counts as a test block here too, so no inner training label reaches into it
    (``t + horizon < start of group k``); those rows are reported as purged.
  - *embargo*: the ``embargo_len`` samples right after each test block (a run of adjacent
    test groups is one block) are dropped; rows that were already purged are reported as
    purged only, so ``purged_idx`` and ``embargoed_idx`` are disjoint.

  Inner test sets are whole groups, so the label of the last inner row ends at week
  ``start(k) - 1 + horizon``: realized when the outer test starts if ``horizon == 1``; with a
  longer horizon it overlaps the outer test labels by ``horizon - 1`` weeks, as the spec's
  outer training rows do (those are the same rows).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from algo_trader.domain.errors import ConfigError
from algo_trader.infrastructure.data.atomic import UTC_FORMAT

WARMUP = -1
"""Group label of a warmup sample (see :func:`sample_group_labels`)."""
DROPPED = -2
"""Group label of a sample in the dropped remainder after the warmup."""

_FAR = np.int64(1) << 40  # a distance larger than any panel, for "no test block on this side"
MAX_COMBINATIONS = 100_000
"""Most test-group combinations a fold may enumerate (each split is a model fit)."""


@dataclass(frozen=True, eq=False)
class OuterFold:
    """One outer walk-forward fold: train on everything before group ``k``, test on ``k``."""

    k: int
    train_idx: np.ndarray
    test_idx: np.ndarray
    inner_groups: list[int]


@dataclass(frozen=True, eq=False)
class InnerSplit:
    """One inner CPCV split of an outer fold, after purge and embargo."""

    split_id: int
    test_groups: tuple[int, ...]
    train_idx: np.ndarray
    test_idx: np.ndarray
    purged_idx: np.ndarray
    embargoed_idx: np.ndarray


def _frozen(idx: np.ndarray) -> np.ndarray:
    # Index arrays are shared by every consumer of a fold; read-only keeps one from editing
    # another's view of the split.
    out = np.asarray(idx, dtype=np.int64)
    out.flags.writeable = False
    return out


def _check_layout(n_samples: int, warmup_len: int, group_len: int) -> int:
    """Return the number of groups, or raise ConfigError naming the parameter and numbers."""
    if group_len < 1:
        raise ConfigError(f"cv.group_len={group_len} is invalid; it must be an integer >= 1")
    if warmup_len < 0:
        raise ConfigError(f"cv.warmup_len={warmup_len} is invalid; it must be >= 0")
    n_groups = (n_samples - warmup_len) // group_len
    if n_groups < 1:
        raise ConfigError(
            f"cv.warmup_len={warmup_len} leaves {max(n_samples - warmup_len, 0)} of the "
            f"{n_samples} samples, fewer than one group of cv.group_len={group_len}; "
            "lower cv.warmup_len or cv.group_len, or supply more history"
        )
    return n_groups


def build_equal_groups(n_samples: int, warmup_len: int, group_len: int) -> list[np.ndarray]:
    """Split the samples after the warmup into contiguous groups of ``group_len``.

    Parameters
    ----------
    n_samples : int
        Number of weekly samples ``T``.
    warmup_len : int
        Leading samples that are never tested.
    group_len : int
        Samples per group.

    Returns
    -------
    list of numpy.ndarray
        Sample indices (int64, read-only) of each group, oldest first. The leading remainder
        after the warmup is dropped so the last group ends on sample ``T - 1``.

    Raises
    ------
    ConfigError
        If ``group_len < 1``, ``warmup_len < 0`` or not even one group fits.
    """
    n_groups = _check_layout(n_samples, warmup_len, group_len)
    start = n_samples - n_groups * group_len
    grid = np.arange(start, n_samples, dtype=np.int64).reshape(n_groups, group_len)
    return [_frozen(row) for row in grid]


def sample_group_labels(n_samples: int, groups: list[np.ndarray], warmup_len: int) -> np.ndarray:
    """Group id of every sample; :data:`WARMUP` or :data:`DROPPED` outside the groups."""
    labels = np.full(n_samples, DROPPED, dtype=np.int64)
    labels[:warmup_len] = WARMUP
    if groups:
        labels[np.concatenate(groups)] = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
    return labels


def _check_outer_groups(outer_test_groups: Sequence[int], n_groups: int) -> None:
    ks = list(outer_test_groups)
    if not ks:
        raise ConfigError("outer test groups are empty; choose at least one group to test")
    bad = [k for k in ks if not 0 <= k < n_groups]
    if bad:
        raise ConfigError(
            f"outer test groups {bad} do not exist; there are {n_groups} groups, "
            f"valid ids are 0..{n_groups - 1}"
        )
    if len(set(ks)) != len(ks):
        raise ConfigError(f"outer test groups {ks} repeat a group; list each group once")


def make_outer_folds(
    n_samples: int,
    groups: list[np.ndarray],
    warmup_len: int,
    exclude_warmup: bool,
    outer_test_groups: Sequence[int],
) -> list[OuterFold]:
    """Build the outer walk-forward folds.

    Parameters
    ----------
    n_samples : int
        Number of weekly samples ``T``.
    groups : list of numpy.ndarray
        Output of :func:`build_equal_groups`.
    warmup_len : int
        Leading warmup samples.
    exclude_warmup : bool
        If True the warmup is not part of any training set.
    outer_test_groups : sequence of int
        Group ids to use as outer test groups, in the order the folds are returned.

    Returns
    -------
    list of OuterFold
        Fold ``k`` trains on all groups strictly before ``k`` (plus the warmup unless
        excluded) and tests on group ``k``; its inner CPCV uses groups ``0..k-1``.
    """
    _check_outer_groups(outer_test_groups, len(groups))
    warmup = np.arange(0 if exclude_warmup else min(warmup_len, n_samples), dtype=np.int64)
    folds = []
    for k in outer_test_groups:
        train = np.concatenate([warmup, *groups[:k]])
        folds.append(OuterFold(int(k), _frozen(train), _frozen(groups[k]), list(range(k))))
    return folds


def _greedy_combos(n_groups: int, q: int, count: int) -> np.ndarray:
    """Pick ``count`` combinations, each time the one with the smallest max then spread."""
    combos = np.array(list(itertools.combinations(range(n_groups), q)), dtype=np.int64)
    member = np.zeros((len(combos), n_groups), dtype=np.int64)
    member[np.arange(len(combos))[:, None], combos] = 1
    counts = np.zeros(n_groups, dtype=np.int64)
    free = np.ones(len(combos), dtype=bool)
    chosen = []
    for _ in range(count):
        after = counts + member
        top = after.max(axis=1)
        # One integer key orders by (max, spread) since spread <= max <= count; argmin takes
        # the lexicographically first of equal keys.
        key = top * (count + 1) + (top - after.min(axis=1))
        key[~free] = np.iinfo(np.int64).max
        pick = int(np.argmin(key))
        chosen.append(pick)
        free[pick] = False
        counts += member[pick]
    return combos[chosen]


def _rebalance(chosen: set[tuple[int, ...]], n_groups: int) -> set[tuple[int, ...]]:
    """Swap groups inside the chosen combinations until appearances differ by at most one.

    The greedy pass alone can get stuck (6 groups, q=2, 6 combos: after (0,1), (2,3), (4,5),
    (0,2), (1,3) the pair (4,5) is used up, and its sixth pick (0,3) leaves counts
    3,2,2,3,1,1). With a the
    most and b the least tested group (counts differ by >= 2), more chosen combinations
    contain a but not b than b but not a, and replacing a by b is one-to-one, so some chosen
    combination with a turns into one not yet chosen. Each swap lowers the sum of squared
    counts, so the loop ends.
    """
    while True:
        counts = np.bincount(np.array(sorted(chosen)).ravel(), minlength=n_groups)
        a, b = int(np.argmax(counts)), int(np.argmin(counts))
        if counts[a] - counts[b] <= 1:
            return chosen
        for combo in sorted(c for c in chosen if a in c and b not in c):
            swapped = tuple(sorted({*combo} - {a} | {b}))
            if swapped not in chosen:
                chosen = (chosen - {combo}) | {swapped}
                break
        else:  # the counting argument above rules this out; never loop forever on a bug
            raise AssertionError(f"no swap balances groups {a} and {b}")


def balanced_combinations(
    n_groups: int, q: int, max_combos: int | None = None
) -> list[tuple[int, ...]]:
    """Test-group combinations for the inner CPCV, in lexicographic order.

    Parameters
    ----------
    n_groups : int
        Number of inner groups.
    q : int
        Test groups per combination.
    max_combos : int or None
        If None or at least ``C(n_groups, q)``, every combination. Otherwise a deterministic
        balanced subset of that size: greedy (each step the combination that minimizes the
        largest, then the spread of, the per-group test counts; ties go to the
        lexicographically first), then a swap repair where the greedy got stuck, so every
        group is tested ``floor`` or ``ceil`` of ``max_combos * q / n_groups`` times.
    """
    total = math.comb(n_groups, q)
    if max_combos is None or max_combos >= total:
        return list(itertools.combinations(range(n_groups), q))
    picked = {tuple(int(g) for g in row) for row in _greedy_combos(n_groups, q, max_combos)}
    return sorted(_rebalance(picked, n_groups))


def _distance_after(blocked: np.ndarray) -> np.ndarray:
    """Distance from each position back to the nearest blocked position at or before it."""
    pos = np.arange(blocked.size, dtype=np.int64)
    return pos - np.maximum.accumulate(np.where(blocked, pos, -_FAR))


def _distance_before(blocked: np.ndarray) -> np.ndarray:
    """Distance from each position forward to the nearest blocked position at or after it."""
    return _distance_after(blocked[::-1])[::-1]


def _inner_split(
    split_id: int,
    combo: tuple[int, ...],
    labels: np.ndarray,
    universe: np.ndarray,
    outer_test: np.ndarray,
    horizon: int,
    embargo_len: int,
) -> InnerSplit:
    is_test = np.isin(labels, combo)
    # Purge against the inner test groups and the outer test group alike: |t - s| <= horizon
    # is exactly "closed label intervals [t, t+h] and [s, s+h] touch".
    blocked = is_test | outer_test
    near = np.minimum(_distance_after(blocked), _distance_before(blocked)) <= horizon
    embargo = _distance_after(is_test) <= embargo_len
    candidate = universe & ~is_test
    return InnerSplit(
        split_id=split_id,
        test_groups=combo,
        train_idx=_frozen(np.flatnonzero(candidate & ~near & ~embargo)),
        test_idx=_frozen(np.flatnonzero(is_test)),
        purged_idx=_frozen(np.flatnonzero(candidate & near)),
        embargoed_idx=_frozen(np.flatnonzero(candidate & embargo & ~near)),
    )


def _check_split_params(
    q: int, n_inner: int, k: int, horizon: int, embargo_len: int, max_inner_combos: int | None
) -> None:
    if q < 1:
        raise ConfigError(f"cv.q={q} is invalid; it must be an integer >= 1")
    if q > n_inner:
        raise ConfigError(
            f"cv.q={q} is larger than the {n_inner} inner groups before outer test group {k}; "
            f"lower cv.q to at most {n_inner} or choose outer test groups >= {q}"
        )
    if horizon < 1:
        raise ConfigError(
            f"cv.horizon={horizon} is invalid; y[t] spans at least one week, use >= 1"
        )
    if embargo_len < 0:
        raise ConfigError(f"cv.embargo_len={embargo_len} is invalid; it must be >= 0")
    if max_inner_combos is not None and max_inner_combos < 1:
        raise ConfigError(
            f"cv.max_inner_combos={max_inner_combos} is invalid; use null or an integer >= 1"
        )
    if math.comb(n_inner, q) > MAX_COMBINATIONS:
        raise ConfigError(
            f"cv.q={q} over the {n_inner} inner groups of outer fold k={k} gives "
            f"{math.comb(n_inner, q):,} combinations, more than the {MAX_COMBINATIONS:,} this "
            "engine enumerates; lower cv.q or raise cv.group_len"
        )


def make_cpcv_splits(
    fold: OuterFold,
    groups: list[np.ndarray],
    warmup_len: int,
    exclude_warmup: bool,
    q: int,
    horizon: int,
    embargo_len: int,
    max_inner_combos: int | None,
) -> list[InnerSplit]:
    """Build the inner CPCV splits of one outer fold.

    Parameters
    ----------
    fold : OuterFold
        The outer fold; only its groups ``0..k-1`` (and the warmup) are used.
    groups : list of numpy.ndarray
        Output of :func:`build_equal_groups`.
    warmup_len, exclude_warmup
        As in :func:`make_outer_folds`.
    q : int
        Test groups per split.
    horizon : int
        Label horizon in weeks: sample ``t`` has label interval ``[t, t + horizon]``.
    embargo_len : int
        Samples dropped from training right after each test block.
    max_inner_combos : int or None
        Cap on the number of splits (balanced subset, see :func:`balanced_combinations`).

    Returns
    -------
    list of InnerSplit
        One per test-group combination, in lexicographic order, ``split_id`` 0, 1, ...
    """
    n_inner = len(fold.inner_groups)
    _check_split_params(q, n_inner, fold.k, horizon, embargo_len, max_inner_combos)
    # The time axis ends with the outer test group: nothing after it takes part.
    n_axis = int(groups[fold.k][-1]) + 1
    labels = sample_group_labels(n_axis, groups[: fold.k + 1], warmup_len)
    universe = (labels >= 0) & (labels < fold.k)
    if not exclude_warmup:
        universe |= labels == WARMUP
    outer_test = labels == fold.k
    combos = balanced_combinations(n_inner, q, max_inner_combos)
    return [
        _inner_split(i, c, labels, universe, outer_test, horizon, embargo_len)
        for i, c in enumerate(combos)
    ]


def n_backtest_paths(n_groups: int, q: int) -> int:
    """Number of full CPCV backtest paths: ``C(n, q) * q / n = C(n - 1, q - 1)``.

    Each group is tested in ``C(n - 1, q - 1)`` of the ``C(n, q)`` splits, and one path takes
    each group's test block once, so the full set recombines into that many paths.
    """
    if not 1 <= q <= n_groups:
        raise ConfigError(f"cv.q={q} must lie in 1..{n_groups} (the number of inner groups)")
    return math.comb(n_groups - 1, q - 1)


def group_test_counts(splits: Sequence[InnerSplit], n_groups: int) -> np.ndarray:
    """How many splits test each inner group (int64 array of length ``n_groups``)."""
    if not splits:
        return np.zeros(n_groups, dtype=np.int64)
    return np.bincount(np.concatenate([s.test_groups for s in splits]), minlength=n_groups)


def _too_small_message(fold: OuterFold, split: InnerSplit, minimum: int) -> str:
    return (
        f"outer fold k={fold.k}, inner split {split.split_id} (test groups "
        f"{split.test_groups}) keeps {split.train_idx.size} training samples after purging "
        f"{split.purged_idx.size} (cv.horizon) and embargoing {split.embargoed_idx.size} "
        f"(cv.embargo_len), below the minimum of {minimum}; raise cv.group_len or "
        "cv.warmup_len, lower cv.q, cv.horizon or cv.embargo_len, or start the outer test "
        "groups later"
    )


def validate_cv(
    n_samples: int,
    *,
    warmup_len: int,
    group_len: int,
    horizon: int,
    embargo_len: int,
    q: int,
    max_inner_combos: int | None,
    exclude_warmup: bool,
    outer_test_groups: Sequence[int],
    min_train_samples: int,
) -> None:
    """Reject a CV configuration up front, before any work, with the numbers that fail.

    Checks the layout (``group_len >= 1``, ``warmup_len >= 0``, at least one group), the
    split parameters (``1 <= q <=`` inner groups of the earliest outer fold,
    ``horizon >= 1``, ``embargo_len >= 0``, ``max_inner_combos`` null or ``>= 1``), the outer
    test groups (exist, no repeats), and that every outer fold and every inner split keeps
    at least ``min_train_samples`` training samples after purge and embargo.

    Raises
    ------
    ConfigError
        Naming the ``cv.*`` parameters, their values and what to change.
    """
    groups = build_equal_groups(n_samples, warmup_len, group_len)
    _check_outer_groups(outer_test_groups, len(groups))
    first = min(outer_test_groups)
    _check_split_params(q, first, first, horizon, embargo_len, max_inner_combos)
    folds = make_outer_folds(n_samples, groups, warmup_len, exclude_warmup, outer_test_groups)
    for fold in folds:
        if fold.train_idx.size < min_train_samples:
            raise ConfigError(
                f"outer fold k={fold.k} has {fold.train_idx.size} training samples, below the "
                f"minimum of {min_train_samples}; start the outer test groups later, raise "
                "cv.group_len, or set cv.exclude_warmup to false"
            )
        splits = make_cpcv_splits(
            fold, groups, warmup_len, exclude_warmup, q, horizon, embargo_len, max_inner_combos
        )
        small = min(splits, key=lambda s: s.train_idx.size)
        if small.train_idx.size < min_train_samples:
            raise ConfigError(_too_small_message(fold, small, min_train_samples))


def index_runs(idx: np.ndarray) -> list[list[int]]:
    """Sorted sample indices as run-length ``[start, end)`` pairs: [0,1,2,5,6] -> [[0,3],[5,7]]."""
    idx = np.asarray(idx, dtype=np.int64)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) != 1)
    starts = idx[np.r_[0, breaks + 1]]
    ends = idx[np.r_[breaks, idx.size - 1]] + 1
    return [[int(s), int(e)] for s, e in zip(starts, ends, strict=True)]


def _check_timestamps(timestamps: pd.DatetimeIndex, groups: list[np.ndarray]) -> None:
    # The groups end on the last sample, so the layout fixes T; a mismatch is a caller bug.
    expected = int(groups[-1][-1]) + 1
    if len(timestamps) != expected:
        raise ValueError(f"{len(timestamps)} timestamps for a CV layout of {expected} samples")


def _stamp(timestamps: pd.DatetimeIndex, i: int) -> str:
    return timestamps[i].strftime(UTC_FORMAT)


def _range_entry(timestamps: pd.DatetimeIndex, start: int, end: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"start": start, "end": end, "n_samples": end - start}
    if end > start:
        entry["first_timestamp"] = _stamp(timestamps, start)
        entry["last_timestamp"] = _stamp(timestamps, end - 1)
    return entry


def _split_entry(split: InnerSplit) -> dict[str, Any]:
    return {
        "split_id": split.split_id,
        "test_groups": list(split.test_groups),
        "n_train": int(split.train_idx.size),
        "train": index_runs(split.train_idx),
        "test": index_runs(split.test_idx),
        "purged": index_runs(split.purged_idx),
        "embargoed": index_runs(split.embargoed_idx),
    }


def _inner_entry(fold: OuterFold, splits: list[InnerSplit], q: int) -> dict[str, Any]:
    n_inner = len(fold.inner_groups)
    counts = group_test_counts(splits, n_inner)
    full = len(splits) == math.comb(n_inner, q)
    return {
        "n_inner_groups": n_inner,
        "n_splits": len(splits),
        "n_combinations": math.comb(n_inner, q),
        "test_appearances": counts.tolist(),
        # A balanced subset tests each group floor/ceil(m q / n) times: only as many complete
        # paths (every group's block once) as the least tested group allows.
        "n_backtest_paths": n_backtest_paths(n_inner, q) if full else int(counts.min()),
        "n_backtest_paths_full_set": n_backtest_paths(n_inner, q),
        "splits": [_split_entry(s) for s in splits],
    }


def cv_structure_payload(
    timestamps: pd.DatetimeIndex,
    groups: list[np.ndarray],
    folds: list[OuterFold],
    splits: Mapping[int, list[InnerSplit]],
    *,
    warmup_len: int,
    q: int,
    params: Mapping[str, Any],
) -> dict[str, Any]:
    """The content of ``cv/cv_structure.json``.

    Parameters
    ----------
    timestamps : pandas.DatetimeIndex
        UTC timestamp of every sample (length ``T``).
    groups, folds
        Outputs of :func:`build_equal_groups` and :func:`make_outer_folds`.
    splits : mapping of int to list of InnerSplit
        Inner splits per outer test group ``k``.
    warmup_len, q : int
        As used to build the structure.
    params : mapping
        The ``cv`` configuration section, recorded verbatim.

    Returns
    -------
    dict
        ``params``, ``conventions`` (label interval, purge, embargo rules), ``warmup``,
        ``dropped``, ``groups`` and ``outer_folds`` (each with its inner splits); index sets
        are run-length ``[start, end)`` lists.
    """
    _check_timestamps(timestamps, groups)
    first = int(groups[0][0])
    return {
        "params": dict(params),
        "n_samples": len(timestamps),
        "conventions": {
            "label_interval": "[t, t + horizon], closed",
            "purge": "drop training t with |t - s| <= horizon for an inner or outer test s",
            "embargo": "drop the embargo_len samples after each test block (purge wins)",
            "dropped": "remainder after warmup; neither trained on nor tested",
            "index_ranges": "[start, end) runs of sample indices",
        },
        "warmup": _range_entry(timestamps, 0, warmup_len),
        "dropped": _range_entry(timestamps, warmup_len, first),
        "groups": [
            {"group": g, **_range_entry(timestamps, int(idx[0]), int(idx[-1]) + 1)}
            for g, idx in enumerate(groups)
        ],
        "outer_folds": [
            {
                "k": fold.k,
                "train": index_runs(fold.train_idx),
                "test": index_runs(fold.test_idx),
                "n_train": int(fold.train_idx.size),
                "inner_groups": fold.inner_groups,
                "inner": _inner_entry(fold, splits[fold.k], q),
            }
            for fold in folds
        ],
    }


def timestamps_cv_frame(
    timestamps: pd.DatetimeIndex,
    groups: list[np.ndarray],
    folds: list[OuterFold],
    *,
    warmup_len: int,
) -> pd.DataFrame:
    """The content of ``cv/timestamps_cv.csv``: one row per sample.

    Columns ``timestamp``, ``index``, ``group`` (group id, ``warmup`` or ``dropped``) and one
    ``outer_<k>`` column per outer fold with the sample's role there: ``train``, ``test`` or
    ``-``. Write it with ``write_csv(path, frame, index=False)``.
    """
    _check_timestamps(timestamps, groups)
    n = len(timestamps)
    labels = sample_group_labels(n, groups, warmup_len)
    group = labels.astype(str).astype(object)
    group[labels == WARMUP] = "warmup"
    group[labels == DROPPED] = "dropped"
    columns: dict[str, Any] = {"timestamp": timestamps, "index": np.arange(n), "group": group}
    for fold in folds:
        role = np.full(n, "-", dtype=object)
        role[fold.train_idx] = "train"
        role[fold.test_idx] = "test"
        columns[f"outer_{fold.k}"] = role
    return pd.DataFrame(columns)

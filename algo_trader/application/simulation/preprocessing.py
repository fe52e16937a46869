"""Leakage-safe cleaning and scaling of the panel's features (nestedcv section 6).

Both steps are *fitted* on the training rows of one split and then *applied* to any rows.
Every fitted statistic is computed from ``X[train_idx]`` alone, so changing the other rows
(even to NaN or 1e9) cannot change it; the tests check exactly that.

Conventions
-----------
``X`` is a ``(T, A, F)`` float array (time, asset, feature); a non-finite entry (NaN, and
also +-inf) is *missing*: it is ignored by every statistic and reported in the missing mask.
"Pooled" statistics of a feature use all its observed training entries over rows and
assets together; "per asset" ones use one asset's training entries of the feature.

Kinds of features (by the name's last ``__`` part, so ``group__name`` prefixes are fine):

* ``brk_*`` (breakout, binary): ``(x - p) / sqrt(p(1 - p) + breakout_var_floor)`` with ``p``
  the per-asset training mean (no winsorization); a column (asset, feature) that is constant
  in training, or has no training values, is set to 0.
* ``cs_rank_*`` (cross-sectional ranks): passed through unchanged (policy skip): neither
  winsorized, nor scaled, nor clipped.
* everything else (robust): winsorized to the feature's pooled training quantiles
  ``winsor_low_q`` / ``winsor_high_q``, then ``(x - median) / scale`` with the *pooled*
  median and composite scale of the winsorized training values (the spec says "per
  feature"): ``scale = max(1.4826 * (MAD + mad_eps), IQR / 1.349, scale_floor)`` (nestedcv
  writes both "MAD + mad_eps" and the composite; this is the two together). The
  near-constant guard is *per asset-feature* (as the spec says): with the asset's own
  winsorized training values, ``g = max(1.4826 * MAD, IQR / 1.349)``; if
  ``g < guard_abs_eps`` or ``g < guard_rel_eps * (|median| + guard_rel_offset)`` that column
  is set to 0. A column without training values is not guarded: its values are scaled with
  the pooled statistics.

Breakout and robust values are then clipped to ``[clip_min, clip_max]``. Fail-fast: on the
training rows, every observed scaled value must be finite with ``|value| <= max_abs_fail``,
checked *before* the clip (after it, the clip bound would hide a collapsed scale).

Quantiles use the linear interpolation of ``numpy.quantile``; they are read off one sort per
statistic (NaN sorts last) instead of ``numpy.nanquantile``, which loops over columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from algo_trader.domain.errors import DataError
from algo_trader.domain.simulation.config import PreprocessingConfig

ROBUST = "robust"
BREAKOUT = "breakout"
PASSTHROUGH = "passthrough"
MISSING_SUFFIX = "__missing"
MAD_TO_SIGMA = 1.4826
IQR_TO_SIGMA = 1.349
# A pairwise variance below this fraction of the centred sum of squares is rounding noise:
# the feature is constant on the rows it shares with the other one, so no correlation.
_CONSTANT_REL_TOL = 1e-12


def feature_kind(name: str) -> str:
    """Scaling kind of a feature: ``"breakout"``, ``"passthrough"`` or ``"robust"``.

    Decided by the name after the last ``__`` (the group prefix, if any, is ignored).
    """
    base = name.split("__")[-1]
    if base.startswith("brk_"):
        return BREAKOUT
    if base.startswith("cs_rank_"):
        return PASSTHROUGH
    return ROBUST


# --- shared helpers -----------------------------------------------------------------------


def _train_block(X: np.ndarray, names: Sequence[str], train_idx: np.ndarray) -> np.ndarray:
    """``X[train_idx]`` as float64 with every non-finite entry set to NaN."""
    if X.ndim != 3:
        raise ValueError(f"X must be (T, A, F), got shape {X.shape}")
    if len(names) != X.shape[2]:
        raise ValueError(f"{len(names)} feature names for {X.shape[2]} features")
    idx = np.asarray(train_idx)
    if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"train_idx must be a non-empty 1-D integer array, got {idx!r}")
    if idx.min() < -X.shape[0] or idx.max() >= X.shape[0]:
        raise ValueError(f"train_idx out of range for {X.shape[0]} rows")
    block = np.asarray(X[idx], dtype=np.float64)
    return np.where(np.isfinite(block), block, np.nan)


def _sorted_rows(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row of a 2-D array (one series per row) sorted, NaN last, and its count.

    Rows, not columns: sorting along the contiguous axis is markedly faster.
    """
    ordered = np.sort(np.ascontiguousarray(values), axis=1)
    return ordered, np.count_nonzero(~np.isnan(ordered), axis=1)


def _quantile(ordered: np.ndarray, count: np.ndarray, q: float) -> np.ndarray:
    """Quantile ``q`` of each sorted row (numpy's linear method); NaN for an empty row."""
    pos = q * (np.maximum(count, 1) - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(count - 1, 0))
    a = np.take_along_axis(ordered, lo[:, None], axis=1)[:, 0]
    b = np.take_along_axis(ordered, hi[:, None], axis=1)[:, 0]
    frac = pos - lo
    # Interpolate from the nearer end, as numpy does, so q = 0.5 of (a, b) is symmetric.
    value = np.where(frac < 0.5, a + (b - a) * frac, b - (b - a) * (1.0 - frac))
    return np.where(count > 0, value, np.nan)


def _robust_stats(
    ordered: np.ndarray, count: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, MAD and IQR of each sorted row (NaN for empty rows)."""
    median = _quantile(ordered, count, 0.5)
    iqr = _quantile(ordered, count, 0.75) - _quantile(ordered, count, 0.25)
    # |sorted - median| falls then rises (NaN stays last): two runs, which the stable sort
    # (timsort) merges in linear time instead of sorting from scratch.
    deviation = np.sort(np.abs(ordered - median[:, None]), axis=1, kind="stable")
    return median, _quantile(deviation, count, 0.5), iqr


# --- cleaning -----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CleaningState:
    """Which features survive cleaning on one training set, and why the others do not.

    Attributes
    ----------
    names : input feature names (length F).
    kept : surviving names, in input order; ``kept_index`` their positions (int64).
    dropped : name -> reason, in input order.
    usable_ratio : (F,) finite training entries / (training rows x assets).
    variance : (F,) pooled training variance (ddof 0); NaN without training values.
    abs_corr : (F, F) pooled pairwise-complete |corr| among the features that reached the
        duplicate filter; NaN elsewhere and where undefined (fewer than 2 shared rows or a
        feature constant on the shared rows).
    """

    names: tuple[str, ...]
    kept: list[str]
    kept_index: np.ndarray
    dropped: dict[str, str]
    usable_ratio: np.ndarray
    variance: np.ndarray
    abs_corr: np.ndarray

    def select(self, X: np.ndarray) -> np.ndarray:
        """The kept features of a ``(T, A, F)`` array (``X[..., kept_index]``)."""
        return X[..., self.kept_index]


def fit_cleaning(
    X: np.ndarray,
    names: Sequence[str],
    train_idx: np.ndarray,
    cfg: PreprocessingConfig,
    seed: int,
) -> CleaningState:
    """Fit the feature filters of nestedcv section 6 on the training rows only.

    Filters, in order (a feature dropped by one is not seen by the next):

    1. no finite training value at all, or usable ratio ``< min_usable_ratio``;
    2. pooled variance ``< min_variance``;
    3. duplicates: pooled pairwise-complete ``|corr| > max_abs_corr`` (on a seeded random
       subsample of ``corr_subsample`` pooled (row, asset) observations when set). Greedy:
       the remaining features are visited by usable ratio descending, ties by input order;
       a feature is kept unless it duplicates one already kept (reason names the kept
       partner with the largest |corr|). So of a duplicate pair the more usable one stays,
       and on equal usability the earlier one.

    Parameters
    ----------
    X : (T, A, F) float array, non-finite = missing.
    names : the F feature names.
    train_idx : training row indices into ``X``.
    cfg : the ``preprocessing`` section of the simulation config.
    seed : seed of the ``corr_subsample`` draw.

    Returns
    -------
    CleaningState
    """
    block = _train_block(X, names, train_idx)
    n_rows, n_assets, n_features = block.shape
    pooled = block.reshape(n_rows * n_assets, n_features)
    observed = ~np.isnan(pooled)
    count = observed.sum(axis=0)
    usable = count / pooled.shape[0]
    variance = _pooled_variance(pooled, observed, count)

    reasons: dict[int, str] = {}
    empty = count == 0
    reasons.update((int(f), "no finite training value") for f in np.flatnonzero(empty))
    low_usable = ~empty & (usable < cfg.min_usable_ratio)
    reasons.update(
        (int(f), f"usable ratio {usable[f]:.6g} < min_usable_ratio {cfg.min_usable_ratio}")
        for f in np.flatnonzero(low_usable)
    )
    low_variance = ~empty & ~low_usable & (variance < cfg.min_variance)
    reasons.update(
        (int(f), f"variance {variance[f]:.6g} < min_variance {cfg.min_variance}")
        for f in np.flatnonzero(low_variance)
    )

    candidates = np.flatnonzero(~(empty | low_usable | low_variance))
    rows = _corr_rows(pooled.shape[0], cfg.corr_subsample, seed)
    abs_corr = np.full((len(names), len(names)), np.nan)
    abs_corr[np.ix_(candidates, candidates)] = np.abs(_pairwise_corr(pooled[rows][:, candidates]))
    reasons.update(_duplicate_reasons(candidates, usable, abs_corr, names, cfg.max_abs_corr))

    kept_index = np.array([f for f in range(len(names)) if f not in reasons], dtype=np.int64)
    return CleaningState(
        names=tuple(names),
        kept=[names[f] for f in kept_index],
        kept_index=kept_index,
        dropped={names[f]: reasons[f] for f in sorted(reasons)},
        usable_ratio=usable,
        variance=variance,
        abs_corr=abs_corr,
    )


def _pooled_variance(pooled: np.ndarray, observed: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Per-column variance (ddof 0) of the observed entries; NaN for empty columns."""
    filled = np.where(observed, pooled, 0.0)
    has = count > 0
    mean = np.divide(filled.sum(axis=0), count, out=np.full(count.shape, np.nan), where=has)
    squares = np.where(observed, (pooled - mean) ** 2, 0.0).sum(axis=0)
    return np.divide(squares, count, out=np.full(count.shape, np.nan), where=has)


def _corr_rows(n_rows: int, subsample: int | None, seed: int) -> np.ndarray:
    """All pooled rows, or a sorted seeded draw of ``subsample`` of them (no replacement)."""
    if subsample is None or subsample >= n_rows:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=subsample, replace=False))


def _pairwise_corr(values: np.ndarray) -> np.ndarray:
    """Pearson correlation of every column pair over the rows where both are observed.

    One set of masked matrix products instead of a loop over pairs: with ``m`` the observed
    mask and ``x`` the centred values (0 where missing), ``n = m'm`` counts shared rows,
    ``s = x'm`` sums column i over rows shared with j, and the pairwise moments follow.
    """
    observed = ~np.isnan(values)
    mask = observed.astype(np.float64)
    count = observed.sum(axis=0)
    mean = np.where(observed, values, 0.0).sum(axis=0) / np.maximum(count, 1)
    # Centring first (correlation is shift invariant) keeps the moment sums well conditioned.
    x = np.where(observed, values - mean, 0.0)
    n = mask.T @ mask
    s = x.T @ mask
    ss = (x * x).T @ mask
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = x.T @ x - s * s.T / n
        var = ss - s * s / n
        defined = (n >= 2) & (var > _CONSTANT_REL_TOL * ss) & (var.T > _CONSTANT_REL_TOL * ss.T)
        corr = cov / np.sqrt(var * var.T)
    return np.where(defined, np.clip(corr, -1.0, 1.0), np.nan)


def _duplicate_reasons(
    candidates: np.ndarray,
    usable: np.ndarray,
    abs_corr: np.ndarray,
    names: Sequence[str],
    max_abs_corr: float,
) -> dict[int, str]:
    """Greedy duplicate filter (see ``fit_cleaning``); reasons of the dropped features."""
    order = candidates[np.lexsort((candidates, -usable[candidates]))]
    duplicate = np.nan_to_num(abs_corr, nan=0.0) > max_abs_corr
    np.fill_diagonal(duplicate, False)
    kept = np.zeros(len(names), dtype=bool)
    reasons: dict[int, str] = {}
    # Inherently sequential (a feature's fate depends on which earlier ones were kept), but
    # each step is one vectorized row test over the precomputed duplicate matrix.
    for f in order:
        clash = duplicate[f] & kept
        if clash.any():
            partner = int(np.argmax(np.where(clash, abs_corr[f], -1.0)))
            reasons[int(f)] = (
                f"|corr| {abs_corr[f, partner]:.6g} with {names[partner]!r} "
                f"> max_abs_corr {max_abs_corr}"
            )
        else:
            kept[f] = True
    return reasons


# --- scaling ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ScalingState:
    """Scaling fitted on one training set (all arrays; A assets, F features).

    Attributes
    ----------
    names : input feature names (F); ``output_names`` the names of ``transform``'s channels
        (the F names, then ``<name>__missing`` for each when ``append_mask``).
    kinds : (F,) ``"robust"``, ``"breakout"`` or ``"passthrough"``.
    winsor_low, winsor_high : (F,) pooled training quantiles of robust features;
        -inf / +inf (no winsorization) for the other kinds.
    median, scale : (F,) pooled robust location and composite scale; NaN if not robust.
    guard_spread : (A, F) per asset-feature ``max(1.4826 * MAD, IQR / 1.349)`` of robust
        features (NaN otherwise or without training values).
    breakout_p : (A, F) per-asset training mean of breakout features; NaN otherwise.
    zeroed : (A, F) columns set to 0 (near-constant guard, constant breakout columns).
    shift, divisor : (A, F) the affine map actually applied: ``(x - shift) / divisor``
        (0 and 1 for passthrough and zeroed columns).
    append_mask : whether ``transform`` appends the missing mask as channels.
    """

    names: tuple[str, ...]
    output_names: tuple[str, ...]
    kinds: np.ndarray
    winsor_low: np.ndarray
    winsor_high: np.ndarray
    median: np.ndarray
    scale: np.ndarray
    guard_spread: np.ndarray
    breakout_p: np.ndarray
    zeroed: np.ndarray
    shift: np.ndarray
    divisor: np.ndarray
    append_mask: bool


def fit_scaling(
    X: np.ndarray,
    names: Sequence[str],
    train_idx: np.ndarray,
    cfg: PreprocessingConfig,
    assets: Sequence[str] | None = None,
    use_names: bool = True,
) -> ScalingState:
    """Fit the scaling of nestedcv section 6 on the training rows only (see module doc).

    Parameters
    ----------
    X : (T, A, F) float array, non-finite = missing (normally the cleaned features).
    names : the F feature names.
    train_idx : training row indices into ``X``.
    cfg : the ``preprocessing`` section of the simulation config.
    assets : the A asset names, used only in error messages.
    use_names : apply the name rules (``brk_*`` centred, ``cs_rank_*`` passed through;
        ``flags.use_feature_names_for_scaling``); False robust-scales every feature.

    Returns
    -------
    ScalingState

    Raises
    ------
    DataError
        A robust feature has no training value, or a scaled training value is not finite
        or exceeds ``max_abs_fail`` (names feature, asset, row and value).
    """
    block = _train_block(X, names, train_idx)
    n_rows, n_assets, n_features = block.shape
    kinds = np.array([feature_kind(name) if use_names else ROBUST for name in names], dtype="<U11")
    robust, breakout = kinds == ROBUST, kinds == BREAKOUT

    low, high, median, scale = _pooled_robust(block, names, robust, cfg)
    # One sorted row per (asset, feature): the near-constant guard and the breakout p.
    per_asset, asset_count = _sorted_rows(
        np.moveaxis(np.clip(block, low, high), 0, 2).reshape(n_assets * n_features, n_rows)
    )
    guard_spread, guard = _near_constant_guard(per_asset, asset_count, cfg)
    p, constant = _breakout_stats(per_asset, asset_count)

    shape = (n_assets, n_features)
    zeroed = (robust & guard.reshape(shape)) | (breakout & constant.reshape(shape))
    p = np.where(breakout, p.reshape(shape), np.nan)
    shift = np.where(robust, median, np.where(breakout, p, 0.0))
    divisor = np.where(
        robust, scale, np.where(breakout, np.sqrt(p * (1.0 - p) + cfg.breakout_var_floor), 1.0)
    )
    mask_names = [f"{name}{MISSING_SUFFIX}" for name in names]
    state = ScalingState(
        names=tuple(names),
        output_names=tuple(names) + (tuple(mask_names) if cfg.append_mask_as_features else ()),
        kinds=kinds,
        winsor_low=low,
        winsor_high=high,
        median=np.where(robust, median, np.nan),
        scale=np.where(robust, scale, np.nan),
        guard_spread=np.where(robust, guard_spread.reshape(shape), np.nan),
        breakout_p=p,
        zeroed=zeroed,
        shift=np.where(zeroed, 0.0, shift),
        divisor=np.where(zeroed, 1.0, divisor),
        append_mask=bool(cfg.append_mask_as_features),
    )
    _fail_fast(block, np.asarray(train_idx), state, cfg.max_abs_fail, assets)
    return state


def _pooled_robust(
    block: np.ndarray, names: Sequence[str], robust: np.ndarray, cfg: PreprocessingConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Winsor bounds (+-inf unless robust), median and composite scale, pooled per feature."""
    n_rows, n_assets, n_features = block.shape
    pooled, count = _sorted_rows(np.moveaxis(block, 2, 0).reshape(n_features, n_rows * n_assets))
    _require_training_values(names, robust & (count == 0))
    low = np.where(robust, _quantile(pooled, count, cfg.winsor_low_q), -np.inf)
    high = np.where(robust, _quantile(pooled, count, cfg.winsor_high_q), np.inf)
    # Clipping is monotone, so the clipped sorted rows are the sorted winsorized ones.
    median, mad, iqr = _robust_stats(np.clip(pooled, low[:, None], high[:, None]), count)
    spread = np.maximum(MAD_TO_SIGMA * (mad + cfg.mad_eps), iqr / IQR_TO_SIGMA)
    return low, high, median, np.maximum(spread, cfg.scale_floor)


def _near_constant_guard(
    ordered: np.ndarray, count: np.ndarray, cfg: PreprocessingConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Spread ``max(1.4826 MAD, IQR / 1.349)`` of each sorted row and whether it is tiny."""
    median, mad, iqr = _robust_stats(ordered, count)
    spread = np.maximum(MAD_TO_SIGMA * mad, iqr / IQR_TO_SIGMA)
    tiny = (spread < cfg.guard_abs_eps) | (
        spread < cfg.guard_rel_eps * (np.abs(median) + cfg.guard_rel_offset)
    )
    return spread, tiny  # NaN (no training value) compares False: not guarded


def _require_training_values(names: Sequence[str], empty: np.ndarray) -> None:
    if empty.any():
        name = names[int(np.flatnonzero(empty)[0])]
        raise DataError(
            f"preprocessing: feature {name!r} has no finite value on the training rows, so "
            "it cannot be scaled; fit_cleaning drops such features (apply it first)",
            column=name,
        )


def _breakout_stats(ordered: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Of each sorted row: the mean, and whether it is constant or empty."""
    total = np.where(np.isnan(ordered), 0.0, ordered).sum(axis=1)
    mean = np.divide(total, count, out=np.full(count.shape, np.nan), where=count > 0)
    last = np.take_along_axis(ordered, np.maximum(count - 1, 0)[:, None], axis=1)[:, 0]
    return mean, (count == 0) | (ordered[:, 0] == last)


def _scale(X: np.ndarray, state: ScalingState) -> tuple[np.ndarray, np.ndarray]:
    """Winsorized, shifted, divided and guard-zeroed values (no clip) and observed mask."""
    if X.ndim != 3 or X.shape[1:] != state.shift.shape:
        n_assets, n_features = state.shift.shape
        raise ValueError(f"X must be (T, {n_assets}, {n_features}), got {X.shape}")
    observed = np.isfinite(X)
    values = np.clip(np.where(observed, X, np.nan), state.winsor_low, state.winsor_high)
    with np.errstate(invalid="ignore", divide="ignore"):  # a 0 divisor is caught by _fail_fast
        scaled = (values - state.shift) / state.divisor
    return np.where(state.zeroed & observed, 0.0, scaled), observed


def _fail_fast(
    block: np.ndarray,
    train_idx: np.ndarray,
    state: ScalingState,
    max_abs_fail: float,
    assets: Sequence[str] | None,
) -> None:
    """Every observed scaled training value must be finite with ``|v| <= max_abs_fail``."""
    scaled, observed = _scale(block, state)
    with np.errstate(invalid="ignore"):
        bad = observed & ~(np.abs(scaled) <= max_abs_fail)  # NaN/inf compare False
    if not bad.any():
        return
    i, a, f = (int(k) for k in np.argwhere(bad)[0])
    name = state.names[f]
    asset = assets[a] if assets is not None else f"#{a}"
    floor = "breakout_var_floor" if state.kinds[f] == BREAKOUT else "scale_floor"
    raise DataError(
        f"preprocessing: scaled training value of feature {name!r}, asset {asset!r}, "
        f"row {int(train_idx[i])} (raw {block[i, a, f]!r}) must be finite with |value| <= "
        f"max_abs_fail {max_abs_fail}; fitted shift {state.shift[a, f]!r}, divisor "
        f"{state.divisor[a, f]!r}: the training scale collapsed; raise "
        f"preprocessing.{floor} or drop the feature",
        column=name,
        value=float(scaled[i, a, f]),
    )


def transform(
    X: np.ndarray, state: ScalingState, cfg: PreprocessingConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Apply a fitted scaling to any rows of ``X`` (row by row; no statistic is refitted).

    Parameters
    ----------
    X : (T, A, F) float array with the features ``state.names``, non-finite = missing.
    state : from ``fit_scaling``.
    cfg : the ``preprocessing`` section (clip bounds, imputation; ``append_mask_as_features``
        must be the one the state was fitted with).

    Returns
    -------
    X_scaled : (T, A, F_out) float64, channels ``state.output_names``; missing entries NaN,
        or 0 with ``impute_missing_to_zero``; mask channels are 1.0 where missing.
    missing_mask : (T, A, F_out) bool, aligned with ``X_scaled`` (False on mask channels).
    """
    if bool(cfg.append_mask_as_features) != state.append_mask:
        raise ValueError("append_mask_as_features differs from the one the state was fit with")
    scaled, observed = _scale(X, state)
    passthrough = state.kinds == PASSTHROUGH
    scaled = np.clip(
        scaled,
        np.where(passthrough, -np.inf, cfg.clip_min),
        np.where(passthrough, np.inf, cfg.clip_max),
    )
    missing = ~observed
    if cfg.impute_missing_to_zero:
        scaled = np.where(missing, 0.0, scaled)
    if state.append_mask:
        scaled = np.concatenate([scaled, missing.astype(np.float64)], axis=2)
        missing = np.concatenate([missing, np.zeros_like(missing)], axis=2)
    return scaled, missing

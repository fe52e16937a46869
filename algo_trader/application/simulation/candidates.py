"""Candidate hyperparameter sets from ``tuning.space`` (``nestedcv.md`` section 7).

Categorical and bool entries define strata (their combinations, see
:meth:`TuningConfig.strata`). Inside each stratum the active float/int entries are
sampled together with one scrambled Sobol sequence of ``num_samples / strata`` points (a
power of two, so every one-dimensional projection puts exactly one point in each of the
``n`` equal slices of the unit interval) and mapped through their transform:

- ``linear`` / ``none``: ``low + u (high - low)``;
- ``log`` / ``log10``: log-uniform, ``exp(log low + u (log high - log low))`` (the base
  does not change the distribution; ``log10`` reads naturally for bounds in decades);
- ``int``: the same map over ``[low, high + 1)`` then floored, so both bounds are reachable.

Each stratum's scrambling seed is derived from ``tuning.seed`` and the stratum index
(``SeedSequence([seed, index])``), so strata draw independent sequences. Candidate ids are
zero-padded positions (``"0000"``, ``"0001"``...), strata in order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import qmc

from algo_trader.domain.simulation.config import TuningConfig, TuningParam, check_num_samples

Candidates = dict[str, dict[str, object]]


def generate_candidates(tuning: TuningConfig) -> Candidates:
    """All candidates of ``tuning.space``: ``candidate_id -> {dotted path: value}``.

    Parameters
    ----------
    tuning
        The validated ``tuning`` section.

    Returns
    -------
    dict[str, dict[str, object]]
        Deterministic for a given ``tuning``; entries whose ``when`` fails in a stratum
        are absent from its candidates. A stratum without active float/int entries gives
        one candidate (more would repeat the same fit).

    Raises
    ------
    ConfigError
        ``num_samples`` does not split into a power of two per stratum (checked before
        any sampling).
    """
    strata = tuning.strata()
    per_stratum = check_num_samples(tuning.num_samples, len(strata))
    rows: list[dict[str, object]] = []
    # A loop over strata (a handful); the samples inside each are drawn in one call.
    for index, stratum in enumerate(strata):
        rows.extend(_stratum_rows(tuning, index, stratum, per_stratum))
    width = max(4, len(str(len(rows) - 1)))
    return {f"{i:0{width}d}": row for i, row in enumerate(rows)}


def _stratum_rows(
    tuning: TuningConfig, index: int, stratum: Mapping[str, Any], n: int
) -> list[dict[str, object]]:
    numeric = [p for p in tuning.space if p.is_numeric and p.active(stratum)]
    active = {p.path for p in numeric} | set(stratum)
    order = [p.path for p in tuning.space if p.path in active]
    if not numeric:
        return [{path: stratum[path] for path in order}]
    seed = np.random.SeedSequence([tuning.seed, index])
    unit = qmc.Sobol(len(numeric), scramble=True, rng=np.random.default_rng(seed)).random(n)
    values = map_unit(unit, numeric)
    columns = {
        p.path: (col.astype(np.int64) if p.type == "int" else col).tolist()
        for p, col in zip(numeric, values.T, strict=True)
    }
    table = [columns[path] if path in columns else [stratum[path]] * n for path in order]
    return [dict(zip(order, row, strict=True)) for row in zip(*table, strict=True)]


def map_unit(unit: np.ndarray, params: Sequence[TuningParam]) -> np.ndarray:
    """Map unit-cube points to parameter values, one column per float/int entry.

    Parameters
    ----------
    unit
        ``(n, d)`` points in ``[0, 1)``.
    params
        ``d`` float/int entries, in column order.

    Returns
    -------
    np.ndarray
        ``(n, d)`` float64 values inside each entry's bounds (int columns hold whole
        numbers in ``[low, high]``).
    """
    bounds = np.array([p.bounds for p in params], dtype=np.float64).reshape(len(params), 2)
    low, high = bounds[:, 0], bounds[:, 1]
    is_int = np.array([p.type == "int" for p in params], dtype=bool)
    is_log = np.array([p.transform in ("log", "log10") for p in params], dtype=bool)
    lo = low.copy()
    hi = np.where(is_int, high + 1.0, high)
    lo[is_log], hi[is_log] = np.log(lo[is_log]), np.log(hi[is_log])
    values = lo + unit * (hi - lo)
    values[:, is_log] = np.exp(values[:, is_log])
    values[:, is_int] = np.floor(values[:, is_int])
    # exp/log round-off can step a hair outside the bounds.
    return np.clip(values, low, high)


def candidates_payload(candidates: Mapping[str, Mapping[str, object]]) -> Candidates:
    """The content of ``cv/candidates.json``: ``candidate_id -> params`` (the spec's mapping).

    Ids and parameter paths are sorted so the file is byte-identical for the same seed.
    """
    return {cid: dict(sorted(candidates[cid].items())) for cid in sorted(candidates)}

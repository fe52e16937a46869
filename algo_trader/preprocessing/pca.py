"""``pca``: z-score (fit window), then principal components of the fit-window rows.

Steps
    1. Z-score every asset with its fit-window mean/std exactly as ``zscore`` does (same
       ``start_date``, ``end_date``, ``missing``); ``missing=zero`` puts 0 (the mean) in
       missing cells, ``missing=drop`` removes rows with any missing asset.
    2. SVD of the fit-window rows ``Z_fit`` (n x A) only, leaving out weeks where every
       asset is missing (e.g. the first week): ``Z_fit = U S V^T``. The z-scores
       are not re-centered. Eigenvalues are ``S**2 / (n - 1)``, i.e. those of
       ``Z_fit^T Z_fit / (n - 1)`` (the correlation matrix when nothing is missing);
       explained ratio = eigenvalue / sum of eigenvalues.
    3. ``k`` components, or with ``variance=v`` the smallest ``k`` whose cumulative explained
       ratio reaches ``v``.
    4. Sign convention (deterministic): each loading vector is flipped so that its entry of
       largest absolute value is positive (the first such entry on an exact tie).
    5. Factors = ``Z @ V_k`` for every output row (inside the window or not).

A factor row is marked missing in ``factors.pt`` when every asset of that week is missing
(its value is then 0); rows with some assets missing use the zero-filled z-scores.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from algo_trader.domain.errors import ConfigError, DataError
from algo_trader.preprocessing.args import (
    arg_error,
    parse_positive_int,
    parse_unit_fraction,
)
from algo_trader.preprocessing.base import Preprocessor, Processed, masked_payload
from algo_trader.preprocessing.zscore import (
    ZScore,
    fit_metadata,
    fit_zscore,
    handle_missing,
    parse_scaling,
    window_rows,
)

CUMULATIVE_TOL = 1e-12  # so that variance=1.0 is reached despite rounding in the ratios


@dataclass(frozen=True)
class Components:
    """The SVD of the fit-window z-scores, sign-fixed."""

    eigenvalues: np.ndarray
    explained: np.ndarray
    vectors: np.ndarray  # A x r, columns = principal directions
    fit_rows: int


def principal_components(z_fit: np.ndarray, preprocessor: str) -> Components:
    """Eigen-decomposition of ``z_fit^T z_fit / (n - 1)`` via SVD, signs fixed.

    Raises
    ------
    DataError
        When the window has fewer than two rows or no variance at all.
    """
    n = z_fit.shape[0]
    if n < 2:
        raise DataError(
            f"preprocessor {preprocessor!r}: PCA needs at least 2 fit-window rows, got {n}; "
            "widen start_date/end_date or use missing=zero"
        )
    _, s, vt = np.linalg.svd(z_fit, full_matrices=False)
    eigenvalues = s**2 / (n - 1)
    total = eigenvalues.sum()
    if not total > 0:
        raise DataError(
            f"preprocessor {preprocessor!r}: every asset is constant in the fit window; "
            "PCA has no variance to explain"
        )
    vectors = vt.T
    largest = np.argmax(np.abs(vectors), axis=0)
    signs = np.sign(vectors[largest, np.arange(vectors.shape[1])])
    return Components(eigenvalues, eigenvalues / total, vectors * signs, n)


def check_k(pca: Pca, n_assets: int) -> None:
    """``k`` cannot exceed the number of assets (checked before any work)."""
    if pca.k is not None and pca.k > n_assets:
        raise arg_error(
            pca.name,
            "k",
            str(pca.k),
            f"must be at most the {n_assets} columns (assets) of returns.csv",
        )


def choose_k(pca: Pca, comps: Components) -> int:
    """``k`` as given (checked against the fit rows) or the smallest reaching ``variance``."""
    available = len(comps.eigenvalues)
    if pca.k is None:
        assert pca.variance is not None  # from_args requires one of the two
        cumulative = np.cumsum(comps.explained)
        return min(int(np.searchsorted(cumulative, pca.variance - CUMULATIVE_TOL)) + 1, available)
    if pca.k > available:
        raise arg_error(
            pca.name,
            "k",
            str(pca.k),
            f"must be at most {available}: the fit window has only {comps.fit_rows} usable rows",
        )
    return pca.k


def _eigen_table(comps: Components) -> pd.DataFrame:
    names = [f"PC{i + 1}" for i in range(len(comps.eigenvalues))]
    return pd.DataFrame(
        {
            "eigenvalue": comps.eigenvalues,
            "explained_ratio": comps.explained,
            "cumulative": np.cumsum(comps.explained),
        },
        index=pd.Index(names, name="component"),
    )


def _factor_tensors(
    factors: pd.DataFrame, empty_rows: np.ndarray, loadings: pd.DataFrame
) -> dict[str, dict[str, Any]]:
    names = list(map(str, factors.columns))
    missing = np.repeat(empty_rows[:, None], len(names), axis=1)
    index = pd.DatetimeIndex(factors.index)
    return {
        "factors.pt": masked_payload(factors.to_numpy(), missing, index, names, "factors"),
        "loadings.pt": {
            "values": torch.from_numpy(loadings.to_numpy(copy=True)),
            "assets": list(map(str, loadings.index)),
            "factors": names,
        },
    }


@dataclass(frozen=True)
class Pca(Preprocessor):
    """Z-score then PCA on the fit window; exactly one of ``k`` / ``variance``."""

    scaling: ZScore
    k: int | None = None
    variance: float | None = None

    name: ClassVar[str] = "pca"
    keys: ClassVar[tuple[str, ...]] = ("k", "variance", *ZScore.keys)

    @classmethod
    def from_args(cls, pairs: Mapping[str, str]) -> Pca:
        if "k" in pairs and "variance" in pairs:
            raise arg_error(
                cls.name,
                "variance",
                pairs["variance"],
                f"give k or variance, not both (k={pairs['k']})",
            )
        if "k" not in pairs and "variance" not in pairs:
            raise ConfigError(
                f"preprocessor {cls.name!r}: needs --preprocessor-arg k=N (a positive integer) "
                "or --preprocessor-arg variance=V (a number in (0, 1]); neither was given"
            )
        scaling = parse_scaling(cls.name, pairs)
        if "k" in pairs:
            return cls(scaling, k=parse_positive_int(cls.name, "k", pairs["k"]))
        return cls(scaling, variance=parse_unit_fraction(cls.name, "variance", pairs["variance"]))

    def describe(self) -> dict[str, Any]:
        return {"k": self.k, "variance": self.variance, **self.scaling.describe()}

    def process(self, returns: pd.DataFrame) -> Processed:
        check_k(self, returns.shape[1])
        fit = fit_zscore(returns, self.scaling.start_date, self.scaling.end_date, self.name)
        kept = handle_missing(fit.apply(returns), self.scaling.missing, self.name)
        z = kept.fillna(0.0).to_numpy()
        empty_rows = kept.isna().all(axis=1).to_numpy()
        # a week with no asset observed carries no information: it is not a fit row
        window = window_rows(
            pd.DatetimeIndex(kept.index), self.scaling.start_date, self.scaling.end_date
        )
        comps = principal_components(z[window & ~empty_rows], self.name)
        k = choose_k(self, comps)
        names = [f"PC{i + 1}" for i in range(k)]
        loadings = pd.DataFrame(
            comps.vectors[:, :k], index=pd.Index(returns.columns, name="asset"), columns=names
        )
        factors = pd.DataFrame(z @ loadings.to_numpy(), index=kept.index, columns=names)
        reached = float(np.cumsum(comps.explained)[k - 1])
        return Processed(
            frame=factors,
            main_file="factors.csv",
            tensors=_factor_tensors(factors, empty_rows, loadings),
            tables={"loadings.csv": loadings, "eigenvalues.csv": _eigen_table(comps)},
            metadata={
                **fit_metadata(fit, returns, self.scaling),
                "k": k,
                "explained_variance": reached,
                "sign_convention": "largest-|loading| entry of each component is positive",
            },
            notes=(
                f"fit window: {comps.fit_rows} weeks; k={k} explains {reached:.1%} of the "
                "fit-window variance",
            ),
        )

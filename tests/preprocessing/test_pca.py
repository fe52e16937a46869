from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algo_trader.domain.errors import ConfigError, DataError
from algo_trader.preprocessing.pca import Pca, principal_components
from algo_trader.preprocessing.zscore import ZScore

NAN = np.nan
END = date(2024, 1, 26)
R2 = math.sqrt(2.0)


def pca(k: int | None = None, variance: float | None = None, **scaling: object) -> Pca:
    return Pca(ZScore(**scaling), k=k, variance=variance)  # type: ignore[arg-type]


def test_from_args() -> None:
    parsed = Pca.from_args({"k": "2", "missing": "drop", "end_date": "2024-01-26"})
    assert parsed == pca(k=2, missing="drop", end_date=END)
    assert Pca.from_args({"variance": "0.9"}) == pca(variance=0.9)


@pytest.mark.parametrize(
    ("pairs", "pattern"),
    [
        ({"k": "2", "variance": "0.9"}, r"variance='0.9'.*k or variance, not both \(k=2\)"),
        ({}, r"needs --preprocessor-arg k=N.*or --preprocessor-arg variance=V.*neither"),
        ({"variance": "1.5"}, r"variance='1.5'.*\(0, 1\]"),
        ({"k": "0"}, r"k='0'.*positive integer"),
        ({"k": "2", "start_date": "2024-13-01"}, r"start_date='2024-13-01'.*YYYY-MM-DD"),
        ({"k": "2", "missing": "foo"}, r"missing='foo'.*zero, drop"),
    ],
)
def test_from_args_errors(pairs: dict[str, str], pattern: str) -> None:
    with pytest.raises(ConfigError, match=rf"preprocessor 'pca'.*{pattern}"):
        Pca.from_args(pairs)


def test_hand_checked_components(returns: pd.DataFrame) -> None:
    # fit rows 1-3 z-score to [[-1, 1], [0, -1], [1, 0]] (row 0 has no asset: not a fit row);
    # Z^T Z / 2 = [[1, -0.5], [-0.5, 1]]: eigenvalues 1.5 and 0.5, vectors (1, -1)/√2, (1, 1)/√2
    out = pca(k=2, end_date=END).process(returns)
    eig = out.tables["eigenvalues.csv"]
    np.testing.assert_allclose(eig["eigenvalue"], [1.5, 0.5], rtol=1e-14)
    np.testing.assert_allclose(eig["explained_ratio"], [0.75, 0.25], rtol=1e-14)
    np.testing.assert_allclose(eig["cumulative"], [0.75, 1.0], rtol=1e-14)
    loadings = out.tables["loadings.csv"].to_numpy()
    np.testing.assert_allclose(np.abs(loadings), np.full((2, 2), 1 / R2), rtol=1e-14)
    np.testing.assert_allclose(loadings[:, 1], [1 / R2, 1 / R2], rtol=1e-14)  # no tie on PC2
    s1 = np.sign(loadings[0, 0])  # PC1 is an exact |loading| tie: either sign is valid
    assert loadings[np.argmax(np.abs(loadings[:, 0])), 0] > 0
    # factors: z rows [0,0], [-1,1], [0,-1], [1,0], [3,3], [0,2] times the loadings
    expected = np.array(
        [[0, 0], [-R2 * s1, 0], [s1 / R2, -1 / R2], [s1 / R2, 1 / R2], [0, 3 * R2], [-R2 * s1, R2]]
    )
    np.testing.assert_allclose(out.frame.to_numpy(), expected, atol=1e-14)
    mask = out.tensors["factors.pt"]["missing_mask"].numpy()
    assert mask.tolist() == [[True, True]] + [[False, False]] * 5
    assert out.metadata["k"] == 2 and out.metadata["explained_variance"] == pytest.approx(1.0)


@pytest.mark.parametrize(("variance", "k"), [(0.5, 1), (0.75, 1), (0.76, 2), (1.0, 2)])
def test_variance_picks_smallest_k(returns: pd.DataFrame, variance: float, k: int) -> None:
    out = pca(variance=variance, end_date=END).process(returns)
    assert list(out.frame.columns) == [f"PC{i + 1}" for i in range(k)]
    assert out.tables["loadings.csv"].shape == (2, k)
    assert len(out.tables["eigenvalues.csv"]) == 2  # every component is reported


def test_against_numpy_eigh_on_generated_data(generated: pd.DataFrame) -> None:
    out = pca(k=5).process(generated)
    z = ((generated - generated.mean()) / generated.std(ddof=1)).to_numpy()[1:]
    values, vectors = np.linalg.eigh(np.cov(z, rowvar=False))
    values, vectors = values[::-1], vectors[:, ::-1]
    eig = out.tables["eigenvalues.csv"]["eigenvalue"].to_numpy()
    np.testing.assert_allclose(eig, values, rtol=1e-10)
    assert eig.sum() == pytest.approx(5.0, rel=1e-12)  # trace of a correlation matrix
    loadings = out.tensors["loadings.pt"]["values"].numpy()
    signs = np.sign(np.sum(loadings * vectors, axis=0))
    np.testing.assert_allclose(loadings, vectors * signs, atol=1e-10)
    np.testing.assert_allclose(out.frame.to_numpy()[1:], z @ loadings, atol=1e-12)
    assert out.tensors["loadings.pt"]["assets"] == list(generated.columns)
    assert out.tensors["factors.pt"]["factors"] == ["PC1", "PC2", "PC3", "PC4", "PC5"]


def test_sign_convention_largest_loading_positive(generated: pd.DataFrame) -> None:
    loadings = pca(k=5).process(generated).tables["loadings.csv"].to_numpy()
    top = loadings[np.argmax(np.abs(loadings), axis=0), np.arange(5)]
    assert (top > 0).all()
    flipped = pca(k=5).process(-generated).tables["loadings.csv"].to_numpy()
    np.testing.assert_allclose(flipped, loadings, atol=1e-12)  # sign of the data is irrelevant


def test_missing_drop_fits_complete_rows_only(returns: pd.DataFrame) -> None:
    out = pca(k=1, end_date=END, missing="drop").process(returns)
    assert list(out.frame.index) == list(returns.index[1:5])
    assert not out.tensors["factors.pt"]["missing_mask"].any()


def test_k_larger_than_columns(returns: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match=r"'pca'.*k='3'.*at most the 2 columns"):
        pca(k=3).process(returns)


def test_k_larger_than_fit_rows(generated: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match=r"'pca'.*k='4'.*at most 3: the fit window has only 3"):
        pca(k=4, end_date=date(2020, 1, 24)).process(generated)


def test_all_constant_window_has_no_variance(returns: pd.DataFrame) -> None:
    returns.iloc[1:4] = 0.5
    with pytest.raises(DataError, match=r"every asset is constant in the fit window"):
        pca(k=1, end_date=END).process(returns)


def test_principal_components_needs_two_rows() -> None:
    with pytest.raises(DataError, match=r"at least 2 fit-window rows, got 1"):
        principal_components(np.ones((1, 3)), "pca")


@settings(max_examples=20, deadline=None)
@given(
    end_row=st.integers(min_value=8, max_value=37),
    outside=st.sampled_from([NAN, 1e9, -1e9]),
    missing=st.sampled_from(["zero", "drop"]),
)
def test_rows_outside_the_window_never_change_the_loadings(
    end_row: int, outside: float, missing: str
) -> None:
    rng = np.random.default_rng(end_row)
    index = pd.date_range("2020-01-03 21:00", periods=40, freq="7D", tz="UTC", name="timestamp")
    data = pd.DataFrame(rng.normal(0, 0.02, (40, 4)), index=index, columns=list("WXYZ"))
    model = pca(
        variance=0.8, start_date=date(2020, 1, 10), end_date=index[end_row].date(), missing=missing
    )
    base = model.process(data)
    perturbed = data.copy()
    perturbed.iloc[0] = outside
    perturbed.iloc[end_row + 1 :] = outside
    moved = model.process(perturbed)
    assert np.array_equal(
        base.tensors["loadings.pt"]["values"].numpy(),
        moved.tensors["loadings.pt"]["values"].numpy(),
    )
    pd.testing.assert_frame_equal(
        base.tables["eigenvalues.csv"], moved.tables["eigenvalues.csv"], check_exact=True
    )

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algo_trader.domain.errors import ConfigError, DataError
from algo_trader.preprocessing.zscore import ZScore, window_rows

NAN = np.nan
END = date(2024, 1, 26)


def test_from_args_defaults_and_values() -> None:
    assert ZScore.from_args({}) == ZScore(None, None, "zero")
    parsed = ZScore.from_args(
        {"start_date": "2024-01-01", "end_date": "2024-01-01", "missing": "drop"}
    )
    assert parsed == ZScore(date(2024, 1, 1), date(2024, 1, 1), "drop")


@pytest.mark.parametrize(
    ("pairs", "pattern"),
    [
        (
            {"start_date": "2024-02-01", "end_date": "2024-01-01"},
            r"start_date='2024-02-01'.*not be after end_date=2024-01-01",
        ),
        ({"end_date": "2024-02-30"}, r"end_date='2024-02-30'.*YYYY-MM-DD"),
        ({"missing": "foo"}, r"missing='foo'.*one of zero, drop"),
    ],
)
def test_from_args_errors(pairs: dict[str, str], pattern: str) -> None:
    with pytest.raises(ConfigError, match=rf"preprocessor 'zscore'.*{pattern}"):
        ZScore.from_args(pairs)


def test_window_rows_dates_are_inclusive_utc_days(returns: pd.DataFrame) -> None:
    index = pd.DatetimeIndex(returns.index)
    assert window_rows(index, date(2024, 1, 12), date(2024, 1, 19)).tolist() == [
        False,
        True,
        True,
        False,
        False,
        False,
    ]
    assert window_rows(index, None, None).all()


def test_hand_checked_values_missing_zero(returns: pd.DataFrame) -> None:
    out = ZScore(end_date=END).process(returns)
    # window rows 1-3: A = 1, 2, 3 (mean 2, std 1); B = 4, 0, 2 (mean 2, std 2), ddof=1
    assert out.tensors["mean_ref.pt"]["values"].tolist() == [2.0, 2.0]
    assert out.tensors["std_ref.pt"]["values"].tolist() == [1.0, 2.0]
    assert out.tensors["std_ref.pt"]["scale"].tolist() == [1.0, 2.0]
    expected = [[0, 0], [-1, 1], [0, -1], [1, 0], [3, 3], [0, 2]]
    np.testing.assert_array_equal(out.frame.to_numpy(), np.array(expected, dtype=float))
    payload = out.tensors["processed_tensor.pt"]
    np.testing.assert_array_equal(payload["values"].numpy(), np.array(expected, dtype=float))
    np.testing.assert_array_equal(payload["missing_mask"].numpy(), returns.isna().to_numpy())
    assert payload["assets"] == ["A", "B"]
    assert out.metadata["fit_window"]["rows"] == 4
    assert out.metadata["fit_window"]["observed_per_asset"] == {"A": 3, "B": 3}
    assert out.metadata["ddof"] == 1


def test_missing_drop_removes_rows_with_any_missing(returns: pd.DataFrame) -> None:
    out = ZScore(end_date=END, missing="drop").process(returns)
    assert list(out.frame.index) == list(returns.index[1:5])
    np.testing.assert_array_equal(out.frame.to_numpy(), [[-1, 1], [0, -1], [1, 0], [3, 3]])
    assert not out.tensors["processed_tensor.pt"]["missing_mask"].any()
    # the statistics do not depend on the missing policy
    assert out.tensors["std_ref.pt"]["values"].tolist() == [1.0, 2.0]


def test_drop_that_removes_everything_is_an_error(returns: pd.DataFrame) -> None:
    # A is missing in even rows, B in odd rows: no row is complete
    returns["A"] = [NAN, 1.0, NAN, 2.0, NAN, 3.0]
    returns["B"] = [1.0, NAN, 2.0, NAN, 3.0, NAN]
    with pytest.raises(DataError, match=r"missing=drop removes every row"):
        ZScore(missing="drop").process(returns)


def test_default_window_is_full_range_against_pandas(generated: pd.DataFrame) -> None:
    out = ZScore().process(generated)
    np.testing.assert_allclose(
        out.tensors["mean_ref.pt"]["values"].numpy(), generated.mean(), rtol=1e-14
    )
    np.testing.assert_allclose(
        out.tensors["std_ref.pt"]["values"].numpy(), generated.std(ddof=1), rtol=1e-14
    )
    expected = ((generated - generated.mean()) / generated.std(ddof=1)).fillna(0.0)
    np.testing.assert_allclose(out.frame.to_numpy(), expected.to_numpy(), rtol=1e-12, atol=1e-15)


def test_zero_std_asset_is_only_centered(returns: pd.DataFrame) -> None:
    returns["C"] = [NAN, 0.1, 0.1, 0.1, 0.4, 0.1]
    out = ZScore(end_date=END).process(returns)
    assert out.tensors["std_ref.pt"]["values"][2].item() == pytest.approx(0.0, abs=1e-15)
    assert out.tensors["std_ref.pt"]["scale"][2].item() == 1.0
    assert out.metadata["zero_std_assets"] == ["C"]
    np.testing.assert_allclose(out.frame["C"].to_numpy(), [0, 0, 0, 0, 0.3, 0], atol=1e-15)
    assert np.isfinite(out.frame.to_numpy()).all()


def test_empty_window_is_a_config_error(returns: pd.DataFrame) -> None:
    with pytest.raises(
        ConfigError, match=r"'zscore'.*start_date=2030-01-01.*no row.*2024-01-05..2024-02-09"
    ):
        ZScore(start_date=date(2030, 1, 1)).process(returns)


def test_asset_with_one_observation_in_window_is_named(returns: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"at least 2 observed.*A \(1\), B \(1\)"):
        ZScore(end_date=date(2024, 1, 12)).process(returns)


@settings(max_examples=25, deadline=None)
@given(
    end_row=st.integers(min_value=3, max_value=37),
    outside=st.sampled_from([NAN, 1e9, -1e9, 0.0]),
    missing=st.sampled_from(["zero", "drop"]),
)
def test_rows_outside_the_window_never_change_the_statistics(
    end_row: int, outside: float, missing: str
) -> None:
    rng = np.random.default_rng(end_row)
    index = pd.date_range("2020-01-03 21:00", periods=40, freq="7D", tz="UTC", name="timestamp")
    data = pd.DataFrame(rng.normal(0, 0.02, (40, 3)), index=index, columns=["X", "Y", "Z"])
    zscore = ZScore(start_date=date(2020, 1, 10), end_date=index[end_row].date(), missing=missing)
    base = zscore.process(data)
    perturbed = data.copy()
    perturbed.iloc[0] = outside
    perturbed.iloc[end_row + 1 :] = outside
    moved = zscore.process(perturbed)
    for name in ("mean_ref.pt", "std_ref.pt"):
        assert np.array_equal(
            base.tensors[name]["values"].numpy(), moved.tensors[name]["values"].numpy()
        )

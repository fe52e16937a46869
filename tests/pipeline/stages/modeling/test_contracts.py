from __future__ import annotations

import pytest
import torch

from algo_trader.domain.errors import DataError
from algo_trader.pipeline.stages.modeling.contracts import (
    Configurable,
    ModelBatch,
    ModelShapeError,
    per_fit,
)


def _t(value: object) -> torch.Tensor:
    """The tensor behind an optional/union-typed field (the test expects one)."""
    assert isinstance(value, torch.Tensor)
    return value


def test_from_arrays_turns_nan_targets_into_mask_and_zeros() -> None:
    X = torch.zeros(3, 2, 1, dtype=torch.float64)
    y = torch.tensor([[1.0, float("nan")], [2.0, 3.0], [float("nan"), 4.0]], dtype=torch.float64)
    batch = ModelBatch.from_arrays(X, y)
    assert batch.X.dtype == torch.float32
    assert _t(batch.M).tolist() == [[True, False], [True, True], [False, True]]
    assert _t(batch.y).tolist() == [[1.0, 0.0], [2.0, 3.0], [0.0, 4.0]]
    assert ModelBatch.from_arrays(X, torch.ones(3, 2)).M is None


def test_non_finite_features_are_an_error_naming_the_first_index() -> None:
    X = torch.zeros(3, 2, 2)
    X[1, 0, 1] = float("nan")
    with pytest.raises(
        DataError, match=r"column 'X'.*1 NaN/inf.*\[1, 0, 1\].*impute_missing_to_zero"
    ):
        ModelBatch.from_arrays(X, None)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"X": torch.zeros(3, 2)}, r"X has shape \(3, 2\); expected \(T, A, F\)"),
        ({"X": torch.zeros(3, 2, 1), "y": torch.zeros(3, 3)}, r"y has shape \(3, 3\)"),
        ({"X": torch.zeros(3, 2, 1), "loss_mask": torch.ones(4, dtype=torch.bool)}, r"loss_mask"),
        (
            {"X": torch.zeros(3, 2, 1), "M": torch.ones(3, 2, dtype=torch.bool)},
            r"M given without y",
        ),
        (
            {"X": torch.zeros(2, 3, 2, 1), "fit_mask": torch.ones(3, 3, dtype=torch.bool)},
            r"expected \(T, A, F\) or \(3, T, A, F\)",
        ),
    ],
)
def test_shape_errors_name_the_tensor_and_shapes(kwargs: dict, message: str) -> None:
    with pytest.raises(ModelShapeError, match=message):
        ModelBatch(**kwargs)


def test_masks_rows_and_scales() -> None:
    batch = ModelBatch(
        X=torch.zeros(4, 2, 1),
        y=torch.zeros(4, 2),
        M=torch.tensor([[True, False]] * 4),
        fit_mask=torch.tensor([[True, True, False, True], [False, True, True, True]]),
        loss_mask=torch.tensor([False, True, True, True]),
        obs_scale=torch.tensor([2.0, 3.0]),
    )
    assert batch.num_fits == 2 and batch.fit_shape(2) == (2, 1, 1)
    assert _t(batch.row_mask()).tolist() == [[False, True, False, True], [False, True, True, True]]
    assert _t(batch.obs_mask()).shape == (2, 4, 2)
    assert _t(batch.obs_mask(per_asset=False)).shape == (2, 4)
    assert _t(batch.scale_for(2)).shape == (2, 1, 1)
    window = batch.rows(1, 3)
    assert window.X.shape == (2, 2, 1) and _t(window.fit_mask).tolist() == [
        [True, False],
        [True, True],
    ]
    assert ModelBatch(X=torch.zeros(2, 1, 1)).obs_mask() is True


def test_params_are_read_by_dotted_path_and_per_fit_values_shaped() -> None:
    model = Configurable({"likelihood": {"sigma_scale": 2.0}, "nu": torch.tensor([4.0, 5.0])})
    assert model.value("likelihood.sigma_scale", 1.0) == 2.0
    assert model.value("likelihood.missing", 7) == 7
    assert model.value("nu.deeper", 3) == 3
    assert _t(per_fit(model.value("nu", 1.0), 2)).shape == (2, 1, 1)
    assert per_fit(1.5, 2) == 1.5
    batch = ModelBatch(X=torch.zeros(3, 2, 1, dtype=torch.float64))
    hyper = model.hyper(batch, "nu", 1.0, 1)
    assert hyper.shape == (2, 1) and hyper.dtype == torch.float64

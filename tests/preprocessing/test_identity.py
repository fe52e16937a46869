from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from algo_trader.domain.errors import ConfigError
from algo_trader.preprocessing.identity import Identity


def test_default_is_no_copy() -> None:
    assert Identity.from_args({}) == Identity(copy=False)
    assert Identity.from_args({"copy": "True"}).copy is True


def test_bad_copy_value() -> None:
    with pytest.raises(ConfigError, match=r"'identity'.*copy='maybe'.*true or false"):
        Identity.from_args({"copy": "maybe"})


@pytest.mark.parametrize("copy", [False, True])
def test_passes_values_through_with_nan_and_mask(returns: pd.DataFrame, copy: bool) -> None:
    out = Identity(copy=copy).process(returns)
    pd.testing.assert_frame_equal(out.frame, returns)
    assert out.main_file == "processed.csv"
    assert out.copy_input is copy
    payload = out.tensors["processed_tensor.pt"]
    np.testing.assert_array_equal(payload["values"].numpy(), returns.to_numpy())
    np.testing.assert_array_equal(payload["missing_mask"].numpy(), returns.isna().to_numpy())
    assert payload["assets"] == ["A", "B"]
    assert out.file_names() == ["metadata.json", "processed.csv", "processed_tensor.pt"]

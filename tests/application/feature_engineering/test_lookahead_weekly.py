"""No look-ahead: every weekly feature at week t is the same on inputs truncated at t."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from algo_trader.application.feature_engineering.inputs import (
    FeatureInputs,
    GroupResult,
    truncate,
)
from algo_trader.application.feature_engineering.registry import default_group_registry

WEEKLY_GROUPS = ["momentum", "mean_reversion", "breakout", "cross_sectional"]
_FULL: dict[str, GroupResult] = {}


def _full(group: str, inputs: FeatureInputs) -> GroupResult:
    if group not in _FULL:
        spec = default_group_registry().get(group)
        _FULL[group] = spec.compute(inputs, list(spec.keys))
    return _FULL[group]


@pytest.mark.parametrize("group", WEEKLY_GROUPS)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_truncated_value_equals_full_history_value(
    generated_inputs: FeatureInputs, group: str, data: st.DataObject
) -> None:
    full = _full(group, generated_inputs)
    t = data.draw(st.integers(0, len(generated_inputs.weekly_index) - 1), label="t")
    spec = default_group_registry().get(group)
    cut = spec.compute(
        truncate(generated_inputs, generated_inputs.weekly_index[t]), list(spec.keys)
    )
    assert cut.names == full.names
    assert cut.values.shape[0] == t + 1
    # bit-for-bit: every kernel is causal and computes row t from rows <= t only
    np.testing.assert_array_equal(cut.values[t], full.values[t])
    np.testing.assert_array_equal(cut.goodness[t], full.goodness[t])

"""No look-ahead in the daily-input groups: truncating the inputs at any time ``t`` gives
exactly (bit for bit) the full-history values and goodness of every weekly label ``<= t``.

Generated bars (not market data) with missing days, a late start, a halt and a holiday.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from algo_trader.application.feature_engineering import regime, seasonal, volatility
from algo_trader.application.feature_engineering.inputs import (
    FeatureInputs,
    GroupResult,
    truncate,
)

GROUPS = {"volatility": volatility, "seasonal": seasonal, "regime": regime}
_FULL: dict[str, GroupResult] = {}


def awkward_inputs(
    daily_factory: Callable[..., pd.DataFrame], inputs_of: Callable[..., FeatureInputs]
) -> FeatureInputs:
    daily = daily_factory(n_assets=4, n_weeks=64, seed=41)
    daily.loc[np.random.default_rng(3).random(len(daily)) < 0.07, "GEN1"] = math.nan
    daily.loc[daily.index[:45], "GEN2"] = math.nan
    daily.loc[daily.index[150:175], "GEN3"] = math.nan
    return inputs_of(daily.drop(index=daily.index[[90, 201]]))


def full_result(name: str, inputs: FeatureInputs) -> GroupResult:
    if name not in _FULL:
        module = GROUPS[name]
        _FULL[name] = module.compute(inputs, list(module.GROUP.keys))
    return _FULL[name]


@pytest.mark.parametrize("name", list(GROUPS))
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_truncated_inputs_reproduce_full_history(
    name: str,
    data: st.DataObject,
    daily_factory: Callable[..., pd.DataFrame],
    inputs_of: Callable[..., FeatureInputs],
) -> None:
    inputs = awkward_inputs(daily_factory, inputs_of)
    full = full_result(name, inputs)
    first = inputs.daily_index[0]
    span = int((inputs.weekly_index[-1] - first).total_seconds())
    t = data.draw(
        st.one_of(
            st.sampled_from(list(inputs.weekly_index)),  # exactly a weekly label
            st.integers(0, span).map(lambda s: first + pd.Timedelta(seconds=s)),  # any time
        )
    )
    module = GROUPS[name]
    cut = module.compute(truncate(inputs, t), list(module.GROUP.keys))
    rows = cut.values.shape[0]
    assert rows == int(inputs.weekly_index.searchsorted(t, side="right"))
    assert cut.names == full.names
    np.testing.assert_array_equal(cut.values, full.values[:rows])
    np.testing.assert_array_equal(cut.goodness, full.goodness[:rows])

"""Noise canary: on returns that are independent noise nothing beats climatology.

The ridge test model (it uses the features) must not beat the climatological forecast
(the stub: a Gaussian fitted to the training targets, same walk-forward) by more than
``ES_Z`` standard errors of the mean weekly energy-score difference, and the backtest's
weekly net returns must have ``|t| < SR_T`` (``|SR| < 2`` standard errors, see
``canary_kit``). Data: generated i.i.d. returns, and the bundled real sample with each
asset's weekly returns permuted across time (keeps every marginal, breaks any signal).
With a deliberately leaky scaler double and a column planted with next week's return on
the test weeks, the same checks fail: the canary catches the leak.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from canary_kit import (
    ES_Z,
    SR_T,
    Panel,
    canary_config,
    generated_panel,
    outer_test_mask,
    panel_from_returns,
    run_canary,
    sample_weekly_returns,
    with_feature,
)

from algo_trader.application.simulation.cv_groups import OuterFold


def permuted_sample() -> Panel:
    weekly = sample_weekly_returns()
    rng = np.random.default_rng(2024)
    values = weekly.to_numpy()
    shuffled = rng.permuted(values, axis=0)  # each asset's column shuffled independently
    return panel_from_returns(
        shuffled, pd.DatetimeIndex(weekly.index), [str(c) for c in weekly.columns]
    )


def plant(panel: Panel, fold: OuterFold) -> Panel:
    return with_feature(
        panel, np.where(outer_test_mask(panel, fold), panel.y / 100.0, 0.0), "future"
    )


def test_generated_noise_beats_nothing() -> None:
    panel = generated_panel(seed=1)
    result = run_canary(panel, canary_config(panel.X.shape[0]))
    assert result.n_weeks == 48
    assert result.z_es > -ES_Z
    assert abs(result.t_sharpe) < SR_T


@pytest.mark.usefixtures("leaky_scaler")
def test_generated_noise_canary_catches_a_leaky_scaler() -> None:
    panel = generated_panel(seed=1)
    result = run_canary(panel, canary_config(panel.X.shape[0]), per_fold=plant)
    assert result.z_es < -ES_Z and result.t_sharpe > SR_T  # both checks of the canary fail


def test_permuted_sample_beats_nothing() -> None:
    panel = permuted_sample()
    result = run_canary(panel, canary_config(panel.X.shape[0], warmup_len=52, group_len=52))
    assert result.n_weeks == 104
    assert result.z_es > -ES_Z
    assert abs(result.t_sharpe) < SR_T


@pytest.mark.slow
@pytest.mark.usefixtures("leaky_scaler")
def test_permuted_sample_canary_catches_a_leaky_scaler() -> None:
    panel = permuted_sample()
    config = canary_config(panel.X.shape[0], warmup_len=52, group_len=52)
    result = run_canary(panel, config, per_fold=plant)
    assert result.z_es < -ES_Z and result.t_sharpe > SR_T  # the canary fails

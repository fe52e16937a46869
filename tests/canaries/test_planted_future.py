"""Planted-future canary: next week's return planted as a feature.

* only on a fold's outer TEST weeks (zero on its training rows): a leak-free pipeline
  cannot learn a relation it never sees, so the fold's results equal those without the
  feature (cleaning, fitted on the training rows only, drops the zero-variance column);
* on ALL weeks: the pipeline must exploit it (the canary can see a signal at all);
* with a deliberately leaky scaler double (cleaning and scaling fitted on all rows), the
  test-week plant IS exploited: the canary detects the leak.

Generated data (i.i.d. Student-t returns) in the fast tests, the bundled real sample's
weekly returns in the slow ones; the real CV / preprocessing / walk-forward and a ridge
test model (see ``canary_kit.py``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from canary_kit import (
    ES_Z,
    SR_T,
    CanaryResult,
    canary_config,
    generated_panel,
    outer_test_mask,
    panel_from_returns,
    run_canary,
    sample_weekly_returns,
    with_feature,
)

from algo_trader.application.simulation.cv_groups import OuterFold
from algo_trader.application.simulation.panel import Panel

PANEL = generated_panel(seed=0)
CONFIG = canary_config(PANEL.X.shape[0])


def plant_on_test_weeks(panel: Panel, fold: OuterFold) -> Panel:
    return with_feature(
        panel, np.where(outer_test_mask(panel, fold), panel.y / 100.0, 0.0), "future"
    )


def planted_run() -> CanaryResult:
    return run_canary(PANEL, CONFIG, per_fold=plant_on_test_weeks)


def test_test_week_plant_changes_nothing() -> None:
    without = run_canary(PANEL, CONFIG)
    planted = planted_run()
    assert planted == without  # bit-identical statistics: the column never reached a model
    assert planted.z_es > -ES_Z and abs(planted.t_sharpe) < SR_T


def test_all_week_plant_is_exploited() -> None:
    result = run_canary(with_feature(PANEL, PANEL.y / 100.0, "future"), CONFIG)
    assert result.z_es < -5.0 and result.es_model < 0.3 * result.es_climate
    assert result.t_sharpe > 5.0
    assert result.inner_objective > -0.2  # the inner objective sees it too (about -1.3 without)


@pytest.mark.usefixtures("leaky_scaler")
def test_leaky_scaler_lets_the_test_week_plant_through() -> None:
    leaked = planted_run()
    # the canary's pass condition fails: better than climatology and a significant Sharpe
    assert leaked.z_es < -ES_Z and leaked.t_sharpe > SR_T


def sample_panel() -> Panel:
    weekly = sample_weekly_returns()
    return panel_from_returns(
        weekly.to_numpy(), pd.DatetimeIndex(weekly.index), [str(c) for c in weekly.columns]
    )


@pytest.mark.slow
def test_on_the_bundled_sample() -> None:
    """The real sample's weekly returns (not permuted): both plants, and the leak check."""
    panel = sample_panel()
    config = canary_config(panel.X.shape[0], warmup_len=52, group_len=52)
    without = run_canary(panel, config)
    assert run_canary(panel, config, per_fold=plant_on_test_weeks) == without
    exploited = run_canary(with_feature(panel, panel.y / 100.0, "future"), config)
    assert exploited.z_es < -5.0 and exploited.t_sharpe > 5.0


@pytest.mark.slow
@pytest.mark.usefixtures("leaky_scaler")
def test_leaky_scaler_on_the_bundled_sample() -> None:
    panel = sample_panel()
    config = canary_config(panel.X.shape[0], warmup_len=52, group_len=52)
    leaked = run_canary(panel, config, per_fold=plant_on_test_weeks)
    assert leaked.z_es < -ES_Z and leaked.t_sharpe > SR_T

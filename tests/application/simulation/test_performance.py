"""Performance metrics, the Deflated Sharpe Ratio and the PBO.

Return series here are hand-written or generated (random normal draws), never real.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import rankdata

from algo_trader.application.simulation.performance import (
    buy_and_hold_returns,
    deflated_sharpe_ratio,
    drawdown_curve,
    expected_max_sharpe,
    performance_report,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    sharpe_ratio,
)

# ------------------------------------------------------------------------ DSR

# Bailey and Lopez de Prado (2014), numerical example: the best of N = 100 trials has an
# annualized SR of 2.5 on T = 1250 daily returns (250 a year) with skewness -3 and
# kurtosis 10; the trials' SRs have an annualized variance of 0.5. The paper reports
# SR_0 = 0.1132 and DSR = 0.9004 (per-period units).
PAPER_SR = 2.5 / math.sqrt(250)
PAPER_VAR = 0.5 / 250


def paper_trials() -> np.ndarray:
    """100 trial SRs with exactly the paper's variance (ddof=1); generated values."""
    raw = np.random.default_rng(0).normal(size=100)
    return (raw - raw.mean()) / raw.std(ddof=1) * math.sqrt(PAPER_VAR)


def test_expected_max_sharpe_matches_the_paper() -> None:
    assert expected_max_sharpe(100, PAPER_VAR) == pytest.approx(0.1132, abs=5e-5)
    assert expected_max_sharpe(1, PAPER_VAR) == 0.0


def test_deflated_sharpe_ratio_matches_the_paper() -> None:
    dsr = deflated_sharpe_ratio(PAPER_SR, 1250, -3.0, 10.0, paper_trials())
    assert dsr == pytest.approx(0.9004, abs=5e-5)


def test_psr_of_a_normal_series_is_the_t_approximation() -> None:
    # Normal returns (skew 0, kurtosis 3): Z(SR sqrt(T-1) / sqrt(1 + SR^2 / 2)).
    sr, n = 0.1, 200
    expected = 0.5 * math.erfc(-(sr * math.sqrt(n - 1) / math.sqrt(1 + sr**2 / 2)) / math.sqrt(2))
    assert probabilistic_sharpe_ratio(sr, 0.0, n, 0.0, 3.0) == pytest.approx(expected, rel=1e-12)


def test_more_trials_deflate_more() -> None:
    trials = paper_trials()
    assert deflated_sharpe_ratio(PAPER_SR, 1250, -3.0, 10.0, trials[:10]) > deflated_sharpe_ratio(
        PAPER_SR, 1250, -3.0, 10.0, trials
    )


# ------------------------------------------------------------------------ PBO


def pbo_by_the_paper(m: np.ndarray, n_splits: int) -> np.ndarray:
    """The CSCV steps of Bailey et al. (2017), one split at a time (reference)."""
    block = m.shape[0] // n_splits
    parts = np.split(m[m.shape[0] - block * n_splits :], n_splits)
    logits = []
    for chosen in itertools.combinations(range(n_splits), n_splits // 2):
        train = np.vstack([parts[i] for i in chosen])
        test = np.vstack([parts[i] for i in range(n_splits) if i not in chosen])
        sr_train = train.mean(axis=0) / train.std(axis=0, ddof=1)
        sr_test = test.mean(axis=0) / test.std(axis=0, ddof=1)
        best = int(np.argmax(sr_train))
        omega = rankdata(sr_test)[best] / (m.shape[1] + 1)
        logits.append(math.log(omega / (1 - omega)))
    return np.array(logits)


def test_pbo_matches_the_split_by_split_algorithm() -> None:
    m = np.random.default_rng(3).normal(0.0, 0.02, (203, 7))  # 3 leading rows dropped
    result = probability_of_backtest_overfitting(m, 8)
    expected = pbo_by_the_paper(m, 8)
    np.testing.assert_allclose(result.logits, expected, rtol=1e-9, atol=1e-12)
    assert result.pbo == pytest.approx(float((expected <= 0).mean()))
    assert len(result.logits) == math.comb(8, 4)


def test_pbo_is_zero_when_one_trial_wins_every_block() -> None:
    rng = np.random.default_rng(4)
    m = rng.normal(0.0, 0.01, (160, 5))
    m[:, 2] = np.abs(m[:, 2]) + 0.05  # beats every other trial in every row
    result = probability_of_backtest_overfitting(m, 8)
    assert result.pbo == 0.0
    assert result.prob_oos_loss == 0.0


def test_pbo_is_one_when_the_in_sample_winner_always_loses_out_of_sample() -> None:
    # Two mirror-image trials whose block sums add up to zero: the trial ahead in sample
    # is behind out of sample in every split (no half of the block sums is zero).
    block_sums = np.array([3.0, -1.0, -4.0, 2.0])
    wiggle = np.array([1.0, -1.0, 0.5, -0.5])
    a = (block_sums[:, None] / 4 + 0.1 * wiggle[None, :]).ravel()
    m = np.column_stack([a, -a])
    result = probability_of_backtest_overfitting(m, 4)
    assert result.pbo == 1.0
    assert result.prob_oos_loss == 1.0


def test_pbo_of_pure_noise_is_about_one_half() -> None:
    # Identically distributed noise trials: the in-sample winner's out-of-sample rank is
    # uniform, so PBO is 1/2 on average (single draws vary a lot; average 40).
    pbos = [
        probability_of_backtest_overfitting(
            np.random.default_rng(seed).normal(0.0, 0.02, (240, 20)), 8
        ).pbo
        for seed in range(40)
    ]
    assert abs(float(np.mean(pbos)) - 0.5) < 0.1


def test_pbo_with_a_dominant_true_strategy_is_near_zero() -> None:
    rng = np.random.default_rng(5)
    m = rng.normal(0.0, 0.02, (520, 30))
    m[:, 11] += 0.01  # a Sharpe of 0.5 per period among zero-mean trials
    result = probability_of_backtest_overfitting(m, 16)
    assert result.pbo < 0.01


def test_pbo_rejects_an_odd_split_count() -> None:
    with pytest.raises(ValueError, match="even"):
        probability_of_backtest_overfitting(np.zeros((10, 3)), 3)


# -------------------------------------------------------------------- report


def test_report_by_hand() -> None:
    net = np.array([0.10, -0.05, 0.02, 0.03])
    gross = net + np.array([0.001, 0.0, 0.002, 0.0])
    turnover = np.array([1.0, 0.0, 0.5, 0.1])
    weights = np.array([[0.5, 0.5], [0.5, 0.5], [1.0, 0.0], [0.9, 0.1]])
    report = performance_report(net, gross, turnover, weights, periods_per_year=52)
    mean, std = net.mean(), net.std(ddof=1)
    assert report.n_periods == 4
    assert report.total_return == pytest.approx(1.10 * 0.95 * 1.02 * 1.03 - 1)
    assert report.annualized_return == pytest.approx(mean * 52)
    assert report.annualized_volatility == pytest.approx(std * math.sqrt(52))
    assert report.sharpe == pytest.approx(mean / std * math.sqrt(52))
    # Downside deviation sqrt(mean(min(r, 0)^2)) = sqrt(0.05^2 / 4) = 0.025.
    assert report.sortino == pytest.approx(mean / 0.025 * math.sqrt(52))
    assert report.max_drawdown == pytest.approx(0.05)  # 1.10 -> 1.045
    assert report.hit_rate == 0.75
    assert report.mean_turnover == pytest.approx(0.4)
    assert report.total_cost == pytest.approx(0.003)
    assert report.mean_gross_leverage == pytest.approx(1.0)
    assert report.cagr == pytest.approx((1 + report.total_return) ** (52 / 4) - 1)
    # One trial: the DSR is the PSR against zero.
    assert report.dsr == pytest.approx(report.psr)
    assert report.expected_max_sharpe == 0.0
    assert set(report.to_dict()) >= {"sharpe", "dsr", "max_drawdown"}


def test_report_deflates_with_trial_sharpes() -> None:
    rng = np.random.default_rng(6)
    net = rng.normal(0.003, 0.02, 260)
    trials = rng.normal(0.0, 0.05, 50)
    report = performance_report(
        net, net, np.zeros(260), np.ones((260, 2)) / 2, n_trials=50, trial_sharpes=trials
    )
    sr = float(sharpe_ratio(net))
    assert report.expected_max_sharpe == pytest.approx(expected_max_sharpe(50, trials.var(ddof=1)))
    assert report.dsr == pytest.approx(
        deflated_sharpe_ratio(sr, 260, report.skewness, report.kurtosis, trials)
    )
    assert report.dsr < report.psr
    without = performance_report(net, net, np.zeros(260), np.ones((260, 2)) / 2, n_trials=50)
    assert math.isnan(without.dsr)


def test_report_refuses_nan_and_short_series() -> None:
    with pytest.raises(ValueError, match="net has 1 NaN"):
        performance_report(np.array([0.1, np.nan]), np.zeros(2), np.zeros(2), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="at least 2 periods"):
        performance_report(np.array([0.1]), np.zeros(1), np.zeros(1), np.zeros((1, 1)))


def test_drawdown_counts_a_first_period_loss() -> None:
    np.testing.assert_allclose(drawdown_curve(np.array([-0.1, 0.05, 0.1])), [-0.1, -0.055, 0.0])


def test_buy_and_hold_lets_weights_drift() -> None:
    r = np.array([[0.10, 0.00], [0.00, 0.10], [np.nan, -0.5]])
    out = buy_and_hold_returns(r, np.array([0.5, 0.5]))
    # Values: 0.55 + 0.5 = 1.05; 0.55 + 0.55 = 1.10; 0.55 + 0.275 = 0.825.
    np.testing.assert_allclose(out, [0.05, 1.10 / 1.05 - 1, 0.825 / 1.10 - 1])

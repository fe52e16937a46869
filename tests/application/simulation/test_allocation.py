"""Allocation policies: feasibility, closed forms, the CVaR LP, config errors.

Samples are generated (random normal draws), never real returns.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from scipy.optimize import minimize

from algo_trader.application.simulation.allocation import (
    ALLOCATION_POLICIES,
    allocate,
    check_allocation,
    empirical_cvar,
    solve_min_cvar,
)
from algo_trader.domain.errors import AlgoTraderError, ConfigError
from algo_trader.domain.simulation.config import AllocationConfig

TOL = 1e-9


def generated_samples(seed: int, n_samples: int, n_assets: int) -> np.ndarray:
    """Correlated draws with a common factor, weekly-return sized (generated)."""
    rng = np.random.default_rng(seed)
    drift = rng.normal(0.0, 0.004, n_assets)
    vol = rng.uniform(0.01, 0.05, n_assets)
    common = rng.normal(0.0, 0.02, (n_samples, 1))
    return drift + vol * rng.normal(size=(n_samples, n_assets)) + 0.5 * common


def assert_feasible(w: np.ndarray, cfg: AllocationConfig) -> None:
    assert w.shape == (w.size,) and np.isfinite(w).all()
    assert np.abs(w).sum() <= cfg.gross_leverage + TOL
    if cfg.long_only:
        assert w.min() >= -TOL
    if cfg.max_weight is not None:
        assert np.abs(w).max() <= cfg.max_weight + TOL
    if cfg.net_exposure is not None:
        assert abs(w.sum() - cfg.net_exposure) <= TOL


@st.composite
def settings_and_inputs(draw: st.DrawFn) -> tuple[AllocationConfig, np.ndarray, np.ndarray]:
    policy = draw(st.sampled_from(["equal_weight", "sign_of_mean", "mean_variance", "min_cvar"]))
    n_assets = draw(st.integers(1, 7))
    n_samples = draw(st.integers(2, 40))
    long_only = draw(st.booleans())
    gross = draw(st.sampled_from([0.5, 1.0, 1.5, 3.0]))
    net_choices: list[float | None] = [gross, 0.5 * gross, 0.0]
    if not long_only:
        net_choices.append(-0.5 * gross)
    if policy != "min_cvar":
        net_choices.append(None)
    net = draw(st.sampled_from(net_choices))
    floor = abs(net or 0.0) / n_assets
    max_weight = draw(
        st.one_of(st.none(), st.floats(max(floor, 0.01), 2.0 * gross).map(lambda v: round(v, 6)))
    )
    if max_weight is not None and max_weight * n_assets < abs(net or 0.0):
        max_weight = None
    optimizing = policy in ("mean_variance", "min_cvar")
    penalty = draw(st.sampled_from([0.0, 1e-4, 2e-3])) if optimizing else 0.0
    cfg = AllocationConfig(
        policy=policy,
        long_only=long_only,
        gross_leverage=gross,
        net_exposure=net,
        max_weight=max_weight,
        risk_aversion=draw(st.sampled_from([0.5, 5.0, 50.0])),
        cvar_alpha=draw(st.sampled_from([0.05, 0.2, 0.5])),
        turnover_penalty=penalty,
    )
    seed = draw(st.integers(0, 2**16))
    samples = generated_samples(seed, n_samples, n_assets)
    w_prev = np.random.default_rng(seed + 1).uniform(-0.5, 0.5, n_assets)
    return cfg, samples, w_prev


@settings(max_examples=150, deadline=None)
@given(settings_and_inputs())
def test_every_policy_respects_every_constraint(
    case: tuple[AllocationConfig, np.ndarray, np.ndarray],
) -> None:
    cfg, samples, w_prev = case
    assert_feasible(allocate(samples, w_prev, cfg), cfg)


def test_the_four_policies_are_registered() -> None:
    assert {"equal_weight", "sign_of_mean", "mean_variance", "min_cvar"} <= set(
        ALLOCATION_POLICIES.names()
    )


# ---------------------------------------------------------------- baselines


def test_equal_weight_spreads_the_net_exposure() -> None:
    samples = generated_samples(0, 10, 4)
    w = allocate(samples, np.zeros(4), AllocationConfig(policy="equal_weight"))
    np.testing.assert_array_equal(w, [0.25, 0.25, 0.25, 0.25])
    cash = AllocationConfig(policy="equal_weight", net_exposure=None, gross_leverage=0.8)
    np.testing.assert_allclose(allocate(samples, np.zeros(4), cash), [0.2] * 4)


def test_sign_of_mean_goes_long_the_positive_means() -> None:
    samples = np.array([[0.02, -0.01, 0.03, 0.0], [0.0, -0.03, 0.01, 0.0]])
    w = allocate(samples, np.zeros(4), AllocationConfig(policy="sign_of_mean"))
    np.testing.assert_allclose(w, [0.5, 0.0, 0.5, 0.0], atol=1e-12)
    long_short = AllocationConfig(
        policy="sign_of_mean", long_only=False, gross_leverage=1.5, net_exposure=None
    )
    np.testing.assert_allclose(allocate(samples, np.zeros(4), long_short), [0.5, -0.5, 0.5, 0.0])


def test_sign_of_mean_under_a_cap_is_the_nearest_feasible_portfolio() -> None:
    # Target [1, 0, 0, 0]; projecting onto {0 <= w <= 0.4, sum w = 1} gives
    # clip(target - tau, 0, 0.4) with tau = -0.2: [0.4, 0.2, 0.2, 0.2].
    samples = np.array([[0.01, -0.01, -0.02, -0.03]] * 3)
    cfg = AllocationConfig(policy="sign_of_mean", max_weight=0.4)
    np.testing.assert_allclose(allocate(samples, np.zeros(4), cfg), [0.4, 0.2, 0.2, 0.2], atol=1e-9)


def test_sign_of_mean_without_a_positive_mean_holds_equal_weights() -> None:
    samples = -np.abs(generated_samples(3, 20, 5))
    cfg = AllocationConfig(policy="sign_of_mean")
    np.testing.assert_allclose(allocate(samples, np.zeros(5), cfg), [0.2] * 5, atol=1e-9)


# ------------------------------------------------------------- mean-variance


def moments(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return samples.mean(axis=0), np.cov(samples, rowvar=False)


def test_unconstrained_mean_variance_is_the_closed_form() -> None:
    samples = generated_samples(1, 200, 6)
    mu, sigma = moments(samples)
    cfg = AllocationConfig(
        policy="mean_variance",
        long_only=False,
        gross_leverage=1e6,
        net_exposure=None,
        risk_aversion=3.0,
    )
    expected = np.linalg.solve(sigma, mu) / 3.0
    np.testing.assert_allclose(allocate(samples, np.zeros(6), cfg), expected, rtol=1e-10)


def test_budget_only_mean_variance_is_the_closed_form() -> None:
    # max mu'w - g/2 w'S w s.t. 1'w = 1: w = S^-1 (mu - eta 1) / g, eta fixing the budget.
    samples = generated_samples(2, 200, 5)
    mu, sigma = moments(samples)
    gamma = 4.0
    inv_mu, inv_one = np.linalg.solve(sigma, mu), np.linalg.solve(sigma, np.ones(5))
    eta = (inv_mu.sum() - gamma) / inv_one.sum()
    expected = (inv_mu - eta * inv_one) / gamma
    cfg = AllocationConfig(
        policy="mean_variance", long_only=False, gross_leverage=1e6, risk_aversion=gamma
    )
    w = allocate(samples, np.zeros(5), cfg)
    np.testing.assert_allclose(w, expected, rtol=1e-10)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)


def test_the_interior_point_solver_reaches_the_closed_form() -> None:
    # A turnover penalty forces the QP solver; with w_prev at the unconstrained optimum
    # the penalty is zero there and positive elsewhere, so the optimum does not move.
    samples = generated_samples(4, 300, 6)
    mu, sigma = moments(samples)
    expected = np.linalg.solve(sigma, mu) / 2.0
    cfg = AllocationConfig(
        policy="mean_variance",
        long_only=False,
        gross_leverage=1e3,
        net_exposure=None,
        risk_aversion=2.0,
        turnover_penalty=1e-3,
    )
    np.testing.assert_allclose(allocate(samples, expected, cfg), expected, atol=1e-8)


def mv_objective(
    w: np.ndarray, mu: np.ndarray, sigma: np.ndarray, cfg: AllocationConfig, w_prev: np.ndarray
) -> float:
    return float(
        mu @ w
        - cfg.risk_aversion / 2 * w @ sigma @ w
        - cfg.turnover_penalty * np.abs(w - w_prev).sum()
    )


@pytest.mark.parametrize(
    "cfg",
    [
        AllocationConfig(policy="mean_variance", max_weight=0.3, risk_aversion=2.0),
        AllocationConfig(policy="mean_variance", net_exposure=None, risk_aversion=0.5),
        AllocationConfig(
            policy="mean_variance",
            long_only=False,
            gross_leverage=1.6,
            net_exposure=0.0,
            max_weight=0.5,
            risk_aversion=3.0,
        ),
    ],
)
def test_constrained_mean_variance_matches_a_general_solver(cfg: AllocationConfig) -> None:
    # Long-only cases are smooth QPs SLSQP solves reliably; the long-short case is
    # compared on the split variables w = u - v.
    samples = generated_samples(5, 120, 5)
    mu, sigma = moments(samples)
    w = allocate(samples, np.zeros(5), cfg)
    best = slsqp_reference(mu, sigma, cfg)
    assert (
        mv_objective(w, mu, sigma, cfg, np.zeros(5))
        >= mv_objective(best, mu, sigma, cfg, np.zeros(5)) - 1e-10
    )
    np.testing.assert_allclose(w, best, atol=1e-5)


def slsqp_reference(mu: np.ndarray, sigma: np.ndarray, cfg: AllocationConfig) -> np.ndarray:
    n = mu.size
    cap = min(cfg.max_weight or np.inf, cfg.gross_leverage)
    to_w = np.eye(n) if cfg.long_only else np.hstack([np.eye(n), -np.eye(n)])

    def negative(x: np.ndarray) -> float:
        w = to_w @ x
        return float(-(mu @ w) + cfg.risk_aversion / 2 * w @ sigma @ w) * 1e3

    cons = [{"type": "ineq", "fun": lambda x: cfg.gross_leverage - x.sum()}]
    if cfg.net_exposure is not None:
        cons.append({"type": "eq", "fun": lambda x: (to_w @ x).sum() - cfg.net_exposure})
    x0 = np.full(to_w.shape[1], 0.01)
    result = minimize(
        negative,
        x0,
        method="SLSQP",
        bounds=[(0, cap)] * to_w.shape[1],
        constraints=cons,
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    return to_w @ result.x


def test_mean_variance_turnover_penalty_holds_the_position_when_gains_are_small() -> None:
    samples = generated_samples(6, 100, 4)
    w_prev = np.full(4, 0.25)
    cfg = AllocationConfig(policy="mean_variance", turnover_penalty=1.0)
    np.testing.assert_allclose(allocate(samples, w_prev, cfg), w_prev, atol=1e-9)


# -------------------------------------------------------------------- CVaR


def test_empirical_cvar_by_hand() -> None:
    losses = np.arange(1.0, 11.0)
    assert empirical_cvar(losses, 0.2) == pytest.approx(9.5)  # mean of 10 and 9
    assert empirical_cvar(losses, 0.25) == pytest.approx((10 + 9 + 0.5 * 8) / 2.5)
    assert empirical_cvar(losses, 0.05) == pytest.approx(10.0)  # less than one scenario
    assert empirical_cvar(losses, 1.0) == pytest.approx(losses.mean())


@pytest.mark.parametrize("long_only", [True, False])
@pytest.mark.parametrize("alpha", [0.05, 0.13, 0.5])
def test_cvar_objective_is_the_empirical_cvar_of_its_weights(long_only: bool, alpha: float) -> None:
    samples = generated_samples(7, 300, 6)
    cfg = AllocationConfig(
        policy="min_cvar",
        long_only=long_only,
        gross_leverage=1.0 if long_only else 2.0,
        cvar_alpha=alpha,
        max_weight=0.5,
    )
    solution = solve_min_cvar(samples, np.zeros(6), cfg)
    realized = empirical_cvar(-samples @ solution.weights, alpha)
    assert solution.cvar == pytest.approx(realized, abs=1e-9)
    assert solution.objective == pytest.approx(realized, abs=1e-9)
    # And it is the minimum: no other feasible portfolio has a lower CVaR.
    for other in ("equal_weight", "mean_variance", "sign_of_mean"):
        w = allocate(samples, np.zeros(6), cfg.model_copy(update={"policy": other}))
        assert empirical_cvar(-samples @ w, alpha) >= realized - 1e-9


def test_cvar_objective_adds_the_turnover_penalty() -> None:
    samples = generated_samples(8, 200, 5)
    w_prev = np.array([0.4, 0.3, 0.2, 0.1, 0.0])
    cfg = AllocationConfig(policy="min_cvar", turnover_penalty=1e-3, cvar_alpha=0.1)
    solution = solve_min_cvar(samples, w_prev, cfg)
    realized = empirical_cvar(-samples @ solution.weights, 0.1)
    turnover = np.abs(solution.weights - w_prev).sum()
    assert solution.objective == pytest.approx(realized + 1e-3 * turnover, abs=1e-9)


# ------------------------------------------------------------------- errors


def test_infeasible_cap_is_a_config_error_naming_keys_and_numbers() -> None:
    cfg = AllocationConfig(policy="equal_weight", max_weight=0.2)
    with pytest.raises(ConfigError, match=r"allocation.max_weight: 0.2 x 4 assets = 0.8.*0.25"):
        check_allocation(cfg, 4)
    check_allocation(cfg, 5)  # 0.2 x 5 reaches 1


@pytest.mark.parametrize(
    ("cfg", "n_samples", "match"),
    [
        (AllocationConfig(policy="min_cvar", net_exposure=None), 10, "net_exposure: null"),
        (AllocationConfig(policy="equal_weight", turnover_penalty=0.01), 10, "no effect"),
        (AllocationConfig(policy="mean_variance"), 1, "num_samples: 1"),
        (AllocationConfig(policy="risk_parity"), 10, "unknown allocation policy 'risk_parity'"),
    ],
)
def test_config_errors(cfg: AllocationConfig, n_samples: int, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        check_allocation(cfg, 3, n_samples)
    with pytest.raises(ConfigError, match=match):
        allocate(generated_samples(0, n_samples, 3), np.zeros(3), cfg)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"long_only": True, "net_exposure": -0.5}, "long_only is true"),
        ({"long_only": False, "gross_leverage": 1.0, "net_exposure": 1.5}, "exceeds"),
    ],
)
def test_config_validator_rejects_impossible_exposure(values: dict, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        AllocationConfig(**values)


def test_non_finite_samples_are_refused() -> None:
    samples = generated_samples(0, 5, 3)
    samples[2, 1] = np.nan
    with pytest.raises(AlgoTraderError, match="1 of 15 predictive samples"):
        allocate(samples, np.zeros(3), AllocationConfig(policy="mean_variance"))

"""Performance of a backtest: return/risk metrics, Deflated Sharpe Ratio and PBO.

All inputs are per-period simple returns in return units (fractions of portfolio value),
one row per rebalance period (a week by default). Sharpe ratios passed between functions
are per period (not annualized) unless a name says ``annualized``.

- Deflated Sharpe Ratio: Bailey, D. H. and M. Lopez de Prado (2014), "The Deflated Sharpe
  Ratio: Correcting for Selection Bias, Backtest Overfitting and Non-Normality", Journal
  of Portfolio Management 40 (5), 94-107.
- Probability of Backtest Overfitting by combinatorially symmetric cross-validation
  (CSCV): Bailey, D. H., J. Borwein, M. Lopez de Prado and Q. J. Zhu (2017), "The
  Probability of Backtest Overfitting", Journal of Computational Finance 20 (4), 39-69.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import kurtosis, norm, rankdata, skew

EULER_GAMMA = 0.5772156649015329


# --------------------------------------------------------------- basic metrics


def sharpe_ratio(returns: np.ndarray, axis: int = 0) -> np.ndarray:
    """Per-period Sharpe ratio ``mean / std`` (``ddof=1``) along ``axis``.

    A zero standard deviation gives ``+-inf`` for a non-zero mean and 0 for a zero mean.
    """
    returns = np.asarray(returns, dtype=np.float64)
    mean = returns.mean(axis=axis)
    std = returns.std(axis=axis, ddof=1)
    return _ratio(mean, std)


def _ratio(mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    safe = np.where(std > 0, std, 1.0)
    return np.where(std > 0, mean / safe, np.sign(mean) * np.inf)


def equity_curve(returns: np.ndarray) -> np.ndarray:
    """``(T,)`` compounded value of 1 invested: ``cumprod(1 + r)``."""
    return np.cumprod(1.0 + np.asarray(returns, dtype=np.float64))


def drawdown_curve(returns: np.ndarray) -> np.ndarray:
    """``(T,)`` drawdown from the running peak of the equity curve (0 or negative).

    The peak starts at the initial value 1, so a loss in the first period is a drawdown.
    """
    equity = equity_curve(returns)
    peak = np.maximum.accumulate(np.concatenate([[1.0], equity]))[1:]
    return equity / peak - 1.0


def buy_and_hold_returns(returns: np.ndarray, weights0: np.ndarray) -> np.ndarray:
    """``(T,)`` returns of buying ``weights0`` once and letting the positions drift.

    Position ``a`` is worth ``weights0[a] prod(1 + r_a)`` after each period; the rest of
    the capital (``1 - sum weights0``) stays in cash at zero return. A missing return (NaN)
    counts as 0, like in :func:`~algo_trader.application.simulation.costs.pnl`.
    """
    r = np.nan_to_num(np.asarray(returns, dtype=np.float64), nan=0.0)
    w0 = np.asarray(weights0, dtype=np.float64)
    value = (1.0 - w0.sum()) + np.cumprod(1.0 + r, axis=0) @ w0
    previous = np.concatenate([[1.0], value[:-1]])
    return value / previous - 1.0


# ------------------------------------------------------------------------- DSR


def expected_max_sharpe(n_trials: int, var_trials: float) -> float:
    """Expected maximum of ``n_trials`` Sharpe ratios of zero-skill strategies (``SR_0``).

    ``sqrt(V) ((1 - g) Z^-1(1 - 1/N) + g Z^-1(1 - 1/(N e)))`` with ``g`` the Euler-Mascheroni
    constant (Bailey and Lopez de Prado 2014, eq. 7 with ``E[SR_n] = 0``). One trial has no
    selection: 0.
    """
    if n_trials < 1 or not var_trials >= 0:
        raise ValueError(f"n_trials {n_trials} must be >= 1 and var_trials {var_trials} >= 0")
    if n_trials == 1:
        return 0.0
    return math.sqrt(var_trials) * (
        (1 - EULER_GAMMA) * norm.ppf(1 - 1 / n_trials)
        + EULER_GAMMA * norm.ppf(1 - 1 / (n_trials * math.e))
    )


def probabilistic_sharpe_ratio(
    sr_hat: float, sr_benchmark: float, n_obs: int, skew: float, kurt: float
) -> float:
    """Probability that the true Sharpe ratio exceeds ``sr_benchmark`` (PSR).

    ``Z((SR - SR*) sqrt(T - 1) / sqrt(1 - g3 SR + (g4 - 1)/4 SR^2))`` with per-period
    ``SR``, skewness ``g3`` and Pearson kurtosis ``g4`` (3 for a normal) of the returns.
    """
    if n_obs < 2:
        raise ValueError(f"n_obs {n_obs}: the PSR needs at least 2 observations")
    variance = 1 - skew * sr_hat + (kurt - 1) / 4 * sr_hat**2
    if not variance > 0:
        raise ValueError(
            f"1 - skew*SR + (kurt-1)/4*SR^2 = {variance} is not positive (skew {skew}, "
            f"kurt {kurt}, SR {sr_hat}); pass the Pearson kurtosis (3 for a normal)"
        )
    return float(norm.cdf((sr_hat - sr_benchmark) * math.sqrt(n_obs - 1) / math.sqrt(variance)))


def deflated_sharpe_ratio(
    sr_hat: float, n_obs: int, skew: float, kurt: float, sr_trials: np.ndarray
) -> float:
    """Deflated Sharpe Ratio: the PSR against the expected maximum Sharpe of the trials.

    Parameters
    ----------
    sr_hat
        Per-period Sharpe ratio of the selected strategy.
    n_obs
        Number of return observations ``T``.
    skew, kurt
        Skewness and Pearson kurtosis (3 for a normal) of its returns.
    sr_trials
        Per-period Sharpe ratios of every trial of the search (the selected one included);
        their count is ``N`` and their variance (``ddof=1``) ``V[SR_n]``.

    Returns
    -------
    float
        ``PSR(SR_0)`` with ``SR_0 = expected_max_sharpe(N, V)``; above 0.95 means the
        Sharpe ratio survives the selection at the 5 % level.
    """
    trials = np.asarray(sr_trials, dtype=np.float64).ravel()
    if trials.size == 0 or not np.isfinite(trials).all():
        raise ValueError(f"sr_trials must be a non-empty finite array, got {trials!r}")
    variance = float(trials.var(ddof=1)) if trials.size > 1 else 0.0
    sr0 = expected_max_sharpe(trials.size, variance)
    return probabilistic_sharpe_ratio(sr_hat, sr0, n_obs, skew, kurt)


# ------------------------------------------------------------------------- PBO


@dataclass(frozen=True, eq=False)
class PBOResult:
    """Outcome of CSCV.

    Attributes
    ----------
    pbo
        Share of the splits whose in-sample best trial ranks at or below the out-of-sample
        median (logit ``<= 0``).
    logits
        ``(C,)`` ``log(w / (1 - w))`` of the relative OOS rank ``w = rank / (N + 1)``.
    is_sharpe, oos_sharpe
        ``(C,)`` per-period Sharpe ratio of the in-sample best trial, in and out of sample.
    prob_oos_loss
        Share of the splits where that trial's OOS Sharpe ratio is negative.
    n_splits
        Blocks ``S`` the rows were cut into; ``C = binom(S, S/2)`` splits.
    """

    pbo: float
    logits: np.ndarray
    is_sharpe: np.ndarray
    oos_sharpe: np.ndarray
    prob_oos_loss: float
    n_splits: int


def probability_of_backtest_overfitting(perf_matrix: np.ndarray, n_splits: int) -> PBOResult:
    """Probability of Backtest Overfitting by CSCV (Bailey et al. 2017), with Sharpe ratios.

    The ``T`` rows are cut into ``n_splits`` contiguous blocks of ``T // n_splits`` rows
    (the oldest ``T mod n_splits`` rows are dropped). Every choice of half the blocks is an
    in-sample set, its complement the out-of-sample set; the trial with the best in-sample
    Sharpe ratio is ranked among all trials out of sample. All splits are evaluated at once
    from per-block sums.

    Parameters
    ----------
    perf_matrix
        ``(T, N)`` per-period returns of ``N >= 2`` trials on the same periods.
    n_splits
        Even number of blocks ``S`` (16 in the paper), ``2 <= S <= T``.
    """
    m = np.asarray(perf_matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] < 2 or not np.isfinite(m).all():
        raise ValueError(f"perf_matrix must be a finite (T, N >= 2) array, got shape {m.shape}")
    if n_splits < 2 or n_splits % 2 or n_splits > m.shape[0]:
        raise ValueError(f"n_splits {n_splits} must be even and in 2..T ({m.shape[0]})")
    block = m.shape[0] // n_splits
    blocks = m[m.shape[0] - block * n_splits :].reshape(n_splits, block, m.shape[1])
    sums, squares = blocks.sum(axis=1), (blocks**2).sum(axis=1)
    combos = np.array(list(itertools.combinations(range(n_splits), n_splits // 2)))
    member = np.zeros((len(combos), n_splits))
    np.put_along_axis(member, combos, 1.0, axis=1)
    is_sr = _pooled_sharpe(member @ sums, member @ squares, block * n_splits // 2)
    oos_sr = _pooled_sharpe((1 - member) @ sums, (1 - member) @ squares, block * n_splits // 2)
    best = np.argmax(is_sr, axis=1)[:, None]
    rank = np.take_along_axis(rankdata(oos_sr, axis=1), best, axis=1)[:, 0]
    relative = rank / (m.shape[1] + 1)
    logits = np.log(relative / (1 - relative))
    oos_best = np.take_along_axis(oos_sr, best, axis=1)[:, 0]
    return PBOResult(
        pbo=float((logits <= 0).mean()),
        logits=logits,
        is_sharpe=np.take_along_axis(is_sr, best, axis=1)[:, 0],
        oos_sharpe=oos_best,
        prob_oos_loss=float((oos_best < 0).mean()),
        n_splits=n_splits,
    )


def _pooled_sharpe(total: np.ndarray, squares: np.ndarray, n: int) -> np.ndarray:
    """Sharpe ratio (``ddof=1``) of ``n`` rows from their sum and sum of squares."""
    mean = total / n
    var = np.maximum(squares - n * mean**2, 0.0) / max(n - 1, 1)
    return _ratio(mean, np.sqrt(var))


# ---------------------------------------------------------------------- report


@dataclass(frozen=True)
class PerformanceReport:
    """Headline metrics of one backtest (JSON-ready via :meth:`to_dict`).

    Annualized figures use ``periods_per_year``: return ``mean * P`` (arithmetic, the one
    the Sharpe ratio uses), volatility ``std * sqrt(P)``. ``cagr`` is the compounded growth
    rate. NaN marks a metric that is undefined for the data (e.g. a Sharpe ratio of a
    constant series, or no ``trial_sharpes`` for the DSR).

    Attributes
    ----------
    max_drawdown
        Largest fall from a running peak of the compounded equity, as a positive fraction.
    hit_rate
        Share of periods with a positive net return.
    mean_turnover, annualized_turnover
        ``sum |w - w_prev|`` per period and per year.
    mean_gross_leverage
        Average ``sum |w|``.
    total_cost, annualized_cost
        Transaction costs (``gross - net``), summed and per year.
    sharpe_per_period, skewness, kurtosis
        Inputs of the PSR/DSR (population moments of the net returns; Pearson kurtosis).
    psr
        Probability that the true Sharpe ratio exceeds 0.
    expected_max_sharpe
        ``SR_0`` (per period) of ``n_trials`` zero-skill trials with the trials' variance.
    dsr
        Deflated Sharpe Ratio (``PSR(SR_0)``).
    """

    n_periods: int
    periods_per_year: int
    total_return: float
    cagr: float
    annualized_return: float
    annualized_volatility: float
    sharpe: float
    sortino: float
    max_drawdown: float
    hit_rate: float
    mean_turnover: float
    annualized_turnover: float
    mean_gross_leverage: float
    total_cost: float
    annualized_cost: float
    gross_sharpe: float
    sharpe_per_period: float
    skewness: float
    kurtosis: float
    psr: float
    n_trials: int
    expected_max_sharpe: float
    dsr: float

    def to_dict(self) -> dict[str, float | int]:
        """Field name -> value."""
        return asdict(self)


def performance_report(
    net: np.ndarray,
    gross: np.ndarray,
    turnover: np.ndarray,
    weights: np.ndarray,
    periods_per_year: int = 52,
    *,
    n_trials: int = 1,
    trial_sharpes: np.ndarray | None = None,
) -> PerformanceReport:
    """Metrics of a backtest's per-period returns.

    Parameters
    ----------
    net, gross
        ``(T,)`` returns after and before costs.
    turnover
        ``(T,)`` ``sum |w - w_prev|`` per period.
    weights
        ``(T, A)`` weights held each period.
    periods_per_year
        52 for weekly rebalancing.
    n_trials
        Configurations tried to find this one (the inner loop's candidates).
    trial_sharpes
        Per-period Sharpe ratios of those trials (length ``n_trials``); without them the DSR
        is NaN unless ``n_trials == 1`` (then it is the PSR against 0).

    Raises
    ------
    ValueError
        Mismatched lengths, non-finite values, fewer than 2 periods.
    """
    net, gross, turnover = (np.asarray(a, dtype=np.float64) for a in (net, gross, turnover))
    weights = np.asarray(weights, dtype=np.float64)
    _check_series(net, gross, turnover, weights)
    ppy = periods_per_year
    mean, std = float(net.mean()), float(net.std(ddof=1))
    downside = math.sqrt(float((np.minimum(net, 0.0) ** 2).mean()))
    equity = equity_curve(net)
    sr = float(_ratio(np.asarray(mean), np.asarray(std)))
    g3, g4 = _moments(net)
    psr = probabilistic_sharpe_ratio(sr, 0.0, net.size, g3, g4) if math.isfinite(sr) else math.nan
    sr0, dsr = _deflation(sr, net.size, g3, g4, n_trials, trial_sharpes)
    cost = gross - net
    return PerformanceReport(
        n_periods=int(net.size),
        periods_per_year=ppy,
        total_return=float(equity[-1] - 1.0),
        cagr=float(equity[-1] ** (ppy / net.size) - 1.0) if equity[-1] > 0 else -1.0,
        annualized_return=mean * ppy,
        annualized_volatility=std * math.sqrt(ppy),
        sharpe=sr * math.sqrt(ppy),
        sortino=float(_ratio(np.asarray(mean), np.asarray(downside))) * math.sqrt(ppy),
        max_drawdown=float(-drawdown_curve(net).min()),
        hit_rate=float((net > 0).mean()),
        mean_turnover=float(turnover.mean()),
        annualized_turnover=float(turnover.mean()) * ppy,
        mean_gross_leverage=float(np.abs(weights).sum(axis=1).mean()),
        total_cost=float(cost.sum()),
        annualized_cost=float(cost.mean()) * ppy,
        gross_sharpe=float(sharpe_ratio(gross)) * math.sqrt(ppy),
        sharpe_per_period=sr,
        skewness=g3,
        kurtosis=g4,
        psr=psr,
        n_trials=n_trials,
        expected_max_sharpe=sr0,
        dsr=dsr,
    )


def _check_series(
    net: np.ndarray, gross: np.ndarray, turnover: np.ndarray, weights: np.ndarray
) -> None:
    n = net.shape[0] if net.ndim == 1 else -1
    shapes_ok = (
        net.ndim == 1
        and gross.shape == net.shape == turnover.shape
        and weights.ndim == 2
        and weights.shape[0] == n
    )
    if not shapes_ok:
        raise ValueError(
            f"net {net.shape}, gross {gross.shape}, turnover {turnover.shape} must be (T,) "
            f"and weights {weights.shape} (T, A)"
        )
    if n < 2:
        raise ValueError(f"a performance report needs at least 2 periods, got {n}")
    for name, arr in (("net", net), ("gross", gross), ("turnover", turnover), ("weights", weights)):
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} has {int((~np.isfinite(arr)).sum())} NaN/inf values")


def _moments(returns: np.ndarray) -> tuple[float, float]:
    """Skewness and Pearson kurtosis as population moments of the sample.

    The biased (population) estimators keep ``kurt >= skew^2 + 1``, which keeps the PSR's
    variance term ``1 - g3 SR + (g4 - 1)/4 SR^2 >= (1 - g3 SR / 2)^2`` non-negative. A
    constant series has no defined moments: NaN.
    """
    if float(returns.std()) == 0.0:
        return math.nan, math.nan
    return float(skew(returns, bias=True)), float(kurtosis(returns, fisher=False, bias=True))


def _deflation(
    sr: float,
    n_obs: int,
    g3: float,
    g4: float,
    n_trials: int,
    trial_sharpes: np.ndarray | None,
) -> tuple[float, float]:
    """``(SR_0, DSR)``; NaN where they are undefined (see :func:`performance_report`)."""
    if n_trials < 1:
        raise ValueError(f"n_trials {n_trials} must be >= 1")
    if trial_sharpes is not None and np.asarray(trial_sharpes).size != n_trials:
        raise ValueError(
            f"trial_sharpes has {np.asarray(trial_sharpes).size} values but n_trials is {n_trials}"
        )
    if not all(map(math.isfinite, (sr, g3, g4))):
        return math.nan, math.nan
    if trial_sharpes is None:
        if n_trials > 1:
            return math.nan, math.nan
        return 0.0, probabilistic_sharpe_ratio(sr, 0.0, n_obs, g3, g4)
    trials = np.asarray(trial_sharpes, dtype=np.float64)
    sr0 = expected_max_sharpe(n_trials, float(trials.var(ddof=1)) if n_trials > 1 else 0.0)
    return sr0, deflated_sharpe_ratio(sr, n_obs, g3, g4, trials)

"""Per-candidate returns of the inner loop: the trials behind the DSR and the PBO.

The Deflated Sharpe Ratio deflates the outer Sharpe ratio by how many configurations the
inner loop tried and how far apart their Sharpe ratios were; the Probability of Backtest
Overfitting (CSCV) needs every trial's returns on common periods. Both come from the inner
CPCV, as the trials the selection actually looked at:

- each candidate's predictive draws on an inner split's test weeks (the ``on_prediction``
  callback of the inner objective) are turned into weights by the run's ``allocation``
  policy and charged the ``cost`` config with the same hooks as the outer loop, giving the
  candidate's net return on each test week. Each contiguous block of test weeks starts from
  cash (``w_prev = 0``), as the outer loop does;
- a week tested by several splits of a fold gets the mean over them (the CPCV overlap is
  collapsed as model selection collapses it for the energy score), giving one
  ``weeks x candidates`` frame per outer fold (``inner/outer_<k>/candidate_returns.csv``);
- across folds (:func:`pooled_trials`), a week tested by several folds' inner loops gets the
  mean over those folds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from algo_trader.application.simulation.cv_groups import InnerSplit
from algo_trader.application.simulation.hooks import (
    AllocationSpec,
    CostSpec,
    Hooks,
    allocation_spec,
)
from algo_trader.application.simulation.panel import Panel
from algo_trader.domain.simulation.config import SimulationConfig
from algo_trader.infrastructure.data.atomic import write_csv

TRIAL_RETURNS_FILE = "candidate_returns.csv"


def policy_returns(
    draws: np.ndarray,
    y: np.ndarray,
    test_idx: np.ndarray,
    hooks: Hooks,
    alloc: AllocationSpec,
    costs: CostSpec,
) -> np.ndarray:
    """Net return of the allocation policy on each test week of one split.

    Parameters
    ----------
    draws
        ``(S, T, A)`` predictive draws of ``y`` on the ``T`` test weeks.
    y
        ``(T, A)`` realized ``y`` of those weeks (NaN = missing).
    test_idx
        ``(T,)`` panel rows of the weeks; a gap starts a new block from cash.
    hooks, alloc, costs
        The ``allocate`` / ``compute_pnl`` hooks and their specs.
    """
    starts = np.r_[True, np.diff(test_idx) != 1]
    net = np.empty(len(test_idx))
    w_prev = np.zeros(y.shape[1])
    # Sequential by nature: each week's weights and costs depend on the previous week's.
    for i in range(len(test_idx)):
        if starts[i]:
            w_prev = np.zeros(y.shape[1])
        w = np.asarray(hooks.allocate(draws[:, i, :], w_prev, alloc), dtype=np.float64)
        net[i] = hooks.compute_pnl(w, y[i], w_prev, costs)["net"]
        w_prev = w
    return net


class TrialReturns:
    """Collects each candidate's inner test-week returns of one outer fold.

    Pass :meth:`record` as the inner objective's ``on_prediction``; read :meth:`frame`
    after the fold's inner loop.

    Parameters
    ----------
    panel
        The simulation inputs.
    splits
        The fold's inner splits.
    config
        The run config (``allocation`` and ``cost`` are not tunable: one for all candidates).
    hooks
        The run's hooks.
    costs
        The run's cost spec.
    """

    def __init__(
        self,
        panel: Panel,
        splits: Sequence[InnerSplit],
        config: SimulationConfig,
        hooks: Hooks,
        costs: CostSpec,
    ) -> None:
        self._index = panel.index
        self._y = np.where(panel.y_missing_mask, np.nan, panel.y)
        self._test_idx = {s.split_id: np.asarray(s.test_idx) for s in splits}
        self._alloc = allocation_spec(config, len(panel.assets))
        self._hooks = hooks
        self._costs = costs
        self._records: list[tuple[str, np.ndarray, np.ndarray]] = []

    def record(self, split_id: int, candidate_id: str, samples: torch.Tensor) -> None:
        """Turn one candidate's ``(S, T, A)`` draws on one split into weekly net returns.

        Raises
        ------
        ValueError
            Non-finite draws (a diverged fit): the inner loop counts that as the trial's
            failure under ``tuning.on_trial_error`` (the allocation would stop the run).
        """
        idx = self._test_idx[split_id]
        draws = samples.detach().cpu().numpy().astype(np.float64)
        if not np.isfinite(draws).all():
            raise ValueError(
                f"split {split_id}, candidate {candidate_id}: "
                f"{int((~np.isfinite(draws)).sum())} predictive draws are NaN or infinite"
            )
        net = policy_returns(draws, self._y[idx], idx, self._hooks, self._alloc, self._costs)
        self._records.append((candidate_id, idx, net))

    def frame(self) -> pd.DataFrame:
        """``weeks x candidates`` mean net return over the splits that tested each week.

        Index ``timestamp`` (decision weeks), columns the candidate ids in the order first
        recorded; NaN where a candidate has no return (a failed trial).
        """
        if not self._records:
            return pd.DataFrame(index=self._index[:0])
        ids = list(dict.fromkeys(cid for cid, _, _ in self._records))
        long = pd.DataFrame(
            {
                "row": np.concatenate([idx for _, idx, _ in self._records]),
                "candidate": np.repeat(
                    [cid for cid, _, _ in self._records],
                    [len(idx) for _, idx, _ in self._records],
                ),
                "net": np.concatenate([net for _, _, net in self._records]),
            }
        )
        table = long.groupby(["row", "candidate"])["net"].mean().unstack("candidate")
        table = table.reindex(columns=ids)
        table.index = self._index[table.index.to_numpy()]
        table.columns.name = None
        return table


def write_trial_returns(fold_dir: Path, frame: pd.DataFrame) -> None:
    """``<fold_dir>/candidate_returns.csv``."""
    write_csv(fold_dir / TRIAL_RETURNS_FILE, frame.rename_axis("timestamp"))


def read_trial_returns(path: Path) -> pd.DataFrame:
    """A ``candidate_returns.csv`` back as written (floats round-trip exactly)."""
    # pandas 3 parses floats with the round-trip converter by default.
    frame = pd.read_csv(path, index_col="timestamp", dtype={"timestamp": str})
    stamps = pd.to_datetime(frame.index, utc=True).as_unit("ns")
    frame.index = pd.DatetimeIndex(stamps, name="timestamp")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def pooled_trials(frames: Mapping[int, pd.DataFrame]) -> pd.DataFrame:
    """One ``weeks x candidates`` frame for the run: per week the mean over the folds."""
    stacked = pd.concat(list(frames.values()))
    return stacked.groupby(level=0, sort=True).mean()

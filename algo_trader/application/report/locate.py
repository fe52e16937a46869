"""Which simulation run a ``report`` command means: a folder, a label, or the latest."""

from __future__ import annotations

from pathlib import Path

from algo_trader.application.simulation.backtest import latest_run
from algo_trader.domain.errors import DataError


def resolve_run(root: Path, run: str | None) -> Path:
    """The run folder named by ``run``.

    Parameters
    ----------
    root
        ``SIMULATION_SOURCE``.
    run
        A run folder path, a label under ``root``, or None for the run whose manifest
        finished last.

    Raises
    ------
    DataError
        ``run`` names neither an existing folder nor a label under ``root``, or there is
        no finished run under ``root``.
    """
    if run is None:
        return latest_run(root)
    for candidate in (Path(run), root / run):
        if candidate.is_dir():
            return candidate
    labels = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    raise DataError(
        f"RUN {run!r} is neither a folder nor a run label under SIMULATION_SOURCE; valid "
        f"labels: {', '.join(labels) or 'none'}",
        path=root,
    )

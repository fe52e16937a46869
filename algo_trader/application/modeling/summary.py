"""The per-element summary table of posterior draws (``params.csv``).

One row per element of each latent site: its posterior mean, sd and 5/50/95% quantiles,
computed over the draws (``predictive.posterior_samples``) in one vectorised pass per site.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

QUANTILES = (0.05, 0.5, 0.95)
SUMMARY_COLUMNS = ["name", "index", "mean", "sd", "q05", "q50", "q95"]


def index_labels(shape: tuple[int, ...]) -> list[str]:
    """``""`` for a scalar, else ``"i"`` / ``"i,j"`` for every element in C order."""
    if not shape:
        return [""]
    return [",".join(map(str, idx)) for idx in itertools.product(*map(range, shape))]


def summary_frame(draws: Mapping[str, torch.Tensor]) -> pd.DataFrame:
    """One row per parameter element: ``name, index, mean, sd, q05, q50, q95``.

    Parameters
    ----------
    draws
        Site name -> ``(S, *shape)`` draws (at least 2 draws per site).

    Returns
    -------
    pandas.DataFrame
        Sites in the order of ``draws``, elements in C order; ``sd`` with ``ddof=1``.
    """
    frames = []
    for name, values in draws.items():
        flat = values.detach().to("cpu", torch.float64).reshape(values.shape[0], -1).numpy()
        if flat.shape[0] < 2:
            raise ValueError(f"site {name!r}: {flat.shape[0]} draw(s); a summary needs 2 or more")
        q05, q50, q95 = np.quantile(flat, QUANTILES, axis=0)
        frames.append(
            pd.DataFrame(
                {
                    "name": name,
                    "index": index_labels(tuple(values.shape[1:])),
                    "mean": flat.mean(axis=0),
                    "sd": flat.std(axis=0, ddof=1),
                    "q05": q05,
                    "q50": q50,
                    "q95": q95,
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    return pd.concat(frames, ignore_index=True)[SUMMARY_COLUMNS]

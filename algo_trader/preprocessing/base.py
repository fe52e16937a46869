"""The ``Preprocessor`` contract: typed args in, a DataFrame (plus its side files) out.

A preprocessor is pure: it receives the weekly returns as a DataFrame and returns a
:class:`Processed` holding its main output (a DataFrame with a UTC ``DatetimeIndex``) and
the other files it wants written. Reading ``returns.csv``, choosing the output folder and
writing atomically is the application's job (``application/data_processing/run.py``), so a
new preprocessor needs no I/O code. See ``registry.py`` for how to add one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from algo_trader.infrastructure.data.layout import tensor_payload


@dataclass(frozen=True)
class Processed:
    """What a preprocessor produced; ``run.py`` writes each part to the output folder.

    Attributes
    ----------
    frame
        Main output, indexed by a tz-aware UTC ``DatetimeIndex`` named ``timestamp``.
    main_file
        CSV name ``frame`` is written to (``processed.csv``, ``factors.csv``).
    tensors
        File name -> plain dict saved with ``torch.save`` (loadable with weights_only).
    tables
        File name -> extra CSV (its index is written as the first column).
    metadata
        Preprocessor-specific facts merged into ``metadata.json``.
    notes
        One-line facts for the command's summary.
    copy_input
        True when the main file must be a byte-for-byte copy of the input ``returns.csv``
        (``identity`` with ``copy=true``) instead of ``frame`` re-serialized.
    """

    frame: pd.DataFrame
    main_file: str
    tensors: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    tables: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    copy_input: bool = False

    def file_names(self) -> list[str]:
        """Every file this result writes, ``metadata.json`` included, sorted."""
        names = {self.main_file, *self.tensors, *self.tables, "metadata.json"}
        return sorted(names)


class Preprocessor(ABC):
    """One ``--preprocessor`` choice; instances hold their parsed, typed arguments.

    Subclasses set ``name`` and ``keys`` (the ``--preprocessor-arg`` keys they accept;
    ``pipeline`` is accepted for every preprocessor and handled by the registry), build
    themselves in :meth:`from_args` and do the work in :meth:`process`.
    """

    name: ClassVar[str]
    keys: ClassVar[tuple[str, ...]]

    @classmethod
    @abstractmethod
    def from_args(cls, pairs: Mapping[str, str]) -> Preprocessor:
        """Validate ``key -> raw value`` (only keys from ``keys``) into an instance.

        Raises
        ------
        ConfigError
            Naming the preprocessor, key, value and what is valid.
        """

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """The typed arguments as JSON-ready values (defaults filled in)."""

    @abstractmethod
    def process(self, returns: pd.DataFrame) -> Processed:
        """Transform weekly returns (rows = UTC weekly labels, columns = assets, NaN = missing)."""


def masked_payload(
    values: np.ndarray,
    missing: np.ndarray,
    index: pd.DatetimeIndex,
    labels: Sequence[str],
    label_key: str = "assets",
) -> dict[str, Any]:
    """A tensor-file dict whose missing cells hold 0.0 and are True in ``missing_mask``.

    Used by the ``missing=zero`` policy: the values are ready to feed a model, while the
    mask still tells a reader which cells were imputed. ``label_key`` names the column
    labels (``assets`` for per-asset outputs, ``factors`` for PCA factors).
    """
    payload = tensor_payload(np.where(missing, 0.0, values), index, labels)
    payload["missing_mask"] = torch.from_numpy(np.ascontiguousarray(missing, dtype=bool))
    if label_key != "assets":
        payload[label_key] = payload.pop("assets")
    return payload

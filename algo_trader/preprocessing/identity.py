"""``identity``: pass the weekly returns through unchanged.

``copy`` decides how ``processed.csv`` is produced, never what it holds:

- ``copy=false`` (default): the parsed returns are written again in the project's CSV format
  (ISO UTC timestamps, empty cell = missing). The values are exactly the input's; only the
  text formatting can differ from a hand-made ``returns.csv``.
- ``copy=true``: ``processed.csv`` is a byte-for-byte copy of the input ``returns.csv``
  (its sha256 equals ``input.sha256`` in ``metadata.json``), for users who want the file
  itself archived under a pipeline name.

Either way the input is validated first, and ``processed_tensor.pt`` (NaN + mask for
missing cells, as in the data lake's return tensor) and ``metadata.json`` are written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from algo_trader.infrastructure.data.layout import tensor_payload
from algo_trader.preprocessing.args import parse_bool
from algo_trader.preprocessing.base import Preprocessor, Processed


@dataclass(frozen=True)
class Identity(Preprocessor):
    """No-op preprocessor; ``copy`` picks a verbatim file copy over a re-serialization."""

    copy: bool = False

    name: ClassVar[str] = "identity"
    keys: ClassVar[tuple[str, ...]] = ("copy",)

    @classmethod
    def from_args(cls, pairs: Mapping[str, str]) -> Identity:
        if "copy" not in pairs:
            return cls()
        return cls(copy=parse_bool(cls.name, "copy", pairs["copy"]))

    def describe(self) -> dict[str, Any]:
        return {"copy": self.copy}

    def process(self, returns: pd.DataFrame) -> Processed:
        index = pd.DatetimeIndex(returns.index)
        how = "byte-for-byte copy of the input" if self.copy else "input values re-written"
        return Processed(
            frame=returns,
            main_file="processed.csv",
            tensors={
                "processed_tensor.pt": tensor_payload(
                    returns.to_numpy(dtype=float, copy=True), index, list(map(str, returns.columns))
                )
            },
            metadata={"processed_csv": how},
            notes=(f"processed.csv: {how}",),
            copy_input=self.copy,
        )

"""Which preprocessors exist, and how a ``--preprocessor`` choice becomes an instance.

Adding a preprocessor:

1. Subclass :class:`~algo_trader.preprocessing.base.Preprocessor` in a new module of this
   package: set ``name`` and ``keys``, parse the keys in ``from_args`` (use the helpers in
   ``args.py`` so errors read the same), return a :class:`Processed` from ``process``
   whose ``frame`` has a UTC ``DatetimeIndex``.
2. Register the class in :func:`default_registry` below.
3. Run it: ``uv run algotrader data_processing --preprocessor <name>
   --preprocessor-arg key=value``.

``pipeline`` (the output sub-folder, default ``debug``) is accepted by every preprocessor
and is handled here, not by the preprocessors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from algo_trader.infrastructure.registry import Registry
from algo_trader.preprocessing.args import check_keys, parse_pipeline, split_pairs
from algo_trader.preprocessing.base import Preprocessor
from algo_trader.preprocessing.identity import Identity
from algo_trader.preprocessing.pca import Pca
from algo_trader.preprocessing.zscore import ZScore

DEFAULT_PIPELINE = "debug"
PIPELINE_KEY = "pipeline"


def default_registry() -> Registry[type[Preprocessor]]:
    """A fresh registry holding the built-in preprocessors."""
    registry: Registry[type[Preprocessor]] = Registry("preprocessor")
    for cls in (Identity, ZScore, Pca):
        registry.register(cls.name)(cls)
    return registry


@dataclass(frozen=True)
class Configured:
    """A preprocessor with its parsed args, and the pipeline folder it writes to."""

    preprocessor: Preprocessor
    pipeline: str


def configure(
    name: str,
    raw_args: Sequence[str],
    registry: Registry[type[Preprocessor]] | None = None,
) -> Configured:
    """Look ``name`` up and parse its ``key=value`` args.

    Raises
    ------
    ConfigError
        For an unknown preprocessor (listing the valid ones) or any bad argument.
    """
    cls = (registry or default_registry()).get(name)
    pairs = split_pairs(name, raw_args)
    check_keys(name, pairs, (*cls.keys, PIPELINE_KEY))
    pipeline = parse_pipeline(name, PIPELINE_KEY, pairs.pop(PIPELINE_KEY, DEFAULT_PIPELINE))
    return Configured(cls.from_args(pairs), pipeline)

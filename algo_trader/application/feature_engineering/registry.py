"""The feature-group registry: every group module registers one :class:`FeatureGroup`.

Adding a group: write a module in this package that builds a ``FeatureGroup`` and calls
:func:`register_group` at import time, then add its module name to ``GROUP_MODULES``.
``compute(inputs, keys)`` receives the selected spec feature keys (a subset of ``keys``, in
the order of ``keys``) and returns a :class:`GroupResult` on the weekly index whose
``goodness`` follows the spec's rule: ``missing / horizon`` for groups computed on weekly
inputs (``uses_daily=False``), ``valid / horizon`` for groups on daily inputs
(``uses_daily=True``); ``run.py`` labels goodness.json by that flag.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from algo_trader.application.feature_engineering.inputs import FeatureInputs, GroupResult
from algo_trader.domain.errors import ConfigError
from algo_trader.infrastructure.registry import Registry

# Import order is the order `all` lists them; cross_sectional is always run last.
GROUP_MODULES = (
    "momentum",
    "mean_reversion",
    "breakout",
    "volatility",
    "seasonal",
    "regime",
    "cross_sectional",
)
CROSS_SECTIONAL = "cross_sectional"


@dataclass(frozen=True)
class FeatureGroup:
    """One feature group.

    Attributes
    ----------
    name
        Group name as given to ``--group``.
    keys
        Spec feature keys, in output order (``--feature`` picks among them).
    compute
        ``(inputs, selected_keys) -> GroupResult``.
    uses_daily
        Whether the group reads the daily panel (decides the goodness rule).
    """

    name: str
    keys: tuple[str, ...]
    compute: Callable[[FeatureInputs, Sequence[str]], GroupResult]
    uses_daily: bool

    def select(self, features: Sequence[str] | None) -> list[str]:
        """The keys to compute: all when ``features`` is None, else those named.

        Raises
        ------
        ConfigError
            For a key the group does not have, listing the valid ones.
        """
        if not features:
            return list(self.keys)
        unknown = [k for k in features if k not in self.keys]
        if unknown:
            raise ConfigError(
                f"--feature {', '.join(map(repr, unknown))} is not a key of group "
                f"{self.name!r}; valid: {', '.join(self.keys)}"
            )
        return [k for k in self.keys if k in features]


FEATURE_GROUPS: Registry[FeatureGroup] = Registry("feature group")


def register_group(group: FeatureGroup) -> FeatureGroup:
    """Register ``group`` under its name (a name can be taken only once)."""
    return FEATURE_GROUPS.register(group.name)(group)


def default_group_registry() -> Registry[FeatureGroup]:
    """The registry after importing every group module (so each has registered itself)."""
    package = __name__.rsplit(".", 1)[0]
    for module in GROUP_MODULES:
        importlib.import_module(f"{package}.{module}")
    return FEATURE_GROUPS


def compute_group(name: str, keys: list[str], inputs: FeatureInputs) -> GroupResult:
    """Compute one registered group (top level, light imports: the parallel worker's entry).

    Raises
    ------
    ValueError
        If the group produced an infinite value: every formula guards its denominators,
        so that is a bug, never user data.
    """
    result = default_group_registry().get(name).compute(inputs, keys)
    bad = np.isinf(result.values)
    if bad.any():
        t, a, f = np.argwhere(bad)[0]
        raise ValueError(
            f"group {name!r} produced an infinite {result.names[f]!r} for asset "
            f"{inputs.assets[a]!r} at {inputs.weekly_index[t]}"
        )
    return result

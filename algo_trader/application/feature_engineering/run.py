"""``algotrader feature_engineering``: compute feature groups from the latest data lake folder.

Input: ``weekly_ohlc.csv`` and ``daily_ohlc.csv`` of the newest ``DATA_LAKE_SOURCE/<YYYY-WW>``
folder holding a ``weekly_ohlc.csv``. Output, per group:
``FEATURE_STORE_SOURCE/<YYYY-WW>/<group>/`` with ``features.csv`` (columns ``(asset,
feature)``, index ``timestamp``), ``features_tensor.pt`` (``T x A x F``), ``goodness.json``
and ``metadata.json``. Each group folder is built in a hidden staging folder and renamed
into place, so a reader sees either the previous complete folder or the new one.

``all`` (or no ``--group``) computes the non-cross-sectional groups in parallel on
``max(1, cpu_count - 1)`` worker processes, then ``cross_sectional`` (which derives its base
features itself, so it needs no files from the other groups).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from algo_trader.application.feature_engineering.inputs import (
    DAILY_FILE,
    WEEKLY_FILE,
    FeatureInputs,
    GroupResult,
    load_inputs,
)
from algo_trader.application.feature_engineering.registry import (
    CROSS_SECTIONAL,
    GROUP_MODULES,
    FeatureGroup,
    compute_group,
    default_group_registry,
)
from algo_trader.application.feature_engineering.sampling import DAYS_TO_WEEKS
from algo_trader.domain.errors import ConfigError
from algo_trader.infrastructure.data.atomic import save_tensor, write_csv, write_json
from algo_trader.infrastructure.data.layout import latest_week_dir, tensor_payload, week_folder_name
from algo_trader.infrastructure.data.staging import staged_folder
from algo_trader.infrastructure.env import Settings
from algo_trader.infrastructure.registry import Registry

ALL = "all"
HORIZON_WEEKS = (1, 4, 12, 26)
GOODNESS_KEY_FORMAT = "%Y-%m-%d_%H:%M:%S+00:00"
GOODNESS_DECIMALS = 6
GROUP_FILES = ("features.csv", "features_tensor.pt", "goodness.json", "metadata.json")


@dataclass(frozen=True)
class FeatureRunResult:
    """Where a run wrote and what it computed."""

    out_dir: Path
    data_lake_dir: Path
    group_dirs: dict[str, Path]
    feature_names: dict[str, list[str]]
    weeks: int
    assets: int

    @property
    def files(self) -> dict[str, list[Path]]:
        """Per group, the files written."""
        return {g: [d / name for name in GROUP_FILES] for g, d in self.group_dirs.items()}

    def summary_lines(self) -> list[str]:
        """Short human-readable lines for the CLI."""
        lines = [f"inputs: {self.data_lake_dir} ({self.weeks} weeks x {self.assets} assets)"]
        for group, folder in self.group_dirs.items():
            names = self.feature_names[group]
            lines.append(f"{group}: {len(names)} features -> {folder}")
        return lines


def resolve_groups(registry: Registry[FeatureGroup], groups: Sequence[str] | None) -> list[str]:
    """Group names to run; ``None``, empty or containing ``all`` means every registered group.

    Raises
    ------
    ConfigError
        For an unknown group, listing the valid ones.
    """
    if not groups or ALL in groups:
        return registry.names()
    for name in groups:
        if name not in registry:
            valid = ", ".join([*registry.names(), ALL])
            raise ConfigError(f"--group {name!r} is not a feature group; valid: {valid}")
    return list(dict.fromkeys(groups))


def plan_keys(
    registry: Registry[FeatureGroup], names: list[str], features: Sequence[str] | None
) -> dict[str, list[str]]:
    """Per group, the feature keys to compute (groups with none of ``features`` drop out).

    Raises
    ------
    ConfigError
        For a ``--feature`` key that no selected group has, listing each group's keys.
    """
    if not features:
        return {name: list(registry.get(name).keys) for name in names}
    if len(names) == 1:
        return {names[0]: registry.get(names[0]).select(features)}
    known = {k for name in names for k in registry.get(name).keys}
    unknown = [k for k in features if k not in known]
    if unknown:
        valid = "; ".join(f"{n}: {', '.join(registry.get(n).keys)}" for n in names)
        raise ConfigError(
            f"--feature {', '.join(map(repr, unknown))} is not a key of the selected "
            f"group(s); valid: {valid}"
        )
    plan = {name: [k for k in registry.get(name).keys if k in features] for name in names}
    return {name: keys for name, keys in plan.items() if keys}


def compute_groups(
    plan: dict[str, list[str]], inputs: FeatureInputs, workers: int | None = None
) -> dict[str, GroupResult]:
    """Compute the planned groups: others in parallel first, ``cross_sectional`` last."""
    first = [name for name in plan if name != CROSS_SECTIONAL]
    n_workers = workers or max(1, (os.cpu_count() or 1) - 1)
    results: dict[str, GroupResult] = {}
    if n_workers > 1 and len(first) > 1:
        # forkserver: workers do not inherit the parent's threads (torch, BLAS); the
        # server preloads the group modules once, so each worker starts already importing
        # nothing (the registry module does not pull in torch).
        context = multiprocessing.get_context("forkserver")
        package = __name__.rsplit(".", 1)[0]
        context.set_forkserver_preload([f"{package}.{m}" for m in GROUP_MODULES])
        with ProcessPoolExecutor(min(n_workers, len(first)), mp_context=context) as pool:
            futures = {n: pool.submit(compute_group, n, plan[n], inputs) for n in first}
            results = {n: future.result() for n, future in futures.items()}
    else:
        results = {n: compute_group(n, plan[n], inputs) for n in first}
    if CROSS_SECTIONAL in plan:
        results[CROSS_SECTIONAL] = compute_group(CROSS_SECTIONAL, plan[CROSS_SECTIONAL], inputs)
    return results


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _features_frame(result: GroupResult, inputs: FeatureInputs) -> pd.DataFrame:
    t, a, f = result.values.shape
    columns = pd.MultiIndex.from_product([inputs.assets, result.names], names=["asset", "feature"])
    index = pd.DatetimeIndex(inputs.weekly_index, name="timestamp")
    return pd.DataFrame(result.values.reshape(t, a * f), index=index, columns=columns)


def goodness_payload(result: GroupResult, inputs: FeatureInputs) -> dict[str, Any]:
    """``{"YYYY-MM-DD_HH:MM:SS+00:00": {asset: {feature: ratio}}}`` (ratios rounded)."""
    ratios = np.round(result.goodness, GOODNESS_DECIMALS).tolist()
    keys = inputs.weekly_index.strftime(GOODNESS_KEY_FORMAT)
    return {
        key: {
            asset: dict(zip(result.names, row_a, strict=True))
            for asset, row_a in zip(inputs.assets, row, strict=True)
        }
        for key, row in zip(keys, ratios, strict=True)
    }


def _metadata(
    group: FeatureGroup,
    keys: list[str],
    result: GroupResult,
    inputs: FeatureInputs,
    lake_dir: Path,
    hashes: dict[str, str],
) -> dict[str, Any]:
    return {
        "group": group.name,
        "features": keys,
        "feature_names": result.names,
        "feature_name_units": "weeks",
        "days_to_weeks": {str(w * DAYS_TO_WEEKS): w for w in HORIZON_WEEKS},
        "frequency": "weekly",
        "uses_daily": group.uses_daily,
        "goodness_rule": "valid/horizon" if group.uses_daily else "missing/horizon",
        "assets": inputs.assets,
        "weeks": len(inputs.weekly_index),
        "start": inputs.weekly_index[0].strftime("%Y-%m-%dT%H:%M:%S+00:00"),
        "end": inputs.weekly_index[-1].strftime("%Y-%m-%dT%H:%M:%S+00:00"),
        "source": str(lake_dir),
        "inputs_sha256": hashes,
    }


def write_group(
    folder: Path,
    group: FeatureGroup,
    keys: list[str],
    result: GroupResult,
    inputs: FeatureInputs,
    lake_dir: Path,
    hashes: dict[str, str],
) -> None:
    """Write one group's four files all-or-nothing (staging folder, then rename)."""
    with staged_folder(folder) as staging:
        # metadata.json last: a folder whose metadata is current is complete
        write_csv(staging / "features.csv", _features_frame(result, inputs))
        save_tensor(
            staging / "features_tensor.pt",
            tensor_payload(result.values, inputs.weekly_index, inputs.assets, result.names),
        )
        write_json(staging / "goodness.json", goodness_payload(result, inputs))
        write_json(
            staging / "metadata.json", _metadata(group, keys, result, inputs, lake_dir, hashes)
        )


def run_feature_engineering(
    settings: Settings,
    groups: list[str] | None,
    features: list[str] | None,
) -> FeatureRunResult:
    """Compute the requested feature groups and write them to the feature store.

    Parameters
    ----------
    settings
        Where the data lake and feature store are.
    groups
        Group names (``--group``); ``None``, empty or ``['all']`` means every group.
    features
        Feature keys (``--feature``) to restrict to; ``None`` means each group's full set.

    Returns
    -------
    FeatureRunResult
        The output folder and, per group, its folder and output column names.

    Raises
    ------
    ConfigError
        Unknown group or feature key (the message lists the valid ones).
    DataError
        No data lake folder, a malformed input file, or a weekly OHLC value missing inside
        an asset's trading span (naming asset and week).
    """
    registry = default_group_registry()
    plan = plan_keys(registry, resolve_groups(registry, groups), features)
    lake_dir = latest_week_dir(settings.data_lake_source, must_contain=WEEKLY_FILE)
    inputs = load_inputs(lake_dir)
    hashes = {name: _sha256(lake_dir / name) for name in (WEEKLY_FILE, DAILY_FILE)}
    results = compute_groups(plan, inputs)
    out_dir = Path(settings.feature_store_source) / week_folder_name(inputs.weekly_index[-1])
    group_dirs: dict[str, Path] = {}
    for name, result in results.items():
        group_dirs[name] = out_dir / name
        write_group(
            group_dirs[name], registry.get(name), plan[name], result, inputs, lake_dir, hashes
        )
    return FeatureRunResult(
        out_dir=out_dir,
        data_lake_dir=lake_dir,
        group_dirs=group_dirs,
        feature_names={name: r.names for name, r in results.items()},
        weeks=len(inputs.weekly_index),
        assets=len(inputs.assets),
    )

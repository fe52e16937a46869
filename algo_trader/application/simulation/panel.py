"""The ``feature_store_panel`` loader: one ``T x A x F`` panel of features and next-week returns.

Inputs are the latest ``FEATURE_STORE_SOURCE/<YYYY-WW>/<group>/features_tensor.pt`` of each
configured group and the latest ``DATA_LAKE_SOURCE/<YYYY-WW>/return_tensor.pt`` (tensor
contract in ``shared/design.md``). Alignment (nestedcv.md section 1):

- ``X[t]`` = the features known after week ``t`` (feature row ``t``);
- ``y[t]`` = the return over week ``t + target_shift``: the return-tensor row
  ``target_shift`` weeks after ``t``, times ``target_scale``.

Feature rows whose label week is not in the return tensor yet (the last ``target_shift``
weeks) are dropped. The panel is written to ``SIMULATION_SOURCE/<label>/inputs/panel_tensor.pt``
and reused when that file already exists (the spec's reuse rule).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from algo_trader.domain.errors import ConfigError, DataError
from algo_trader.domain.simulation.config import DatasetParams
from algo_trader.infrastructure.data.atomic import save_tensor
from algo_trader.infrastructure.data.layout import latest_week_dir
from algo_trader.infrastructure.data.show_tensor import read_payload
from algo_trader.infrastructure.env import Settings

FEATURE_TENSOR = "features_tensor.pt"
RETURN_TENSOR = "return_tensor.pt"
PANEL_FILE = "panel_tensor.pt"
INPUTS_DIR = "inputs"
ALL_GROUPS = "all"
_TENSOR_KEYS = ("values", "timestamps", "missing_mask", "assets")
_PANEL_KEYS = (
    "X",
    "y",
    "missing_mask",
    "y_missing_mask",
    "timestamps",
    "assets",
    "features",
    "sources",
)


@dataclass(frozen=True, eq=False)
class Panel:
    """The simulation's inputs; NaN in ``X`` / ``y`` exactly where the masks are True.

    Attributes
    ----------
    X
        ``(T, A, F)`` float64 features; row ``t`` is known after week ``t``.
    y
        ``(T, A)`` float64 scaled return over week ``t + target_shift``.
    missing_mask, y_missing_mask
        True = missing, same shapes as ``X`` and ``y``.
    timestamps
        ``(T,)`` int64 ns UTC of the feature weeks.
    sources
        ``{name: {"path": str, "sha256": hex}}`` of every file the panel was built from.
    """

    X: np.ndarray
    y: np.ndarray
    missing_mask: np.ndarray
    y_missing_mask: np.ndarray
    timestamps: np.ndarray
    assets: list[str]
    features: list[str]
    sources: dict[str, dict[str, str]]

    @property
    def index(self) -> pd.DatetimeIndex:
        """The feature weeks as a tz-aware UTC index."""
        return pd.DatetimeIndex(pd.to_datetime(self.timestamps, utc=True), name="timestamp")

    def payload(self) -> dict[str, Any]:
        """The ``panel_tensor.pt`` dict (plain tensors, lists and str dicts only)."""
        return {
            "X": torch.from_numpy(np.ascontiguousarray(self.X, dtype=np.float64)),
            "y": torch.from_numpy(np.ascontiguousarray(self.y, dtype=np.float64)),
            "missing_mask": torch.from_numpy(np.ascontiguousarray(self.missing_mask)),
            "y_missing_mask": torch.from_numpy(np.ascontiguousarray(self.y_missing_mask)),
            "timestamps": torch.from_numpy(np.ascontiguousarray(self.timestamps, np.int64)),
            "assets": list(self.assets),
            "features": list(self.features),
            "sources": {k: dict(v) for k, v in self.sources.items()},
        }


@dataclass(frozen=True, eq=False)
class PanelLoad:
    """A loaded panel, where it lives, and whether an existing file was reused."""

    panel: Panel
    path: Path
    reused: bool


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_tensor(path: Path, want_features: bool) -> dict[str, Any]:
    payload = read_payload(path)
    keys = (*_TENSOR_KEYS, "features") if want_features else _TENSOR_KEYS
    absent = [key for key in keys if key not in payload]
    if absent:
        raise DataError(f"tensor file lacks keys {absent}; expected {list(keys)}", path=path)
    ndim = 3 if want_features else 2
    shape = tuple(payload["values"].shape)
    if len(shape) != ndim or tuple(payload["missing_mask"].shape) != shape:
        raise DataError(
            f"values must be {ndim}-D with a missing_mask of the same shape; "
            f"got values {shape}, missing_mask {tuple(payload['missing_mask'].shape)}",
            path=path,
        )
    stamps = payload["timestamps"].numpy()
    if stamps.shape != (shape[0],) or not bool(np.all(np.diff(stamps) > 0)):
        raise DataError(
            f"timestamps must be {shape[0]} strictly increasing int64 values, one per row",
            path=path,
        )
    return payload


def _masked_values(payload: dict[str, Any], path: Path) -> tuple[np.ndarray, np.ndarray]:
    """float64 values with NaN wherever the mask (which readers trust) or the value says so."""
    values = payload["values"].numpy().astype(np.float64)
    mask = payload["missing_mask"].numpy().astype(bool) | np.isnan(values)
    bad = np.isinf(values) & ~mask
    if bad.any():
        where = tuple(int(i[0]) for i in np.nonzero(bad))
        stamp = pd.Timestamp(int(payload["timestamps"][where[0]]), tz="UTC")
        raise DataError(
            f"infinite value at row {where[0]} ({stamp.isoformat()}), asset "
            f"{payload['assets'][where[1]]!r}; values must be finite or marked missing",
            path=path,
            value=float(values[where]),
        )
    values[mask] = np.nan
    return values, mask


def resolve_groups(week_dir: Path, groups: str | Sequence[str]) -> list[str]:
    """Group folder names to load; ``'all'`` = every group folder with a feature tensor.

    Raises
    ------
    DataError
        A requested group has no ``features_tensor.pt`` in ``week_dir`` (lists the ones that do).
    """
    present = sorted(p.parent.name for p in week_dir.glob(f"*/{FEATURE_TENSOR}"))
    wanted = present if groups == ALL_GROUPS else list(groups)
    absent = [g for g in wanted if g not in present]
    if not wanted or absent:
        raise DataError(
            f"data.dataset_params.groups: no {FEATURE_TENSOR} for "
            f"{absent or 'any group'}; groups present: {', '.join(present) or 'none'} "
            "(run algotrader feature_engineering or change the groups)",
            path=week_dir,
        )
    return wanted


def _asset_order(reference: list[str], assets: list[str], name: str, path: Path) -> np.ndarray:
    """Column positions that put ``assets`` into the order of ``reference``."""
    if sorted(assets) != sorted(reference) or len(set(assets)) != len(assets):
        missing = sorted(set(reference) - set(assets))
        extra = sorted(set(assets) - set(reference))
        raise DataError(
            f"{name}: assets differ from the return tensor's: missing {missing}, extra {extra}; "
            "rebuild the feature store from the same data lake folder",
            path=path,
        )
    position = {a: i for i, a in enumerate(assets)}
    return np.array([position[a] for a in reference], dtype=np.int64)


def _stack_groups(
    week_dir: Path, groups: list[str], assets: list[str], prefix: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], dict[str, dict[str, str]]]:
    """Concatenate the groups' features along F (assets in the return tensor's order)."""
    blocks, masks, names = [], [], []
    sources: dict[str, dict[str, str]] = {}
    stamps: np.ndarray | None = None
    for group in groups:
        path = week_dir / group / FEATURE_TENSOR
        payload = _read_tensor(path, want_features=True)
        group_stamps = payload["timestamps"].numpy()
        if stamps is not None and not np.array_equal(group_stamps, stamps):
            raise DataError(
                f"group {group!r}: timestamps differ from group {groups[0]!r}; "
                "recompute all groups in one feature_engineering run",
                path=path,
            )
        stamps = group_stamps
        order = _asset_order(assets, list(payload["assets"]), f"group {group!r}", path)
        values, mask = _masked_values(payload, path)
        blocks.append(values[:, order, :])
        masks.append(mask[:, order, :])
        names += [f"{group}__{f}" if prefix else str(f) for f in payload["features"]]
        sources[f"features/{group}"] = {"path": str(path), "sha256": sha256_file(path)}
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(
            f"feature names {dupes} occur in several groups; set "
            "data.dataset_params.prefix_feature_names: true",
            path=week_dir,
        )
    assert stamps is not None  # resolve_groups never returns an empty list
    return np.concatenate(blocks, axis=2), np.concatenate(masks, axis=2), stamps, names, sources


def build_panel(
    feature_week_dir: Path,
    return_tensor: Path,
    groups: str | Sequence[str],
    target_shift: int,
    target_scale: float,
    prefix_feature_names: bool,
) -> Panel:
    """Align the feature groups of one feature-store week with the return tensor.

    Parameters
    ----------
    feature_week_dir
        A ``FEATURE_STORE_SOURCE/<YYYY-WW>`` folder holding ``<group>/features_tensor.pt``.
    return_tensor
        A data-lake ``return_tensor.pt``.
    groups
        Group names or ``'all'``.
    target_shift
        Weeks between a feature row and its label week (>= 1, else the label is known
        when the features are).
    target_scale
        Factor applied to the returns.
    prefix_feature_names
        Name features ``<group>__<name>``.

    Raises
    ------
    DataError
        Missing group, mismatched assets or timestamps, a feature week absent from the
        return tensor, or no row with a label.
    """
    if target_shift < 1:
        raise ConfigError(
            f"data.dataset_params.target_shift must be >= 1 (got {target_shift}); "
            "0 would label week t with a return already known at t"
        )
    returns = _read_tensor(return_tensor, want_features=False)
    assets = [str(a) for a in returns["assets"]]
    ret_values, ret_mask = _masked_values(returns, return_tensor)
    wanted = resolve_groups(feature_week_dir, groups)
    X, mask, stamps, names, sources = _stack_groups(
        feature_week_dir, wanted, assets, prefix_feature_names
    )
    ret_stamps = returns["timestamps"].numpy()
    pos = np.searchsorted(ret_stamps, stamps)
    found = (pos < len(ret_stamps)) & (ret_stamps[np.minimum(pos, len(ret_stamps) - 1)] == stamps)
    if not found.all():
        first = pd.Timestamp(int(stamps[~found][0]), tz="UTC")
        raise DataError(
            f"feature week {first.isoformat()} is not in the return tensor; rebuild the "
            "feature store from this data lake folder (or set dataset_params.data_lake)",
            path=return_tensor,
        )
    label = pos + target_shift
    keep = label < len(ret_stamps)
    if not keep.any():
        raise DataError(
            f"no feature week has a label {target_shift} week(s) later in the return tensor",
            path=return_tensor,
        )
    sources["returns"] = {"path": str(return_tensor), "sha256": sha256_file(return_tensor)}
    y = ret_values[label[keep]] * float(target_scale)
    return Panel(
        X=X[keep],
        y=y,
        missing_mask=mask[keep],
        y_missing_mask=ret_mask[label[keep]],
        timestamps=stamps[keep].astype(np.int64),
        assets=assets,
        features=names,
        sources=sources,
    )


def panel_from_payload(payload: dict[str, Any], path: Path) -> Panel:
    """Rebuild a :class:`Panel` from a ``panel_tensor.pt`` dict, checking its shapes."""
    absent = [key for key in _PANEL_KEYS if key not in payload]
    if absent:
        raise DataError(f"panel file lacks keys {absent}; delete it to rebuild it", path=path)
    X = payload["X"].numpy().astype(np.float64)
    y = payload["y"].numpy().astype(np.float64)
    T, A, F = X.shape if X.ndim == 3 else (-1, -1, -1)
    shapes_ok = (
        X.ndim == 3
        and tuple(payload["missing_mask"].shape) == X.shape
        and y.shape == (T, A)
        and tuple(payload["y_missing_mask"].shape) == (T, A)
        and tuple(payload["timestamps"].shape) == (T,)
        and len(payload["assets"]) == A
        and len(payload["features"]) == F
    )
    if not shapes_ok:
        raise DataError("panel file shapes are inconsistent; delete it to rebuild it", path=path)
    return Panel(
        X=X,
        y=y,
        missing_mask=payload["missing_mask"].numpy().astype(bool),
        y_missing_mask=payload["y_missing_mask"].numpy().astype(bool),
        timestamps=payload["timestamps"].numpy().astype(np.int64),
        assets=[str(a) for a in payload["assets"]],
        features=[str(f) for f in payload["features"]],
        sources={
            str(k): {str(a): str(b) for a, b in v.items()} for k, v in payload["sources"].items()
        },
    )


def store_roots(settings: Settings, params: DatasetParams) -> tuple[Path, Path]:
    """(feature store, data lake) roots: the ``dataset_params`` overrides, else the env."""
    return (
        params.feature_store or settings.feature_store_source,
        params.data_lake or settings.data_lake_source,
    )


def feature_week_dir(feature_store: Path) -> Path:
    """The newest ``YYYY-WW`` folder of the feature store."""
    return latest_week_dir(feature_store)


def check_output_dir(out_dir: Path) -> Path | None:
    """The reuse rule: the existing panel file, None for a new folder, else an error.

    Raises
    ------
    DataError
        ``out_dir`` exists but holds no ``inputs/panel_tensor.pt``.
    """
    panel_path = out_dir / INPUTS_DIR / PANEL_FILE
    if panel_path.is_file():
        return panel_path
    if out_dir.exists():
        raise DataError(
            f"the simulation output folder exists but has no {INPUTS_DIR}/{PANEL_FILE} to "
            "reuse; delete the folder or choose another label with data.simulation_output_path",
            path=out_dir,
        )
    return None


def load_feature_store_panel(
    out_dir: Path,
    feature_store: Path,
    data_lake: Path,
    groups: str | Sequence[str],
    target_shift: int,
    target_scale: float,
    prefix_feature_names: bool,
) -> PanelLoad:
    """Read ``out_dir/inputs/panel_tensor.pt`` or build the panel from the latest stage outputs.

    A built panel is not written yet: the runner saves it with :func:`save_panel` once the
    CV configuration has been checked against it, so a bad config leaves no files behind.

    Parameters
    ----------
    out_dir
        ``SIMULATION_SOURCE/<label>``.
    feature_store, data_lake
        Roots holding ``YYYY-WW`` folders (the env folders or the dataset_params overrides).
    groups, target_shift, target_scale, prefix_feature_names
        As in :func:`build_panel`.

    Returns
    -------
    PanelLoad
        The panel, its file, and whether it was reused.
    """
    path = out_dir / INPUTS_DIR / PANEL_FILE
    existing = check_output_dir(out_dir)
    if existing is not None:
        return PanelLoad(panel_from_payload(read_payload(existing), existing), existing, True)
    lake_dir = latest_week_dir(data_lake, must_contain=RETURN_TENSOR)
    panel = build_panel(
        feature_week_dir(feature_store),
        lake_dir / RETURN_TENSOR,
        groups,
        target_shift,
        target_scale,
        prefix_feature_names,
    )
    return PanelLoad(panel, path, False)


def save_panel(load: PanelLoad) -> None:
    """Write a newly built panel to its ``panel_tensor.pt`` (a reused one is left as is)."""
    if not load.reused:
        save_tensor(load.path, load.panel.payload())


def feature_store_panel(settings: Settings, params: DatasetParams, out_dir: Path) -> PanelLoad:
    """The ``feature_store_panel`` dataset loader (the only one the CLI uses).

    Parameters
    ----------
    settings
        Env settings (``FEATURE_STORE_SOURCE``, ``DATA_LAKE_SOURCE``).
    params
        ``data.dataset_params`` of the simulation config.
    out_dir
        ``SIMULATION_SOURCE/<label>``.
    """
    feature_store, data_lake = store_roots(settings, params)
    return load_feature_store_panel(
        out_dir,
        feature_store,
        data_lake,
        params.groups,
        params.target_shift,
        params.target_scale,
        params.prefix_feature_names,
    )

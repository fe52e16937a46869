"""Print a summary of a return or feature tensor file (used by ``scripts/show_*_tensor.sh``).

``python -m algo_trader.infrastructure.data.show_tensor returns [--head N] [DIR]``
    ``DIR`` is a data-cleaning week folder (holding ``return_tensor.pt``) or a folder of
    such week folders (the latest is taken); default: the latest under ``DATA_LAKE_SOURCE``.
``python -m algo_trader.infrastructure.data.show_tensor features --group G [--head N]``
    ``FEATURE_STORE_SOURCE/<latest YYYY-WW holding G>/<G>/features_tensor.pt``.

Both read ``.env`` from the working directory like ``algotrader`` does. Cells whose
``missing_mask`` is True are shown as NaN whatever ``values`` holds (readers trust the mask).
"""

from __future__ import annotations

import argparse
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from algo_trader.domain.errors import AlgoTraderError, DataError
from algo_trader.infrastructure.data.atomic import load_tensor
from algo_trader.infrastructure.data.layout import WEEK_DIR, latest_week_dir
from algo_trader.infrastructure.env import load_settings

RETURN_TENSOR = "return_tensor.pt"
FEATURE_TENSOR = "features_tensor.pt"
REQUIRED_KEYS = ("values", "timestamps", "missing_mask", "assets")


def return_tensor_path(folder: Path | None) -> Path:
    """``return_tensor.pt`` of ``folder`` (a week folder or a root of week folders)."""
    root = folder if folder is not None else load_settings().data_lake_source
    if WEEK_DIR.match(root.name) and (root / RETURN_TENSOR).is_file():
        return root / RETURN_TENSOR
    return latest_week_dir(root, must_contain=RETURN_TENSOR) / RETURN_TENSOR


def feature_tensor_path(group: str) -> Path:
    """``features_tensor.pt`` of ``group`` in the latest feature-store week holding it."""
    root = load_settings().feature_store_source
    try:
        week = latest_week_dir(root, must_contain=f"{group}/{FEATURE_TENSOR}")
    except DataError:
        groups = sorted(
            {
                p.parent.name
                for p in root.glob(f"*/*/{FEATURE_TENSOR}")
                if WEEK_DIR.match(p.parents[1].name)
            }
        )
        raise DataError(
            f"no {group}/{FEATURE_TENSOR} in any YYYY-WW folder; groups found: "
            f"{', '.join(groups) or 'none (run algotrader feature_engineering)'}",
            path=root,
        ) from None
    return week / group / FEATURE_TENSOR


def read_payload(path: Path) -> dict[str, Any]:
    """Load a tensor file, turning an unreadable one into a :class:`DataError`."""
    try:
        return load_tensor(path)
    except (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError) as err:
        raise DataError(
            f"not a tensor file readable with weights_only=True ({err})", path=path
        ) from None


def _check(payload: dict[str, Any], path: Path) -> None:
    absent = [key for key in REQUIRED_KEYS if key not in payload]
    if absent:
        raise DataError(
            f"tensor file lacks keys {absent}; expected {list(REQUIRED_KEYS)}", path=path
        )
    if tuple(payload["values"].shape) != tuple(payload["missing_mask"].shape):
        raise DataError("values and missing_mask differ in shape", path=path)


def head_frame(payload: dict[str, Any], head: int) -> pd.DataFrame:
    """The first ``head`` time steps as a table; masked cells are NaN.

    A ``T x A`` tensor gives timestamps x assets; a ``T x A x F`` tensor gives
    (timestamp, asset) rows x feature columns.
    """
    values = payload["values"][:head].numpy().astype(float)
    values[payload["missing_mask"][:head].numpy()] = np.nan
    stamps = pd.to_datetime(payload["timestamps"][:head].numpy(), utc=True)
    times = pd.Index(stamps.strftime("%Y-%m-%dT%H:%M:%S+00:00"), name="timestamp")
    assets = pd.Index(payload["assets"], name="asset")
    if values.ndim == 2:
        return pd.DataFrame(values, index=times, columns=assets)
    rows = pd.MultiIndex.from_product([times, assets])
    features = payload.get("features", [f"f{i}" for i in range(values.shape[2])])
    return pd.DataFrame(values.reshape(-1, values.shape[2]), index=rows, columns=features)


def describe(payload: dict[str, Any], path: Path, head: int) -> str:
    """The text the scripts print: shape, labels, time span, missing count, first rows."""
    _check(payload, path)
    shape = tuple(payload["values"].shape)
    dims = ("time", "asset", "feature")[: len(shape)]
    stamps = pd.to_datetime(payload["timestamps"].numpy(), utc=True)
    mask = payload["missing_mask"]
    missing, total = int(mask.sum()), int(mask.numel())
    lines = [
        f"file: {path}",
        f"shape: {' x '.join(map(str, shape))} ({' x '.join(dims)}), "
        f"dtype {str(payload['values'].dtype).removeprefix('torch.')}",
        f"assets ({len(payload['assets'])}): {', '.join(payload['assets'])}",
    ]
    if "features" in payload:
        lines.append(f"features ({len(payload['features'])}): {', '.join(payload['features'])}")
    span = f"{stamps[0].isoformat()} .. {stamps[-1].isoformat()}" if len(stamps) else "empty"
    lines.append(f"time span: {span} ({len(stamps)} steps)")
    lines.append(f"missing: {missing} of {total} cells ({missing / max(total, 1):.1%})")
    lines.append(f"first {min(head, shape[0])} rows:")
    with pd.option_context("display.width", 200, "display.max_columns", 50):
        lines.append(head_frame(payload, head).to_string())
    return "\n".join(lines)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="show_tensor", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="kind", required=True)
    ret = sub.add_parser("returns", help="latest data-lake return tensor")
    ret.add_argument("--head", type=_positive, default=5)
    ret.add_argument("dir", nargs="?", type=Path, default=None)
    feat = sub.add_parser("features", help="latest feature tensor of a group")
    feat.add_argument("--group", required=True)
    feat.add_argument("--head", type=_positive, default=5)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns 1 with a one-line message on a project error."""
    args = _parser().parse_args(argv)
    try:
        path = (
            return_tensor_path(args.dir)
            if args.kind == "returns"
            else (feature_tensor_path(args.group))
        )
        print(describe(read_payload(path), path, args.head))
    except AlgoTraderError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

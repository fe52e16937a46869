"""Atomic file writes: temp file in the same folder, fsync, rename.

A reader never sees a half-written file, and a run killed mid-write leaves the previous
version in place (and a ``.<name>.<random>.tmp`` file that a resuming run deletes).
Everything the project writes goes through these helpers.

Durability: the temp file is fsynced before the rename, and the folder is fsynced after
it. A ``kill -9`` alone never loses a rename (the kernel keeps it); the folder fsync is
what makes the rename survive a power loss or an OS crash, so that a checkpoint or a
manifest found after a reboot points at complete files.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pandas as pd

UTC_FORMAT = "%Y-%m-%dT%H:%M:%S+00:00"
"""strftime format of every timestamp the project writes (values are always UTC)."""


def fsync_dir(path: str | Path) -> None:
    """fsync a folder so that a rename or deletion in it is durable (no-op where the OS
    cannot open a folder, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the rename itself is done
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success fsync it and rename it onto ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write(path: str | Path, writer: Callable[[IO[str]], object]) -> None:
    """Write text through ``writer(handle)`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        writer(handle)


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        if math.isnan(obj):
            return None
        raise ValueError(f"cannot write infinite value {obj!r} to JSON")
    if isinstance(obj, dict):
        return {str(k): _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_nan_to_none(v) for v in obj]
    return obj


def write_json(path: str | Path, payload: Any) -> None:
    """Write JSON with sorted keys and ``allow_nan=False``; NaN becomes ``null``."""
    text = json.dumps(_nan_to_none(payload), allow_nan=False, sort_keys=True, indent=2)
    atomic_write(path, lambda handle: handle.write(text + "\n"))


def write_csv(path: str | Path, frame: pd.DataFrame, **kwargs: Any) -> None:
    """Write a DataFrame as CSV atomically.

    Timestamps are written in UTC as ISO 8601 with an explicit ``+00:00`` offset; the
    caller's frames are tz-aware UTC (the project converts at its input boundary).
    """
    kwargs.setdefault("date_format", UTC_FORMAT)
    atomic_write(path, lambda handle: frame.to_csv(handle, **kwargs))


def save_tensor(path: str | Path, payload: dict[str, Any]) -> None:
    """``torch.save`` a plain dict (no pickled classes) atomically.

    The payload is saved through an open handle: given a path, ``torch.save`` names the
    zip archive's top folder after the file, here the random temp name, so the same
    payload would give different bytes each time; through a handle the folder is always
    ``archive`` and equal payloads give equal bytes.
    """
    import torch  # lazily: importing torch costs seconds, and most writers never need it

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)


def load_tensor(path: str | Path) -> dict[str, Any]:
    """Load a tensor file written by :func:`save_tensor` with ``weights_only=True``."""
    import torch

    return torch.load(Path(path), weights_only=True)

"""``run_manifest.json``: what a simulation run was, so it can be reproduced or audited.

Written at the base of the output folder by every run (whatever ``stop_after``), last and
atomically (``shared/design.md``): its presence with ``"status": "complete"`` means every
other file of the run is in place.

Reproducibility: two runs with the same config, seeds and inputs on the same machine give
the same bytes in every artifact; in the manifest only the wall-clock fields
:data:`WALL_CLOCK_FIELDS` (``started``, ``finished``) differ. ``git`` (commit, dirty flag of
the work tree the run started in), ``packages``, ``python``, ``platform`` and
``torch_num_threads`` describe the environment: they are equal on the same machine with
the same code.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from algo_trader.infrastructure.data.atomic import UTC_FORMAT, write_json

MANIFEST_FILE = "run_manifest.json"
WALL_CLOCK_FIELDS = ("started", "finished")
"""Top-level manifest keys that hold wall-clock time: the only bytes that differ between
two runs of the same config, seeds and inputs on the same machine."""
PACKAGES = ("algo_trader", "numpy", "pandas", "torch", "scipy", "pyro-ppl")


def utc_now() -> str:
    """The current time as the project writes timestamps."""
    return datetime.now(UTC).strftime(UTC_FORMAT)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution; None when it is not installed."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_revision(cwd: Path | None = None) -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` of the git work tree around ``cwd``; None outside one."""
    where = Path.cwd() if cwd is None else cwd
    commit = _git(["rev-parse", "HEAD"], where)
    if commit is None:
        return None
    status = _git(["status", "--porcelain", "--untracked-files=no"], where)
    return {"commit": commit, "dirty": bool(status)}


def manifest_payload(
    *,
    config: dict[str, Any],
    config_path: Path,
    candidates: dict[str, dict[str, object]] | None,
    seeds: dict[str, Any],
    inputs: dict[str, dict[str, str]],
    phases: list[str],
    stopped_after: str,
    hooks: str | None,
    started: str,
    identity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest dict.

    Parameters
    ----------
    config
        The resolved config (``model_dump(mode="json")``).
    config_path
        The YAML file it came from.
    candidates
        ``cv/candidates.json`` content, or None if the run stopped before it.
    seeds
        Every seed the run used, by unit of work.
    inputs
        Input files: ``{name: {"path", "sha256"}}``.
    phases
        Phases completed, in order.
    stopped_after
        The last phase run.
    hooks
        Name of the hooks used (``stub``...), None when no hook ran.
    started
        Start time (:func:`utc_now` at the start).
    identity
        The run's identity (``checkpoint.run_identity``): a re-run on the folder compares
        its own with it.
    """
    return {
        "status": "complete",
        "config_path": str(config_path),
        "config": config,
        "candidates": candidates,
        "seeds": seeds,
        "inputs": inputs,
        "phases": phases,
        "stopped_after": stopped_after,
        "hooks": hooks,
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "git": git_revision(),
        "identity": identity,
        "torch_num_threads": _torch_threads(),
        "started": started,
        "finished": utc_now(),
    }


def _torch_threads() -> int | None:
    """Intra-op threads of torch: float reductions may depend on it (reproducibility)."""
    try:
        import torch
    except ImportError:
        return None
    return int(torch.get_num_threads())


def write_manifest(out_dir: Path, payload: dict[str, Any]) -> Path:
    """Write ``run_manifest.json`` atomically (call it after every other file)."""
    path = out_dir / MANIFEST_FILE
    write_json(path, payload)
    return path

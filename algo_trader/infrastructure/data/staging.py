"""All-or-nothing output folders: build beside the target, then swap it in.

Every file of a run is written into a hidden staging folder next to the final one
(``.staging-<name>-<random>``); only when all of them are written is the staging folder
renamed onto the final name. A run interrupted before that (error, Ctrl-C) leaves the
previous folder untouched. The swap itself is two renames (old folder aside to
``.replaced-<name>``, staging folder into place); should a run die between them, the next
run puts the old folder back before it starts (:func:`recover`). Hidden names never match
``YYYY-WW``, so readers (``layout.latest_week_dir``) never see a half-built folder.

One writer per data lake at a time is assumed: :func:`recover` deletes any staging folder
it finds.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STAGING_PREFIX = ".staging-"
REPLACED_PREFIX = ".replaced-"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def recover(root: Path) -> None:
    """Clean up after an interrupted run under ``root``.

    A ``.replaced-<name>`` folder whose ``<name>`` is gone is a swap that died half-way:
    it is renamed back. One whose ``<name>`` exists is a finished swap: it is deleted, as
    are leftover staging folders.
    """
    if not root.is_dir():
        return
    for path in sorted(root.iterdir()):
        if path.name.startswith(REPLACED_PREFIX):
            final = root / path.name[len(REPLACED_PREFIX) :]
            if final.exists():
                shutil.rmtree(path)
            else:
                os.replace(path, final)
        elif path.name.startswith(STAGING_PREFIX) and path.is_dir():
            shutil.rmtree(path)


def swap_in(staging: Path, final: Path) -> None:
    """Replace ``final`` (if any) by ``staging``; the old folder is deleted afterwards."""
    replaced = final.parent / f"{REPLACED_PREFIX}{final.name}"
    if replaced.exists():
        shutil.rmtree(replaced)
    if final.exists():
        os.replace(final, replaced)
    os.replace(staging, final)
    _fsync_dir(final.parent)
    if replaced.exists():
        shutil.rmtree(replaced)


@contextmanager
def staged_folder(final: Path) -> Iterator[Path]:
    """Yield an empty staging folder; on normal exit it becomes ``final``.

    On any exception (``KeyboardInterrupt`` included) the staging folder is deleted and
    ``final`` keeps its previous content.
    """
    root = final.parent
    root.mkdir(parents=True, exist_ok=True)
    recover(root)
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{final.name}-", dir=root))
    try:
        yield staging
        _fsync_dir(staging)
        swap_in(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)

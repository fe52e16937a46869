"""Progress display: a rich bar on a terminal, plain log lines elsewhere (CI, files)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

logger = logging.getLogger("algo_trader.progress")


class Tracker:
    """Counts units of work for one task; ``advance`` after each unit."""

    def __init__(self, progress: Progress | None, description: str, total: int) -> None:
        self._progress = progress
        self._description = description
        self.total = total
        self.done = 0
        self._task = progress.add_task(description, total=total) if progress else None
        self._last_log = 0.0

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, n)
            return
        now = time.monotonic()
        # Without a terminal, log at most every 2 s plus the final unit, to keep logs short.
        if self.done >= self.total or now - self._last_log >= 2.0:
            self._last_log = now
            logger.info("%s: %d/%d", self._description, self.done, self.total)


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Tracker]:
    """Show progress of ``total`` units: a rich bar on a TTY, log lines otherwise."""
    if not sys.stderr.isatty():
        yield Tracker(None, description, total)
        return
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as progress:
        yield Tracker(progress, description, total)

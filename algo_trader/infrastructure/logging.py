"""Logging set-up from ``LOG_DEST``, ``LOG_LEVEL`` and ``LOG_FILE_PATH``."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from algo_trader.domain.errors import ConfigError

_DESTS = {"console", "file"}
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def parse_log_dest(raw: str) -> set[str]:
    """Parse ``LOG_DEST``: ``console``, ``file`` or both (``console,file`` / ``both``)."""
    text = raw.strip().lower() or "console"
    if text == "both":
        return set(_DESTS)
    dests = {part.strip() for part in text.replace("+", ",").split(",") if part.strip()}
    unknown = dests - _DESTS
    if unknown or not dests:
        raise ConfigError(
            f"env var LOG_DEST={raw!r} is invalid; use console, file, or console,file (both)"
        )
    return dests


def configure_logging() -> None:
    """Configure the root ``algo_trader`` logger from the environment.

    Raises
    ------
    ConfigError
        On an unknown destination or level, or ``LOG_DEST`` including ``file`` without
        ``LOG_FILE_PATH``.
    """
    dests = parse_log_dest(os.environ.get("LOG_DEST", ""))
    level = os.environ.get("LOG_LEVEL", "").strip().upper() or "INFO"
    if level not in _LEVELS:
        raise ConfigError(
            f"env var LOG_LEVEL={level!r} is invalid; use one of {', '.join(_LEVELS)}"
        )
    handlers: list[logging.Handler] = []
    if "console" in dests:
        from rich.logging import RichHandler

        handlers.append(RichHandler(show_path=False, rich_tracebacks=False))
    if "file" in dests:
        raw_path = os.environ.get("LOG_FILE_PATH", "").strip()
        if not raw_path:
            raise ConfigError(
                "env var LOG_DEST includes 'file' but LOG_FILE_PATH is not set; "
                "set LOG_FILE_PATH=/path/to/algotrader.log or use LOG_DEST=console"
            )
        path = Path(raw_path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(path, encoding="utf-8")
        file_handler.setFormatter(logging.Formatter(FORMAT))
        handlers.append(file_handler)
    logger = logging.getLogger("algo_trader")
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    for handler in handlers:
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False

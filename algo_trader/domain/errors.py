"""The project's own error types.

Every error a user can provoke with bad input is one of these, and its message names
where the problem is (file, line, column or key), the bad value and what would be valid.
A traceback from anything else is a bug.
"""

from __future__ import annotations

from pathlib import Path


class AlgoTraderError(Exception):
    """Base class of every error the project raises on purpose."""


class ConfigError(AlgoTraderError):
    """A configuration value (YAML key, env var, CLI flag) is missing or invalid."""


class DataError(AlgoTraderError):
    """An input data file is malformed; the message names file, line, column and value."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        column: str | None = None,
        value: object = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.column = column
        self.value = value
        where = []
        if self.path is not None:
            where.append(self.path)
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = ", ".join(where)
        if value is not None:
            message = f"{message} (value {value!r})"
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ProviderError(AlgoTraderError):
    """A data provider failed in a way a retry will not fix."""


class NotYetImplementedError(AlgoTraderError):
    """A CLI command whose workflow a later issue builds; says so instead of pretending."""

"""Parse ``--preprocessor-arg key=value`` strings into typed values.

Every failure is a :class:`ConfigError` that names the preprocessor, the key, the value
given and what would be valid, so a user can fix the command line from the message alone.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from datetime import date

from algo_trader.domain.errors import ConfigError

PIPELINE_PATTERN = re.compile(r"^[A-Za-z0-9._-]+$")
DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TRUE_WORDS = ("true", "false")


def arg_error(preprocessor: str, key: str, value: str, valid: str) -> ConfigError:
    """The one message format for a bad preprocessor argument."""
    return ConfigError(
        f"preprocessor {preprocessor!r}: --preprocessor-arg {key}={value!r} is invalid; {valid}"
    )


def split_pairs(preprocessor: str, raw_args: Sequence[str]) -> dict[str, str]:
    """Turn ``["k=v", ...]`` into a dict; a missing ``=``, empty key or repeated key fails.

    Keys are case-sensitive and stripped of surrounding spaces; the value is everything after
    the first ``=`` (so values may themselves contain ``=``).
    """
    pairs: dict[str, str] = {}
    for raw in raw_args:
        key, sep, value = raw.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"preprocessor {preprocessor!r}: --preprocessor-arg {raw!r} is not of the form "
                "key=value (e.g. missing=drop)"
            )
        if key in pairs:
            raise arg_error(
                preprocessor, key, value, f"{key} is already set to {pairs[key]!r}; give it once"
            )
        pairs[key] = value.strip()
    return pairs


def check_keys(preprocessor: str, pairs: Mapping[str, str], allowed: Collection[str]) -> None:
    """Reject the first key not in ``allowed``, listing the valid keys."""
    for key, value in pairs.items():
        if key not in allowed:
            valid = ", ".join(sorted(allowed)) or "(it takes no arguments)"
            raise arg_error(preprocessor, key, value, f"unknown key; valid keys: {valid}")


def parse_bool(preprocessor: str, key: str, value: str) -> bool:
    """``true`` or ``false`` (any case)."""
    word = value.lower()
    if word not in TRUE_WORDS:
        raise arg_error(preprocessor, key, value, "must be true or false")
    return word == "true"


def parse_choice(preprocessor: str, key: str, value: str, choices: Sequence[str]) -> str:
    """One of ``choices`` exactly."""
    if value not in choices:
        raise arg_error(preprocessor, key, value, f"must be one of {', '.join(choices)}")
    return value


def parse_date(preprocessor: str, key: str, value: str) -> date:
    """A calendar date ``YYYY-MM-DD``."""
    if DATE_PATTERN.match(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise arg_error(preprocessor, key, value, "must be a real date YYYY-MM-DD, e.g. 2020-01-31")


def parse_pipeline(preprocessor: str, key: str, value: str) -> str:
    """A folder-safe pipeline name: letters, digits, ``.``, ``_``, ``-`` only."""
    if not PIPELINE_PATTERN.match(value) or value in (".", ".."):
        raise arg_error(
            preprocessor, key, value, "must be a non-empty name of A-Za-z0-9._- (not . or ..)"
        )
    return value


def parse_positive_int(preprocessor: str, key: str, value: str) -> int:
    """A whole number >= 1."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise arg_error(preprocessor, key, value, "must be a positive integer (1, 2, ...)")
    return number


def parse_unit_fraction(preprocessor: str, key: str, value: str) -> float:
    """A float in ``(0, 1]``."""
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not 0.0 < number <= 1.0:  # also false for NaN
        raise arg_error(preprocessor, key, value, "must be a number in (0, 1], e.g. 0.9")
    return number

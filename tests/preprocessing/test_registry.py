from __future__ import annotations

from datetime import date

import pytest

from algo_trader.domain.errors import ConfigError
from algo_trader.preprocessing.identity import Identity
from algo_trader.preprocessing.pca import Pca
from algo_trader.preprocessing.registry import configure, default_registry
from algo_trader.preprocessing.zscore import ZScore


def test_default_registry_holds_the_builtins() -> None:
    registry = default_registry()
    assert registry.names() == ["identity", "pca", "zscore"]
    assert registry.get("pca") is Pca


def test_configure_parses_args_and_pipeline() -> None:
    configured = configure("zscore", ["start_date=2020-01-01", "pipeline=exp_1.a-b"])
    assert configured.preprocessor == ZScore(start_date=date(2020, 1, 1))
    assert configured.pipeline == "exp_1.a-b"
    assert configure("identity", []).pipeline == "debug"
    assert configure("identity", ["copy=true", "pipeline=keep"]).preprocessor == Identity(True)


# every bad argument the spec names, with the message parts a user needs
BAD_ARGS = [
    (
        "zscore",
        ["k=3"],
        r"'zscore'.*k='3'.*unknown key; valid keys: end_date, missing, pipeline, start_date",
    ),
    ("identity", ["missing=zero"], r"'identity'.*missing='zero'.*valid keys: copy, pipeline"),
    ("pca", ["k=2", "variance=0.5"], r"'pca'.*variance='0.5'.*k or variance, not both"),
    ("pca", [], r"'pca'.*k=N.*variance=V.*neither"),
    ("pca", ["variance=1.5"], r"'pca'.*variance='1.5'.*\(0, 1\]"),
    ("pca", ["k=0"], r"'pca'.*k='0'.*positive integer"),
    ("zscore", ["start_date=2024-02-30"], r"'zscore'.*start_date='2024-02-30'.*YYYY-MM-DD"),
    ("zscore", ["end_date=31.01.2024"], r"'zscore'.*end_date='31.01.2024'.*YYYY-MM-DD"),
    (
        "pca",
        ["k=1", "start_date=2024-03-01", "end_date=2024-01-01"],
        r"'pca'.*start_date='2024-03-01'.*not be after end_date=2024-01-01",
    ),
    ("zscore", ["missing=foo"], r"'zscore'.*missing='foo'.*one of zero, drop"),
    ("zscore", ["pipeline=my/pipe"], r"'zscore'.*pipeline='my/pipe'.*A-Za-z0-9._-"),
    ("identity", ["copy=maybe"], r"'identity'.*copy='maybe'.*true or false"),
    ("zscore", ["missing"], r"'zscore'.*'missing' is not of the form key=value"),
    ("pca", ["k=1", "k=2"], r"'pca'.*k='2'.*already set"),
]


@pytest.mark.parametrize(("name", "args", "pattern"), BAD_ARGS)
def test_bad_args_name_preprocessor_key_value_and_valid(
    name: str, args: list[str], pattern: str
) -> None:
    with pytest.raises(ConfigError, match=pattern):
        configure(name, args)


def test_unknown_preprocessor_lists_valid_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown preprocessor 'foo'; valid: identity, pca, zscore"
    ):
        configure("foo", [])

from __future__ import annotations

from datetime import date

import pytest

from algo_trader.domain.errors import ConfigError
from algo_trader.preprocessing.args import (
    check_keys,
    parse_bool,
    parse_choice,
    parse_date,
    parse_pipeline,
    parse_positive_int,
    parse_unit_fraction,
    split_pairs,
)


def test_split_pairs_keeps_text_after_first_equals() -> None:
    assert split_pairs("p", ["k=3", " missing = drop", "x=a=b"]) == {
        "k": "3",
        "missing": "drop",
        "x": "a=b",
    }


@pytest.mark.parametrize("raw", ["k", "=3", ""])
def test_split_pairs_rejects_non_pairs(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"preprocessor 'p'.*not of the form key=value"):
        split_pairs("p", [raw])


def test_split_pairs_rejects_repeated_key() -> None:
    with pytest.raises(ConfigError, match=r"k='2'.*already set to '1'"):
        split_pairs("p", ["k=1", "k=2"])


def test_check_keys_lists_valid_keys() -> None:
    with pytest.raises(ConfigError, match=r"'p'.*foo='1'.*unknown key; valid keys: a, b"):
        check_keys("p", {"a": "x", "foo": "1"}, ("b", "a"))


@pytest.mark.parametrize(("text", "expected"), [("true", True), ("FALSE", False)])
def test_parse_bool(text: str, expected: bool) -> None:
    assert parse_bool("identity", "copy", text) is expected


def test_parse_bool_rejects_other_words() -> None:
    with pytest.raises(ConfigError, match=r"'identity'.*copy='maybe'.*true or false"):
        parse_bool("identity", "copy", "maybe")


def test_parse_choice() -> None:
    assert parse_choice("z", "missing", "drop", ("zero", "drop")) == "drop"
    with pytest.raises(ConfigError, match=r"missing='foo'.*one of zero, drop"):
        parse_choice("z", "missing", "foo", ("zero", "drop"))


def test_parse_date() -> None:
    assert parse_date("z", "start_date", "2024-02-29") == date(2024, 2, 29)


@pytest.mark.parametrize("text", ["2023-02-29", "2024-1-5", "20240105", "yesterday", ""])
def test_parse_date_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match=r"start_date=.*YYYY-MM-DD"):
        parse_date("z", "start_date", text)


@pytest.mark.parametrize("text", ["debug", "exp_1.v-2", "A"])
def test_parse_pipeline(text: str) -> None:
    assert parse_pipeline("z", "pipeline", text) == text


@pytest.mark.parametrize("text", ["", "a/b", "my pipe", "..", ".", "é"])
def test_parse_pipeline_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match=r"pipeline=.*A-Za-z0-9._-"):
        parse_pipeline("z", "pipeline", text)


def test_parse_positive_int() -> None:
    assert parse_positive_int("pca", "k", "3") == 3
    for text in ("0", "-1", "1.5", "x"):
        with pytest.raises(ConfigError, match=r"'pca'.*k=.*positive integer"):
            parse_positive_int("pca", "k", text)


def test_parse_unit_fraction() -> None:
    assert parse_unit_fraction("pca", "variance", "1") == 1.0
    assert parse_unit_fraction("pca", "variance", "0.9") == 0.9
    for text in ("0", "1.5", "-0.1", "nan", "x"):
        with pytest.raises(ConfigError, match=r"'pca'.*variance=.*\(0, 1\]"):
            parse_unit_fraction("pca", "variance", text)

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from algo_trader.domain.errors import ConfigError
from algo_trader.infrastructure.yaml_config import load_model, load_yaml


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rate: float = Field(gt=0, le=1)


class Demo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    inner: Inner
    count: int = 1


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "demo.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_yaml_12_scalars(tmp_path: Path) -> None:
    data = load_yaml(write(tmp_path, "a: 1e-3\nb: ON\nc: NO\nd: true\ne: 1_000_000\nf: yes\n"))
    assert data == {"a": 0.001, "b": "ON", "c": "NO", "d": True, "e": 1_000_000, "f": "yes"}


def test_duplicate_key_names_file_and_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "name: a\ninner:\n  rate: 0.1\nname: b\n")
    with pytest.raises(
        ConfigError, match=r"demo\.yml: duplicate key 'name' at line 4 \(first at line 1\)"
    ):
        load_yaml(path)


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="the file is empty"):
        load_yaml(write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_yaml(tmp_path / "nope.yml")


def test_syntax_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(write(tmp_path, "a: [1, 2\n"))


def test_unknown_key_names_path(tmp_path: Path) -> None:
    path = write(tmp_path, "name: a\ninner:\n  rate: 0.1\n  rtae: 0.2\n")
    with pytest.raises(ConfigError, match=r"demo\.yml: inner\.rtae: unknown key"):
        load_model(path, Demo)


def test_out_of_range_value(tmp_path: Path) -> None:
    path = write(tmp_path, "name: a\ninner:\n  rate: 1.5\n")
    with pytest.raises(
        ConfigError, match=r"inner\.rate: Input should be less than or equal to 1 \(got 1\.5\)"
    ):
        load_model(path, Demo)


def test_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path, "name: a\ninner:\n  rate: 0.1\ncount: many\n")
    with pytest.raises(ConfigError, match=r"count: .*integer.*\(got 'many'\)"):
        load_model(path, Demo)


def test_scientific_float_accepted(tmp_path: Path) -> None:
    model = load_model(write(tmp_path, "name: a\ninner:\n  rate: 1e-3\n"), Demo)
    assert model.inner.rate == 0.001

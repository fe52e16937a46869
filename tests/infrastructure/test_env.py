from pathlib import Path

import pytest

from algo_trader.domain.errors import ConfigError
from algo_trader.infrastructure.env import load_settings


def test_defaults_under_data_folder() -> None:
    s = load_settings()
    assert s.data_source == Path("data/raw")
    assert s.data_lake_source == Path("data/data_lake")
    assert s.feature_store_source == Path("data/feature_store")
    assert s.historical_data_provider == "sample"
    assert s.torch_device == "cpu"
    assert s.max_parallel_requests == 4


def test_env_file_read_and_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = tmp_path / ".env"
    env.write_text("DATA_SOURCE=/x/raw\nIB_PORT=4002\n", encoding="utf-8")
    monkeypatch.setenv("IB_PORT", "4001")
    s = load_settings(env)
    assert s.data_source == Path("/x/raw")
    assert s.ib_port == 4001


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MAX_PARALLEL_REQUESTS", "many", "MAX_PARALLEL_REQUESTS='many' is not an integer"),
        ("MAX_PARALLEL_REQUESTS", "0", "MAX_PARALLEL_REQUESTS=0 is below 1"),
        ("IB_PORT", "-1", "IB_PORT=-1 is below 1"),
        ("HISTORICAL_DATA_PROVIDER", "yahoo", "'yahoo' is not one of sample, csv, ib, alpaca"),
        ("TORCH_DEVICE", "tpu", "'tpu' is not one of cpu, cuda"),
    ],
)
def test_bad_values(monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        load_settings()

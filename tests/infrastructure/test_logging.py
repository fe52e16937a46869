import logging
from pathlib import Path

import pytest

from algo_trader.domain.errors import ConfigError
from algo_trader.infrastructure.logging import configure_logging, parse_log_dest


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", {"console"}),
        ("console", {"console"}),
        ("file", {"file"}),
        ("console,file", {"console", "file"}),
        ("both", {"console", "file"}),
    ],
)
def test_parse_log_dest(raw: str, expected: set[str]) -> None:
    assert parse_log_dest(raw) == expected


def test_unknown_dest() -> None:
    with pytest.raises(ConfigError, match="LOG_DEST='syslog' is invalid"):
        parse_log_dest("syslog")


def test_file_dest_requires_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_DEST", "file")
    with pytest.raises(ConfigError, match="LOG_FILE_PATH is not set"):
        configure_logging()


def test_file_dest_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "logs" / "run.log"
    monkeypatch.setenv("LOG_DEST", "file")
    monkeypatch.setenv("LOG_FILE_PATH", str(log))
    monkeypatch.setenv("LOG_LEVEL", "debug")
    configure_logging()
    logging.getLogger("algo_trader.test").debug("hello %d", 7)
    for handler in logging.getLogger("algo_trader").handlers:
        handler.flush()
    assert "DEBUG algo_trader.test: hello 7" in log.read_text(encoding="utf-8")


def test_bad_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "loud")
    with pytest.raises(ConfigError, match="LOG_LEVEL='LOUD' is invalid"):
        configure_logging()

import pytest

from algo_trader.cli.main import build_parser, main

COMMANDS = [
    "wizard",
    "historical",
    "data_cleaning",
    "data_processing",
    "feature_engineering",
    "modeling",
    "simulation",
    "backtest",
    "report",
]


def test_every_spec_command_exists() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sorted(sub.choices) == sorted(COMMANDS)  # type: ignore[arg-type]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_documents_flags(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: algotrader {command}" in out


def test_data_cleaning_help_shows_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["data_cleaning", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--return-type {simple,log}" in out
    assert "(default: simple)" in out


def test_config_error_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOG_DEST", "file")
    assert main(["historical"]) == 2
    assert "LOG_FILE_PATH is not set" in capsys.readouterr().err


def test_bad_month_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data_cleaning", "--start", "2024-13"]) == 2
    assert "--start: '2024-13' is not a month" in capsys.readouterr().err

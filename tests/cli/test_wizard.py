"""The wizard: its questions come from the parser, and a person can drive it in a terminal.

The terminal tests run the real program (``python -m algo_trader.cli.wizard``) in a pseudo
terminal with pexpect and answer with the keys a person presses: arrows, space, Enter,
typed text, Ctrl-U to clear a prefilled answer, Ctrl-C to cancel.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import pexpect
import pytest

from algo_trader.cli.main import build_parser, main
from algo_trader.cli.wizard import (
    SPECIAL,
    WHEN,
    WIZARD,
    Flag,
    arg_problem,
    command_line,
    command_parsers,
    declared_problem,
    features_problem,
    flags_of,
    month_problem,
    run_wizard,
)

BUILT = [
    "historical",
    "data_cleaning",
    "data_processing",
    "feature_engineering",
    "modeling",
    "simulation",
    "backtest",
    "report",
]
TIMEOUT = 90  # seconds per expected screen: the dev machine is shared and slow to import torch
DOWN, ENTER, SPACE, CLEAR, CTRL_C = "\x1b[B", "\r", " ", "\x15", "\x03"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x07")


# ------------------------------------------------------------------ from the parser


def test_offers_every_built_command_in_parser_order() -> None:
    offered = list(command_parsers(build_parser()))
    assert offered[: len(BUILT)] == BUILT
    assert WIZARD not in offered


def test_every_special_question_names_a_real_flag() -> None:
    commands = command_parsers(build_parser())
    known = {(name, f.dest) for name, p in commands.items() for f in flags_of(p)}
    assert set(SPECIAL) <= known
    assert set(WHEN) <= known


def test_flags_of_data_cleaning() -> None:
    flags = flags_of(command_parsers(build_parser())["data_cleaning"])
    assert [(f.option, f.default, f.choices, f.required) for f in flags] == [
        ("--start", None, None, True),
        ("--end", None, None, False),
        ("--return-type", "simple", ("simple", "log"), False),
        ("--assets", None, None, False),
        ("--invalid-bars", "raise", ("raise", "drop"), False),
    ]


def _flag(option: str, default: object = None, **kw: bool) -> Flag:
    return Flag(
        option, "x", "", default, None, False, kw.get("repeatable", False), kw.get("switch", False)
    )


def test_tokens_leave_out_defaults() -> None:
    assert _flag("--return-type", "simple").tokens("simple") == []
    assert _flag("--return-type", "simple").tokens("log") == ["--return-type", "log"]
    assert _flag("--end").tokens("") == []
    assert _flag("--end").tokens(None) == []
    assert _flag("--group", repeatable=True).tokens(["a", "b"]) == ["--group", "a", "--group", "b"]
    assert _flag("--print-only", False, switch=True).tokens(True) == ["--print-only"]
    assert _flag("").tokens("RUN") == ["RUN"]


def test_a_new_flag_is_judged_by_its_declared_type() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, required=True, help="random seed")
    parser.add_argument("--fast", action="store_false", help="slow down")
    seed, fast = flags_of(parser)
    assert seed.label == "--seed: random seed"
    assert declared_problem(seed, "x") == (
        "--seed: invalid value 'x': invalid literal for int() with base 10: 'x'"
    )
    assert declared_problem(seed, "") == "--seed is required"
    assert declared_problem(seed, "7") is None
    assert fast.switch and fast.tokens(True) == ["--fast"] and fast.tokens(False) == []


def test_command_line_is_shell_quoted() -> None:
    line = command_line(["data_processing", "--preprocessor-arg", "pipeline=my run"])
    assert line == "uv run algotrader data_processing --preprocessor-arg 'pipeline=my run'"


def test_month_problem_reads_like_the_command() -> None:
    start = flags_of(command_parsers(build_parser())["data_cleaning"])[0]
    assert month_problem(start, "2024-13") == (
        "--start: '2024-13' is not a month; use YYYY-MM, e.g. 2024-03"
    )
    assert month_problem(start, "") == "--start is required"
    assert month_problem(start, "2024-12") is None


def test_preprocessor_args_are_judged_by_the_preprocessor() -> None:
    later = ("variance", "start_date", "end_date", "missing", "pipeline")
    # an empty k may still be completed by variance: not this prompt's problem
    assert arg_problem("pca", [], "k", "", later) is None
    assert arg_problem("pca", [], "k", "0", later) == (
        "preprocessor 'pca': --preprocessor-arg k='0' is invalid; "
        "must be a positive integer (1, 2, ...)"
    )
    assert arg_problem("pca", [], "variance", "", later[1:]) == (
        "preprocessor 'pca': needs --preprocessor-arg k=N (a positive integer) or "
        "--preprocessor-arg variance=V (a number in (0, 1]); neither was given"
    )
    assert arg_problem("pca", ["k=2"], "variance", "0.5", later[1:]) == (
        "preprocessor 'pca': --preprocessor-arg variance='0.5' is invalid; "
        "give k or variance, not both (k=2)"
    )
    problem = arg_problem("zscore", ["start_date=2020-02-01"], "end_date", "2020-01-01", ())
    assert problem is not None and "must not be after end_date=2020-01-01" in problem


def test_every_chosen_feature_group_keeps_a_feature() -> None:
    assert features_problem(["momentum"], ["ema_spread"]) is None
    assert features_problem(["momentum", "breakout"], ["ema_spread"]) == (
        "no feature selected for group(s) breakout; select one or drop the group"
    )
    assert features_problem(["momentum"], []) == "select at least one feature (space toggles)"


# ------------------------------------------------------------------- in a terminal


def _env(tmp_path: Path) -> dict[str, str]:
    folders = {
        "DATA_SOURCE": "raw",
        "DATA_LAKE_SOURCE": "lake",
        "FEATURE_STORE_SOURCE": "features",
        "MODEL_STORE_SOURCE": "models",
        "SIMULATION_SOURCE": "simulation",
    }
    paths = {name: str(tmp_path / sub) for name, sub in folders.items()}
    # no CPR: prompt_toolkit would otherwise wait for the terminal to report its cursor
    return {**os.environ, **paths, "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm"}


def _spawn(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable,
        ["-m", "algo_trader.cli.wizard", *args],
        env=env or _env(tmp_path),
        cwd=str(tmp_path / "work"),
        dimensions=(60, 250),
        encoding="utf-8",
        timeout=TIMEOUT,
    )


def _screen(child: pexpect.spawn) -> str:
    return ANSI.sub("", f"{child.before}{child.buffer}")


def _expect(child: pexpect.spawn, text: str) -> None:
    """Wait for ``text``; fail at once, showing the screen, if the program ends instead."""
    try:
        found = child.expect_exact([text, pexpect.EOF])
    except pexpect.TIMEOUT:
        pytest.fail(f"no {text!r} within {TIMEOUT} s; screen:\n{_screen(child)}")
    if found == 1:
        pytest.fail(f"the wizard ended before {text!r}; screen:\n{_screen(child)}")


def _answer(child: pexpect.spawn, prompt: str, keys: str) -> None:
    _expect(child, prompt)
    child.send(keys)


def _command(child: pexpect.spawn) -> str:
    """The command line the wizard printed."""
    _expect(child, "command: uv run algotrader")
    _expect(child, "\n")
    return "uv run algotrader" + ANSI.sub("", child.before).rstrip()


def _workflow(child: pexpect.spawn, name: str) -> None:
    downs = list(command_parsers(build_parser())).index(name)
    _answer(child, "Which workflow?", DOWN * downs + ENTER)


def _exit_code(child: pexpect.spawn) -> int:
    _expect_end(child)
    child.close()
    return int(child.exitstatus)


def _expect_end(child: pexpect.spawn) -> None:
    try:
        child.expect(pexpect.EOF)
    except pexpect.TIMEOUT:
        pytest.fail(f"the wizard did not end within {TIMEOUT} s; screen:\n{_screen(child)}")


def _tree(root: Path) -> list[Path]:
    return sorted(root.rglob("*"))


def test_data_cleaning_built_and_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in _env(tmp_path).items():
        monkeypatch.setenv(name, value)
    assert main(["historical", "--start", "2013-01"]) == 0  # the bundled real sample
    child = _spawn(tmp_path)
    _workflow(child, "data_cleaning")
    _answer(child, "(YYYY-MM; raw bars span 2013-01 .. 2013-03", ENTER)  # default: first month
    _answer(child, "--end: last month YYYY-MM", ENTER)
    _answer(child, "--return-type:", DOWN + ENTER)  # log
    _answer(child, "--assets:", SPACE + ENTER)  # untick AAPL, the first
    _answer(child, "--invalid-bars:", ENTER)
    assert _command(child) == (
        "uv run algotrader data_cleaning --start 2013-01 --return-type log "
        "--assets GOOG,IBM,MSFT,NASDAQ,SP500"
    )
    _answer(child, "Run it now or only print it?", ENTER)
    _expect(child, "data_cleaning: outputs in")
    assert _exit_code(child) == 0
    (week,) = (tmp_path / "lake").iterdir()
    header = (week / "returns.csv").read_text().splitlines()[0]
    assert header == "timestamp,GOOG,IBM,MSFT,NASDAQ,SP500"
    assert (week / "return_tensor.pt").is_file()


def test_wrong_answers_are_explained_and_asked_again(tmp_path: Path) -> None:
    before = _tree(tmp_path)
    child = _spawn(tmp_path, "--print-only")
    _workflow(child, "data_cleaning")
    _answer(child, "--start: first month YYYY-MM", "2024-13" + ENTER)
    _expect(child, "--start: '2024-13' is not a month; use YYYY-MM, e.g. 2024-03")
    child.send(CLEAR + "2024-02" + ENTER)
    _answer(child, "--end: last month YYYY-MM", "2024-01" + ENTER)
    _expect(child, "--end 2024-01 is before --start 2024-02; give a month >= 2024-02")
    child.send(CLEAR + ENTER)
    _answer(child, "--return-type:", ENTER)
    _expect(child, f"(no raw bars under {tmp_path / 'raw'}: run `algotrader historical`)")
    _answer(child, "--invalid-bars:", DOWN + ENTER)
    _expect(child, "command: uv run algotrader data_cleaning --start 2024-02 --invalid-bars drop")
    assert _exit_code(child) == 0
    assert _tree(tmp_path) == before


def test_preprocessor_args_checked_by_the_preprocessor(tmp_path: Path) -> None:
    child = _spawn(tmp_path, "--print-only")
    _workflow(child, "data_processing")
    _answer(child, "--preprocessor:", DOWN + ENTER)  # identity, pca, zscore
    _expect(child, "pca takes k, variance, start_date, end_date, missing, pipeline")
    _answer(child, "--preprocessor-arg k=", "0" + ENTER)
    _expect(child, "must be a positive integer (1, 2, ...)")
    child.send(CLEAR + "3" + ENTER)
    _answer(child, "--preprocessor-arg variance=", "0.5" + ENTER)
    _expect(child, "give k or variance, not both (k=3)")
    child.send(CLEAR + ENTER)
    _answer(child, "--preprocessor-arg start_date=", "2020-02-30" + ENTER)
    _expect(child, "must be a real date YYYY-MM-DD")
    child.send(CLEAR + "2020-01-01" + ENTER)
    _answer(child, "--preprocessor-arg end_date=", ENTER)
    _answer(child, "--preprocessor-arg missing=", "drop" + ENTER)
    _answer(child, "--preprocessor-arg pipeline=", "my run" + ENTER)
    _expect(child, "must be a non-empty name of A-Za-z0-9._-")
    child.send(CLEAR + ENTER)
    _expect(
        child,
        "command: uv run algotrader data_processing --preprocessor pca --preprocessor-arg k=3 "
        "--preprocessor-arg start_date=2020-01-01 --preprocessor-arg missing=drop",
    )
    assert _exit_code(child) == 0


def test_feature_groups_and_keys_from_the_registry(tmp_path: Path) -> None:
    child = _spawn(tmp_path, "--print-only")
    _workflow(child, "feature_engineering")
    # breakout, cross_sectional, mean_reversion, momentum, ...: keep only momentum
    _answer(child, "--group:", "i" + DOWN * 3 + SPACE + ENTER)  # invert = none, tick momentum
    _answer(child, "--feature:", SPACE + ENTER)  # untick vol_scaled_momentum
    assert _command(child) == (
        "uv run algotrader feature_engineering --group momentum --feature ema_spread"
    )
    assert _exit_code(child) == 0


def test_ctrl_c_leaves_nothing_behind(tmp_path: Path) -> None:
    before = _tree(tmp_path)
    child = _spawn(tmp_path)
    _workflow(child, "data_cleaning")
    _answer(child, "--start: first month YYYY-MM", "2024-0" + CTRL_C)
    _expect(child, "algotrader wizard: cancelled; nothing was run or written")
    assert _exit_code(child) == 130
    assert _tree(tmp_path) == before


def test_simulation_config_must_parse(tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "bad.yml").write_text("cv:\n  q: 0\n  warmup: 3\n")
    (work / "config").mkdir()
    checkout_config = Path(__file__).resolve().parents[2] / "config" / "simulation.yml"
    (work / "config" / "simulation.yml").write_bytes(checkout_config.read_bytes())
    child = _spawn(tmp_path, "--print-only")
    _workflow(child, "simulation")
    _answer(child, "--simulation-config:", CLEAR + "bad.yml" + ENTER)
    _expect(child, "bad.yml: cv.q: Input should be greater than or equal to 1 (got 0)")
    _expect(child, "bad.yml: cv.warmup: unknown key (misspelt?)")
    child.send(CLEAR + "config/simulation.yml" + ENTER)  # the parser's default: no flag
    assert _command(child) == "uv run algotrader simulation"
    assert _exit_code(child) == 0


def test_historical_asks_the_csv_questions(tmp_path: Path) -> None:
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "AAPL.csv").write_text("date,open,high,low,close,volume\n")
    env = _env(tmp_path)
    env.update(HISTORICAL_DATA_PROVIDER="csv", CSV_IMPORT_DIR=str(tmp_path / "missing"))
    child = _spawn(tmp_path, "--print-only", env=env)
    _workflow(child, "historical")
    _answer(child, "--provider:", ENTER)  # preselected from HISTORICAL_DATA_PROVIDER
    _answer(child, "--csv-dir:", ENTER)  # prefilled from CSV_IMPORT_DIR
    _expect(child, f"csv import folder '{tmp_path / 'missing'}' does not exist")
    child.send(CLEAR + str(folder) + ENTER)
    _answer(child, "--timezone:", "Mars/Olympus" + ENTER)
    _expect(child, "--timezone 'Mars/Olympus' is not an IANA time zone")
    child.send(CLEAR + "America/New_York" + ENTER)
    _answer(child, "--start: oldest month YYYY-MM", ENTER)
    _answer(child, "--invalid-bars:", DOWN + ENTER)
    csv_flags = ["--provider", "csv", "--csv-dir", str(folder), "--timezone", "America/New_York"]
    assert _command(child) == command_line(["historical", *csv_flags, "--invalid-bars", "drop"])
    assert _exit_code(child) == 0


def test_default_pipeline_is_a_choice(tmp_path: Path) -> None:
    child = _spawn(tmp_path, "--print-only")
    _answer(child, "Which workflow?", DOWN * len(command_parsers(build_parser())) + ENTER)
    assert _command(child) == "uv run algotrader"
    assert _exit_code(child) == 0


def test_needs_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_wizard() == 2  # pytest's stdin is not a terminal
    assert capsys.readouterr().err == "algotrader wizard: needs an interactive terminal\n"

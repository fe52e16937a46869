"""``algotrader wizard``: answer questions, get a command line, then run it or print it.

The questions come from the parser (:func:`algo_trader.cli.main.build_parser`): the wizard
offers every built command, and for the chosen one asks each flag in the parser's order,
with the flag's help as the question, its choices as a menu and its default preselected. A
flag added to the parser is therefore asked without touching this module. Some flags get a
richer question (:data:`SPECIAL`) whose answer is checked by the code the command itself
runs: months by ``Month.parse``, assets as a checkbox of those present under DATA_SOURCE,
preprocessor args by the preprocessor registry's ``configure``, feature groups and keys from
the feature registry, the simulation YAML by ``load_simulation_config``, csv folders and time
zones by ``CsvProvider``. A wrong answer prints that code's message in full and the
question is asked again, prefilled with the refused answer.

The wizard writes no file; only the command it runs does. Ctrl-C (or Ctrl-D) at any prompt
ends it with exit code 130 and one line on stderr.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import questionary
from questionary import Choice, Separator

from algo_trader.cli.main import build_parser
from algo_trader.domain.errors import AlgoTraderError
from algo_trader.infrastructure.env import Settings, load_settings

if TYPE_CHECKING:
    from algo_trader.infrastructure.data.raw_store import Month, RawBarStore

WIZARD = "wizard"
PIPELINE = "(default pipeline)"
PIPELINE_HELP = "download, data cleaning, features, simulation on the defaults (no command)"
PROGRAM = ("uv", "run", "algotrader")
EXIT_CANCELLED = 130
EXIT_ERROR = 2
RUN = "run it now"
PRINT = "only print it"
PRINT_ONLY_HELP = "build the command and print it, without asking to run it"

Value = str | list[str] | bool | None
"""An answer: a flag's value, its values (repeatable flags), a switch, or None = default."""
Check = Callable[[str], str | None]
"""Validates a typed answer: None when valid, else the message printed before asking again."""


@dataclass(frozen=True)
class Flag:
    """One argument of a command, as the parser declares it (``option`` is '' if positional)."""

    option: str
    dest: str
    help: str
    default: Any
    choices: tuple[str, ...] | None
    required: bool
    repeatable: bool
    switch: bool
    convert: Callable[[str], Any] | None = None
    """The parser's ``type=``, which also judges a typed answer."""

    @classmethod
    def of(cls, action: argparse.Action) -> Flag:
        return cls(
            option=max(action.option_strings, key=len, default=""),
            dest=action.dest,
            help=action.help or "",
            default=action.default,
            choices=tuple(map(str, action.choices)) if action.choices else None,
            required=bool(action.required),
            repeatable=isinstance(action, argparse._AppendAction),
            switch=action.nargs == 0,
            convert=action.type if callable(action.type) else None,
        )

    @property
    def label(self) -> str:
        return f"{self.option or self.dest}: {self.help}"

    def tokens(self, value: Value) -> list[str]:
        """The command-line words for ``value``; none when it is the parser's default."""
        if self.switch:  # the answer is whether to give the flag (store_true or store_false)
            return [self.option] if value else []
        if value is None or value == "" or value is False or value == self.default:
            return []
        values = value if isinstance(value, list) else [str(value)]
        return [word for v in values for word in ((self.option, v) if self.option else (v,))]


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def command_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The commands the wizard offers, in the parser's order: every built one except itself."""
    return {name: sub for name, sub in _subparsers(parser).choices.items() if name != WIZARD}


def command_help(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each command's one-line help, as ``algotrader --help`` lists it."""
    return {a.dest: a.help or "" for a in _subparsers(parser)._choices_actions}


def flags_of(parser: argparse.ArgumentParser) -> list[Flag]:
    """Every argument of a command except ``--help``, in the parser's order."""
    return [Flag.of(a) for a in parser._actions if not isinstance(a, argparse._HelpAction)]


def command_line(argv: Sequence[str]) -> str:
    """The shell line that runs ``algotrader argv`` (quoted for a POSIX shell)."""
    return shlex.join([*PROGRAM, *argv])


@dataclass
class Session:
    """What the questions of one run share: the settings and the answers so far."""

    settings: Settings
    answers: dict[str, Value] = field(default_factory=dict)

    @cached_property
    def store(self) -> RawBarStore:
        from algo_trader.infrastructure.data.raw_store import RawBarStore

        return RawBarStore(self.settings.data_source)

    @cached_property
    def raw_span(self) -> tuple[Month, Month] | None:
        """First and last month of raw bars over every asset, None when there are none."""
        months = [m for a in self.store.assets() for m, _ in self.store.months(a)]
        return (min(months), max(months)) if months else None


# ------------------------------------------------------------------------ prompts


def problem_of(action: Callable[[], object]) -> str | None:
    """Run a check from the project; its error message, or None when it passes."""
    try:
        action()
    except (AlgoTraderError, ValueError, OSError) as err:
        return str(err)
    return None


def say_problem(problem: str) -> None:
    """Show why an answer was refused, in full, above the question asked again.

    Printed rather than shown in prompt_toolkit's validation bar, which holds one line and
    cuts it at the terminal's width: the project's messages name the key, value and what is
    valid, and often need more than one line.
    """
    questionary.print(problem, style="fg:ansired bold")


def ask_text(
    message: str, default: str = "", check: Check | None = None, hint: str | None = None
) -> str:
    """A typed answer (stripped), asked until ``check`` passes; a refused answer is prefilled."""
    answer = default
    while True:
        answer = str(questionary.text(message, default=answer, instruction=hint).unsafe_ask())
        answer = answer.strip()
        problem = None if check is None else check(answer)
        if problem is None:
            return answer
        say_problem(problem)


def ask_select(message: str, choices: Sequence[str | Choice], default: str | None = None) -> str:
    """One of ``choices`` (arrow keys, Enter)."""
    return str(questionary.select(message, choices=list(choices), default=default).unsafe_ask())


def ask_checkbox(
    message: str, choices: Sequence[Choice | Separator], check: Callable[[list[str]], str | None]
) -> list[str]:
    """Several of ``choices`` (space toggles, Enter accepts), asked until ``check`` passes."""
    while True:
        picked = [str(v) for v in questionary.checkbox(message, choices=list(choices)).unsafe_ask()]
        problem = check(picked)
        if problem is None:
            return picked
        say_problem(problem)
        for choice in choices:  # ask again from the refused selection
            if not isinstance(choice, Separator):
                choice.checked = choice.value in picked


def ask_generic(flag: Flag, session: Session) -> Value:
    """The question any flag gets from its declaration alone."""
    if flag.switch:
        return bool(questionary.confirm(flag.label, default=False).unsafe_ask())
    if flag.choices:
        default = flag.default if flag.default in flag.choices else None
        return ask_select(flag.label, flag.choices, default)
    if flag.repeatable:
        text = ask_text(flag.label, "", partial(declared_problem, flag), hint="(comma-separated)")
        return split_list(text) or None
    default = "" if flag.default is None else str(flag.default)
    return ask_text(flag.label, default, partial(declared_problem, flag))


def split_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def required_problem(flag: Flag, text: str) -> str | None:
    return f"{flag.option or flag.dest} is required" if flag.required and not text else None


def declared_problem(flag: Flag, text: str) -> str | None:
    """What the parser itself refuses: a missing required value, or one its ``type=`` rejects."""
    values = split_list(text) if flag.repeatable else [text] if text else []
    for value in values:
        try:
            if flag.convert is not None:
                flag.convert(value)
        except (ValueError, TypeError, argparse.ArgumentTypeError) as err:
            return f"{flag.option or flag.dest}: invalid value {value!r}: {err}"
    return required_problem(flag, text)


# ------------------------------------------------------------------- historical


def ask_provider(flag: Flag, session: Session) -> Value:
    """Preselect HISTORICAL_DATA_PROVIDER, the provider the command uses without the flag."""
    return ask_select(flag.label, flag.choices or (), session.settings.historical_data_provider)


def ask_tickers(flag: Flag, session: Session) -> Value:
    from algo_trader.application.historical.config import load_tickers

    return ask_text(
        flag.label, str(flag.default), lambda text: problem_of(lambda: load_tickers(Path(text)))
    )


def _csv_problem(folder: str, timezone: str | None = None) -> str | None:
    from algo_trader.providers.historical.csv_import import CsvProvider

    if not folder:
        return "the csv provider needs a folder of <ASSET>.csv files"
    return problem_of(lambda: CsvProvider(Path(folder), timezone=timezone).assets())


def ask_csv_dir(flag: Flag, session: Session) -> Value:
    default = session.settings.csv_import_dir
    return ask_text(flag.label, "" if default is None else str(default), _csv_problem)


def ask_timezone(flag: Flag, session: Session) -> Value:
    folder = str(session.answers.get("csv_dir") or "")

    def check(text: str) -> str | None:
        return _csv_problem(folder, text) if text else None

    return ask_text(flag.label, "", check, hint="(empty = timestamps carry their offset)")


def month_problem(flag: Flag, text: str) -> str | None:
    """``Month.parse``'s message, worded as the command reports a bad month flag."""
    from algo_trader.infrastructure.data.raw_store import Month

    if not text:
        return required_problem(flag, text)
    problem = problem_of(lambda: Month.parse(text))
    return None if problem is None else f"{flag.option}: {problem}"


def ask_month(flag: Flag, session: Session) -> Value:
    return ask_text(flag.label, "", partial(month_problem, flag), hint="(YYYY-MM)")


# ---------------------------------------------------------------- data_cleaning


def _span_hint(session: Session, empty: str) -> str:
    span = session.raw_span
    found = f"raw bars span {span[0]} .. {span[1]}" if span else "no raw bars yet"
    return f"(YYYY-MM{empty}; {found} under {session.settings.data_source})"


def ask_first_month(flag: Flag, session: Session) -> Value:
    """Default: the earliest raw month, as the default pipeline uses."""
    span = session.raw_span
    default = "" if span is None else str(span[0])
    return ask_text(flag.label, default, partial(month_problem, flag), hint=_span_hint(session, ""))


def ask_last_month(flag: Flag, session: Session) -> Value:
    from algo_trader.infrastructure.data.raw_store import Month

    start = Month.parse(str(session.answers.get("start")))

    def check(text: str) -> str | None:
        problem = month_problem(flag, text)
        if problem is None and text and Month.parse(text) < start:
            return f"{flag.option} {text} is before --start {start}; give a month >= {start}"
        return problem

    return ask_text(flag.label, "", check, hint=_span_hint(session, ", empty = the latest"))


def ask_assets(flag: Flag, session: Session) -> Value:
    """A checkbox of the assets under DATA_SOURCE; all checked means the flag is left out."""
    available = session.store.assets()
    if not available:
        print(f"(no raw bars under {session.settings.data_source}: run `algotrader historical`)")
        return None
    chosen = ask_checkbox(
        flag.label,
        [Choice(a, a, checked=True) for a in available],
        lambda picked: None if picked else "select at least one asset (space toggles)",
    )
    return None if chosen == available else ",".join(chosen)


# --------------------------------------------------------------- data_processing


def ask_preprocessor(flag: Flag, session: Session) -> Value:
    from algo_trader.preprocessing.registry import default_registry

    return ask_select(flag.label, default_registry().names(), str(flag.default))


def mentions(message: str, key: str) -> bool:
    """Whether a preprocessor error names ``key=`` (the form every arg message uses)."""
    return re.search(rf"(?<![\w]){re.escape(key)}=", message) is not None


def arg_problem(
    name: str, pairs: list[str], key: str, text: str, later: Sequence[str]
) -> str | None:
    """The preprocessor's own verdict on ``key=text`` after ``pairs``.

    Runs the registry's ``configure`` on the args so far. An error is shown at this prompt
    when it names this key or an earlier one and none still to be asked: ``pca``'s "needs k
    or variance" waits for the ``variance`` prompt, where it can still be answered.
    """
    from algo_trader.preprocessing.registry import configure

    message = problem_of(lambda: configure(name, [*pairs, f"{key}={text}"] if text else pairs))
    if message is None or any(mentions(message, k) for k in later):
        return None
    return message


def _ask_pairs(flag: Flag, name: str, keys: Sequence[str]) -> list[str]:
    pairs: list[str] = []
    for i, key in enumerate(keys):
        check = partial(arg_problem, name, list(pairs), key, later=keys[i + 1 :])
        value = ask_text(f"{flag.option} {key}=", "", check)
        pairs += [f"{key}={value}"] if value else []
    return pairs


def ask_preprocessor_args(flag: Flag, session: Session) -> Value:
    """One prompt per key of the chosen preprocessor (empty = its default), then all checked."""
    from algo_trader.preprocessing.registry import PIPELINE_KEY, configure, default_registry

    name = str(session.answers.get("preprocessor"))
    keys = (*default_registry().get(name).keys, PIPELINE_KEY)
    print(f"{name} takes {', '.join(keys)}; an empty answer keeps the default")
    while True:
        pairs = _ask_pairs(flag, name, keys)
        problem = problem_of(partial(configure, name, pairs))
        if problem is None:
            return pairs or None
        print(f"{problem}\nasking the {name} arguments again")


# ----------------------------------------------------------- feature_engineering


def ask_groups(flag: Flag, session: Session) -> Value:
    """A checkbox of the registered feature groups; all checked means the flag is left out."""
    from algo_trader.application.feature_engineering.registry import default_group_registry

    names = default_group_registry().names()
    chosen = ask_checkbox(
        flag.label,
        [Choice(n, n, checked=True) for n in names],
        lambda picked: None if picked else "select at least one group (space toggles)",
    )
    return None if chosen == names else chosen


def features_problem(groups: list[str], keys: list[str]) -> str | None:
    """The command's own check of ``--feature`` keys, plus: every chosen group keeps one."""
    from algo_trader.application.feature_engineering.registry import default_group_registry
    from algo_trader.application.feature_engineering.run import plan_keys

    if not keys:
        return "select at least one feature (space toggles)"
    registry = default_group_registry()
    problem = problem_of(lambda: plan_keys(registry, groups, keys))
    if problem is None:
        empty = [g for g in groups if g not in plan_keys(registry, groups, keys)]
        if empty:
            return (
                f"no feature selected for group(s) {', '.join(empty)}; select one or drop the group"
            )
    return problem


def ask_features(flag: Flag, session: Session) -> Value:
    """A checkbox of the chosen groups' keys; all checked means the flag is left out."""
    from algo_trader.application.feature_engineering.registry import default_group_registry

    registry = default_group_registry()
    chosen_groups = session.answers.get("group")
    groups = chosen_groups if isinstance(chosen_groups, list) else registry.names()
    choices: list[Choice | Separator] = []
    for group in groups:
        choices += [
            Separator(f"-- {group}"),
            *(Choice(k, k, checked=True) for k in registry.get(group).keys),
        ]
    every = [k for g in groups for k in registry.get(g).keys]
    chosen = ask_checkbox(flag.label, choices, lambda picked: features_problem(groups, picked))
    return None if chosen == every else chosen


# -------------------------------------------------------------------- simulation


def ask_simulation_config(flag: Flag, session: Session) -> Value:
    """Default: the parser's path if it exists here, else the checkout's config."""
    from algo_trader.cli.commands import default_simulation_config
    from algo_trader.domain.simulation.config import load_simulation_config

    def check(text: str) -> str | None:
        return problem_of(lambda: load_simulation_config(Path(text)))

    return ask_text(flag.label, str(default_simulation_config()), check)


# -------------------------------------------------------------------- assembly

Ask = Callable[[Flag, Session], Value]

SPECIAL: dict[tuple[str, str], Ask] = {
    ("historical", "provider"): ask_provider,
    ("historical", "tickers"): ask_tickers,
    ("historical", "csv_dir"): ask_csv_dir,
    ("historical", "timezone"): ask_timezone,
    ("historical", "start"): ask_month,
    ("data_cleaning", "start"): ask_first_month,
    ("data_cleaning", "end"): ask_last_month,
    ("data_cleaning", "assets"): ask_assets,
    ("data_processing", "preprocessor"): ask_preprocessor,
    ("data_processing", "preprocessor_arg"): ask_preprocessor_args,
    ("feature_engineering", "group"): ask_groups,
    ("feature_engineering", "feature"): ask_features,
    ("simulation", "simulation_config"): ask_simulation_config,
}
"""Flags whose question knows more than the parser says (``(command, dest)`` -> question)."""


def _provider_is(*names: str) -> Callable[[Session], bool]:
    return lambda session: session.answers.get("provider") in names


WHEN: dict[tuple[str, str], Callable[[Session], bool]] = {
    ("historical", "tickers"): _provider_is("ib", "alpaca"),
    ("historical", "csv_dir"): _provider_is("csv"),
    ("historical", "timezone"): _provider_is("csv"),
    ("historical", "invalid_bars"): _provider_is("csv"),
}
"""Flags asked only when earlier answers make them matter (the others are always asked)."""


def ask_command(name: str, parser: argparse.ArgumentParser, session: Session) -> list[str]:
    """Ask the flags of command ``name``; the argv (command first) they make."""
    argv = [name]
    for flag in flags_of(parser):
        key = (name, flag.dest)
        if key in WHEN and not WHEN[key](session):
            continue
        value = SPECIAL.get(key, ask_generic)(flag, session)
        session.answers[flag.dest] = value
        argv += flag.tokens(value)
    return argv


def build_command(session: Session) -> list[str]:
    """Ask for the workflow, then its flags; the argv for ``algotrader`` ([] = default pipeline)."""
    parser = build_parser()
    commands = command_parsers(parser)
    helps = command_help(parser)
    width = max(map(len, commands))
    choices = [Choice(f"{n:<{width}}  {helps.get(n, '')}", n) for n in commands]
    choices.append(Choice(f"{PIPELINE:<{width}}  {PIPELINE_HELP}", PIPELINE))
    name = ask_select("Which workflow?", choices)
    return [] if name == PIPELINE else ask_command(name, commands[name], session)


def run_wizard(print_only: bool = False) -> int:
    """Run the wizard in the terminal; the exit code of the command it runs, else 0.

    Parameters
    ----------
    print_only
        Print the built command without asking whether to run it.

    Returns
    -------
    int
        0 when printed, the command's exit code when run, 130 when cancelled with Ctrl-C,
        2 without a terminal or on a bad setting.
    """
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("algotrader wizard: needs an interactive terminal", file=sys.stderr)
        return EXIT_ERROR
    try:
        argv = build_command(Session(load_settings()))
        print(f"command: {command_line(argv)}")
        if print_only or ask_select("Run it now or only print it?", [RUN, PRINT], RUN) == PRINT:
            return 0
    except (KeyboardInterrupt, EOFError):
        print("algotrader wizard: cancelled; nothing was run or written", file=sys.stderr)
        return EXIT_CANCELLED
    except AlgoTraderError as err:
        print(f"algotrader wizard: error: {err}", file=sys.stderr)
        return EXIT_ERROR
    from algo_trader.cli.main import main as algotrader

    return algotrader(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m algo_trader.cli.wizard [--print-only]`` (same as ``algotrader wizard``)."""
    parser = argparse.ArgumentParser(prog="python -m algo_trader.cli.wizard")
    parser.add_argument("--print-only", action="store_true", help=PRINT_ONLY_HELP)
    return run_wizard(parser.parse_args(argv).print_only)


if __name__ == "__main__":
    sys.exit(main())

"""The docs describe the code as it is: every flag, config key and env var both ways.

Each set is derived from the code itself (the argparse parser, the pydantic models, the
calls that read the environment), so a flag, key or variable added or removed in the code
fails here until ``docs/`` says the same. Failure messages list the missing/extra items.
"""

from __future__ import annotations

import argparse
import ast
import re
import types
from functools import cache
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

from algo_trader.application.historical.config import TickersConfig
from algo_trader.cli.main import build_parser
from algo_trader.domain.simulation.config import SimulationConfig

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
WORKFLOWS = DOCS / "workflows.md"
CONFIGURATION = DOCS / "configuration.md"

_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
_CODE = re.compile(r"`([^`\n]+)`")
# Flags of other programs that the docs quote (outside an `algotrader` command), by program.
_OTHER_TOOL_FLAGS = {
    "uv sync": ("--all-groups", "--extra"),
    "scripts/show_*_tensor.sh": ("--head", "--group"),
    "ray start": (
        "--head",
        "--port",
        "--address",
        "--node-ip-address",
        "--num-cpus",
        "--num-gpus",
        "--disable-usage-stats",
    ),
}
_ENV_HELPERS = {"_int_env", "_choice_env", "_path_env"}


# ------------------------------------------------------------------------- helpers


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {
        opt
        for action in parser._actions
        for opt in action.option_strings
        if opt.startswith("--") and opt != "--help"
    }


def _commands() -> dict[str, set[str]]:
    """Command name -> its long flags; ``""`` is the bare ``algotrader``."""
    parser = build_parser()
    out = {name: _flags(sub) for name, sub in _subparsers(parser).items()}
    out[""] = _flags(parser)
    return out


def _section(text: str, heading: re.Pattern[str]) -> str:
    """The text under the first heading matching ``heading`` up to the next heading of the
    same or a higher level."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        found = re.match(r"^(#+)\s", line)
        if found and heading.search(line):
            level = len(found.group(1))
            body = []
            for later in lines[i + 1 :]:
                m = re.match(r"^(#+)\s", later)
                if m and len(m.group(1)) <= level:
                    break
                body.append(later)
            return "\n".join(body)
    return ""


def _logical_lines(text: str) -> list[str]:
    """Lines with shell continuations (``\\`` at the end) joined."""
    return text.replace("\\\n", " ").splitlines()


def _doc_files() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def _annotation_model(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """(pydantic model inside ``annotation``, whether it is a list of them)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin = get_origin(annotation)
    if origin is list:
        inner, _ = _annotation_model(get_args(annotation)[0])
        return inner, inner is not None
    if origin in (Union, types.UnionType):
        for arg in get_args(annotation):
            inner, many = _annotation_model(arg)
            if inner is not None:
                return inner, many
    return None, False


def _key_paths(model: type[BaseModel], prefix: str = "") -> tuple[set[str], set[str]]:
    """(leaf key paths, section paths) of ``model``; list items are written ``key[].sub``."""
    leaves: set[str] = set()
    sections: set[str] = set()
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        inner, many = _annotation_model(field.annotation)
        if inner is None:
            leaves.add(path)
            continue
        sections.add(path)
        sub_leaves, sub_sections = _key_paths(inner, f"{path}[]." if many else f"{path}.")
        leaves |= sub_leaves
        sections |= sub_sections
    return leaves, sections


def _free_form(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Key paths of free-form mappings (``model.params``): any key below them is valid."""
    out: set[str] = set()
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        inner, many = _annotation_model(field.annotation)
        if inner is not None:
            out |= _free_form(inner, f"{path}[]." if many else f"{path}.")
        elif get_origin(field.annotation) is dict:
            out.add(path)
    return out


def _documented_keys(section: str, roots: set[str]) -> set[str]:
    """Backticked dotted keys in ``section`` whose first part is a top-level key."""
    found: set[str] = set()
    for span in _CODE.findall(section):
        token = span.split(":")[0].strip()
        if not re.fullmatch(r"[a-z_]+(\[\])?(\.[A-Za-z_][A-Za-z0-9_]*(\[\])?)*", token):
            continue
        if token.split(".")[0].removesuffix("[]") in roots:
            found.add(token)
    return found


@cache
def _env_vars_in_code() -> frozenset[str]:
    """Env var names the package reads: ``os.environ.get/setdefault/[...]``, ``os.getenv``
    and the helpers of ``infrastructure/env.py``, with a literal name."""
    names: set[str] = set()
    for path in (ROOT / "algo_trader").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            arg: ast.expr | None = None
            if isinstance(node, ast.Call) and node.args and _reads_env(node.func):
                arg = node.args[0]
            elif isinstance(node, ast.Subscript) and _is_environ(node.value):
                arg = node.slice
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.add(arg.value)
    return frozenset(names)


def _is_environ(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def _reads_env(func: ast.expr) -> bool:
    """Whether a call of ``func`` reads an env var named by its first argument."""
    if isinstance(func, ast.Name):
        return func.id in _ENV_HELPERS
    if isinstance(func, ast.Attribute):
        return func.attr == "getenv" or (
            func.attr in ("get", "setdefault", "pop") and _is_environ(func.value)
        )
    return False


def _table_first_column(section: str) -> set[str]:
    return set(re.findall(r"^\|\s*`([^`]+)`", section, flags=re.MULTILINE))


# --------------------------------------------------------------------------- tests


def test_every_parser_flag_is_documented_under_its_command() -> None:
    text = WORKFLOWS.read_text(encoding="utf-8")
    missing: list[str] = []
    for command, flags in sorted(_commands().items()):
        if not command:
            continue
        heading = re.compile(rf"`algotrader {re.escape(command)}(\s[^`]*)?`")
        section = _section(text, heading)
        if not section:
            missing.append(f"{command}: no '### `algotrader {command}`' section")
            continue
        missing += [f"{command} {flag}" for flag in sorted(flags) if flag not in section]
    assert not missing, f"flags in build_parser() missing from docs/workflows.md: {missing}"


def test_every_documented_flag_exists() -> None:
    commands = _commands()
    every = set().union(*commands.values(), *_OTHER_TOOL_FLAGS.values()) | {"--help"}
    names = sorted((c for c in commands if c), key=len, reverse=True)
    call = re.compile(rf"algotrader(?:\s+({'|'.join(map(re.escape, names))}))?\b")
    extra: list[str] = []
    for path in _doc_files():
        rel = path.relative_to(ROOT)
        for number, line in enumerate(_logical_lines(path.read_text(encoding="utf-8")), 1):
            rest = line
            for match in call.finditer(line):
                # A command's flags run to the end of its code span (or of the line).
                end = line.find("`", match.end())
                end = len(line) if end == -1 else end
                command = match.group(1) or ""
                extra += [
                    f"{rel}:{number}: " + " ".join(filter(None, ("algotrader", command, flag)))
                    for flag in _FLAG.findall(line[match.end() : end])
                    if flag not in commands[command] | {"--help"}
                ]
                rest = rest[: match.start()] + " " * (end - match.start()) + rest[end:]
            extra += [
                f"{rel}:{number}: {flag}" for flag in _FLAG.findall(rest) if flag not in every
            ]
    assert not extra, f"flags written in docs/ that build_parser() does not have: {extra}"


def test_every_simulation_key_is_documented() -> None:
    leaves, _ = _key_paths(SimulationConfig)
    section = _section(CONFIGURATION.read_text(encoding="utf-8"), re.compile("simulation.yml"))
    assert section, "docs/configuration.md needs a '## simulation.yml' section"
    missing = sorted(p for p in leaves if f"`{p}`" not in section)
    assert not missing, f"SimulationConfig keys missing from docs/configuration.md: {missing}"


def test_every_documented_simulation_key_exists() -> None:
    leaves, sections = _key_paths(SimulationConfig)
    free = _free_form(SimulationConfig)
    roots = {p.split(".")[0] for p in leaves | sections}
    section = _section(CONFIGURATION.read_text(encoding="utf-8"), re.compile("simulation.yml"))
    extra = sorted(
        key
        for key in _documented_keys(section, roots)
        if key not in leaves | sections and not any(key.startswith(f"{f}.") for f in free)
    )
    assert not extra, f"keys in docs/configuration.md that SimulationConfig lacks: {extra}"


def test_every_tickers_key_is_documented_and_exists() -> None:
    leaves, sections = _key_paths(TickersConfig)
    section = _section(CONFIGURATION.read_text(encoding="utf-8"), re.compile("tickers.yml"))
    assert section, "docs/configuration.md needs a '## tickers.yml' section"
    documented = _table_first_column(section)
    missing = sorted(leaves - documented)
    extra = sorted(documented - leaves - sections)
    assert not missing, f"tickers.yml keys missing from docs/configuration.md: {missing}"
    assert not extra, f"tickers.yml keys documented that TickersConfig lacks: {extra}"


def test_every_env_var_is_documented_and_exists() -> None:
    in_code = _env_vars_in_code()
    section = _section(
        CONFIGURATION.read_text(encoding="utf-8"), re.compile("Environment variables")
    )
    assert section, "docs/configuration.md needs a '## Environment variables' section"
    documented = _table_first_column(section)
    missing = sorted(in_code - documented)
    extra = sorted(documented - in_code)
    assert not missing, f"env vars read by the code but not documented: {missing}"
    assert not extra, f"env vars documented that no code reads: {extra}"


def test_env_example_matches_the_documented_vars() -> None:
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    listed = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", example, flags=re.MULTILINE))
    unread = sorted(listed - _env_vars_in_code())
    assert not unread, f".env.example sets variables no code reads: {unread}"


def test_docs_link_to_existing_files() -> None:
    broken: list[str] = []
    for path in _doc_files():
        text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
        prose = _CODE.sub("", text)
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", prose):
            # ray_cluster.md is written by the Ray engine's author; it may land later.
            if "://" in target or Path(target).name == "ray_cluster.md":
                continue
            if not (path.parent / target).exists():
                broken.append(f"{path.relative_to(ROOT)} -> {target}")
    assert not broken, f"relative links in docs/ that point nowhere: {broken}"

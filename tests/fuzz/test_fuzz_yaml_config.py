"""Fuzzing the YAML config loaders: any file gives a config or a ``ConfigError``, never a crash.

``load_simulation_config`` and ``load_tickers`` are fed arbitrary text and bytes, YAML token
soup, byte/line mutations of the shipped configs, and the shipped configs with one leaf
replaced by a random YAML value. The only exception allowed is the project's own
:class:`AlgoTraderError`; every example has a deadline (no hang on anchors or nesting).
The bugs it found (non-UTF-8 bytes, unhashable keys, over-long integers escaping as raw
exceptions) are fixed and pinned by ``test_bugs_the_fuzzer_found_are_config_errors``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from algo_trader.application.historical.config import load_tickers
from algo_trader.domain.errors import AlgoTraderError, ConfigError
from algo_trader.domain.simulation.config import load_simulation_config

ROOT = Path(__file__).parents[2]
CONFIGS = {
    "simulation": (ROOT / "config" / "simulation_stub.yml", load_simulation_config),
    "tickers": (ROOT / "config" / "tickers.example.yml", load_tickers),
}
FAST = settings(max_examples=25, deadline=3000, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=1000, deadline=3000, suppress_health_check=[HealthCheck.too_slow])

TOKENS = [
    "a",
    "tickers",
    "cv",
    "q",
    "warmup_len",
    "simulation_mode",
    ":",
    ": ",
    "- ",
    "\n",
    "\n  ",
    "  ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "&x ",
    "*x",
    "<<: ",
    "? ",
    "!!str ",
    "!!python/object:os.system ",
    "!!binary ",
    "#",
    "'",
    '"',
    "|",
    ">",
    "---\n",
    "...\n",
    "1",
    "-1",
    "0x1F",
    "0o17",
    "1e-3",
    ".nan",
    "-.inf",
    "1_000",
    "true",
    "ON",
    "null",
    "~",
    "stub",
    "full",
    "\t",
    "\ufeff",
    "\x00",
]
yaml_soup = st.lists(st.sampled_from(TOKENS), max_size=60).map(lambda parts: "".join(parts))
yaml_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.integers(-3, 3) | st.text(max_size=3), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(-3, 3) | st.none(), max_size=2),
)


def _load(kind: str, data: bytes) -> Any:
    loader: Callable[[Path], Any] = CONFIGS[kind][1]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{kind}.yml"
        path.write_bytes(data)
        try:
            return loader(path)
        except AlgoTraderError:
            return None


def _valid(kind: str) -> bytes:
    return CONFIGS[kind][0].read_bytes()


@st.composite
def mutated(draw: st.DrawFn, kind: str) -> bytes:
    """A shipped config with a few random byte or line edits."""
    data = bytearray(_valid(kind))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "insert", "overwrite", "dup_line", "drop_line"]))
        pos = draw(st.integers(0, len(data) - 1)) if data else 0
        if op == "delete":
            del data[pos : pos + draw(st.integers(1, 30))]
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from(TOKENS)).encode("utf-8")
        elif op == "overwrite" and data:
            data[pos] = draw(st.integers(0x20, 0x7E))
        else:
            lines = bytes(data).split(b"\n")
            i = draw(st.integers(0, len(lines) - 1))
            if op == "dup_line":
                lines.insert(draw(st.integers(0, len(lines))), lines[i])
            else:
                del lines[i]
            data = bytearray(b"\n".join(lines))
    return bytes(data)


def _leaves(tree: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(tree, dict):
        return [p for k, v in tree.items() for p in [(*prefix, k), *_leaves(v, (*prefix, k))]]
    if isinstance(tree, list):
        return [p for i, v in enumerate(tree) for p in [(*prefix, i), *_leaves(v, (*prefix, i))]]
    return []


@st.composite
def one_leaf_replaced(draw: st.DrawFn, kind: str) -> bytes:
    """The shipped config (parsed) with one key's value replaced by a random value."""
    tree = yaml.safe_load(_valid(kind))
    path = draw(st.sampled_from(_leaves(tree)))
    node = tree
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = draw(yaml_leaf)
    return yaml.safe_dump(tree, allow_unicode=True).encode("utf-8")


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_shipped_configs_load(kind: str) -> None:
    assert _load(kind, _valid(kind)) is not None


@pytest.mark.parametrize("kind", list(CONFIGS))
@FAST
@given(text=st.text(max_size=300))
def test_arbitrary_text(kind: str, text: str) -> None:
    _load(kind, text.encode("utf-8"))


@pytest.mark.parametrize("kind", list(CONFIGS))
@FAST
@given(text=yaml_soup)
def test_yaml_token_soup(kind: str, text: str) -> None:
    _load(kind, text.encode("utf-8"))


@pytest.mark.parametrize("kind", list(CONFIGS))
@FAST
@given(data=st.data())
def test_mutated_shipped_config(kind: str, data: st.DataObject) -> None:
    _load(kind, data.draw(mutated(kind)))


@pytest.mark.parametrize("kind", list(CONFIGS))
@FAST
@given(data=st.data())
def test_one_value_replaced(kind: str, data: st.DataObject) -> None:
    _load(kind, data.draw(one_leaf_replaced(kind)))


def test_nan_where_a_number_is_bounded_is_a_config_error(isolated_env: Path) -> None:
    path = isolated_env / "sim.yml"
    path.write_text("cv:\n  embargo_len: .nan\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"cv\.embargo_len"):
        load_simulation_config(path)


@pytest.mark.parametrize(
    ("name", "data", "raises"),
    [
        ("non-UTF-8 bytes", b"cv:\n  q: \xff\n", UnicodeDecodeError),
        ("unhashable key", b"? [a, b]\n: 1\n", TypeError),
        ("int over 4300 digits", b"cv:\n  q: " + b"9" * 5000 + b"\n", ValueError),
    ],
)
def test_bugs_the_fuzzer_found_are_config_errors(
    isolated_env: Path, name: str, data: bytes, raises: type[Exception]
) -> None:
    """Once a raw {raises} escaped the loader; now each is a ConfigError naming the file."""
    path = isolated_env / "sim.yml"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match=r"sim\.yml"):
        load_simulation_config(path)


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(CONFIGS))
@SLOW
@given(data=st.data())
def test_many_examples(kind: str, data: st.DataObject) -> None:
    strategy = st.one_of(
        st.text(max_size=2000).map(lambda t: t.encode("utf-8")),
        yaml_soup.map(lambda t: t.encode("utf-8")),
        mutated(kind),
        one_leaf_replaced(kind),
    )
    _load(kind, data.draw(strategy))

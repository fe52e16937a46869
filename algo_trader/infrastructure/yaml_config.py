"""Strict YAML loading into typed pydantic models.

PyYAML follows YAML 1.1, whose traps bite quants: ``1e-3`` is read as a string, ticker
``ON`` or ``NO`` as a boolean, a repeated key silently wins. This loader uses YAML 1.2
core rules instead (only ``true``/``false`` are booleans; ``1e-3`` is a float), rejects
duplicate keys and empty files, and turns pydantic errors into messages that name the
file, the dotted key, the bad value and what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from algo_trader.domain.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

_FLOAT_12 = re.compile(
    r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$|^[-+]?\.(?:inf|Inf|INF)$"
    r"|^\.(?:nan|NaN|NAN)$"
)
_INT_12 = re.compile(r"^[-+]?[0-9][0-9_]*$|^0o[0-7]+$|^0x[0-9a-fA-F]+$")
_BOOL_12 = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


class StrictLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalars and no duplicate keys."""


_TAGS_REPLACED = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
# Drop YAML 1.1 implicit resolvers for bool/int/float, then add the YAML 1.2 ones.
StrictLoader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag not in _TAGS_REPLACED]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
StrictLoader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL_12, list("tTfF"))
StrictLoader.add_implicit_resolver("tag:yaml.org,2002:int", _INT_12, list("-+0123456789"))
StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+.0123456789"))


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        # YAML 1.2: a leading zero is decimal (0123 == 123); only 0o / 0x change the base.
        return int(text, 0) if text.lstrip("+-").startswith(("0o", "0x")) else int(text, 10)
    except ValueError:  # Python refuses integers of more than 4300 digits
        raise ConfigError(
            f"integer at line {node.start_mark.line + 1} is too long ({len(text)} digits)"
        ) from None


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            raise ConfigError(
                f"mapping key {key!r} at line {key_node.start_mark.line + 1} must be a plain "
                "scalar (a name), not a list or mapping"
            )
        if key in seen:
            raise ConfigError(
                f"duplicate key {key!r} at line {key_node.start_mark.line + 1} "
                f"(first at line {seen[key]}); remove one of them"
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=True)


StrictLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file with :class:`StrictLoader`.

    Raises
    ------
    ConfigError
        Missing or empty file, YAML syntax error, or duplicate key; the message names the file.
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{file}: config file not found; create it or pass another path")
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{file}: not UTF-8 text at byte {err.start}; save it as UTF-8") from None
    try:
        data = yaml.load(text, Loader=StrictLoader)
    except ConfigError as err:
        raise ConfigError(f"{file}: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{file}: not valid YAML: {err}") from None
    if data is None:
        raise ConfigError(f"{file}: the file is empty; it must hold a YAML mapping of settings")
    return data


def format_validation_error(file: str | Path, err: ValidationError) -> str:
    """One line per problem: ``file: key.path: message (got value)``."""
    lines = []
    for item in err.errors():
        loc = ".".join(str(part) for part in item["loc"]) or "<root>"
        value = item.get("input")
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key (misspelt?); remove it or check the documented keys"
        lines.append(f"{file}: {loc}: {message} (got {value!r})")
    return "\n".join(lines)


def load_model(path: str | Path, model: type[M]) -> M:
    """Load ``path`` and validate it into ``model``; errors name file, key, value, rule."""
    data = load_yaml(path)
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(path, err)) from None

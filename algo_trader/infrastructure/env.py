"""Environment settings: the env vars the spec lists, read once, with local defaults.

Every data location defaults to a folder under ``./data/`` so that nothing needs to be
configured to run the bundled sample. A ``.env`` file in the working directory is read
first; variables already set in the environment win over it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dotenv import load_dotenv

from algo_trader.domain.errors import ConfigError

DEFAULT_DATA_ROOT = Path("data")

_PATH_DEFAULTS = {
    "DATA_SOURCE": "raw",
    "DATA_LAKE_SOURCE": "data_lake",
    "FEATURE_STORE_SOURCE": "feature_store",
    "MODEL_STORE_SOURCE": "model_store",
    "SIMULATION_SOURCE": "simulation",
}
PROVIDERS = ("sample", "csv", "ib", "alpaca")
EXPORTERS = ("csv",)


@dataclass(frozen=True)
class Settings:
    """Resolved environment settings (see ``.env.example`` for each variable)."""

    data_source: Path
    data_lake_source: Path
    feature_store_source: Path
    model_store_source: Path
    simulation_source: Path
    historical_data_provider: str
    historical_data_exporter: str
    csv_import_dir: Path | None
    max_parallel_requests: int
    ib_host: str
    ib_port: int
    ib_client_id: int
    torch_device: str


def _int_env(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(
            f"env var {name}={raw!r} is not an integer; set a whole number >= {minimum}"
        ) from None
    if value < minimum:
        raise ConfigError(f"env var {name}={value} is below {minimum}; set a value >= {minimum}")
    return value


def _choice_env(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, "").strip().lower() or default
    if value not in choices:
        raise ConfigError(f"env var {name}={value!r} is not one of {', '.join(choices)}")
    return value


def _path_env(name: str) -> Path:
    raw = os.environ.get(name, "").strip()
    return Path(raw).expanduser() if raw else DEFAULT_DATA_ROOT / _PATH_DEFAULTS[name]


def load_settings(env_file: str | Path | None = ".env") -> Settings:
    """Read ``.env`` (if present) and the environment into :class:`Settings`.

    Raises
    ------
    ConfigError
        When a variable holds a value outside what it accepts; the message names it.
    """
    if env_file is not None and Path(env_file).is_file():
        load_dotenv(env_file, override=False)
    device = _choice_env("TORCH_DEVICE", "cpu", ("cpu", "cuda"))
    csv_dir = os.environ.get("CSV_IMPORT_DIR", "").strip()
    return Settings(
        data_source=_path_env("DATA_SOURCE"),
        data_lake_source=_path_env("DATA_LAKE_SOURCE"),
        feature_store_source=_path_env("FEATURE_STORE_SOURCE"),
        model_store_source=_path_env("MODEL_STORE_SOURCE"),
        simulation_source=_path_env("SIMULATION_SOURCE"),
        historical_data_provider=_choice_env("HISTORICAL_DATA_PROVIDER", "sample", PROVIDERS),
        historical_data_exporter=_choice_env("HISTORICAL_DATA_EXPORTER", "csv", EXPORTERS),
        csv_import_dir=Path(csv_dir).expanduser() if csv_dir else None,
        max_parallel_requests=_int_env("MAX_PARALLEL_REQUESTS", 4, 1),
        ib_host=os.environ.get("IB_HOST", "").strip() or "127.0.0.1",
        ib_port=_int_env("IB_PORT", 7497, 1),
        ib_client_id=_int_env("IB_CLIENT_ID", 1, 0),
        torch_device=device,
    )

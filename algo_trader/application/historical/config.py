"""``tickers.yml``: which instruments to download and how."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from algo_trader.domain.market_data.assets import AssetSpec
from algo_trader.infrastructure.yaml_config import load_model

WhatToShow = Literal[
    "TRADES",
    "MIDPOINT",
    "BID",
    "ASK",
    "BID_ASK",
    "ADJUSTED_LAST",
    "HISTORICAL_VOLATILITY",
    "OPTION_IMPLIED_VOLATILITY",
]
_DURATION = re.compile(r"^[1-9][0-9]* [SDWMY]$")
BAR_SIZES = (
    "1 secs",
    "5 secs",
    "10 secs",
    "15 secs",
    "30 secs",
    "1 min",
    "2 mins",
    "3 mins",
    "5 mins",
    "10 mins",
    "15 mins",
    "20 mins",
    "30 mins",
    "1 hour",
    "2 hours",
    "3 hours",
    "4 hours",
    "8 hours",
    "1 day",
    "1 week",
    "1 month",
)


class AlpacaSettings(BaseModel):
    """Alpaca-only options."""

    model_config = ConfigDict(extra="forbid")

    feed: Literal["iex", "sip", "delayed_sip", "otc"] = "iex"
    adjustment: Literal["raw", "split", "dividend", "all"] = "all"


class TickersConfig(BaseModel):
    """The download request: tickers plus IB-style ``duration``/``bar_size``/``what_to_show``."""

    model_config = ConfigDict(extra="forbid")

    tickers: list[AssetSpec] = Field(min_length=1)
    duration: str = "1 Y"
    bar_size: str = "1 hour"
    what_to_show: WhatToShow = "TRADES"
    use_rth: bool = False
    alpaca: AlpacaSettings = AlpacaSettings()

    @field_validator("tickers", mode="before")
    @classmethod
    def _expand_short_form(cls, value: object) -> object:
        if not isinstance(value, list):
            return value
        out: list[object] = []
        for item in value:
            if isinstance(item, str):
                out.append(AssetSpec.from_ticker(item))
            elif isinstance(item, bool | int | float):
                raise ValueError(f'ticker {item!r} is not a string; quote it (e.g. "{item}")')
            else:
                out.append(item)
        return out

    @field_validator("tickers")
    @classmethod
    def _unique_names(cls, value: list[AssetSpec]) -> list[AssetSpec]:
        names = [a.name for a in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate ticker names {dupes}; list each asset once")
        return value

    @field_validator("duration")
    @classmethod
    def _valid_duration(cls, value: str) -> str:
        if not _DURATION.match(value):
            raise ValueError("duration must be '<N> <unit>' with unit S, D, W, M or Y, e.g. '2 Y'")
        return value

    @field_validator("bar_size")
    @classmethod
    def _valid_bar_size(cls, value: str) -> str:
        if value not in BAR_SIZES:
            raise ValueError(f"bar_size must be one of {', '.join(BAR_SIZES)}")
        return value


def load_tickers(path: str | Path) -> TickersConfig:
    """Load and validate ``tickers.yml`` (errors name the file, key and value)."""
    return load_model(path, TickersConfig)

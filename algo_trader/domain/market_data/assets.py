"""Assets: what a provider needs to know to ask for one instrument's bars."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

SecType = Literal["STK", "CASH", "CFD", "IND", "FUT", "CRYPTO", "ETF"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class AssetSpec(BaseModel):
    """One instrument.

    ``name`` is the folder under ``DATA_SOURCE`` and the column label downstream. A plain
    ticker string in ``tickers.yml`` becomes ``AssetSpec(name=s, symbol=s)``; ``EUR.USD``
    becomes an FX pair (``sec_type=CASH`` on ``IDEALPRO``), ``BTC/USD`` a crypto pair.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    symbol: str
    sec_type: SecType = "STK"
    exchange: str = "SMART"
    currency: str = "USD"
    primary_exchange: str | None = None

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                "asset name must start with a letter or digit and use only A-Z a-z 0-9 . _ -"
            )
        return value

    @classmethod
    def from_ticker(cls, ticker: str) -> AssetSpec:
        """Parse the short form used in ``tickers.yml``."""
        text = ticker.strip()
        fx = re.fullmatch(r"([A-Z]{3})\.([A-Z]{3})", text)
        if fx:
            return cls(
                name=text,
                symbol=fx.group(1),
                sec_type="CASH",
                exchange="IDEALPRO",
                currency=fx.group(2),
            )
        crypto = re.fullmatch(r"([A-Z0-9]+)/([A-Z]+)", text)
        if crypto:
            return cls(
                name=f"{crypto.group(1)}-{crypto.group(2)}",
                symbol=text,
                sec_type="CRYPTO",
                exchange="PAXOS",
                currency=crypto.group(2),
            )
        return cls(name=text, symbol=text)

"""What every historical data provider offers to the download loop.

Four providers implement it (``sample``, ``csv``, ``ib``, ``alpaca``). The loop in
:mod:`algo_trader.application.historical.download` owns months, resume and writing; a
provider only answers two questions per asset: how far back does history go, and what are
the bars of one month.
"""

from __future__ import annotations

from typing import Any, Protocol

import pandas as pd

from algo_trader.domain.market_data.assets import AssetSpec
from algo_trader.infrastructure.data.raw_store import Month


class HistoricalProvider(Protocol):
    """A source of bars. Methods are ``async`` so network providers can overlap requests."""

    name: str

    async def first_month(self, asset: AssetSpec) -> Month | None:
        """Earliest month with data (IB: the head timestamp), or None if unknown."""
        ...

    async def last_month(self, asset: AssetSpec) -> Month | None:
        """Latest month with data for a finite source (files), or None for a live feed."""
        ...

    async def fetch_month(self, asset: AssetSpec, month: Month) -> pd.DataFrame:
        """All bars of ``asset`` in ``month``: UTC index, columns ``open..volume``.

        An empty frame means the source has no bars that month. Transient failures are
        retried inside; anything that would truncate history raises instead.
        """
        ...

    def metadata(self, asset: AssetSpec) -> dict[str, Any]:
        """Provider, contract, bar size, ``what_to_show``, feed: recorded in ``_meta.json``."""
        ...

"""The ``sample`` provider: the real daily dataset bundled inside the package.

``sample_data/`` (built by ``scripts/build_sample.py``; sources, licences and method in its
README) is already in the raw layout, so this provider serves its month files to the
download loop as if they came from a remote source. Each asset's ``_meta.json`` carries its
contract, which is how :meth:`SampleProvider.assets` knows what each folder holds. No
network, no configuration: this is what ``uv run algotrader`` downloads by default.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from algo_trader.domain.errors import DataError
from algo_trader.domain.market_data.assets import AssetSpec
from algo_trader.domain.market_data.bars import BAR_COLUMNS
from algo_trader.infrastructure.data.raw_reader import read_raw_month
from algo_trader.infrastructure.data.raw_store import Month, RawBarStore

# Keys the download loop writes itself for the destination store.
_LOOP_KEYS = ("first_month", "last_complete_month", "empty_months")


def bundled_sample_dir() -> Path:
    """Folder of the bundled sample inside the installed package."""
    # Installed from a wheel or in editable mode the package is a real folder; a zipped
    # install would need extraction, which this project does not support.
    return Path(str(resources.files("algo_trader.providers.historical"))) / "sample_data"


def empty_bars() -> pd.DataFrame:
    """A bar frame with no rows (UTC index ``timestamp``, float64 OHLCV columns)."""
    index = pd.DatetimeIndex([], tz="UTC", name="timestamp")
    return pd.DataFrame({c: np.array([], dtype=np.float64) for c in BAR_COLUMNS}, index=index)


class SampleProvider:
    """Serves a folder in the raw layout (by default the bundled sample) month by month.

    Parameters
    ----------
    root
        Folder holding ``<ASSET>/<YYYY>/hist_data_YYYY-MM.csv`` and ``<ASSET>/_meta.json``
        with a ``contract`` entry. Defaults to :func:`bundled_sample_dir`.

    Raises
    ------
    DataError
        If the folder holds no asset with monthly files.
    """

    name = "sample"

    def __init__(self, root: str | Path | None = None) -> None:
        self.store = RawBarStore(bundled_sample_dir() if root is None else root)
        self._months = {a: [m for m, _ in self.store.months(a)] for a in self.store.assets()}
        if not self._months:
            raise DataError(
                "no sample data found: expected <ASSET>/<YYYY>/hist_data_YYYY-MM.csv files "
                "(reinstall algo_trader, or rebuild with scripts/build_sample.py)",
                path=self.store.root,
            )

    def assets(self) -> list[AssetSpec]:
        """Every asset in the folder, sorted by name, with the contract from its meta."""
        return [self._spec(name) for name in self._months]

    def _spec(self, name: str) -> AssetSpec:
        contract = self.store.read_meta(name).get("contract")
        if not isinstance(contract, dict):
            raise DataError(
                "missing 'contract' object (symbol, sec_type, exchange, currency)",
                path=self.store.root / name / "_meta.json",
                column="contract",
                value=contract,
            )
        return AssetSpec(name=name, **contract)

    def _known(self, asset: AssetSpec) -> list[Month]:
        months = self._months.get(asset.name)
        if months is None:
            raise DataError(
                f"asset not in the sample; valid: {', '.join(self._months)}",
                path=self.store.root,
                value=asset.name,
            )
        return months

    async def first_month(self, asset: AssetSpec) -> Month | None:
        """Oldest packaged month of ``asset``."""
        return self._known(asset)[0]

    async def last_month(self, asset: AssetSpec) -> Month | None:
        """Newest packaged month of ``asset`` (the sample is finite)."""
        return self._known(asset)[-1]

    async def fetch_month(self, asset: AssetSpec, month: Month) -> pd.DataFrame:
        """The packaged bars of ``asset`` in ``month``; empty when that month has no file."""
        self._known(asset)
        path = self.store.month_path(asset.name, month)
        if not path.is_file():
            return empty_bars()
        # The packaged files go through the same strict reader as any user's raw files.
        frame, _ = read_raw_month(path, month)
        return frame.loc[:, list(BAR_COLUMNS)]

    def metadata(self, asset: AssetSpec) -> dict[str, Any]:
        """The packaged ``_meta.json`` (provider, contract, source, licence, adjustment)."""
        self._known(asset)
        meta = self.store.read_meta(asset.name)
        return {k: v for k, v in meta.items() if k not in _LOOP_KEYS}

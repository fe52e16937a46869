"""Fixtures of the leakage canaries; the shared helpers live in ``canary_kit.py``.

pytest runs with ``--import-mode=importlib``, so this folder is put on ``sys.path`` for the
tests to ``import canary_kit``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from canary_kit import leaky

from algo_trader.application.simulation import inner_objective, outer_walk_forward
from algo_trader.application.simulation import preprocessing as prep


@pytest.fixture
def leaky_scaler(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Install the leaky cleaning and scaling everywhere the pipeline imported them."""
    cleaning, scaling = leaky(prep.fit_cleaning), leaky(prep.fit_scaling)
    for module in (inner_objective, outer_walk_forward):
        monkeypatch.setattr(module, "fit_cleaning", cleaning)
        monkeypatch.setattr(module, "fit_scaling", scaling)
    yield

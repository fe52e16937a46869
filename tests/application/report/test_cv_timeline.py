"""The CV timeline SVG: one span per index run, placed on the sample axis."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from algo_trader.application.report.cv_timeline import ROLE_COLORS, cv_timeline_svg

# 10 samples: warmup [0, 2), groups [2, 6) and [6, 10); one outer fold (test group 1) with
# one inner split. x = 120 + 1000 * index / 10 (label column 120 px, axis 1000 px).
STRUCTURE: dict[str, Any] = {
    "n_samples": 10,
    "warmup": {"start": 0, "end": 2, "n_samples": 2},
    "dropped": {"start": 2, "end": 2, "n_samples": 0},
    "groups": [
        {"group": 0, "start": 2, "end": 6, "first_timestamp": "2020-01-17T00:00:00+00:00"},
        {"group": 1, "start": 6, "end": 10, "first_timestamp": "2020-02-14T00:00:00+00:00"},
    ],
    "outer_folds": [
        {
            "k": 1,
            "train": [[0, 5]],
            "test": [[6, 10]],
            "inner": {
                "splits": [
                    {
                        "split_id": 0,
                        "test_groups": [0],
                        "train": [[0, 2]],
                        "test": [[2, 4]],
                        "purged": [[4, 5]],
                        "embargoed": [],
                    }
                ]
            },
        }
    ],
}


def spans(svg: str) -> list[tuple[str, float, float]]:
    """``(tooltip, x, width)`` of every titled span."""
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    return [
        (r.find(f"{ns}title").text or "", float(r.get("x", "")), float(r.get("width", "")))  # type: ignore[union-attr]
        for r in root.iter(f"{ns}rect")
        if r.find(f"{ns}title") is not None
    ]


def test_spans_follow_the_index_runs() -> None:
    svg = cv_timeline_svg(STRUCTURE)
    assert spans(svg) == [
        ("warmup: warmup samples [0, 2)", 120.0, 200.0),
        ("group 0: samples [2, 6)", 320.0, 400.0),
        ("group 1: samples [6, 10)", 720.0, 400.0),
        # The outer fold: sample 5 is in neither train nor test (purged before the test).
        ("outer fold 1: excluded samples [5, 6)", 620.0, 100.0),
        ("outer fold 1: train samples [0, 5)", 120.0, 500.0),
        ("outer fold 1: test samples [6, 10)", 720.0, 400.0),
        ("fold 1 split 0 (test 0): train samples [0, 2)", 120.0, 200.0),
        ("fold 1 split 0 (test 0): test samples [2, 4)", 320.0, 200.0),
        ("fold 1 split 0 (test 0): purged samples [4, 5)", 520.0, 100.0),
    ]


def test_roles_are_coloured_and_groups_dated() -> None:
    svg = cv_timeline_svg(STRUCTURE)
    assert f'fill="{ROLE_COLORS["purged"]}"><title>fold 1 split 0' in svg
    assert re.findall(r">(\d{4}-\d{2}-\d{2})</text>", svg) == ["2020-01-17", "2020-02-14"]
    assert ">outer fold 1</text>" in svg and ">split 0 (0)</text>" in svg

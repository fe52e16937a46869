"""The CV structure of a run (``cv/cv_structure.json``) drawn as an inline SVG timeline.

One row per outer fold (its training and test weeks; the weeks between them that are in
neither were purged or embargoed around the outer test block), each followed by its inner
CPCV splits (train, test, purged, embargoed spans). The x axis is the sample index, labelled
with the first week of each group; the top row shows the warmup, the dropped remainder and
the groups. Inline SVG keeps the report one file and sharp at any zoom; each span carries a
``<title>`` (its role and sample range) that the browser shows on hover.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

ROLE_COLORS = {
    "train": "#4c8bd6",
    "test": "#f28e2b",
    "purged": "#d62728",
    "embargoed": "#9467bd",
    "excluded": "#c7c7c7",
    "warmup": "#e8e8e8",
    "dropped": "#f4f4f4",
}
"""Fill of each span role (train blue, test orange, purged red, embargoed purple)."""

_GROUP_FILLS = ("#b9c3d3", "#d5dbe5")  # alternate so that neighbouring groups stand apart
_LABEL_W = 120  # px reserved for the row labels on the left
_PLOT_W = 1000  # px of the sample axis
_ROW_H = 14
_GAP = 4
_AXIS_H = 44


def _x(index: float, n_samples: int) -> float:
    return _LABEL_W + _PLOT_W * index / max(n_samples, 1)


def _rects(
    runs: Iterable[Sequence[int]], role: str, y: float, n: int, row: str, h: float = _ROW_H
) -> list[str]:
    out = []
    for start, end in runs:
        x0, x1 = _x(start, n), _x(end, n)
        tip = f"{row}: {role} samples [{start}, {end})"
        out.append(
            f'<rect x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0, 0.8):.1f}" height="{h}" '
            f'fill="{ROLE_COLORS[role]}"><title>{escape(tip)}</title></rect>'
        )
    return out


def _complement(runs: Sequence[Sequence[int]], start: int, end: int) -> list[list[int]]:
    """The gaps of ``[start, end)`` not covered by the sorted ``runs``."""
    gaps, cursor = [], start
    for lo, hi in sorted(runs, key=lambda run: run[0]):
        if lo > cursor:
            gaps.append([cursor, lo])
        cursor = max(cursor, hi)
    if cursor < end:
        gaps.append([cursor, end])
    return gaps


def _label(text: str, y: float, bold: bool = False) -> str:
    weight = ' font-weight="bold"' if bold else ""
    return (
        f'<text x="{_LABEL_W - 6}" y="{y + _ROW_H - 3:.1f}" text-anchor="end"{weight}>'
        f"{escape(text)}</text>"
    )


def _groups_row(structure: dict[str, Any], y: float, n: int) -> list[str]:
    parts = [_label("groups", y, bold=True)]
    for key in ("warmup", "dropped"):
        span = structure.get(key) or {}
        if span.get("n_samples"):
            parts += _rects([[span["start"], span["end"]]], key, y, n, key)
    for g in structure.get("groups", []):
        x0, x1 = _x(g["start"], n), _x(g["end"], n)
        tip = escape(f"group {g['group']}: samples [{g['start']}, {g['end']})")
        fill = _GROUP_FILLS[int(g["group"]) % 2]
        parts.append(
            f'<rect x="{x0:.1f}" y="{y}" width="{x1 - x0:.1f}" height="{_ROW_H}" fill="{fill}" '
            f'stroke="#fff"><title>{tip}</title></rect>'
        )
        mid = _x((g["start"] + g["end"]) / 2, n)
        parts.append(
            f'<text x="{mid:.1f}" y="{y + _ROW_H - 3:.1f}" text-anchor="middle">{g["group"]}</text>'
        )
    return parts


def _fold_rows(fold: dict[str, Any], y: float, n: int, span: tuple[int, int]) -> list[str]:
    name = f"outer fold {fold['k']}"
    parts = [_label(name, y, bold=True)]
    used = [*fold["train"], *fold["test"]]
    parts += _rects(_complement(used, *span), "excluded", y, n, name)
    parts += _rects(fold["train"], "train", y, n, name)
    parts += _rects(fold["test"], "test", y, n, name)
    for split in fold.get("inner", {}).get("splits", []):
        y += _ROW_H + _GAP
        groups = ",".join(str(g) for g in split["test_groups"])
        row = f"fold {fold['k']} split {split['split_id']} (test {groups})"
        parts.append(_label(f"split {split['split_id']} ({groups})", y))
        for role in ("train", "test", "purged", "embargoed"):
            parts += _rects(split[role], role, y + 2, n, row, _ROW_H - 4)
    return parts


def _axis(structure: dict[str, Any], y: float, n: int) -> list[str]:
    parts = [f'<line x1="{_LABEL_W}" y1="{y}" x2="{_LABEL_W + _PLOT_W}" y2="{y}" stroke="#444"/>']
    for g in structure.get("groups", []):
        x = _x(g["start"], n)
        date = str(g.get("first_timestamp", ""))[:10]
        parts.append(f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 5}" stroke="#444"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{y + 16}" text-anchor="start" font-size="10">'
            f"{escape(date)}</text>"
        )
    parts.append(
        f'<text x="{_LABEL_W + _PLOT_W / 2}" y="{y + 34}" text-anchor="middle">'
        "sample (week) index; ticks: first week of each group</text>"
    )
    return parts


def _legend(y: float) -> list[str]:
    parts, x = [], float(_LABEL_W)
    for role, color in ROLE_COLORS.items():
        parts.append(f'<rect x="{x}" y="{y}" width="12" height="12" fill="{color}"/>')
        parts.append(f'<text x="{x + 16}" y="{y + 10}">{role}</text>')
        x += 30 + 8 * len(role)
    return parts


def cv_timeline_svg(structure: dict[str, Any]) -> str:
    """The timeline of ``structure`` (the ``cv/cv_structure.json`` dict) as an ``<svg>``.

    ``excluded`` marks outer-fold weeks in neither its training nor its test set (purged
    or embargoed around the outer test block, or after it).
    """
    n = int(structure["n_samples"])
    span = (int((structure.get("dropped") or {}).get("end", 0)), n)
    parts = _legend(2.0)
    y = 24.0
    parts += _groups_row(structure, y, n)
    for fold in structure.get("outer_folds", []):
        y += _ROW_H + 3 * _GAP
        rows = _fold_rows(fold, y, n, span)
        parts += rows
        y += (len(fold.get("inner", {}).get("splits", []))) * (_ROW_H + _GAP)
    y += _ROW_H + 2 * _GAP
    parts += _axis(structure, y, n)
    height = y + _AXIS_H
    width = _LABEL_W + _PLOT_W + 20
    return (
        '<svg class="timeline" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width} {height:.0f}" '
        f'width="{width}" height="{height:.0f}" font-family="sans-serif" font-size="11" '
        'role="img" aria-label="CV structure timeline">' + "".join(parts) + "</svg>"
    )

"""The report's inline stylesheet (no external fonts: the system sans-serif stack)."""

from __future__ import annotations

CSS = """
:root { --ink: #1d2330; --muted: #5b6475; --line: #d9dde5; --accent: #1f5fa8;
        --sel: #fff3c4; --bg: #f6f7f9; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans",
       sans-serif; color: var(--ink); background: var(--bg); }
header { position: sticky; top: 0; z-index: 1; background: #fff; border-bottom: 1px solid
         var(--line); padding: 10px 24px; }
h1 { font-size: 20px; margin: 0 0 4px 0; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; font-weight: 600; }
main { max-width: 1240px; margin: 0 auto; padding: 8px 24px 40px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px;
          padding: 12px 18px; margin: 16px 0; }
h2 { font-size: 17px; margin: 4px 0 10px; border-bottom: 2px solid var(--accent);
     padding-bottom: 4px; }
h3 { font-size: 15px; margin: 14px 0 6px; }
table { border-collapse: collapse; margin: 6px 0 10px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: 4px 10px; text-align: left;
         vertical-align: top; }
th { background: #eef1f6; }
td { white-space: nowrap; }
tr.selected td { background: var(--sel); font-weight: 600; }
figure { margin: 10px 0 18px; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
.grid figure { flex: 1 1 480px; max-width: 49%; margin: 4px 0; }
.grid img { max-height: 480px; width: auto; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { font-size: 12px; color: var(--muted); }
pre { background: #f3f4f7; border: 1px solid var(--line); padding: 8px; overflow: auto;
      max-height: 520px; font-size: 12px; }
details { margin: 6px 0; }
summary { cursor: pointer; font-weight: 600; }
ul { margin: 4px 0; }
.missing { color: #9a5b00; font-style: italic; }
.small { color: var(--muted); font-size: 12px; }
.scroll { overflow-x: auto; }
.timeline text { fill: var(--ink); }
.swatch { display: inline-block; width: 11px; height: 11px; margin: 0 3px 0 8px;
          vertical-align: -1px; border: 1px solid #888; }
"""

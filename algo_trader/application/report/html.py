"""``<run>/report.html``: one self-contained HTML page per simulation run.

The page reads the run's artifacts and shows, in order: the run summary, the outer
walk-forward and backtest results against the buy-and-hold benchmark (metrics and the
equity/drawdown and weights plots), the candidate table with ES/CRPS/QL and the selected
candidate, the fan charts and calibration plots, the CV structure as a timeline
(:mod:`.cv_timeline`), the config and the manifest (collapsible) and a link to every
artifact file (relative hrefs, so the run folder can be moved or zipped with its report).

It opens without a network: the PNGs are embedded as base64 ``data:`` URIs, the CSS is
inline, there is no script, and a Content-Security-Policy forbids loading anything else
(a stray external reference would show as a blocked load in the browser console). A part
the run did not produce (no model selection, no backtest, a run stopped after ``cv``) is
shown as "not produced by this run".

The page is built with plain string formatting and :func:`html.escape` rather than a
template engine: the layout is a handful of fixed sections, and jinja2 is only a
transitive dependency (of torch) that the project does not declare.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Mapping
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from algo_trader.application.report.cv_timeline import cv_timeline_svg
from algo_trader.application.report.style import CSS
from algo_trader.application.simulation.manifest import MANIFEST_FILE
from algo_trader.domain.errors import DataError
from algo_trader.infrastructure.data.atomic import atomic_write

REPORT_FILE = "report.html"
MISSING_TEXT = "not produced by this run"
MISSING = f'<p class="missing">{MISSING_TEXT}</p>'
DASH = "—"
"""Shown for a value that is undefined (NaN/null in the artifact)."""
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

# (key, label, format) of the performance table; "%" = percentage, else a format spec.
PERFORMANCE_ROWS = (
    ("annualized_return", "annualized return", "%"),
    ("annualized_volatility", "annualized volatility", "%"),
    ("sharpe", "Sharpe (annualized)", ".2f"),
    ("sortino", "Sortino (annualized)", ".2f"),
    ("max_drawdown", "max drawdown", "%"),
    ("cagr", "CAGR", "%"),
    ("total_return", "total return", "%"),
    ("hit_rate", "hit rate", "%"),
    ("mean_turnover", "mean turnover / week", ".3f"),
    ("total_cost", "total cost", ".4f"),
    ("psr", "PSR", ".3f"),
    ("dsr", "DSR", ".3f"),
    ("n_trials", "trials (DSR)", "d"),
    ("n_periods", "weeks", "d"),
)


# ------------------------------------------------------------------ reading


def read_json(path: Path) -> Any:
    """The JSON content of ``path``, or None when the run has no such file.

    Raises
    ------
    DataError
        The file exists but is not valid JSON (names the file and line).
    """
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"not valid JSON: {err.msg}", path=path, line=err.lineno) from None


def _manifest(run_dir: Path) -> dict[str, Any]:
    manifest = read_json(run_dir / MANIFEST_FILE)
    if not isinstance(manifest, dict):
        raise DataError(
            f"no {MANIFEST_FILE}: not a finished simulation run (run algotrader simulation, "
            "or pass a run folder or label under SIMULATION_SOURCE)",
            path=run_dir,
        )
    return manifest


# ------------------------------------------------------------------ formatting


def fmt(value: Any, spec: str = ".4g") -> str:
    """``value`` formatted by ``spec`` (``"%"``: percentage); None/NaN/inf as an em dash."""
    if value is None or isinstance(value, bool):
        return DASH if value is None else str(value)
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return DASH
        if spec == "%":
            return f"{value:.2%}"
        if spec == "d":
            return f"{int(value):d}"
        return format(value, spec)
    return escape(str(value))


def _href(path: Path, run_dir: Path) -> str:
    """``path`` relative to the run folder, URL-quoted: links survive moving the folder."""
    return escape(quote(path.relative_to(run_dir).as_posix()))


def _image(path: Path, run_dir: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    rel = path.relative_to(run_dir).as_posix()
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{escape(alt)}">'
        f'<figcaption><a href="{_href(path, run_dir)}">{escape(rel)}</a></figcaption></figure>'
    )


def _table(header: Iterable[str], rows: Iterable[Iterable[str]], classes: Iterable[str]) -> str:
    cells = "".join(f"<th>{h}</th>" for h in header)
    head = f"<thead><tr>{cells}</tr></thead>" if cells else ""
    body = "".join(
        f'<tr class="{c}">' + "".join(f"<td>{v}</td>" for v in row) + "</tr>"
        for row, c in zip(rows, classes, strict=True)
    )
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{body}</section>'


def _pre(payload: Any) -> str:
    return f"<pre>{escape(json.dumps(payload, indent=2, sort_keys=True))}</pre>"


# ------------------------------------------------------------------ sections


def _summary(run_dir: Path, manifest: dict[str, Any]) -> str:
    config = manifest.get("config") or {}
    git = manifest.get("git") or {}
    commit = f"{git['commit'][:12]}{' (dirty)' if git.get('dirty') else ''}" if git else DASH
    rows = [
        ("run folder", escape(str(run_dir))),
        ("simulation mode", fmt(config.get("simulation_mode"))),
        ("hooks", fmt(manifest.get("hooks"))),
        ("phases", fmt(", ".join(manifest.get("phases") or []))),
        ("stopped after", fmt(manifest.get("stopped_after"))),
        ("model", fmt((config.get("model") or {}).get("model_name"))),
        ("allocation", fmt((config.get("allocation") or {}).get("policy"))),
        ("candidates", fmt(len(manifest.get("candidates") or {}), "d")),
        ("config file", fmt(manifest.get("config_path"))),
        ("started / finished", f"{fmt(manifest.get('started'))} / {fmt(manifest.get('finished'))}"),
        ("git commit", escape(commit)),
    ]
    return _section(
        "summary",
        "Run summary",
        _table((), ([f"<b>{k}</b>", v] for k, v in rows), ["" for _ in rows]),
    )


def _perf_columns(
    payloads: Mapping[str, dict[str, Any] | None],
) -> list[tuple[str, dict[str, Any]]]:
    """``(header, performance dict)`` per column: each source's strategy and benchmark."""
    columns = []
    for name, payload in payloads.items():
        if isinstance(payload, dict):
            bench = (payload.get("benchmark") or {}).get("performance") or {}
            columns += [
                (f"{name}: strategy (net of costs)", payload.get("performance") or {}),
                (f"{name}: buy-and-hold", bench),
            ]
    return columns


def _fold_candidates(payload: dict[str, Any]) -> str:
    folds = payload.get("folds") or {}
    if not isinstance(folds, dict) or not folds:
        return f"candidate per outer fold {DASH}"
    picks = ", ".join(
        f"{escape(str(k))}: {escape(str((v or {}).get('candidate_id', DASH)))}"
        for k, v in folds.items()
    )
    return f"candidate per outer fold {picks}"


def _source_note(name: str, payload: dict[str, Any] | None) -> str:
    if not isinstance(payload, dict):
        return f'<li>{escape(name)}: <span class="missing">{MISSING_TEXT}</span></li>'
    over = payload.get("overfitting") or {}
    note = over.get("pbo_note")
    return (
        f"<li><b>{escape(name)}</b>: {fmt(payload.get('n_weeks'), 'd')} weeks "
        f"{fmt(str(payload.get('first_week', ''))[:10])} .. "
        f"{fmt(str(payload.get('last_week', ''))[:10])}; {_fold_candidates(payload)}; "
        f"PBO {fmt(over.get('pbo'), '.3f')} over {fmt(over.get('n_trials'), 'd')} trials"
        + (f" ({escape(str(note))})" if note else "")
        + "</li>"
    )


def _performance(run_dir: Path) -> str:
    payloads = {
        "outer walk-forward": read_json(run_dir / "outer" / "results.json"),
        "backtest": read_json(run_dir / "backtest" / "metrics.json"),
    }
    columns = _perf_columns(payloads)
    if not columns:
        return _section("performance", "Performance against buy-and-hold", MISSING)
    rows = [
        [label, *(fmt(perf.get(key), spec) for _, perf in columns)]
        for key, label, spec in PERFORMANCE_ROWS
    ]
    table = _table(("metric", *(escape(h) for h, _ in columns)), rows, ["" for _ in rows])
    notes = "".join(_source_note(name, p) for name, p in payloads.items())
    bench = next((p.get("benchmark") or {} for p in payloads.values() if isinstance(p, dict)), {})
    text = (
        f"<ul>{notes}</ul><p class='small'>Benchmark: {fmt(bench.get('description'))}. "
        "Sources: outer/results.json, backtest/metrics.json.</p>"
    )
    return _section("performance", "Performance against buy-and-hold", text + table)


def _backtest(run_dir: Path) -> str:
    folder = run_dir / "backtest"
    plots = [
        _image(folder / name, run_dir, alt)
        for name, alt in (
            ("equity_drawdown.png", "backtest equity and drawdown against buy-and-hold"),
            ("weights.png", "backtest weights held each week"),
        )
        if (folder / name).is_file()
    ]
    return _section("backtest", "Backtest equity, drawdown and weights", "".join(plots) or MISSING)


def _params_cell(params: Mapping[str, Any] | None) -> str:
    return "<br>".join(f"{escape(str(k))} = {fmt(v)}" for k, v in (params or {}).items()) or DASH


def _selection_table(
    candidates: Mapping[str, Any], metrics: Mapping[str, Any], selected: str | None
) -> str:
    """One row per candidate: its parameters and the global model-selection scores."""
    rows, classes = [], []
    for cid, params in candidates.items():
        m = metrics.get(cid) or {}
        mark = " &#9733; selected" if cid == selected else ""
        rows.append(
            [
                f"<b>{escape(cid)}</b>{mark}",
                _params_cell(params),
                fmt(m.get("es")),
                fmt(m.get("es_se")),
                fmt(m.get("crps")),
                fmt(m.get("ql")),
                fmt(m.get("complexity")),
                fmt(m.get("survivor_es")) if "survivor_es" in m else DASH,
            ]
        )
        classes.append("selected" if cid == selected else "")
    header = ("candidate", "parameters", "ES", "ES SE", "CRPS", "QL", "complexity", "in ES band")
    return _table(header, rows, classes)


def _fold_scores(run_dir: Path) -> dict[str, dict[str, Any]]:
    """``inner/outer_<k>/scores.json`` by fold name, in fold order."""
    paths = sorted(
        (run_dir / "inner").glob("outer_*/scores.json"),
        key=lambda p: int(p.parent.name.removeprefix("outer_") or 0),
    )
    return {p.parent.name: read_json(p) for p in paths}


def _objective_table(candidates: Mapping[str, Any], folds: Mapping[str, dict[str, Any]]) -> str:
    """One row per candidate: its inner objective in each fold; each fold's best starred."""
    rows, classes = [], []
    for cid, params in candidates.items():
        cells = []
        for scores in folds.values():
            entry = (scores.get("candidates") or {}).get(cid) or {}
            best = scores.get("best_candidate_id") == cid
            cells.append(fmt(entry.get("objective")) + (" &#9733;" if best else ""))
        rows.append([f"<b>{escape(cid)}</b>", _params_cell(params), *cells])
        classes.append("")
    header = ("candidate", "parameters", *(f"{escape(k)} objective" for k in folds))
    return _table(header, rows, classes)


def _candidates(run_dir: Path) -> str:
    candidates = read_json(run_dir / "cv" / "candidates.json")
    if not isinstance(candidates, dict):
        return _section("candidates", "Candidates", MISSING)
    metrics = read_json(run_dir / "outer" / "metrics.json")
    if isinstance(metrics, dict):
        selection = read_json(run_dir / "outer" / "selection.json") or {}
        selected = selection.get("selected")
        folds = selection.get("fold_selected") or {}
        picks = ", ".join(f"{escape(k)}: {escape(str(v))}" for k, v in folds.items())
        body = (
            f"<p>Scores are the {escape(str(metrics.get('aggregate', '')))}; lower is better; "
            f"{DASH} = not scored (outside the ES band). Selected: <b>{fmt(selected)}</b> "
            f"(tie-break rule: {fmt((selection.get('tie_break') or {}).get('rule'))}). "
            f"Per-fold selections: {picks or DASH}.</p>"
            + _selection_table(candidates, metrics.get("candidates") or {}, selected)
        )
    else:
        folds_scores = _fold_scores(run_dir)
        body = (
            "<p>Model selection (ES/CRPS/QL) was not produced by this run "
            "(model_selection.enable is off). "
            + (
                "The inner objective (inner/outer_&lt;k&gt;/scores.json, higher is better) "
                "chose each fold's candidate (&#9733;).</p>"
                + _objective_table(candidates, folds_scores)
                if folds_scores
                else "No inner scores either (the run stopped before the inner loop).</p>"
                + _table(
                    ("candidate", "parameters"),
                    ([f"<b>{escape(c)}</b>", _params_cell(p)] for c, p in candidates.items()),
                    ["" for _ in candidates],
                )
            )
        )
    return _section("candidates", "Candidates and model selection", body)


def _diagnostics(run_dir: Path) -> str:
    folder = run_dir / "outer" / "diagnostics"
    fans = sorted((folder / "fan_charts").glob("*.png"))
    # The calibration fan is a wide time series: full width; the two square plots side by side.
    wide = sorted((folder / "calibration").glob("calibration_fan*.png"))
    square = sorted(set((folder / "calibration").glob("*.png")) - set(wide))
    calibration = "".join(_image(p, run_dir, f"calibration {p.stem}") for p in wide)
    if square:
        images = "".join(_image(p, run_dir, f"calibration {p.stem}") for p in square)
        calibration += f'<div class="grid">{images}</div>'
    body = (
        "<h3>Fan charts</h3>"
        + ("".join(_image(p, run_dir, f"fan chart {p.stem}") for p in fans) or MISSING)
        + "<h3>Calibration</h3>"
        + (calibration or MISSING)
    )
    return _section("diagnostics", "Predictive diagnostics (outer/diagnostics/)", body)


def _cv(run_dir: Path) -> str:
    structure = read_json(run_dir / "cv" / "cv_structure.json")
    if not isinstance(structure, dict):
        return _section("cv", "CV structure", MISSING)
    params = structure.get("params") or {}
    conventions = structure.get("conventions") or {}
    text = "; ".join(f"{escape(k)} = {fmt(v)}" for k, v in params.items())
    rules = "".join(
        f"<li><b>{escape(k)}</b>: {escape(str(v))}</li>" for k, v in conventions.items()
    )
    body = (
        f"<p>{text}</p><ul>{rules}</ul>"
        f'<div class="scroll">{cv_timeline_svg(structure)}</div>'
        "<p class='small'>One row per outer fold (its training and test weeks; excluded: in "
        "neither, i.e. purged or embargoed around its test block, or after it), then its inner "
        "CPCV splits (test groups in brackets). Hover a span for its sample range.</p>"
    )
    return _section("cv", "CV structure (cv/cv_structure.json)", body)


def _config(manifest: dict[str, Any]) -> str:
    rest = {k: v for k, v in manifest.items() if k != "config"}
    body = (
        "<details><summary>Resolved simulation config</summary>"
        + _pre(manifest.get("config"))
        + "</details><details><summary>Run manifest (run_manifest.json, without the config)"
        "</summary>" + _pre(rest) + "</details>"
    )
    return _section("config", "Config and manifest", body)


def _size(n_bytes: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n_bytes < 1024 or unit == "MiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024  # type: ignore[assignment]
    return ""


def artifact_files(run_dir: Path) -> list[Path]:
    """Every file of the run, sorted, without the report itself and temp files."""
    return sorted(
        p
        for p in run_dir.rglob("*")
        if p.is_file() and p.name != REPORT_FILE and not p.name.startswith(".")
    )


def _artifacts(run_dir: Path) -> str:
    by_folder: dict[str, list[Path]] = {}
    for path in artifact_files(run_dir):
        rel = path.relative_to(run_dir)
        by_folder.setdefault(rel.parts[0] if len(rel.parts) > 1 else ".", []).append(path)
    blocks = []
    for folder, paths in by_folder.items():
        items = "".join(
            f'<li><a href="{_href(p, run_dir)}">{escape(p.relative_to(run_dir).as_posix())}</a> '
            f'<span class="small">{_size(p.stat().st_size)}</span></li>'
            for p in paths
        )
        title = "run folder" if folder == "." else f"{folder}/"
        blocks.append(
            f"<details><summary>{escape(title)} ({len(paths)} files)</summary>"
            f"<ul>{items}</ul></details>"
        )
    return _section("artifacts", "Artifacts", "".join(blocks) or MISSING)


_NAV = (
    ("summary", "Summary"),
    ("performance", "Performance"),
    ("backtest", "Backtest"),
    ("candidates", "Candidates"),
    ("diagnostics", "Diagnostics"),
    ("cv", "CV structure"),
    ("config", "Config"),
    ("artifacts", "Artifacts"),
)


def render_report(run_dir: Path) -> str:
    """The report page of the run in ``run_dir`` as an HTML string.

    Raises
    ------
    DataError
        ``run_dir`` holds no ``run_manifest.json``, or an artifact is not valid JSON.
    """
    run_dir = run_dir.resolve()
    manifest = _manifest(run_dir)
    sections = [
        _summary(run_dir, manifest),
        _performance(run_dir),
        _backtest(run_dir),
        _candidates(run_dir),
        _diagnostics(run_dir),
        _cv(run_dir),
        _config(manifest),
        _artifacts(run_dir),
    ]
    nav = " ".join(f'<a href="#{a}">{t}</a>' for a, t in _NAV)
    title = f"algotrader run report: {run_dir.name}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><nav>{nav}</nav></header><main>"
        + "".join(sections)
        + "</main></body></html>\n"
    )


def write_report(run_dir: Path) -> Path:
    """Write ``<run_dir>/report.html`` atomically and return its path.

    Parameters
    ----------
    run_dir
        A simulation run folder (``SIMULATION_SOURCE/<label>``) with its
        ``run_manifest.json``.

    Raises
    ------
    DataError
        Not a finished run, or one of its JSON artifacts is not valid JSON.
    """
    page = render_report(run_dir)
    path = run_dir / REPORT_FILE
    atomic_write(path, lambda handle: handle.write(page))
    return path

"""The run report on real simulation runs (generated inputs), read back and in headless Chromium.

The browser test drives Debian's ``chromium`` through the DevTools protocol (a websocket):
it collects every console error, uncaught exception and browser log error while the page
loads, checks that every ``<img>`` decoded (``naturalWidth > 0``) and keeps a full-page
screenshot in ``tests/artifacts/report/report.png``.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib.util
import itertools
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote

import pytest

from algo_trader.application.report.html import (
    DASH,
    MISSING,
    REPORT_FILE,
    artifact_files,
    fmt,
    write_report,
)
from algo_trader.application.simulation.backtest import run_backtest
from algo_trader.application.simulation.runner import run_simulation
from algo_trader.domain.errors import DataError
from algo_trader.infrastructure.env import Settings, load_settings

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "report"
CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
)
# The images in document order, with whether each decoded: what "every image renders" means.
IMAGES_JS = (
    "JSON.stringify(Array.from(document.images).map("
    "i => ({alt: i.alt, ok: i.complete && i.naturalWidth > 0})))"
)


def _runner_fixtures() -> ModuleType:
    """The generated-input helpers of the simulation runner's tests (one source of data)."""
    path = Path(__file__).resolve().parents[1] / "simulation" / "test_runner.py"
    spec = importlib.util.spec_from_file_location("runner_fixtures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _settings(root: Path) -> Settings:
    data = root / "data"
    return dataclasses.replace(
        load_settings(env_file=None),
        data_source=data / "raw",
        data_lake_source=data / "data_lake",
        feature_store_source=data / "feature_store",
        simulation_source=data / "simulation",
    )


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stub run on generated data with model selection, fan charts and a backtest.

    Two outer folds (3 and 4: 3 + 6 inner splits) keep it to a few seconds.
    """
    root = tmp_path_factory.mktemp("full_run")
    fx = _runner_fixtures()
    fx.write_inputs(root)
    config = fx.write_config(
        root,
        model_selection={"enable": True, "es_band": {"c": 0.0}, "bootstrap": {"num_samples": 50}},
        diagnostics={"fan_charts": {"enable": True, "assets": ["BBB"]}},
        outer={"test_groups": "ids", "ids": [3, 4]},
    )
    settings = _settings(root)
    result = run_simulation(settings, config)
    run_backtest(settings, result.out_dir)
    return result.out_dir


@pytest.fixture
def cv_only_run(isolated_env: Path) -> Path:
    """A dry run stopped after ``cv``: no scores, no outer results, no backtest, no plots."""
    fx = _runner_fixtures()
    fx.write_inputs(isolated_env)
    config = fx.write_config(isolated_env, simulation_mode="dry_run", stop_after="cv")
    return run_simulation(_settings(isolated_env), config).out_dir


@pytest.fixture
def stub_run(isolated_env: Path) -> Path:
    """A stub run of one outer fold (3 inner splits), no model selection, no backtest."""
    fx = _runner_fixtures()
    fx.write_inputs(isolated_env)
    config = fx.write_config(isolated_env, outer={"test_groups": "ids", "ids": [3]})
    return run_simulation(_settings(isolated_env), config).out_dir


def _hrefs(page: str) -> list[str]:
    return [unquote(h) for h in re.findall(r'<a href="([^"#][^"]*)"', page)]


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------ the page's content


def test_full_run_report_shows_every_part(full_run: Path) -> None:
    path = write_report(full_run)
    assert path == full_run / REPORT_FILE
    page = path.read_text(encoding="utf-8")
    assert MISSING not in page
    # One embedded image per PNG of the run: equity/drawdown, weights, one fan chart, three
    # calibration plots.
    pngs = [p for p in artifact_files(full_run) if p.suffix == ".png"]
    assert len(pngs) == 6
    assert page.count('<img src="data:image/png;base64,') == 6
    # Every artifact is linked, relative to the run folder; nothing else is.
    linked = set(_hrefs(page))
    assert linked == {p.relative_to(full_run).as_posix() for p in artifact_files(full_run)}
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert '<svg class="timeline"' in page


def test_selected_candidate_is_highlighted_and_nan_is_a_dash(full_run: Path) -> None:
    page = write_report(full_run).read_text(encoding="utf-8")
    selected = read_json(full_run / "outer" / "selection.json")["selected"]
    metrics = read_json(full_run / "outer" / "metrics.json")["candidates"]
    rows = re.findall(r'<tr class="(\w*)"><td><b>(\d{4})</b>(.*?)</tr>', page)
    assert {cid: cls for cls, cid, _ in rows} == {
        cid: "selected" if cid == selected else "" for cid in metrics
    }
    # es_band.c = 0 keeps the best ES alone: the other candidate has no CRPS/QL (null).
    (other,) = (cid for cid in metrics if cid != selected)
    assert metrics[other]["crps"] is None
    other_cells = next(cells for _, cid, cells in rows if cid == other)
    assert other_cells.count(f"<td>{DASH}</td>") >= 2
    assert f"{metrics[selected]['es']:.4g}" in page


def test_missing_parts_are_marked_not_failed(cv_only_run: Path) -> None:
    page = write_report(cv_only_run).read_text(encoding="utf-8")
    # performance, backtest plots, fan charts, calibration
    assert page.count(MISSING) == 4
    assert "Model selection (ES/CRPS/QL) was not produced by this run" in page
    assert '<svg class="timeline"' in page and "<img" not in page


def test_run_without_model_selection_shows_inner_objectives(stub_run: Path) -> None:
    page = write_report(stub_run).read_text(encoding="utf-8")
    scores = read_json(stub_run / "inner" / "outer_3" / "scores.json")
    best = scores["best_candidate_id"]
    objective = scores["candidates"][best]["objective"]
    assert f"<td>{fmt(objective)} &#9733;</td>" in page
    assert page.count("&#9733;</td>") == 1
    assert "<th>outer walk-forward: strategy (net of costs)</th>" in page
    assert "<th>backtest: strategy (net of costs)</th>" not in page
    # backtest plots, fan charts, calibration; and the backtest line of the performance notes
    assert page.count(MISSING) == 3
    assert '<li>backtest: <span class="missing">not produced by this run</span></li>' in page


def test_rewrite_is_atomic_and_leaves_no_temp_file(cv_only_run: Path) -> None:
    write_report(cv_only_run)
    write_report(cv_only_run)
    assert [p.name for p in cv_only_run.iterdir() if p.name.startswith(".")] == []
    # The report is not listed among the artifacts it links.
    assert REPORT_FILE not in _hrefs((cv_only_run / REPORT_FILE).read_text(encoding="utf-8"))


def test_folder_without_manifest_is_a_data_error(isolated_env: Path) -> None:
    with pytest.raises(DataError, match=r"no run_manifest\.json: not a finished simulation run"):
        write_report(isolated_env)
    assert not (isolated_env / REPORT_FILE).exists()


def test_invalid_json_artifact_is_named(cv_only_run: Path) -> None:
    (cv_only_run / "cv" / "candidates.json").write_text("{\n  oops", encoding="utf-8")
    with pytest.raises(DataError, match=r"candidates\.json.*line 2"):
        write_report(cv_only_run)


@pytest.mark.parametrize(
    ("value", "spec", "text"),
    [
        (None, ".4g", DASH),
        (float("nan"), ".4g", DASH),
        (float("inf"), "%", DASH),
        (0.123456, "%", "12.35%"),
        (0.123456, ".3f", "0.123"),
        (24.0, "d", "24"),
        (True, ".4g", "True"),
        ("<b>", ".4g", "&lt;b&gt;"),
    ],
)
def test_fmt(value: Any, spec: str, text: str) -> None:
    assert fmt(value, spec) == text


# ------------------------------------------------------------------ in a real browser


class DevTools:
    """A minimal Chrome DevTools protocol client over one websocket (flat sessions)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send ``method`` and return its result; events that arrive meanwhile are kept."""
        msg_id = next(self.ids)
        message: dict[str, Any] = {"id": msg_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(self.ws.recv(timeout=30))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            self.events.append(reply)

    def wait_for(self, event: str, timeout: float = 30.0) -> None:
        """Block until ``event`` arrives (or has already)."""
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            self.events.append(json.loads(self.ws.recv(timeout=deadline - time.monotonic())))

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors seen so far."""
        out = []
        for e in self.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.exceptionThrown":
                out.append(json.dumps(params["exceptionDetails"]))
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                out.append(json.dumps(params["args"]))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                out.append(f"{params['entry'].get('url', '')}: {params['entry']['text']}")
        return out


@dataclasses.dataclass
class PageCheck:
    errors: list[str]
    images: list[dict[str, Any]]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[str]:
    """A headless Chromium; yields its DevTools websocket URL."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (CI installs it: apt-get install -y chromium)")
    profile = tmp_path / "chromium-profile"
    proc = subprocess.Popen(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # With port 0 Chromium picks a free port and writes it (and the browser's websocket
        # path) to DevToolsActivePort in the profile.
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and len(port_file.read_text().split()) == 2):
            assert proc.poll() is None, "chromium exited at start"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.1)
        port, ws_path = port_file.read_text().split()
        yield f"ws://127.0.0.1:{port}{ws_path}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def load_page(ws_url: str, page: Path, screenshot: Path | None = None) -> PageCheck:
    """Open ``page`` in a new tab; its errors, its images and optionally a full-page PNG."""
    from websockets.sync.client import connect

    with connect(ws_url, max_size=None, open_timeout=10) as ws:
        cdp = DevTools(ws)
        target = cdp.call("Target.createTarget", url="about:blank")["targetId"]
        session = cdp.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            cdp.call(f"{domain}.enable", session)
        cdp.call(
            "Emulation.setDeviceMetricsOverride",
            session,
            width=1280,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )
        cdp.call("Page.navigate", session, url=page.resolve().as_uri())
        cdp.wait_for("Page.loadEventFired")
        images = json.loads(
            cdp.call("Runtime.evaluate", session, expression=IMAGES_JS, returnByValue=True)[
                "result"
            ]["value"]
        )
        if screenshot is not None:
            height = cdp.call(
                "Runtime.evaluate",
                session,
                expression="document.documentElement.scrollHeight",
                returnByValue=True,
            )["result"]["value"]
            shot = cdp.call(
                "Page.captureScreenshot",
                session,
                format="png",
                captureBeyondViewport=True,
                clip={"x": 0, "y": 0, "width": 1280, "height": min(height, 16000), "scale": 1},
            )
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
        return PageCheck(cdp.errors(), images)


def test_report_loads_in_headless_chromium(full_run: Path, browser: str) -> None:
    report = write_report(full_run)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    check = load_page(browser, report, shot)
    assert check.errors == []
    assert len(check.images) == 6
    assert [i["alt"] for i in check.images if not i["ok"]] == []
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_browser_check_sees_broken_images_and_blocked_loads(browser: str, tmp_path: Path) -> None:
    """The check above can fail: a broken image and a load the page's CSP blocks are seen."""
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; img-src data:\"></head><body>"
        '<img alt="corrupt" src="data:image/png;base64,AAAA">'
        '<img alt="remote" src="https://example.invalid/x.png"></body></html>',
        encoding="utf-8",
    )
    check = load_page(browser, page)
    assert [i["alt"] for i in check.images if not i["ok"]] == ["corrupt", "remote"]
    assert any("Content Security Policy" in e for e in check.errors)

"""The run report: one self-contained HTML page per simulation run (``algotrader report``)."""

from algo_trader.application.report.html import REPORT_FILE, render_report, write_report
from algo_trader.application.report.locate import resolve_run

__all__ = ["REPORT_FILE", "render_report", "resolve_run", "write_report"]

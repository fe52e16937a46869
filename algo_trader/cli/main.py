"""``algotrader``: the command line. Parses flags and hands off to ``application``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from algo_trader.domain.errors import AlgoTraderError, NotYetImplementedError

# The pipeline's matrices are small (assets x assets, features x features): a multi-threaded
# OpenBLAS spends more time waking threads than computing on them (57x slower Cholesky
# measured on 2 busy cores). Set before numpy is first imported; a user's value wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

logger = logging.getLogger("algo_trader.cli")

Handler = Callable[[argparse.Namespace], int]


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def _add_wizard(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "wizard",
        formatter_class=_Formatter,
        help="interactive command builder",
        description=(
            "Ask which workflow to run and only the questions it needs (defaults from the "
            "environment and config, each answer checked as the command checks it), show the "
            "command line, then run it or print it. Ctrl-C at any prompt exits with 130."
        ),
    )
    p.add_argument(
        "--print-only",
        action="store_true",
        help="build the command and print it, without asking to run it",
    )


def _add_historical(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "historical",
        formatter_class=_Formatter,
        help="download historical bars into DATA_SOURCE",
        description=(
            "Download bars into DATA_SOURCE/<asset>/<YYYY>/hist_data_YYYY-MM.csv from the "
            "provider in HISTORICAL_DATA_PROVIDER (sample, csv, ib, alpaca). Re-runs skip "
            "complete months and refresh the current one."
        ),
    )
    p.add_argument(
        "--provider",
        choices=("sample", "csv", "ib", "alpaca"),
        default=None,
        help="override HISTORICAL_DATA_PROVIDER (default from env, else sample)",
    )
    p.add_argument(
        "--tickers",
        default="config/tickers.yml",
        help="tickers YAML for ib/alpaca (see config/tickers.example.yml)",
    )
    p.add_argument(
        "--csv-dir",
        default=None,
        help="folder of <ASSET>.csv files for the csv provider (env CSV_IMPORT_DIR)",
    )
    p.add_argument(
        "--timezone",
        default=None,
        help="IANA zone for naive timestamps in csv imports, e.g. America/New_York",
    )
    p.add_argument(
        "--start",
        default=None,
        help="oldest month YYYY-MM (default: from tickers duration, or all data)",
    )
    p.add_argument(
        "--invalid-bars",
        choices=("raise", "drop"),
        default="raise",
        help="bad bars in csv imports: stop with an error, or drop and quarantine",
    )


def _add_data_cleaning(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data_cleaning",
        formatter_class=_Formatter,
        help="weekly/daily OHLC, returns and return tensor into DATA_LAKE_SOURCE",
        description=(
            "Read DATA_SOURCE raw bars and write DATA_LAKE_SOURCE/YYYY-WW/: returns.csv, "
            "weekly_ohlc.csv (+meta), daily_ohlc.csv (+meta) and return_tensor.pt."
        ),
    )
    p.add_argument("--start", required=True, help="first month YYYY-MM")
    p.add_argument("--end", default=None, help="last month YYYY-MM (default: latest data)")
    p.add_argument(
        "--return-type",
        choices=("simple", "log"),
        default="simple",
        help="simple: P_t/P_{t-1}-1; log: log P_t - log P_{t-1}",
    )
    p.add_argument(
        "--assets",
        default=None,
        help="comma-separated assets, e.g. AAPL,MSFT (default: all in DATA_SOURCE)",
    )
    p.add_argument(
        "--invalid-bars",
        choices=("raise", "drop"),
        default="raise",
        help="bad bars: stop with an error, or drop them and write quarantine.csv",
    )


def _add_data_processing(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data_processing",
        formatter_class=_Formatter,
        help="run a preprocessor (identity, zscore, pca) on the latest weekly returns",
        description=(
            "Read the latest DATA_LAKE_SOURCE/YYYY-WW/returns.csv and write "
            "FEATURE_STORE_SOURCE/<preprocessor>/<pipeline>/YYYY-WW/. Args: identity: "
            "copy=true|false; zscore: start_date/end_date=YYYY-MM-DD, missing=zero|drop; "
            "pca: k=N or variance=V plus the zscore keys; every preprocessor: "
            "pipeline=NAME (default debug)."
        ),
    )
    p.add_argument("--preprocessor", default="identity", help="identity, zscore or pca")
    p.add_argument(
        "--preprocessor-arg",
        action="append",
        default=[],
        metavar="K=V",
        help="preprocessor argument key=value (repeatable)",
    )


def _add_feature_engineering(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "feature_engineering",
        formatter_class=_Formatter,
        help="compute feature groups into FEATURE_STORE_SOURCE/YYYY-WW/<group>/",
        description=(
            "Compute feature groups from the latest DATA_LAKE_SOURCE/YYYY-WW/ weekly and daily "
            "OHLC. Groups: momentum, mean_reversion, breakout, cross_sectional, volatility, "
            "seasonal, regime, all (non-cross-sectional groups in parallel, then "
            "cross_sectional)."
        ),
    )
    p.add_argument(
        "--group",
        action="append",
        default=None,
        metavar="G",
        help="feature group (repeatable; default: all)",
    )
    p.add_argument(
        "--feature",
        action="append",
        default=None,
        metavar="K",
        help="feature key within the group, e.g. ema_spread (repeatable; default: "
        "the group's default set)",
    )


def _add_simulation(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulation",
        formatter_class=_Formatter,
        help="nested CV simulation (outer walk-forward, inner CPCV)",
        description=(
            "Build the panel from the latest feature store and data lake, the CV structure and "
            "the candidates, then run the inner CPCV and the outer walk-forward as far as "
            "simulation_mode / stop_after say. Outputs: SIMULATION_SOURCE/<label>/."
        ),
    )
    p.add_argument(
        "--simulation-config",
        default="config/simulation.yml",
        help="simulation YAML (see config/simulation.yml)",
    )


def _add_backtest(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "backtest",
        formatter_class=_Formatter,
        help="outer walk-forward backtest of a configuration, with its report",
        description=(
            "Replay the weekly outer walk-forward on a simulation run's inputs and write "
            "<run>/backtest/: pnl.csv, weights.csv, predictive.csv, metrics.json (return, "
            "volatility, Sharpe, Sortino, max drawdown, turnover, hit rate, DSR, PBO, and an "
            "equal-weight buy-and-hold benchmark), equity_drawdown.png, weights.png. By default "
            "the latest run under SIMULATION_SOURCE with the configuration its outer loop ran."
        ),
    )
    p.add_argument(
        "--run",
        default=None,
        help="simulation run folder (default: the latest finished run in SIMULATION_SOURCE)",
    )
    p.add_argument(
        "--simulation-config",
        default=None,
        help="simulation YAML to run instead of the run's saved configuration",
    )
    p.add_argument(
        "--candidate",
        default=None,
        help="candidate id of the run (cv/candidates.json) to run on every fold, e.g. 0003",
    )


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        formatter_class=_Formatter,
        help="write a simulation run's self-contained HTML report",
        description=(
            "Write <run>/report.html: one self-contained page (no network needed) with the "
            "run's config and manifest, the CV structure as a timeline, the candidate table "
            "(ES/CRPS/QL, selected candidate), fan charts and calibration plots, the backtest "
            "curves and metrics against buy-and-hold, and links to every artifact. Parts the "
            "run did not produce are marked as such."
        ),
    )
    p.add_argument(
        "run",
        nargs="?",
        default=None,
        metavar="RUN",
        help="run folder or label under SIMULATION_SOURCE (default: the latest finished run)",
    )


def _add_modeling(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "modeling",
        formatter_class=_Formatter,
        help="fit a Pyro model and write parameter summaries to MODEL_STORE_SOURCE",
        description=(
            "Fit a registered Pyro model/guide by SVI on the latest feature store and data lake "
            "(or --input DIR holding a simulation's panel_tensor.pt) and write "
            "MODEL_STORE_SOURCE/<model>/<guide>/<pipeline>/<YYYY-WW>/params.csv (posterior "
            "mean, sd, 5/50/95%) and metadata.json."
        ),
    )
    p.add_argument("--model", default="factor_model_v1", help="registered model name")
    p.add_argument("--guide", default="factor_guide_v1", help="registered guide name")
    p.add_argument("--input", default=None, help="folder holding a panel_tensor.pt")
    p.add_argument(
        "--render",
        default=None,
        metavar="FILE",
        help="draw the model graph with pyro.render_model (needs graphviz)",
    )
    p.add_argument("--pipeline", default="debug", help="output label, A-Za-z0-9._-")
    p.add_argument("--seed", type=int, default=0, help="seed of the fit")


def build_parser() -> argparse.ArgumentParser:
    """The full ``algotrader`` parser; no command runs the default pipeline."""
    parser = argparse.ArgumentParser(
        prog="algotrader",
        formatter_class=_Formatter,
        description=(
            "Research workbench for systematic trading. With no command, runs the default "
            "pipeline on the bundled real sample (or HISTORICAL_DATA_PROVIDER): download, "
            "data cleaning, feature engineering, the simulation in config/simulation.yml, "
            "the backtest of its result, then the run's HTML report."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_wizard(sub)
    _add_historical(sub)
    _add_data_cleaning(sub)
    _add_data_processing(sub)
    _add_feature_engineering(sub)
    _add_modeling(sub)
    _add_simulation(sub)
    _add_backtest(sub)
    _add_report(sub)
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    from algo_trader.cli import commands

    if args.command is None:
        return commands.default_pipeline(args)
    handler: Handler = getattr(commands, args.command)
    return handler(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``algotrader`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from algo_trader.infrastructure.logging import configure_logging

        configure_logging()
        return _dispatch(args)
    except NotYetImplementedError as err:
        print(f"algotrader: {err}", file=sys.stderr)
        return 3
    except AlgoTraderError as err:
        print(f"algotrader: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "algotrader: interrupted; finished files are intact, re-run to complete",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())

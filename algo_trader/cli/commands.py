"""Command handlers: turn parsed flags into application calls and print where outputs are."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from algo_trader.application.historical.run import HistoricalRequest, run_historical
from algo_trader.domain.errors import ConfigError
from algo_trader.infrastructure.data.raw_store import Month, RawBarStore
from algo_trader.infrastructure.env import Settings, load_settings

console = Console(stderr=False)


def _month(flag: str, text: str | None) -> Month | None:
    if text is None:
        return None
    try:
        return Month.parse(text)
    except ValueError as err:
        raise ConfigError(f"{flag}: {err}") from None


def _historical(args: argparse.Namespace, settings: Settings) -> None:
    request = HistoricalRequest(
        provider=args.provider or settings.historical_data_provider,
        tickers_path=Path(args.tickers),
        csv_dir=Path(args.csv_dir) if args.csv_dir else None,
        timezone=args.timezone,
        start=_month("--start", args.start),
        invalid_bars=args.invalid_bars,
    )
    report = run_historical(request, settings)
    console.print(
        f"historical ({request.provider}): {report.files_written} monthly files written, "
        f"{sum(map(len, report.skipped.values()))} complete months skipped -> "
        f"{settings.data_source}"
    )


def historical(args: argparse.Namespace) -> int:
    _historical(args, load_settings())
    return 0


def _data_cleaning(
    settings: Settings,
    start: Month,
    end: Month | None,
    return_type: str,
    assets: list[str] | None,
    invalid_bars: str,
) -> None:
    from algo_trader.application.data_cleaning.run import run_data_cleaning

    result = run_data_cleaning(
        settings,
        start=start,
        end=end,
        return_type=return_type,
        assets=assets,
        invalid_bars=invalid_bars,
    )
    console.print(f"data_cleaning: outputs in {result.out_dir}")
    for line in result.summary_lines():
        console.print(f"  {line}")


def data_cleaning(args: argparse.Namespace) -> int:
    settings = load_settings()
    start = _month("--start", args.start)
    assert start is not None  # argparse makes --start required
    assets = [a.strip() for a in args.assets.split(",") if a.strip()] if args.assets else None
    _data_cleaning(
        settings, start, _month("--end", args.end), args.return_type, assets, args.invalid_bars
    )
    return 0


def _feature_engineering(
    settings: Settings, groups: list[str] | None, features: list[str] | None
) -> None:
    from algo_trader.application.feature_engineering.run import run_feature_engineering

    result = run_feature_engineering(settings, groups, features)
    console.print(f"feature_engineering: outputs in {result.out_dir}")
    for line in result.summary_lines():
        console.print(f"  {line}")


def feature_engineering(args: argparse.Namespace) -> int:
    _feature_engineering(load_settings(), args.group, args.feature)
    return 0


def _simulation(settings: Settings, config_path: Path) -> None:
    from algo_trader.application.simulation.runner import run_simulation

    result = run_simulation(settings, config_path)
    console.print(f"simulation: outputs in {result.out_dir}")
    for line in result.summary_lines():
        console.print(f"  {line}")


def _backtest(
    settings: Settings,
    run: Path | None = None,
    simulation_config: Path | None = None,
    candidate: str | None = None,
) -> None:
    from algo_trader.application.simulation.backtest import run_backtest

    result = run_backtest(settings, run, simulation_config, candidate)
    console.print(f"backtest: outputs in {result.out_dir}")
    for line in result.summary_lines():
        console.print(f"  {line}")


def _report(settings: Settings, run: str | None = None) -> None:
    from algo_trader.application.report import resolve_run, write_report

    path = write_report(resolve_run(settings.simulation_source, run))
    # soft_wrap: the path stays on one line (copyable) even when it is wider than the console.
    console.print(f"report: {path}", soft_wrap=True)


def report(args: argparse.Namespace) -> int:
    _report(load_settings(), args.run)
    return 0


def backtest(args: argparse.Namespace) -> int:
    _backtest(
        load_settings(),
        Path(args.run) if args.run else None,
        Path(args.simulation_config) if args.simulation_config else None,
        args.candidate,
    )
    return 0


def default_pipeline(args: argparse.Namespace) -> int:
    """Download, clean, engineer features, simulate, backtest, report: the whole chain on
    the default data; ends with the report's path."""
    settings = load_settings()
    defaults = argparse.Namespace(
        provider=None,
        tickers="config/tickers.yml",
        csv_dir=None,
        timezone=None,
        start=None,
        invalid_bars="raise",
    )
    _historical(defaults, settings)
    store = RawBarStore(settings.data_source)
    months = [m for a in store.assets() for m, _ in store.months(a)[:1]]
    if not months:
        raise ConfigError(f"no raw bars under {settings.data_source} after the download")
    start = min(months, key=lambda m: (m.year, m.month))
    _data_cleaning(settings, start, None, "simple", None, "raise")
    _feature_engineering(settings, None, None)
    _simulation(settings, default_simulation_config())
    _backtest(settings)
    _report(settings)
    return 0


def default_simulation_config() -> Path:
    """``config/simulation.yml`` of the working directory, else the one in the checkout."""
    local = Path("config/simulation.yml")
    return local if local.is_file() else Path(__file__).resolve().parents[2] / local


def data_processing(args: argparse.Namespace) -> int:
    from algo_trader.application.data_processing.run import run_data_processing

    result = run_data_processing(load_settings(), args.preprocessor, args.preprocessor_arg)
    console.print(f"data_processing: outputs in {result.out_dir}")
    for line in result.summary_lines():
        console.print(f"  {line}")
    return 0


def simulation(args: argparse.Namespace) -> int:
    _simulation(load_settings(), Path(args.simulation_config))
    return 0


def wizard(args: argparse.Namespace) -> int:
    from algo_trader.cli.wizard import run_wizard

    return run_wizard(print_only=args.print_only)


def modeling(args: argparse.Namespace) -> int:
    from algo_trader.application.modeling.run import run_modeling

    result = run_modeling(
        load_settings(),
        args.model,
        args.guide,
        Path(args.input) if args.input else None,
        Path(args.render) if args.render else None,
        None,
        args.seed,
        pipeline=args.pipeline,
    )
    console.print(f"modeling: outputs in {result.out_dir}")
    for line in result.summary_lines():
        console.print(f"  {line}")
    return 0

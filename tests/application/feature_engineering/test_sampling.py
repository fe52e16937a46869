"""Daily-to-weekly mapping on small hand-written calendars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from algo_trader.application.feature_engineering.sampling import (
    DAYS_TO_WEEKS,
    DailyColumn,
    daily_result,
    daily_windows,
    last_valid_rows,
    sample_last_valid,
    week_end_rows,
    week_starts,
)

NAN = np.nan


def days(*dates: str) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(dates, tz="UTC")


# Mon 4 Mar .. Fri 15 Mar 2024 with Wed 13 Mar a holiday, then Mon 18 and Tue 19 Mar.
DAILY = days(
    "2024-03-04",
    "2024-03-05",
    "2024-03-06",
    "2024-03-07",
    "2024-03-08",
    "2024-03-11",
    "2024-03-12",
    "2024-03-14",
    "2024-03-15",
    "2024-03-18",
    "2024-03-19",
)
# Weekly labels: the latest bar of each week (the last week is partial: Tuesday 15:00).
WEEKLY = pd.DatetimeIndex(["2024-03-08 21:00", "2024-03-15 21:00", "2024-03-19 15:00"], tz="UTC")


def test_days_to_weeks_is_five_trading_days() -> None:
    assert DAYS_TO_WEEKS == 5


def test_week_end_rows_counts_daily_labels_up_to_t() -> None:
    np.testing.assert_array_equal(week_end_rows(DAILY, WEEKLY), [5, 9, 11])
    # a weekly label before any daily row has none
    early = pd.DatetimeIndex(["2024-03-01"], tz="UTC")
    np.testing.assert_array_equal(week_end_rows(DAILY, early), [0])


def test_week_starts_are_mondays_at_midnight() -> None:
    assert list(week_starts(WEEKLY)) == list(days("2024-03-04", "2024-03-11", "2024-03-18"))


def test_one_week_windows_follow_the_calendar() -> None:
    w = daily_windows(DAILY, WEEKLY, 1)
    np.testing.assert_array_equal(w.start, [0, 5, 9])
    np.testing.assert_array_equal(w.end, [5, 9, 11])
    assert w.horizon_days == 5
    assert w.length == 5
    assert w.min_count == 3  # half of 5 days, rounded up


def test_two_week_windows_do_not_stretch_over_a_holiday() -> None:
    w = daily_windows(DAILY, WEEKLY, 2)
    # the holiday week holds 4 rows, so the 2-week window ending there holds 9, not 10
    np.testing.assert_array_equal(w.start, [0, 0, 5])
    np.testing.assert_array_equal(w.end, [5, 9, 11])
    assert w.horizon_days == 10 and w.min_count == 5


def test_windows_reject_zero_weeks() -> None:
    with pytest.raises(ValueError, match="weeks must be >= 1"):
        daily_windows(DAILY, WEEKLY, 0)


def test_last_valid_rows() -> None:
    valid = np.array([[False, True], [True, False], [False, False], [True, True]])
    np.testing.assert_array_equal(last_valid_rows(valid), [[-1, 0], [1, 0], [1, 0], [3, 3]])


def test_sample_last_valid_takes_each_assets_latest_value() -> None:
    values = np.array([[1.0, NAN], [2.0, 10.0], [NAN, 11.0], [4.0, NAN]])
    end = np.array([0, 1, 3, 4])
    np.testing.assert_array_equal(
        sample_last_valid(values, end), [[NAN, NAN], [1.0, NAN], [2.0, 11.0], [4.0, 11.0]]
    )


def test_sample_last_valid_on_empty_daily_panel() -> None:
    out = sample_last_valid(np.empty((0, 2)), np.array([0, 0]))
    assert out.shape == (2, 2) and np.isnan(out).all()


def test_daily_result_stacks_and_clips_goodness() -> None:
    values = np.array([[1.0], [NAN]])
    result = daily_result(
        [
            DailyColumn("a", values, np.array([[1.2], [NAN]])),
            DailyColumn("b", values * 2, np.array([[0.5], [0.0]])),
        ]
    )
    assert result.names == ["a", "b"]
    assert result.values.shape == (2, 1, 2)
    np.testing.assert_array_equal(result.goodness[:, 0, :], [[1.0, 0.5], [0.0, 0.0]])

"""Durations as settings and the command line take them: compact, ISO 8601, or days."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fraud_ray.durations import (
    DurationError,
    describe_duration,
    format_duration,
    parse_duration,
)

whole_seconds = st.integers(min_value=0, max_value=10 * 365 * 86_400).map(
    lambda seconds: timedelta(seconds=seconds)
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", timedelta(minutes=90)),
        ("36h", timedelta(hours=36)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(days=14)),
        ("45s", timedelta(seconds=45)),
        ("1d12h", timedelta(hours=36)),
        (" 8H ", timedelta(hours=8)),
        ("0h", timedelta(0)),
        ("PT36H", timedelta(hours=36)),
        ("P7D", timedelta(days=7)),
        ("P1DT2H30M", timedelta(days=1, hours=2, minutes=30)),
        ("PT90S", timedelta(seconds=90)),
        ("p1w", timedelta(days=7)),
        ("7", timedelta(days=7)),
        (7, timedelta(days=7)),
        (0, timedelta(0)),
        (30.0, timedelta(days=30)),
        (timedelta(hours=1), timedelta(hours=1)),
    ],
)
def test_parses_compact_iso_and_plain_days(text: object, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "not a duration"),
        ("7 days", "not a duration"),
        ("h", "not a duration"),
        ("1.5h", "not a duration"),
        ("-1h", "not a duration"),
        ("P1M", "months and years"),
        ("P1Y", "months and years"),
        ("P", "ISO 8601"),
        ("PT", "ISO 8601"),
        ("PT0.5S", "whole seconds"),
        (-1, "negative"),
        ("-1", "negative"),
        (True, "not a duration"),
        (1.5, "not a duration"),
        (None, "not a duration"),
    ],
)
def test_refuses_what_is_not_a_whole_second_duration(value: object, fragment: str) -> None:
    with pytest.raises(DurationError, match=fragment):
        parse_duration(value)


@given(whole_seconds)
def test_the_compact_form_parses_back_to_the_same_duration(duration: timedelta) -> None:
    assert parse_duration(format_duration(duration)) == duration


@given(st.integers(0, 60), st.integers(0, 100), st.integers(0, 100), st.integers(0, 100_000))
def test_iso_8601_components_add_up(days: int, hours: int, minutes: int, seconds: int) -> None:
    text = f"P{days}DT{hours}H{minutes}M{seconds}S"
    expected = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize(
    ("duration", "compact", "words"),
    [
        (timedelta(days=7), "7d", "7 days"),
        (timedelta(days=30), "30d", "30 days"),
        (timedelta(days=14), "14d", "14 days"),
        (timedelta(hours=36), "36h", "36 hours"),
        (timedelta(hours=1), "1h", "1 hour"),
        (timedelta(minutes=90), "90m", "90 minutes"),
        (timedelta(seconds=61), "61s", "61 seconds"),
        (timedelta(0), "0s", "0 seconds"),
    ],
)
def test_formats_in_the_largest_exact_unit(duration: timedelta, compact: str, words: str) -> None:
    assert format_duration(duration) == compact
    assert describe_duration(duration) == words
    assert describe_duration(timedelta(days=1), bare_one=True) == "day"

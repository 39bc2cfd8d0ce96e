"""Time parameters of the console API: instants, steps, history windows."""

from __future__ import annotations

import pytest

from dashboards.timerange import (
    DEFAULT_SPAN_MS,
    TARGET_BUCKETS,
    TimeParamError,
    auto_step,
    history_window,
    parse_instant,
    parse_step,
)
from ingest.sink import MAX_HISTORY_BUCKETS as MAX_BUCKETS

NOW = 1_763_820_000_000  # 2025-11-22T14:00:00Z


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1763820000123", 1_763_820_000_123),
        ("2025-11-22T14:00:00.123Z", 1_763_820_000_123),
        ("2025-11-22T22:00:00.123+08:00", 1_763_820_000_123),
        (" 2025-11-22T14:00:00+00:00 ", 1_763_820_000_000),
        ("0", 0),
    ],
)
def test_instants_in_iso_8601_or_epoch_ms(raw: str, expected: int) -> None:
    assert parse_instant(raw, "start") == expected


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("2025-11-22T14:00:00", "offset"),
        ("yesterday", "ISO 8601"),
        ("-5", "ISO 8601"),
        ("1.5e12", "ISO 8601"),
        ("9999999999999999", "ISO 8601"),
        ("١٢٣", "ISO 8601"),  # Arabic-Indic digits are not epoch milliseconds
    ],
)
def test_bad_instants_name_the_parameter_and_what_was_expected(raw: str, says: str) -> None:
    with pytest.raises(TimeParamError, match=says) as info:
        parse_instant(raw, "since")
    assert str(info.value).startswith("since: ")


@pytest.mark.parametrize(
    ("raw", "ms"),
    [
        ("250", 250),
        ("250ms", 250),
        ("15s", 15_000),
        ("5m", 300_000),
        ("2h", 7_200_000),
        ("1d", 86_400_000),
    ],
)
def test_steps_with_units(raw: str, ms: int) -> None:
    assert parse_step(raw) == ms


@pytest.mark.parametrize("raw", ["0", "0s", "-1s", "5 minutes", "1.5s", ""])
def test_bad_steps(raw: str) -> None:
    with pytest.raises(TimeParamError, match="step"):
        parse_step(raw)


@pytest.mark.parametrize("span_ms", [1, 999, 60_000, 3_600_000, 86_400_000, 30 * 86_400_000])
def test_auto_step_gives_at_most_the_target_number_of_buckets(span_ms: int) -> None:
    step = auto_step(span_ms)
    assert step >= 1_000
    assert -(-span_ms // step) <= TARGET_BUCKETS


def test_auto_step_is_nice() -> None:
    assert auto_step(3_600_000) == 15_000
    assert auto_step(86_400_000) == 300_000


def test_default_window_is_the_last_hour() -> None:
    window = history_window(None, None, None, NOW)
    assert (window.start_ms, window.end_ms) == (NOW - DEFAULT_SPAN_MS, NOW)
    assert window.step_ms == 15_000
    assert window.buckets == 240


def test_start_alone_ends_now_and_end_alone_starts_an_hour_before() -> None:
    assert history_window(str(NOW - 600_000), None, None, NOW).end_ms == NOW
    assert history_window(None, str(NOW - 10), None, NOW).start_ms == NOW - 10 - DEFAULT_SPAN_MS


def test_start_must_be_before_end() -> None:
    with pytest.raises(TimeParamError, match="start before end"):
        history_window(str(NOW), str(NOW), None, NOW)


def test_too_many_buckets_are_refused() -> None:
    span = MAX_BUCKETS * 1_000
    assert history_window(str(NOW - span), str(NOW), "1s", NOW).buckets == MAX_BUCKETS
    with pytest.raises(TimeParamError, match="buckets"):
        history_window(str(NOW - span - 1), str(NOW), "1s", NOW)

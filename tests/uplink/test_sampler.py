"""The sampler: subset, period, deadband, quality, and what makes replays harmless."""

from __future__ import annotations

import doctest

from hypothesis import given, settings
from hypothesis import strategies as st

import uplink.sampler
from hazwatch.models import PointKind, Quality, Reading, Registry
from uplink.sampler import PointSelection, ReadingSampler


def test_doctests() -> None:
    assert doctest.testmod(uplink.sampler).failed == 0


def r(value: float, ts_ms: int, tag: str = "T1", quality: Quality = Quality.GOOD) -> Reading:
    return Reading("E1", "gw", tag, value, ts_ms, quality)


def every(enterprise: str, tag: str) -> bool:
    return True


def test_period_forwards_one_reading_per_period_per_point() -> None:
    s = ReadingSampler(period_s=1, deadband=None, select=every)
    stream = [r(n, n * 100, tag) for n in range(30) for tag in ("T1", "T2")]
    out = s.sample(stream)
    assert [(x.tag, x.ts_ms) for x in out if x.tag == "T1"] == [
        ("T1", 0),
        ("T1", 1000),
        ("T1", 2000),
    ]
    assert len(out) == 6


def test_deadband_alone_forwards_changes_only() -> None:
    s = ReadingSampler(period_s=0, deadband=1.0, select=every)
    values = [5.0, 5.5, 6.0, 6.2, 4.9, 4.9, 10.0]
    out = s.sample([r(v, n) for n, v in enumerate(values)])
    assert [x.value for x in out] == [5.0, 6.2, 4.9, 10.0]


def test_no_period_no_deadband_is_every_reading_but_never_an_older_one() -> None:
    s = ReadingSampler(period_s=0, deadband=None, select=every)
    assert len(s.sample([r(1, 1), r(1, 2), r(1, 3)])) == 3
    assert s.sample([r(1, 3), r(1, 2)]) == []


def test_a_quality_change_is_always_forwarded() -> None:
    s = ReadingSampler(period_s=60, deadband=None, select=every)
    out = s.sample([r(1, 0), r(1, 10, quality=Quality.BAD), r(1, 20, quality=Quality.BAD)])
    assert [x.quality for x in out] == [Quality.GOOD, Quality.BAD]


def test_selection_by_enterprise_tag_pattern_and_kind(example_registry: Registry) -> None:
    select = PointSelection(example_registry, ["E001"], ["TK*"], [PointKind.LEVEL])
    assert select("E001", "TK101_LT")
    assert not select("E001", "TK101_TT")  # a temperature
    assert not select("E001", "GD101")
    assert not select("E002", "TK101_LT")
    assert not select("_system", "historian_lag")
    assert PointSelection(example_registry)("E002", "anything")


def test_excluded_points_are_decided_once() -> None:
    asked: list[str] = []

    def select(enterprise: str, tag: str) -> bool:
        asked.append(tag)
        return tag == "T1"

    s = ReadingSampler(period_s=0, deadband=None, select=select)
    out = s.sample([r(1, n, tag) for n in range(5) for tag in ("T1", "T2")])
    assert {x.tag for x in out} == {"T1"}
    assert asked == ["T1", "T2"]


_stream = st.lists(
    st.tuples(st.sampled_from(["T1", "T2", "T3"]), st.floats(-100, 100), st.integers(0, 5000)),
    max_size=200,
)


@settings(max_examples=200, deadline=None)
@given(
    stream=_stream,
    cut=st.integers(0, 200),
    replayed=st.integers(0, 50),
    period=st.sampled_from([0, 0.5, 2]),
    deadband=st.sampled_from([None, 0.0, 5.0]),
)
def test_a_crash_and_replay_forward_exactly_what_one_run_would(
    stream: list[tuple[str, float, int]],
    cut: int,
    replayed: int,
    period: float,
    deadband: float | None,
) -> None:
    """Per point, readings come in time order (the ingest keeps it). A run that stops
    after ``cut`` readings, restores from what it forwarded and is fed the last
    ``replayed`` readings again (the spool's undelivered batch, the broker's
    redelivery) then the rest, forwards exactly what one uninterrupted run does."""
    readings = sorted((r(v, ts, tag) for tag, v, ts in stream), key=lambda x: (x.ts_ms, x.tag))
    whole = ReadingSampler(period_s=period, deadband=deadband, select=every).sample(readings)

    first = ReadingSampler(period_s=period, deadband=deadband, select=every)
    before = first.sample(readings[:cut])
    last: dict[str, Reading] = {x.tag: x for x in before}
    second = ReadingSampler(period_s=period, deadband=deadband, select=every)
    second.restore(last.values())
    after = second.sample(readings[max(0, cut - replayed) :])
    assert before + after == whole

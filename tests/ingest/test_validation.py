"""Validation against the registry and the clock; the reject list; gateways; latest values."""

from __future__ import annotations

import doctest
from collections.abc import Callable

import pytest
import structlog.testing

from hazwatch.metrics import Metrics
from hazwatch.models import Condition, GatewayState, GatewayStatus, Reading, Registry
from hazwatch.settings import IngestSettings
from ingest import unknowntags
from ingest.codec import Decoded, Rejection
from ingest.gateways import GatewayTracker
from ingest.latest import LatestValues
from ingest.rejects import RejectLog
from ingest.unknowntags import FLOOD_QUIET_MS, MAX_UNKNOWN_PER_GATEWAY, MAX_UNKNOWN_TAGS
from ingest.validation import ReadingValidator

NOW = 1_763_820_000_000
DAY_MS = 86_400_000
MakeReading = Callable[..., Reading]


def message(
    *readings: Reading, received_ms: int = NOW, gateway: str = "gw1", **fields: object
) -> Decoded:
    return Decoded(
        codec="hz-json",
        topic=f"hz/v1/E001/{gateway}/data",
        received_ms=received_ms,
        enterprise="E001",
        gateway=gateway,
        readings=list(readings),
        **fields,  # type: ignore[arg-type]
    )


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def validator(example_registry: Registry, metrics: Metrics) -> ReadingValidator:
    return ReadingValidator(example_registry, IngestSettings(), metrics)


# --- time window -----------------------------------------------------------------


@pytest.mark.parametrize(
    "ts_ms",
    [
        NOW - 7 * DAY_MS - 1,  # just past the 7 days
        NOW + 5 * 60_000 + 1,  # just beyond 5 minutes ahead
        NOW + 365 * DAY_MS,
        0,
        -1,
        2**62,
    ],
)
def test_timestamps_outside_the_window_are_rejected(
    validator: ReadingValidator, make_reading: MakeReading, ts_ms: int
) -> None:
    good = make_reading("TK101_LT", 1.0, NOW)
    checked = validator.check(message(good, make_reading("TK101_TT", 2.0, ts_ms)), NOW)
    assert checked.readings == [good]
    (rejection,) = checked.rejections
    assert rejection.reason == "ts_out_of_window"
    assert rejection.detail.startswith("TK101_TT: expected ts within 7 d before and 5 min after")
    assert rejection.topic == "hz/v1/E001/gw1/data"
    assert '"tag": "TK101_TT"' in rejection.payload_head


@pytest.mark.parametrize("ts_ms", [NOW - 7 * DAY_MS, NOW + 5 * 60_000, NOW])
def test_window_edges_are_inside(
    validator: ReadingValidator, make_reading: MakeReading, ts_ms: int
) -> None:
    checked = validator.check(message(make_reading("TK101_LT", 1.0, ts_ms)), NOW)
    assert len(checked.readings) == 1
    assert checked.rejections == []


def test_seconds_instead_of_milliseconds_get_a_hint(
    validator: ReadingValidator, make_reading: MakeReading
) -> None:
    checked = validator.check(message(make_reading(ts_ms=NOW // 1000)), NOW)
    assert "looks like epoch seconds" in checked.rejections[0].detail


def test_window_follows_the_settings(example_registry: Registry, make_reading: MakeReading) -> None:
    limits = IngestSettings(max_past_s=60, max_future_s=1.5)
    validator = ReadingValidator(example_registry, limits, Metrics())
    checked = validator.check(
        message(make_reading(ts_ms=NOW - 61_000), make_reading(ts_ms=NOW - 59_000)), NOW
    )
    assert [r.ts_ms for r in checked.readings] == [NOW - 59_000]
    assert "1 min before and 1500 ms after" in checked.rejections[0].detail


def test_earlier_rejections_are_kept(
    validator: ReadingValidator, make_reading: MakeReading
) -> None:
    earlier = Rejection(NOW, "hz/v1/E001/gw1/data", "bad_value", "readings[1]...", "{}")
    checked = validator.check(message(make_reading(ts_ms=0), rejections=[earlier]), NOW)
    assert [r.reason for r in checked.rejections] == ["bad_value", "ts_out_of_window"]


# --- registry ----------------------------------------------------------------------


def test_unknown_tags_are_counted_and_listed_not_kept(
    validator: ReadingValidator, metrics: Metrics, make_reading: MakeReading
) -> None:
    known = make_reading("TK101_LT", 1.0, NOW)
    checked = validator.check(
        message(known, make_reading("NEW_TAG", 1.0, NOW), make_reading("NEW_TAG", 2.0, NOW)),
        NOW,
    )
    validator.check(message(make_reading("OTHER", 1.0, NOW)), NOW + 5)
    assert checked.readings == [known]
    assert checked.rejections == []
    listed = validator.unknown_tags()
    assert [(u.tag, u.count, u.last_seen_ms) for u in listed] == [
        ("OTHER", 1, NOW + 5),
        ("NEW_TAG", 2, NOW),
    ]
    assert listed[1].enterprise == "E001"
    assert listed[1].gateway == "gw1"
    assert metrics.value("hazwatch_ingest_unknown_tag_readings_total", {"enterprise": "E001"}) == 3


def test_a_tag_of_another_enterprise_is_unknown(
    validator: ReadingValidator, make_reading: MakeReading
) -> None:
    # RC01 belongs to E002: a gateway of E001 may not write it (docs/architecture.md#security)
    checked = validator.check(message(make_reading("RC01", 1.0, NOW)), NOW)
    assert checked.readings == []
    assert [u.tag for u in validator.unknown_tags()] == ["RC01"]


def test_the_unknown_list_is_bounded_in_all(
    validator: ReadingValidator, make_reading: MakeReading, metrics: Metrics
) -> None:
    gateways = MAX_UNKNOWN_TAGS // MAX_UNKNOWN_PER_GATEWAY + 1  # more than the total holds
    n = 0
    for g in range(gateways):
        for _ in range(MAX_UNKNOWN_PER_GATEWAY):
            reading = make_reading(f"X{n}", 1.0, NOW, gateway=f"gw{g}")
            validator.check(message(reading, gateway=f"gw{g}"), NOW + n)
            n += 1
    listed = validator.unknown_tags()
    assert len(listed) == MAX_UNKNOWN_TAGS
    assert listed[0].tag == f"X{n - 1}"
    assert listed[-1].tag == f"X{n - MAX_UNKNOWN_TAGS}"
    assert metrics.value("hazwatch_ingest_unknown_tags_evicted_total") == n - MAX_UNKNOWN_TAGS


def test_a_gateway_sending_a_thousand_new_tags_a_second_cannot_push_others_out(
    example_registry: Registry, make_reading: MakeReading, metrics: Metrics
) -> None:
    """The list stays bounded, the other gateways' entries stay listed, what was pushed
    out is counted, and one SYSTEM condition says so — cleared once the flood is over."""
    conditions: list[Condition] = []
    validator = ReadingValidator(example_registry, IngestSettings(), metrics, conditions.extend)
    validator.check(message(make_reading("MISSPELT", 1.0, NOW, gateway="gw2"), gateway="gw2"), NOW)
    flood_s = 10
    for second in range(flood_s):
        for n in range(1000):
            now = NOW + second * 1000 + n
            reading = make_reading(f"NEW{second}_{n}", 1.0, now, gateway="gw9")
            validator.check(message(reading, gateway="gw9"), now)
    listed = validator.unknown_tags()
    assert len(listed) == MAX_UNKNOWN_PER_GATEWAY + 1
    assert ("gw2", "MISSPELT") in [(u.gateway, u.tag) for u in listed]
    assert metrics.value("hazwatch_ingest_unknown_tags_evicted_total") == (
        flood_s * 1000 - MAX_UNKNOWN_PER_GATEWAY
    )
    assert (
        metrics.value("hazwatch_ingest_unknown_tag_readings_total", {"enterprise": "E001"})
        == flood_s * 1000 + 1
    )
    [raised] = conditions
    assert (raised.type, raised.tag, raised.active) == ("SYSTEM", "unknown_tags_flood", True)
    assert "E001/gw9" in raised.message
    validator.check_quiet(NOW + flood_s * 1000 + 60_000)  # not quiet long enough yet
    assert len(conditions) == 1
    validator.check_quiet(NOW + flood_s * 1000 + FLOOD_QUIET_MS + 1)
    assert [(c.tag, c.active) for c in conditions[1:]] == [("unknown_tags_flood", False)]


def test_a_message_of_an_enterprise_not_in_the_registry_is_a_rejection(
    validator: ReadingValidator, metrics: Metrics, make_reading: MakeReading
) -> None:
    """Before, its readings were listed as unknown *tags* of that enterprise, outside
    ``rejected_total`` and with the stranger's id as a metric label."""
    decoded = Decoded(
        codec="hz-json",
        topic="hz/v1/E999/gw1/data",
        received_ms=NOW,
        enterprise="E999",
        gateway="gw1",
        readings=[make_reading("TK101_LT", 1.0, NOW, enterprise="E999")],
        seq=7,
    )
    checked = validator.check(decoded, NOW)
    assert checked.readings == []
    assert (checked.enterprise, checked.gateway, checked.seq) == (None, None, None)
    [rejection] = checked.rejections
    assert rejection.reason == "unknown_enterprise"
    assert "'E999' is not in the registry" in rejection.detail
    assert validator.unknown_tags() == []
    assert metrics.value("hazwatch_ingest_unknown_tag_readings_total", {"enterprise": "E999"}) == 0


# --- reject log ------------------------------------------------------------------


def test_reject_log_is_bounded_newest_first_and_counts_by_reason(metrics: Metrics) -> None:
    log = RejectLog(IngestSettings(rejects_kept=3), metrics)
    for n, reason in enumerate(["json", "bad_tag", "json", "too_large", "json"]):
        log.record(Rejection(NOW + n, "hz/v1/E001/gw1/data", reason, f"problem {n}", ""))
    assert [r.detail for r in log.recent()] == ["problem 4", "problem 3", "problem 2"]
    assert len(log) == 3
    counted = {
        reason: metrics.value("hazwatch_ingest_rejected_total", {"reason": reason})
        for reason in ("json", "bad_tag", "too_large")
    }
    assert counted == {"json": 3, "bad_tag": 1, "too_large": 1}


def test_rejections_are_logged_at_most_n_per_gateway_and_minute_with_a_count_held_back(
    metrics: Metrics,
) -> None:
    """A gateway sending garbage 1,000 times a second: 5 lines a minute and one line
    with the count held back; another gateway still gets its own lines."""
    log = RejectLog(IngestSettings(reject_logs_per_minute=5), metrics)
    with structlog.testing.capture_logs() as logged:
        for n in range(3000):  # three seconds of it
            log.record(Rejection(NOW + n, "hz/v1/E001/gw9/data", "json", "not JSON", ""))
        log.record(Rejection(NOW + 3000, "hz/v1/E001/gw1/tag/TK101_LT", "bad_value", "x", ""))
        assert [e["topic"] for e in logged if e["event"] == "payload_rejected"] == [
            "hz/v1/E001/gw9/data"
        ] * 5 + ["hz/v1/E001/gw1/tag/TK101_LT"]
        log.record(Rejection(NOW + 61_000, "hz/v1/E001/gw9/data", "json", "not JSON", ""))
    held = [e for e in logged if e["event"] == "payload_rejections_held_back"]
    assert [(e["source"], e["held_back"]) for e in held] == [("hz/v1/E001/gw9", 2995)]
    assert [e["event"] for e in logged].count("payload_rejected") == 7  # a new minute
    assert metrics.value("hazwatch_ingest_rejected_total", {"reason": "json"}) == 3001
    assert len(log) == 200


def test_a_quiet_gateways_held_back_count_is_said_by_the_next_sweep(metrics: Metrics) -> None:
    log = RejectLog(IngestSettings(reject_logs_per_minute=1), metrics)
    with structlog.testing.capture_logs() as logged:
        for n in range(4):
            log.record(Rejection(NOW + n, "hz/v1/E001/gw9/data", "json", "", ""))
        log.sweep(NOW + 60_000)
    held = [e for e in logged if e["event"] == "payload_rejections_held_back"]
    assert [(e["source"], e["held_back"]) for e in held] == [("hz/v1/E001/gw9", 3)]


# --- gateways --------------------------------------------------------------------


def seq_message(seq: int | None, received_ms: int = NOW, gateway: str = "gw1") -> Decoded:
    return Decoded("hz-json", f"hz/v1/E001/{gateway}/data", received_ms, "E001", gateway, seq=seq)


def status_message(state: GatewayState, gateway: str = "gw1") -> Decoded:
    status = GatewayStatus("E001", gateway, state, NOW)
    return Decoded("hz-json", f"hz/v1/E001/{gateway}/status", NOW, "E001", gateway, status=status)


def gaps_and_repeats(metrics: Metrics, gateway: str = "gw1") -> tuple[float, float]:
    labels = {"enterprise": "E001", "gateway": gateway}
    return (
        metrics.value("hazwatch_gateway_seq_gaps_total", labels),
        metrics.value("hazwatch_gateway_seq_repeats_total", labels),
    )


def test_seq_gaps_count_the_missing_numbers(metrics: Metrics) -> None:
    tracker = GatewayTracker(metrics)
    for seq in (1, 2, 5, 6, 10):
        tracker.observe(seq_message(seq))
    (info,) = tracker.gateways()
    assert (info.seq_gaps, info.seq_repeats, info.last_seq, info.messages) == (5, 0, 10, 5)
    assert gaps_and_repeats(metrics) == (5, 0)


def test_seq_repeats_do_not_move_the_baseline(metrics: Metrics) -> None:
    tracker = GatewayTracker(metrics)
    for seq in (1, 2, 3, 2, 3, 4, 4, 1, 5):
        tracker.observe(seq_message(seq))
    (info,) = tracker.gateways()
    assert (info.seq_gaps, info.seq_repeats, info.last_seq) == (0, 4, 5)
    assert gaps_and_repeats(metrics) == (0, 4)


def test_online_status_resets_the_seq_baseline(metrics: Metrics) -> None:
    tracker = GatewayTracker(metrics)
    for seq in (100, 101):
        tracker.observe(seq_message(seq))
    tracker.observe(status_message(GatewayState.ONLINE))  # the gateway restarted
    for seq in (1, 2):
        tracker.observe(seq_message(seq))
    (info,) = tracker.gateways()
    assert (info.seq_gaps, info.seq_repeats, info.last_seq) == (0, 0, 2)


def test_messages_without_seq_leave_seq_alone(metrics: Metrics) -> None:
    tracker = GatewayTracker(metrics)
    tracker.observe(seq_message(3))
    tracker.observe(seq_message(None, NOW + 10))
    tracker.observe(seq_message(4, NOW + 20))
    (info,) = tracker.gateways()
    assert (info.seq_gaps, info.seq_repeats, info.messages) == (0, 0, 3)
    assert info.last_seen_ms == NOW + 20


def test_gateway_state_and_online_gauge(metrics: Metrics) -> None:
    tracker = GatewayTracker(metrics)
    tracker.observe(seq_message(1, gateway="gw3"))
    tracker.observe(status_message(GatewayState.ONLINE, "gw1"))
    tracker.observe(status_message(GatewayState.ONLINE, "gw2"))
    tracker.observe(status_message(GatewayState.ONLINE, "gw2"))
    assert metrics.value("hazwatch_gateways_online") == 2
    tracker.observe(status_message(GatewayState.OFFLINE, "gw1"))
    assert metrics.value("hazwatch_gateways_online") == 1
    states = {g.gateway: g.state for g in tracker.gateways("E001")}
    assert states == {"gw1": "offline", "gw2": "online", "gw3": "unknown"}
    assert tracker.gateways("E002") == []


def test_gateways_are_copies(metrics: Metrics) -> None:
    tracker = GatewayTracker(metrics)
    tracker.observe(seq_message(1))
    tracker.gateways()[0].messages = 99
    assert tracker.gateways()[0].messages == 1


def test_messages_without_a_gateway_are_ignored(metrics: Metrics) -> None:
    tracker = GatewayTracker(metrics)
    tracker.observe(Decoded("hz-json", "bad/topic", NOW))
    assert tracker.gateways() == []


# --- latest values -----------------------------------------------------------------


def test_latest_keeps_the_newest_by_reading_time(make_reading: MakeReading) -> None:
    latest = LatestValues()
    latest.update([make_reading("TK101_LT", 1.0, NOW), make_reading("TK101_LT", 2.0, NOW + 5)])
    latest.update([make_reading("TK101_LT", 0.5, NOW - 1000)])  # a late backlog
    reading = latest.get("E001", "TK101_LT")
    assert reading is not None
    assert reading.value == 2.0
    assert latest.get("E001", "TK101_TT") is None
    assert latest.get("E002", "TK101_LT") is None


def test_the_unknown_tag_table_docstring_example_runs() -> None:
    result = doctest.testmod(unknowntags)
    assert result.attempted > 0
    assert result.failed == 0

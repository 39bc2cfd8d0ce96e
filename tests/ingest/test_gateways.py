"""GatewayTracker: last seen, online/offline, seq gaps and repeats — in /metrics too."""

from __future__ import annotations

from hazwatch.metrics import Metrics
from hazwatch.models import GatewayState, GatewayStatus
from ingest.codec import Decoded
from ingest.gateways import GatewayTracker

NOW = 1_763_820_000_000
LABELS = {"enterprise": "E001", "gateway": "gw1"}


def message(seq: int | None, received_ms: int, state: GatewayState | None = None) -> Decoded:
    status = GatewayStatus("E001", "gw1", state, received_ms) if state is not None else None
    return Decoded(
        codec="hz-json",
        topic="hz/v1/E001/gw1/data",
        received_ms=received_ms,
        enterprise="E001",
        gateway="gw1",
        seq=seq,
        status=status,
    )


def test_gaps_repeats_last_seen_and_state_reach_the_metrics() -> None:
    metrics = Metrics()
    tracker = GatewayTracker(metrics)
    for seq, at in ((1, 0), (2, 10), (5, 20), (5, 30), (3, 40), (6, 5)):
        tracker.observe(message(seq, NOW + at))
    [info] = tracker.gateways()
    assert (info.last_seq, info.seq_gaps, info.seq_repeats) == (6, 2, 2)
    assert info.last_seen_ms == NOW + 40  # an older receive time does not go back
    assert metrics.value("hazwatch_gateway_seq_gaps_total", LABELS) == 2
    assert metrics.value("hazwatch_gateway_seq_repeats_total", LABELS) == 2
    assert metrics.value("hazwatch_gateway_last_seen_seconds", LABELS) == (NOW + 40) / 1000
    tracker.observe(message(None, NOW + 50, GatewayState.ONLINE))
    assert metrics.value("hazwatch_gateways_online") == 1
    tracker.observe(message(1, NOW + 60))  # a restarted gateway counts from 1: no repeat
    assert tracker.gateways()[0].seq_repeats == 2
    tracker.observe(message(None, NOW + 70, GatewayState.OFFLINE))
    assert metrics.value("hazwatch_gateways_online") == 0
    assert tracker.gateways()[0].state == "offline"

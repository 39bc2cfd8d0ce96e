"""Backtest: the live service's components over a recording, without MQTT or a clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from hazwatch.models import Alarm, AlarmState, AlarmType, Registry, ms_to_iso
from hazwatch.registry import load_registry
from hazwatch.settings import Settings, load_settings
from simulators.backtest import BacktestResult, render_json, render_text, run_backtest
from simulators.comparison import compare
from simulators.recording import RecordedMessage
from tests.helpers import write_registry

T0 = 1_763_820_000_000
S = 1000


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Settings, Registry]:
    root = write_registry(
        tmp_path / "reg",
        "E1",
        ["LT1", "LT2"],
        min="0",
        max="20",
        h="10",
        hh="11",
        deadband="0.1",
        interval_s="5",
    )
    settings = load_settings(
        None, environ={}, overrides={"registry": str(root), "detectors.tick_s": 1.0}
    )
    return settings, load_registry(root)


def data(
    t: int, readings: list[dict[str, Any]], *, gateway: str = "g1", seq: int | None = None
) -> RecordedMessage:
    doc: dict[str, Any] = {"ts": t, "readings": readings}
    if seq is not None:
        doc["seq"] = seq
    return RecordedMessage(t, f"hz/v1/E1/{gateway}/data", orjson.dumps(doc))


def status(t: int, state: str, gateway: str = "g1") -> RecordedMessage:
    return RecordedMessage(t, f"hz/v1/E1/{gateway}/status", state.encode(), retain=True)


def backtest(setup: tuple[Settings, Registry], messages: list[RecordedMessage]) -> BacktestResult:
    settings, registry = setup
    return run_backtest(settings, registry, T0, messages)


def summary(alarm: Alarm) -> tuple[str, str, str | None, float | None]:
    return (alarm.type.value, alarm.raised_at, alarm.cleared_at, alarm.value)


def test_a_crossing_raises_h_and_hh_at_the_readings_time_and_clears_them(
    setup: tuple[Settings, Registry],
) -> None:
    values = [5.0, 11.5, 11.6, 5.0]
    result = backtest(
        setup,
        [
            data(T0 + k * 2 * S, [{"tag": "LT1", "v": v}, {"tag": "LT2", "v": 1.0}])
            for k, v in enumerate(values)
        ],
    )
    assert [summary(a) for a in result.alarms] == [
        ("H", ms_to_iso(T0 + 2 * S), ms_to_iso(T0 + 6 * S), 5.0),
        ("HH", ms_to_iso(T0 + 2 * S), ms_to_iso(T0 + 6 * S), 5.0),
    ]
    assert [(a.tag, a.limit, a.priority.value) for a in result.alarms] == [
        ("LT1", 10.0, "high"),
        ("LT1", 11.0, "critical"),
    ]
    assert result.readings == 8
    assert result.raised == {AlarmType.H: 1, AlarmType.HH: 1}


def test_stale_comes_from_a_tick_between_messages_at_tick_precision(
    setup: tuple[Settings, Registry],
) -> None:
    # LT2 reports once; LT1 every 10 s. LT2 is overdue after 3 x 5 s: the tick at
    # +16 s (the first with more than 15 s of silence) raises STALE, not the next
    # message at +20 s.
    messages = [data(T0, [{"tag": "LT1", "v": 1.0}, {"tag": "LT2", "v": 1.0}])]
    messages += [data(T0 + k * 10 * S, [{"tag": "LT1", "v": 1.0}]) for k in (1, 2, 3)]
    messages.append(data(T0 + 35 * S, [{"tag": "LT1", "v": 1.0}, {"tag": "LT2", "v": 1.0}]))
    result = backtest(setup, messages)
    assert [(a.type.value, a.tag, a.raised_at, a.cleared_at) for a in result.alarms] == [
        ("STALE", "LT2", ms_to_iso(T0 + 16 * S), ms_to_iso(T0 + 35 * S))
    ]


def test_a_status_message_raises_and_clears_gateway_offline_at_its_receive_time(
    setup: tuple[Settings, Registry],
) -> None:
    both = [{"tag": "LT1", "v": 1.0}, {"tag": "LT2", "v": 1.0}]
    result = backtest(
        setup,
        [
            status(T0, "online"),
            data(T0 + S, both),
            status(T0 + 3_500, "offline"),
            status(T0 + 9_250, "online"),
            data(T0 + 10 * S, both),
        ],
    )
    assert [
        (a.type.value, a.tag, a.installation, a.raised_at, a.cleared_at) for a in result.alarms
    ] == [("GATEWAY_OFFLINE", "g1", "U1", ms_to_iso(T0 + 3_500), ms_to_iso(T0 + 9_250))]


def test_rejections_unknown_tags_and_seq_repeats_are_counted(
    setup: tuple[Settings, Registry],
) -> None:
    old = T0 - 8 * 24 * 3600 * S  # beyond the 7-day window
    first = data(T0 + S, [{"tag": "LT1", "v": 1.0}], seq=1)
    result = backtest(
        setup,
        [
            first,
            first,  # a duplicate: seq repeated
            RecordedMessage(T0 + 2 * S, "hz/v1/E1/g1/data", b'{"readings": [\xff]}'),
            data(
                T0 + 3 * S, [{"tag": "NEW1", "v": 1.0}, {"tag": "LT1", "v": 1.0, "ts": old}], seq=2
            ),
            RecordedMessage(T0 + 4 * S, "hz/v1/E1/alarms", b"{}"),
        ],
    )
    assert result.messages == 5
    assert result.gateway_messages == 4
    assert result.readings == 2
    assert dict(result.rejected) == {"json": 1, "ts_out_of_window": 1}
    assert [(u.tag, u.count) for u in result.unknown_tags] == [("NEW1", 1)]
    assert [(g.gateway, g.seq_repeats, g.seq_gaps) for g in result.gateways] == [("g1", 1, 0)]
    assert result.unreadable_alarm_messages == 1


def test_a_point_flipping_often_is_listed_as_chattering(setup: tuple[Settings, Registry]) -> None:
    values = [5.0, 10.5, 5.0, 10.5, 5.0, 10.5]  # H raised and cleared again and again
    result = backtest(
        setup,
        [
            data(T0 + k * S, [{"tag": "LT1", "v": v}, {"tag": "LT2", "v": 1.0}])
            for k, v in enumerate(values)
        ],
    )
    [point] = result.chattering
    assert (point.enterprise, point.tag, point.since_ms) == ("E1", "LT1", T0 + S)
    assert (point.type, point.flips) == ("H", 3)
    expected = f"chattering: 1 point(s): E1/LT1 (H activated 3 times from {ms_to_iso(T0 + S)})"
    assert render_text(result).splitlines()[-1] == expected
    # one alarm (nobody acknowledged it), raised three times
    assert [a.type for a in result.alarms] == [AlarmType.H]
    assert result.raised == {AlarmType.H: 3}


def test_the_report_is_a_table_and_a_summary_the_same_every_run(
    setup: tuple[Settings, Registry],
) -> None:
    messages = [
        data(T0 + k * S, [{"tag": "LT1", "v": v}, {"tag": "LT2", "v": 1.0}])
        for k, v in enumerate([5.0, 11.5, 5.0])
    ]
    messages.append(RecordedMessage(T0 + 4 * S, "hz/v1/E1/g1/data", b"garbage"))
    text = render_text(backtest(setup, messages))
    assert text == render_text(backtest(setup, messages))
    raised, cleared = ms_to_iso(T0 + S), ms_to_iso(T0 + 2 * S)
    assert text.splitlines() == [
        "raised                    enterprise  tag  type  priority  value  limit  cleared",
        f"{raised}  E1          LT1  H     high      5.0    10.0   {cleared}",
        f"{raised}  E1          LT1  HH    critical  5.0    11.0   {cleared}",
        "",
        f"recording:  {ms_to_iso(T0)} .. {ms_to_iso(T0 + 4 * S)} (4.0 s)",
        "messages:   4 (4 from gateways, 0 other)",
        "readings:   6 accepted",
        "rejected:   1 (json 1)",
        "alarms:     2 (H 1, HH 1)",
        "raised:     2 (H 1, HH 1)",
        "chattering: none",  # one excursion through H and HH: each activated once
    ]
    doc = render_json(backtest(setup, messages))
    assert doc == render_json(backtest(setup, messages))
    assert doc["alarm_counts"] == {"H": 1, "HH": 1}
    assert doc["rejected"] == {"json": 1}
    assert "id" not in doc["alarms"][0]
    assert doc["alarms"][0]["raised_at"] == ms_to_iso(T0 + S)


def test_alarms_published_in_the_recording_are_compared_with_the_backtests(
    setup: tuple[Settings, Registry],
) -> None:
    messages = [
        data(T0 + k * S, [{"tag": "LT1", "v": v}, {"tag": "LT2", "v": 1.0}])
        for k, v in enumerate([5.0, 10.5, 5.0])
    ]
    first = backtest(setup, messages)
    [h] = first.alarms
    # what a live service would have published on its alarm topic: raised, then cleared
    raised = h.model_copy(update={"cleared_at": None, "state": AlarmState.ACTIVE_UNACK})
    messages.insert(
        2, RecordedMessage(T0 + 1_100, "hz/v1/E1/alarms", raised.model_dump_json().encode())
    )
    messages.append(RecordedMessage(T0 + 2_100, "hz/v1/E1/alarms", h.model_dump_json().encode()))
    result = backtest(setup, messages)
    assert result.recorded_alarms == [h]
    comparison = compare(result.recorded_alarms, result.alarms, result.started_ms, 2 * S)
    assert (comparison.same, comparison.identical) == (1, True)
    text = render_text(result, comparison)
    assert "  same:                  1" in text
    assert text.endswith("  result: identical\n")

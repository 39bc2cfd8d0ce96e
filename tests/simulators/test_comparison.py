"""Comparing a backtest's alarms with those a live run published."""

from __future__ import annotations

from typing import Any

from hazwatch.models import Alarm, ms_to_iso
from simulators.comparison import compare

T0 = 1_763_820_000_000
S = 1000


def alarm(
    type_: str, raised_ms: int, cleared_ms: int | None, value: float | None = 5.0, **more: Any
) -> Alarm:
    fields: dict[str, Any] = {
        "id": f"A{raised_ms}{type_}",
        "enterprise": "E1",
        "installation": "U1",
        "tag": "LT1",
        "type": type_,
        "priority": "high",
        "state": "cleared_unack",
        "value": value,
        "limit": 10.0,
        "raised_at": ms_to_iso(raised_ms),
        "cleared_at": None if cleared_ms is None else ms_to_iso(cleared_ms),
        "message": "",
    }
    fields.update(more)
    return Alarm.model_validate(fields)


def test_compare_pairs_alarms_and_names_every_difference() -> None:
    live = [
        alarm("H", T0 + S, T0 + 5 * S),
        alarm("HH", T0 + S, T0 + 5 * S),
        alarm("STALE", T0 + 20 * S, None, value=None, tag="LT2"),
        alarm("L", T0 + 30 * S, None),
        alarm("H", T0 - S, T0 + S),  # raised before the recording started
        alarm("SYSTEM", T0 + 2 * S, None, enterprise="_system", tag="historian"),
    ]
    ours = [
        alarm("H", T0 + S, T0 + 5 * S),
        alarm("HH", T0 + S, T0 + 5 * S, value=5.5),
        alarm("STALE", T0 + 21_500, None, value=None, tag="LT2"),  # within 2 s
        alarm("LL", T0 + 30 * S, None),
    ]
    result = compare(live, ours, T0, tolerance_ms=2 * S)
    assert result.same == 2
    assert result.not_compared == 2
    [difference] = result.different
    assert difference.problems == ("value 5.0 live, 5.5 here",)
    assert [a.type.value for a in result.only_recorded] == ["L"]
    assert [a.type.value for a in result.only_backtest] == ["LL"]
    assert not result.identical

    late = compare([alarm("H", T0 + S, T0 + 5 * S)], [alarm("H", T0 + 4 * S, None)], T0, 2 * S)
    assert late.different[0].problems == (
        f"raised {ms_to_iso(T0 + S)} live, {ms_to_iso(T0 + 4 * S)} here",
        f"cleared {ms_to_iso(T0 + 5 * S)} live, never here",
    )

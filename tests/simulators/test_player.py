"""The timeline as MQTT actions: the same seed gives the same bytes; gateway faults do
what they say, and malformed payloads are refused at the edge for the documented reason."""

from __future__ import annotations

from typing import Any, get_args

import orjson
import pytest

from hazwatch.models import Registry
from hazwatch.settings import IngestSettings
from ingest.hzjson import HzJsonCodec
from simulators.gateways import MalformedKind
from simulators.player import Connect, Drop, Publish, ScenarioPlayer, Step
from simulators.scenario import Scenario

START_MS = 1_763_820_000_000
MH01 = ("E001", "MH01-gw")


def stamp(t_s: float) -> int:
    return START_MS + round(t_s * 1000)


def player(registry: Registry, **fields: Any) -> ScenarioPlayer:
    scenario = Scenario.model_validate({"name": "t", "duration_s": 60, **fields})
    return ScenarioPlayer(registry, scenario, stamp)


def publishes(steps: list[Step], gateway: tuple[str, str]) -> list[tuple[float, dict[str, Any]]]:
    return [
        (step.t_s, orjson.loads(action.message.payload))
        for step in steps
        for action in step.actions
        if isinstance(action, Publish) and action.gateway == gateway
    ]


def test_same_seed_same_messages_another_seed_other_values(example_registry: Registry) -> None:
    def messages(seed: int) -> list[tuple[float, str, bytes]]:
        return [
            (step.t_s, action.message.topic, action.message.payload)
            for step in player(example_registry, seed=seed).steps()
            for action in step.actions
            if isinstance(action, Publish)
        ]

    first = messages(42)
    assert first == messages(42)
    other = messages(43)
    assert [m[:2] for m in other] == [m[:2] for m in first]  # same times and topics
    assert [m[2] for m in other] != [m[2] for m in first]  # other noise


def test_a_plant_gateway_sends_batches_with_seq_and_meters_one_value_per_tag(
    example_registry: Registry,
) -> None:
    steps = list(player(example_registry).steps())
    assert [s.t_s for s in steps] == [float(t) for t in range(0, 61, 5)]
    batches = publishes(steps, MH01)
    assert [b["seq"] for _, b in batches] == list(range(1, 14))
    assert [b["ts"] for _, b in batches] == [stamp(t) for t in range(0, 61, 5)]
    assert {r["tag"] for r in batches[0][1]["readings"]} == {
        "TK101_LT", "TK101_TT", "TK101_PT", "TK102_LT", "GD101", "GD102"
    }  # fmt: skip
    esd = next(
        r for _, b in publishes(steps, ("E001", "MH02-gw")) for r in b["readings"]
        if r["tag"] == "ESD201_ZSC"
    )  # fmt: skip
    assert esd["v"] is False  # a digital point travels as a JSON boolean
    meters = [
        a.message
        for a in steps[0].actions
        if isinstance(a, Publish) and a.gateway == ("E002", "DB01-gw")
    ]
    assert [m.topic for m in meters] == [
        f"hz/v1/E002/DB01-gw/tag/{t}" for t in ("RC01", "CT01", "P01")
    ]
    assert set(orjson.loads(meters[0].payload)) == {"v", "ts"}
    assert steps[0].readings == 20  # every gateway reports at t = 0


def test_duplicates_repeat_a_message_and_out_of_order_swaps_two(
    example_registry: Registry,
) -> None:
    steps = list(
        player(
            example_registry,
            events=[
                {"at_s": 10, "type": "duplicate", "enterprise": "E001", "gateway": "MH01-gw",
                 "count": 2},
                {"at_s": 30, "type": "out_of_order", "enterprise": "E001",
                 "gateway": "MH01-gw"},
            ],
        ).steps()
    )  # fmt: skip
    sent = publishes(steps, MH01)
    seqs = [b["seq"] for _, b in sent]
    assert seqs == [1, 2, 3, 3, 4, 4, 5, 6, 8, 7, 9, 10, 11, 12, 13]
    assert sent[2][1] == sent[3][1]  # the very same message, twice
    late = next(t for t, b in sent if b["seq"] == 7)
    assert late == 35.0  # the message of 30 s arrives after that of 35 s


def test_a_disconnect_drops_the_link_and_sends_nothing_until_the_reconnect(
    example_registry: Registry,
) -> None:
    steps = list(
        player(
            example_registry,
            events=[
                {"at_s": 12, "until_s": 31, "type": "disconnect", "enterprise": "E001",
                 "gateway": "MH01-gw"},
            ],
        ).steps()
    )  # fmt: skip
    links = [
        (s.t_s, type(a).__name__) for s in steps for a in s.actions if not isinstance(a, Publish)
    ]
    assert links == [(12.0, "Drop"), (31.0, "Connect")]
    assert [t for t, _ in publishes(steps, MH01)] == [0, 5, 10, 35, 40, 45, 50, 55, 60]
    assert len(publishes(steps, ("E001", "MH02-gw"))) == 13  # the other gateway carries on
    assert Drop(MH01) in steps[3].actions
    assert Connect(MH01) in steps[-7].actions


def test_silence_and_clock_skew(example_registry: Registry) -> None:
    steps = list(
        player(
            example_registry,
            events=[
                {"at_s": 20, "until_s": 40, "type": "silence", "enterprise": "E001",
                 "gateway": "MH01-gw"},
                {"at_s": 45, "type": "clock_skew", "enterprise": "E001", "gateway": "MH01-gw",
                 "skew_s": -90},
            ],
        ).steps()
    )  # fmt: skip
    sent = publishes(steps, MH01)
    assert [t for t, _ in sent] == [0, 5, 10, 15, 40, 45, 50, 55, 60]
    assert [b["seq"] for _, b in sent] == list(range(1, 10))  # a hang sends nothing, skips no seq
    assert [b["ts"] - stamp(t) for t, b in sent] == [0] * 5 + [-90_000] * 4


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("not_json", "json"),
        ("truncated", "json"),
        ("empty", "empty"),
        ("duplicate_key", "duplicate_key"),
        ("nan_value", "not_finite"),
        ("string_value", "bad_value"),
        ("bad_quality", "bad_quality"),
        ("unknown_tag", None),
    ],
)
def test_malformed_payloads_are_refused_for_their_reason(
    example_registry: Registry, kind: str, reason: str | None
) -> None:
    steps = player(
        example_registry,
        events=[{"at_s": 7, "type": "malformed", "enterprise": "E001", "gateway": "MH01-gw",
                 "kind": kind}],
    ).steps()  # fmt: skip
    [step] = [s for s in steps if s.t_s == 7.0]
    [action] = step.actions
    assert isinstance(action, Publish)
    assert action.message.topic == "hz/v1/E001/MH01-gw/data"
    decoded = HzJsonCodec(IngestSettings()).decode(
        action.message.topic, action.message.payload, stamp(7)
    )
    assert [r.reason for r in decoded.rejections] == ([reason] if reason else [])
    if reason is None:
        assert [r.tag for r in decoded.readings] == ["NOT_REGISTERED_01"]


def test_every_malformed_kind_is_tested() -> None:
    kinds = set(get_args(MalformedKind))
    tested = {"not_json", "truncated", "empty", "duplicate_key", "nan_value", "string_value",
              "bad_quality", "unknown_tag"}  # fmt: skip
    assert kinds == tested


def test_a_loop_starts_over_keeping_seq(example_registry: Registry) -> None:
    steps = player(example_registry).steps(loop=True)
    first_cycles = [next(steps) for _ in range(25)]
    times = [s.t_s for s in first_cycles]
    assert times == [float(t) for t in range(0, 125, 5)]
    seqs = [b["seq"] for _, b in publishes(first_cycles, MH01)]
    assert seqs == list(range(1, 26))
    values = [[r["v"] for r in b["readings"]] for _, b in publishes(first_cycles, MH01)]
    assert values[12] == values[0]  # the site starts over at 60 s: same seed, same values


def test_past_the_end_the_site_keeps_reporting(example_registry: Registry) -> None:
    steps = list(player(example_registry).steps(until_s=80))
    assert steps[-1].t_s == 80.0
    assert len(publishes(steps, MH01)) == 17

"""The console's HTTP API (docs/contract.md §7) against a real console on temporary files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hazwatch.models import AlarmState, AlarmType, Condition, GatewayState, GatewayStatus, Reading
from ingest.codec import Decoded, Rejection
from ingest.spool import DeadLetter
from tests.dashboards.conftest import NOW_MS, ConsoleHarness
from tests.diskfull import DiskFiller, small_tmpfs

MakeCondition = Callable[..., Condition]
MakeReading = Callable[..., Reading]


def _by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in items}


# --- health and metrics -------------------------------------------------------------


def test_healthz_is_200_when_every_component_is_ok(harness: ConsoleHarness) -> None:
    response = harness.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "components": {"mqtt": "ok", "storage": "ok", "journal": "ok"},
    }


def test_healthz_is_503_and_names_the_component_that_is_down(harness: ConsoleHarness) -> None:
    harness.health_report["storage"] = "unreachable"
    response = harness.client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["components"]["storage"] == "unreachable"
    assert body["components"]["mqtt"] == "ok"


def test_healthz_is_503_when_the_health_check_itself_fails(harness: ConsoleHarness) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("boom")

    harness.console.health = broken
    response = harness.client.get("/healthz")
    assert response.status_code == 503
    assert "RuntimeError" in response.json()["components"]["console"]


def test_metrics_are_prometheus_text_with_hazwatch_names(
    harness: ConsoleHarness, make_condition: MakeCondition
) -> None:
    harness.apply(make_condition())
    response = harness.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    text = response.text
    assert "# TYPE hazwatch_ingest_readings_total counter" in text
    assert "hazwatch_alarm_events_total" in text
    assert "hazwatch_channel_dropped_total" in text or "hazwatch_channel_dropped" in text


# --- enterprises ----------------------------------------------------------------------


def test_enterprises_are_listed_blue_with_their_counts(harness: ConsoleHarness) -> None:
    response = harness.client.get("/api/enterprises")
    assert response.status_code == 200
    items = response.json()
    assert [e["id"] for e in items] == ["E001", "E002"]
    e001 = items[0]
    assert e001 == {
        "id": "E001",
        "name": "Example Chemical Co.",
        "grid": "KS-03",
        "status": "operating",
        "risk": "blue",
        "risk_reason": "blue: no open alarm",
        "risk_cause": None,
        "location": [121.481, 30.794],
        "installation_count": 3,
        "point_count": 17,
        "open_alarm_count": 0,
    }


@pytest.mark.parametrize(
    ("alarm_types", "risk"),
    [
        ([AlarmType.STALE], "yellow"),
        ([AlarmType.TREND, AlarmType.STALE], "yellow"),
        ([AlarmType.STALE, AlarmType.H], "orange"),
        ([AlarmType.H, AlarmType.HH, AlarmType.STALE], "red"),
    ],
)
def test_risk_colour_follows_the_worst_open_alarm(
    harness: ConsoleHarness,
    make_condition: MakeCondition,
    alarm_types: list[AlarmType],
    risk: str,
) -> None:
    harness.apply(*(make_condition(t) for t in alarm_types))
    items = _by_id(harness.client.get("/api/enterprises").json())
    assert items["E001"]["risk"] == risk
    assert items["E001"]["open_alarm_count"] == len(alarm_types)
    assert items["E002"]["risk"] == "blue"


def test_a_cleared_but_unacknowledged_alarm_still_colours_and_a_closed_one_does_not(
    harness: ConsoleHarness, make_condition: MakeCondition
) -> None:
    (raised,) = harness.apply(make_condition(AlarmType.HH))
    harness.apply(make_condition(AlarmType.HH, active=False, value=10.0))
    assert harness.client.get("/api/enterprises").json()[0]["risk"] == "red"
    ack = harness.client.post(f"/api/alarms/{raised.alarm.id}/ack", json={"comment": "seen"})
    assert ack.json()["state"] == AlarmState.CLEARED
    summary = harness.client.get("/api/enterprises").json()[0]
    assert (summary["risk"], summary["open_alarm_count"]) == ("blue", 0)


def test_enterprise_detail_has_points_with_limits_and_last_values(
    harness: ConsoleHarness, make_reading: MakeReading, make_condition: MakeCondition
) -> None:
    harness.store(
        [
            make_reading("TK101_LT", 10.7, NOW_MS - 1_000),
            make_reading("TK101_TT", 25.0, NOW_MS - 2_000),
        ]
    )
    harness.apply(make_condition(AlarmType.H, value=10.7, limit=10.5))
    response = harness.client.get("/api/enterprises/E001")
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["risk"], body["open_alarm_count"]) == ("E001", "orange", 1)
    assert [i["id"] for i in body["installations"]] == ["MH01", "MH02", "MH03"]
    points = {p["tag"]: p for i in body["installations"] for p in i["points"]}
    assert len(points) == 17
    level = points["TK101_LT"]
    assert (level["unit"], level["ll"], level["l"], level["h"], level["hh"]) == (
        "m",
        0.5,
        1.0,
        10.5,
        11.0,
    )
    assert level["last"] == {
        "value": 10.7,
        "ts": "2025-11-22T13:59:59.000Z",
        "quality": "good",
        "age_s": 1.0,
        "stale": False,
    }
    assert level["limit_state"] == "H"
    assert points["TK101_TT"]["limit_state"] == "normal"
    assert points["GD101"]["last"] is None
    assert points["GD101"]["limit_state"] is None


def test_enterprise_detail_shows_contact_names_but_no_phone_or_email(
    harness: ConsoleHarness,
) -> None:
    response = harness.client.get("/api/enterprises/E001")
    contacts = response.json()["contacts"]
    assert {"role": "principal", "name": "Principal Wang"} in contacts
    assert {"role": "duty", "name": "Duty room"} in contacts
    assert all(set(c) == {"role", "name"} for c in contacts)
    assert "+86" not in response.text
    assert "@" not in response.text


def test_enterprise_detail_lists_the_enterprises_gateways(
    harness: ConsoleHarness, make_reading: MakeReading
) -> None:
    tracker = harness.console.gateways
    for seq in (1, 2, 4):
        tracker.observe(
            Decoded(
                codec="hz-json",
                topic="hz/v1/E001/gw1/data",
                received_ms=NOW_MS + seq,
                enterprise="E001",
                gateway="gw1",
                readings=[make_reading()],
                seq=seq,
            )
        )
    tracker.observe(
        Decoded(
            codec="hz-json",
            topic="hz/v1/E002/gwX/status",
            received_ms=NOW_MS,
            enterprise="E002",
            gateway="gwX",
            status=GatewayStatus("E002", "gwX", GatewayState.OFFLINE, NOW_MS),
        )
    )
    gateways = harness.client.get("/api/enterprises/E001").json()["gateways"]
    assert len(gateways) == 1
    gw1 = gateways[0]
    assert gw1["gateway"] == "gw1"
    assert gw1["last_seq"] == 4
    assert gw1["seq_gaps"] == 1
    assert gw1["messages"] == 3
    assert gw1["last_seen"] == "2025-11-22T14:00:00.004Z"
    e002 = harness.client.get("/api/enterprises/E002").json()["gateways"]
    assert [(g["gateway"], g["state"]) for g in e002] == [("gwX", "offline")]


def test_unknown_enterprise_is_404(harness: ConsoleHarness) -> None:
    response = harness.client.get("/api/enterprises/E999")
    assert response.status_code == 404
    assert response.json() == {"detail": "no enterprise 'E999' in the registry"}


@pytest.mark.parametrize(
    ("eid", "got"),
    [("E%20001", "'E 001'"), ("E$001", "'E$001'"), ("x" * 65, "'xxx"), ("E%C3%A9", "'Eé'")],
)
def test_malformed_enterprise_id_is_422_and_says_what_was_expected(
    harness: ConsoleHarness, eid: str, got: str
) -> None:
    response = harness.client.get(f"/api/enterprises/{eid}")
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("path.eid: String should match pattern '^[A-Za-z0-9_-]{1,64}$'")
    assert f"(got {got}" in detail


# --- history --------------------------------------------------------------------------


def test_history_returns_bucket_means_of_what_was_written(
    harness: ConsoleHarness, make_reading: MakeReading
) -> None:
    start = NOW_MS - 60_000
    harness.store(
        [
            make_reading("TK101_LT", 1.0, start),
            make_reading("TK101_LT", 3.0, start + 10_000),
            make_reading("TK101_LT", 7.0, start + 30_000),
            make_reading("TK101_TT", 99.0, start + 30_000),  # another point: not included
        ]
    )
    response = harness.client.get(
        "/api/points/E001/TK101_LT/history",
        params={"start": str(start), "end": "2025-11-22T14:00:00Z", "step": "30s"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["step_ms"] == 30_000
    assert (body["start"], body["end"], body["unit"]) == (
        "2025-11-22T13:59:00.000Z",
        "2025-11-22T14:00:00.000Z",
        "m",
    )
    assert body["points"] == [
        {"ts": "2025-11-22T13:59:00.000Z", "value": 2.0},
        {"ts": "2025-11-22T13:59:30.000Z", "value": 7.0},
    ]


def test_history_defaults_to_the_last_hour_in_about_300_buckets(
    harness: ConsoleHarness, make_reading: MakeReading
) -> None:
    harness.store([make_reading("R201_TT", 80.0, NOW_MS - 5_000, enterprise="E001")])
    body = harness.client.get("/api/points/E001/R201_TT/history").json()
    assert body["end"] == "2025-11-22T14:00:00.000Z"
    assert body["start"] == "2025-11-22T13:00:00.000Z"
    assert body["step_ms"] == 15_000
    assert [p["value"] for p in body["points"]] == [80.0]


def test_history_of_an_unknown_point_is_404(harness: ConsoleHarness) -> None:
    response = harness.client.get("/api/points/E001/NOPE/history")
    assert response.status_code == 404
    assert response.json()["detail"] == "no point 'NOPE' in enterprise 'E001'"
    assert harness.client.get("/api/points/E999/TK101_LT/history").status_code == 404
    # a tag of another enterprise is not a point of this one
    assert harness.client.get("/api/points/E002/TK101_LT/history").status_code == 404


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"start": str(NOW_MS), "end": str(NOW_MS)}, "start before end"),
        ({"start": str(NOW_MS), "end": str(NOW_MS - 1)}, "start before end"),
        ({"start": str(NOW_MS - 86_400_000), "step": "1s"}, "buckets"),
        ({"start": "2025-11-22 14:00"}, "offset"),
        ({"end": "noon"}, "end: expected ISO 8601"),
        ({"step": "fast"}, "step: expected"),
    ],
)
def test_history_refuses_impossible_windows_with_422(
    harness: ConsoleHarness, params: dict[str, str], says: str
) -> None:
    response = harness.client.get("/api/points/E001/TK101_LT/history", params=params)
    assert response.status_code == 422
    assert says in response.json()["detail"]


def test_history_tag_must_match_the_tag_pattern(harness: ConsoleHarness) -> None:
    response = harness.client.get("/api/points/E001/TK101%20LT/history")
    assert response.status_code == 422
    assert response.json()["detail"].startswith("path.tag: ")


# --- alarms ------------------------------------------------------------------------------


def test_alarm_list_filters_and_orders_newest_first(
    harness: ConsoleHarness, make_condition: MakeCondition
) -> None:
    first = harness.apply(make_condition(AlarmType.HH, ts_ms=NOW_MS))[0].alarm
    harness.clock.advance(60_000)
    second = harness.apply(
        make_condition(
            AlarmType.H,
            enterprise="E002",
            installation="DB01",
            tag="RC01",
            value=310,
            limit=300,
            ts_ms=NOW_MS + 60_000,
        )
    )[0].alarm
    client = harness.client

    everything = client.get("/api/alarms").json()
    assert [a["id"] for a in everything] == [second.id, first.id]
    assert everything[1] == first.model_dump(mode="json")

    e002 = client.get("/api/alarms", params={"enterprise": "E002"}).json()
    assert [a["id"] for a in e002] == [second.id]
    assert client.get("/api/alarms", params={"limit": 1}).json()[0]["id"] == second.id
    assert len(client.get("/api/alarms", params={"active": "true"}).json()) == 2
    assert client.get("/api/alarms", params={"active": "false"}).json() == []
    since = client.get("/api/alarms", params={"since": "2025-11-22T14:00:30Z"}).json()
    assert [a["id"] for a in since] == [second.id]


def test_alarm_list_closed_filter_keeps_what_still_needs_someone(
    harness: ConsoleHarness, make_condition: MakeCondition
) -> None:
    """``closed=false`` is the desk's list: a cleared alarm still owing a verification is
    on it (``active=true`` drops it); one the loop has closed (销号) is not."""
    active = harness.apply(make_condition(tag="TK101_LT"))[0].alarm
    owed = harness.apply(make_condition(tag="TK102_LT"))[0].alarm
    done = harness.apply(make_condition(tag="TK103_LT"))[0].alarm
    harness.call(harness.service.feedback, owed.id, "valve left open", "valve closed", "ent1")
    for alarm in (owed, done):
        harness.call(harness.service.acknowledge, alarm.id, "")
        harness.apply(make_condition(tag=alarm.tag, active=False, value=10.0))

    def ids(**params: str) -> set[str]:
        response = harness.client.get("/api/alarms", params=params)
        assert response.status_code == 200, response.text
        return {a["id"] for a in response.json()}

    assert ids(closed="false") == {active.id, owed.id}
    desk = harness.client.get("/api/alarms", params={"closed": "false"}).json()
    assert [a["id"] for a in desk] == [active.id, owed.id]  # unacknowledged first
    assert ids(closed="true") == {done.id}
    assert ids(active="true") == {active.id}
    assert harness.call(harness.journal.get, owed.id).disposal == "awaiting_verification"


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"closed": "maybe"}, "query.closed"),
        ({"limit": "0"}, "query.limit"),
        ({"limit": "1001"}, "query.limit"),
        ({"active": "maybe"}, "query.active"),
        ({"enterprise": "E 1"}, "query.enterprise"),
        ({"since": "2025-11-22"}, "since: expected a UTC offset"),
    ],
)
def test_alarm_list_refuses_bad_filters_with_422(
    harness: ConsoleHarness, params: dict[str, str], says: str
) -> None:
    response = harness.client.get("/api/alarms", params=params)
    assert response.status_code == 422
    assert says in response.json()["detail"]


def test_alarm_detail_has_transitions_and_notifications(
    harness: ConsoleHarness, make_condition: MakeCondition
) -> None:
    alarm = harness.apply(make_condition())[0].alarm
    harness.client.post(f"/api/alarms/{alarm.id}/ack", json={"comment": "operator on it"})
    response = harness.client.get(f"/api/alarms/{alarm.id}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == alarm.id
    assert body["state"] == "active_ack"
    assert body["message"] == alarm.message
    kinds = [t["kind"] for t in body["transitions"]]
    assert kinds == ["raised", "acknowledged"]
    assert body["transitions"][-1]["comment"] == "operator on it"
    assert body["notifications"] == []  # no notifier channels in this console


def test_unknown_alarm_is_404(harness: ConsoleHarness) -> None:
    response = harness.client.get("/api/alarms/01JD0000000000000000000000")
    assert response.status_code == 404
    assert "01JD0000000000000000000000" in response.json()["detail"]


def test_ack_moves_an_active_alarm_to_active_ack(
    harness: ConsoleHarness, make_condition: MakeCondition
) -> None:
    alarm = harness.apply(make_condition())[0].alarm
    assert alarm.state is AlarmState.ACTIVE_UNACK
    response = harness.client.post(f"/api/alarms/{alarm.id}/ack", json={"comment": "called site"})
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["state"]) == (alarm.id, "active_ack")
    assert set(body) == set(alarm.model_dump())
    assert harness.call(harness.journal.get, alarm.id).state is AlarmState.ACTIVE_ACK


def test_a_flood_is_acknowledged_in_one_request_with_a_reason(
    harness: ConsoleHarness, make_condition: MakeCondition
) -> None:
    alarms = [
        e.alarm
        for e in harness.apply(*(make_condition(tag=f"T{n}", value=float(n)) for n in range(5)))
    ]
    first = alarms[0].id
    assert harness.client.post(f"/api/alarms/{first}/ack", json={"comment": ""}).is_success
    ids = [a.id for a in alarms] + ["NOPE", alarms[1].id]  # one twice: acknowledged once
    response = harness.client.post(
        "/api/alarms/ack", json={"ids": ids, "reason": "flood: pump trip"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [a["id"] for a in body["acknowledged"]] == [a.id for a in alarms[1:]]
    assert {a["state"] for a in body["acknowledged"]} == {"active_ack"}
    assert [(r["id"], r["status"]) for r in body["refused"]] == [(first, 409), ("NOPE", 404)]
    for alarm in alarms[1:]:
        assert harness.call(harness.journal.get, alarm.id).state is AlarmState.ACTIVE_ACK
    assert harness.console.audit is not None
    acks = [r for r in harness.console.audit.rows(20) if r["action"] == "ack"]
    assert len(acks) == 5  # the single one, and one row per alarm of the flood
    assert {r["detail"]["comment"] for r in acks[:4]} == {"flood: pump trip"}


@pytest.mark.parametrize(
    "body",
    [
        {"ids": ["A1"]},  # no reason
        {"ids": ["A1"], "reason": ""},
        {"ids": [], "reason": "r"},
        {"ids": [f"A{n}" for n in range(101)], "reason": "r"},  # more than 100
        {"ids": ["not an id!"], "reason": "r"},
    ],
)
def test_a_bulk_ack_without_a_reason_or_beyond_100_is_422(
    harness: ConsoleHarness, body: dict[str, Any]
) -> None:
    assert harness.client.post("/api/alarms/ack", json=body).status_code == 422


def test_ack_twice_is_409(harness: ConsoleHarness, make_condition: MakeCondition) -> None:
    alarm = harness.apply(make_condition())[0].alarm
    assert harness.client.post(f"/api/alarms/{alarm.id}/ack", json={"comment": ""}).is_success
    again = harness.client.post(f"/api/alarms/{alarm.id}/ack", json={"comment": ""})
    assert again.status_code == 409
    assert again.json()["detail"]


def test_ack_on_a_full_disk_is_503_with_the_cause_not_409(
    harness: ConsoleHarness, make_condition: MakeCondition, tmp_path: Path
) -> None:
    """Before, every journal error read "409 already acknowledged" — a full disk too."""
    journal = harness.journal
    with small_tmpfs(tmp_path / "disk", 2048) as disk:
        harness.call(journal.close)
        journal.path = disk / "journal.db"
        harness.call(journal.open)
        try:
            alarms = harness.apply(
                *(make_condition(tag=f"T{n}", value=float(n)) for n in range(50))
            )
            filler = DiskFiller(disk)
            filler.fill()
            refused = 0
            for event in alarms:  # each ack needs a page or two: the disk runs out
                response = harness.client.post(
                    f"/api/alarms/{event.alarm.id}/ack", json={"comment": "x" * 500}
                )
                if response.status_code != 200:
                    assert response.status_code == 503, response.text
                    assert "disk is full" in response.json()["detail"]
                    refused += 1
            assert refused
            filler.free()
            unacked = [e for e in alarms if harness.call(journal.get, e.alarm.id).state
                       is AlarmState.ACTIVE_UNACK]  # fmt: skip
            assert len(unacked) == refused  # a refused ack changed nothing
            retry = harness.client.post(f"/api/alarms/{unacked[0].alarm.id}/ack", json={})
            assert retry.status_code == 200
        finally:
            harness.call(journal.close)


def test_ack_of_an_unknown_alarm_is_404(harness: ConsoleHarness) -> None:
    response = harness.client.post("/api/alarms/NOPE/ack", json={"comment": "x"})
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"comment": "x" * 501}, "body.comment"),
        ({"comment": 5}, "body.comment"),
        ({"comment": "ok", "user": "root"}, "body.user"),
        (None, "body"),
    ],
)
def test_ack_body_is_validated(
    harness: ConsoleHarness, make_condition: MakeCondition, body: Any, says: str
) -> None:
    alarm = harness.apply(make_condition())[0].alarm
    response = harness.client.post(f"/api/alarms/{alarm.id}/ack", json=body)
    assert response.status_code == 422
    assert says in response.json()["detail"]
    assert harness.call(harness.journal.get, alarm.id).state is AlarmState.ACTIVE_UNACK


def test_ack_comment_of_500_characters_is_accepted(
    harness: ConsoleHarness, make_condition: MakeCondition
) -> None:
    alarm = harness.apply(make_condition())[0].alarm
    response = harness.client.post(f"/api/alarms/{alarm.id}/ack", json={"comment": "x" * 500})
    assert response.status_code == 200


# --- ingest ---------------------------------------------------------------------------


def test_rejects_and_unknown_tags_are_listed(
    harness: ConsoleHarness, make_reading: MakeReading
) -> None:
    rejects = harness.console.rejects
    for n, reason in enumerate(["json", "bad_tag", "json"]):
        rejects.record(
            Rejection(
                ts_ms=NOW_MS + n,
                topic="hz/v1/E001/gw1/data",
                reason=reason,
                detail=f"problem {n}",
                payload_head="{not json" if reason == "json" else '{"tag": "a b"}',
            )
        )
    harness.validator.check(
        Decoded(
            codec="hz-json",
            topic="hz/v1/E001/gw1/data",
            received_ms=NOW_MS,
            enterprise="E001",
            gateway="gw1",
            readings=[make_reading("NOT_REGISTERED", 1.0, NOW_MS)],
        ),
        NOW_MS,
    )
    response = harness.client.get("/api/ingest/rejects")
    assert response.status_code == 200
    body = response.json()
    assert body["rejected_total"] == 3
    assert body["by_reason"] == {"json": 2, "bad_tag": 1}
    assert [r["detail"] for r in body["recent"]] == ["problem 2", "problem 1", "problem 0"]
    assert body["recent"][0] == {
        "ts": "2025-11-22T14:00:00.002Z",
        "topic": "hz/v1/E001/gw1/data",
        "reason": "json",
        "detail": "problem 2",
        "payload_head": "{not json",
    }
    assert body["unknown_tags"] == [
        {
            "enterprise": "E001",
            "gateway": "gw1",
            "tag": "NOT_REGISTERED",
            "count": 1,
            "last_seen": "2025-11-22T14:00:00.000Z",
        }
    ]


def test_rejects_are_empty_at_start(harness: ConsoleHarness) -> None:
    assert harness.client.get("/api/ingest/rejects").json() == {
        "rejected_total": 0,
        "by_reason": {},
        "recent": [],
        "unknown_tags": [],
    }


def test_dead_letters_list_what_storage_refused(harness: ConsoleHarness) -> None:
    assert harness.client.get("/api/ingest/dead-letters").json() == []  # no spool wired
    refused = Reading("E001", "gw1", "TK101_LT", 3.5, NOW_MS)
    asked: list[int] = []

    async def dead_letters(limit: int) -> list[DeadLetter]:
        asked.append(limit)
        return [DeadLetter(NOW_MS + 5, refused, "HTTP 400: field type conflict")]

    harness.console.dead_letters = dead_letters
    response = harness.client.get("/api/ingest/dead-letters", params={"limit": 10})
    assert response.status_code == 200
    assert response.json() == [
        {
            "at": "2025-11-22T14:00:00.005Z",
            "enterprise": "E001",
            "gateway": "gw1",
            "tag": "TK101_LT",
            "ts": "2025-11-22T14:00:00.000Z",
            "value": 3.5,
            "quality": "good",
            "error": "HTTP 400: field type conflict",
            "line": None,
        }
    ]
    assert asked == [10]
    assert harness.client.get("/api/ingest/dead-letters", params={"limit": 0}).status_code == 422

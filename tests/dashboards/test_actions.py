"""The console's alarm actions: shelve, feedback, verify, suppressions, dead notifications —
their answers and their errors (404 unknown id, 409 naming the state, 422 bad input)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hazwatch.models import AlarmState, AlarmType, Condition, ms_to_iso
from tests.dashboards.conftest import NOW_MS, ConsoleHarness

MakeCondition = Callable[..., Condition]


def raised(harness: ConsoleHarness, make_condition: MakeCondition, **kwargs: object) -> str:
    return harness.apply(make_condition(**kwargs))[0].alarm.id


def test_shelve_then_unshelve(harness: ConsoleHarness, make_condition: MakeCondition) -> None:
    alarm_id = raised(harness, make_condition)
    response = harness.client.post(
        f"/api/alarms/{alarm_id}/shelve", json={"minutes": 30, "reason": "nuisance, ticket 42"}
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["state"], body["shelved_until"]) == ("shelved", ms_to_iso(NOW_MS + 1_800_000))
    again = harness.client.post(
        f"/api/alarms/{alarm_id}/shelve", json={"minutes": 30, "reason": "again"}
    )
    assert again.status_code == 409
    assert "shelved" in again.json()["detail"]
    back = harness.client.post(f"/api/alarms/{alarm_id}/unshelve", json={"comment": "fixed"})
    assert back.json()["state"] == "active_unack"
    detail = harness.client.get(f"/api/alarms/{alarm_id}").json()
    assert [(t["kind"], t["user"]) for t in detail["transitions"]] == [
        ("raised", ""),
        ("shelved", "operator"),
        ("unshelved", "operator"),
    ]
    assert detail["transitions"][1]["comment"] == "nuisance, ticket 42"


def test_shelving_beyond_the_maximum_is_422(
    harness: ConsoleHarness, make_condition: MakeCondition
) -> None:
    alarm_id = raised(harness, make_condition)
    response = harness.client.post(
        f"/api/alarms/{alarm_id}/shelve", json={"minutes": 481, "reason": "all night"}
    )
    assert response.status_code == 422
    assert "at most 480" in response.json()["detail"]
    assert harness.call(harness.journal.get, alarm_id).state is AlarmState.ACTIVE_UNACK


@pytest.mark.parametrize(
    "path", ["shelve", "unshelve", "feedback", "verify"], ids=lambda p: f"/api/alarms/x/{p}"
)
def test_an_unknown_alarm_is_404(harness: ConsoleHarness, path: str) -> None:
    bodies = {
        "shelve": {"minutes": 5, "reason": "r"},
        "unshelve": {},
        "feedback": {"cause": "c", "measures": "m"},
        "verify": {"accepted": True},
    }
    harness.login("ent1" if path == "feedback" else "operator")
    response = harness.client.post(f"/api/alarms/NOPE/{path}", json=bodies[path])
    assert response.status_code == 404
    assert "NOPE" in response.json()["detail"]


def test_feedback_and_verification_close_the_alarm(
    harness: ConsoleHarness, make_condition: MakeCondition
) -> None:
    alarm_id = raised(harness, make_condition)
    harness.login("ent1")  # the enterprise writes the feedback, the operator verifies
    fed = harness.client.post(
        f"/api/alarms/{alarm_id}/feedback",
        json={"cause": "inlet valve left open", "measures": "valve closed, interlock added"},
    )
    assert fed.status_code == 200
    body = fed.json()
    assert body["disposal"] == "awaiting_verification"
    assert body["feedback"]["cause"] == "inlet valve left open"
    assert body["feedback"]["by"] == "ent1"
    twice = harness.client.post(
        f"/api/alarms/{alarm_id}/feedback", json={"cause": "c", "measures": "m"}
    )
    assert twice.status_code == 409
    assert "awaiting_verification" in twice.json()["detail"]
    harness.login("operator")
    # accepting while the condition is still active: 409 naming the ISA state
    early = harness.client.post(f"/api/alarms/{alarm_id}/verify", json={"accepted": True})
    assert early.status_code == 409
    assert "active_unack" in early.json()["detail"]
    harness.apply(make_condition(active=False, value=10.0))
    assert harness.client.post(f"/api/alarms/{alarm_id}/ack", json={}).is_success
    verified = harness.client.post(
        f"/api/alarms/{alarm_id}/verify", json={"accepted": True, "comment": "seen on site"}
    )
    assert verified.status_code == 200
    body = verified.json()
    assert (body["state"], body["disposal"]) == ("cleared", "closed")
    assert body["verification"] == {
        "accepted": True,
        "comment": "seen on site",
        "by": "operator",
        "at": ms_to_iso(NOW_MS),
    }
    assert body["closed_at"] == ms_to_iso(NOW_MS)
    harness.login("ent1")
    late = harness.client.post(
        f"/api/alarms/{alarm_id}/feedback", json={"cause": "c", "measures": "m"}
    )
    assert late.status_code == 409
    assert "closed" in late.json()["detail"]


def test_verify_before_feedback_is_409(
    harness: ConsoleHarness, make_condition: MakeCondition
) -> None:
    alarm_id = raised(harness, make_condition)
    response = harness.client.post(f"/api/alarms/{alarm_id}/verify", json={"accepted": False})
    assert response.status_code == 409
    assert "none" in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "body", "says"),
    [
        ("feedback", {"cause": "", "measures": "m"}, "body.cause"),
        ("feedback", {"cause": "c"}, "body.measures"),
        ("verify", {"comment": "x"}, "body.accepted"),
        ("shelve", {"minutes": 0, "reason": "r"}, "body.minutes"),
        ("shelve", {"minutes": 5}, "body.reason"),
    ],
)
def test_bodies_are_validated(
    harness: ConsoleHarness,
    make_condition: MakeCondition,
    path: str,
    body: dict[str, object],
    says: str,
) -> None:
    alarm_id = raised(harness, make_condition)
    harness.login("ent1" if path == "feedback" else "operator")
    response = harness.client.post(f"/api/alarms/{alarm_id}/{path}", json=body)
    assert response.status_code == 422
    assert says in response.json()["detail"]


def test_a_suppression_is_listed_suppresses_and_ends(
    harness: ConsoleHarness, make_condition: MakeCondition
) -> None:
    end = ms_to_iso(NOW_MS + 3_600_000)
    response = harness.client.post(
        "/api/suppressions",
        json={"enterprise": "E001", "tag": "TK101_LT", "reason": "transmitter swap", "end": end},
    )
    assert response.status_code == 201
    suppression = response.json()
    assert suppression["installation"] == "MH01"  # the point's, from the registry
    assert (suppression["tag"], suppression["end"], suppression["ended"]) == ("TK101_LT", end, None)
    assert harness.client.get("/api/suppressions").json() == [suppression]
    alarm = harness.apply(make_condition())[0].alarm
    assert alarm.state is AlarmState.SUPPRESSED
    other = harness.apply(make_condition(tag="TK102_LT"))[0].alarm
    assert other.state is AlarmState.ACTIVE_UNACK  # another point
    ended = harness.client.delete(f"/api/suppressions/{suppression['id']}")
    assert ended.status_code == 200
    assert [(a["id"], a["state"]) for a in ended.json()] == [(alarm.id, "active_unack")]
    assert harness.client.get("/api/suppressions").json() == []
    listed = harness.client.get("/api/suppressions", params={"ended": "true"}).json()
    assert listed[0]["ended"] == ms_to_iso(NOW_MS)
    assert harness.client.delete(f"/api/suppressions/{suppression['id']}").status_code == 404


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"enterprise": "E999", "installation": "MH01"}, "E999"),
        ({"enterprise": "E001", "installation": "MH09"}, "MH09"),
        ({"enterprise": "E001", "tag": "NOPE"}, "NOPE"),
        ({"enterprise": "E001"}, "either installation"),
        ({"enterprise": "E001", "installation": "MH01", "tag": "TK101_LT"}, "either"),
        ({"enterprise": "E001", "installation": "MH01", "end": "2020-01-01T00:00:00Z"}, "future"),
        ({"enterprise": "E001", "installation": "MH01", "end": "tomorrow"}, "end"),
    ],
)
def test_bad_suppressions_are_422(harness: ConsoleHarness, body: dict[str, str], says: str) -> None:
    full = {"reason": "maintenance", "end": ms_to_iso(NOW_MS + 60_000), **body}
    response = harness.client.post("/api/suppressions", json=full)
    assert response.status_code == 422
    assert says in response.json()["detail"]


def test_dead_notifications_are_listed_and_unknown_ones_404(harness: ConsoleHarness) -> None:
    assert harness.client.get("/api/notifications/dead").json() == []
    assert harness.client.post("/api/notifications/99/retry").status_code == 404


def test_the_alarm_json_carries_the_loop(
    harness: ConsoleHarness, make_condition: MakeCondition
) -> None:
    alarm_id = raised(harness, make_condition, alarm_type=AlarmType.H, limit=10.5)
    body = harness.client.get(f"/api/alarms/{alarm_id}").json()
    assert {k: body[k] for k in ("disposal", "feedback", "escalation", "shelved_until")} == {
        "disposal": "none",
        "feedback": None,
        "escalation": 0,
        "shelved_until": None,
    }

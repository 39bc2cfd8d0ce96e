"""Tenant isolation: a caller never sees, nor acts on, an enterprise outside its grants.

Every route of the app is listed in :data:`CHECKS` (or :data:`NO_TENANT_DATA`), so a new
route without a cross-tenant check fails :func:`test_every_route_has_a_cross_tenant_check`.
Each check acts as a user of E002 (``ent2``, or ``operator7`` where the step needs an
operator's role, so that the refusal comes from the scope, not the role) on data of
E001, and asserts the answer is what a missing id gets: 404 alike, or nothing listed.
"""

from __future__ import annotations

import json
import sqlite3
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.routing import APIRoute
from starlette.exceptions import StarletteDeprecationWarning

from dashboards.feed import reading_item
from hazwatch.models import Reading
from ingest.codec import Decoded
from ingest.spool import DeadLetter
from tests.dashboards.conftest import NOW_MS, ConsoleHarness
from tests.dashboards.test_stream import EventReader

MakeCondition = Callable[..., Any]


@dataclass
class Tenants:
    """Data of both enterprises: E001 (the other tenant) and E002 (the caller's own)."""

    harness: ConsoleHarness
    alarm_e1: str
    alarm_e2: str
    suppression_e1: int
    dead_notification_e1: int


@pytest.fixture
def tenants(harness: ConsoleHarness, make_condition: MakeCondition) -> Tenants:
    h = harness
    h.login("operator")
    alarm_e1 = h.apply(make_condition())[0].alarm.id
    alarm_e2 = h.apply(
        make_condition(enterprise="E002", installation="DB01", tag="RC01", value=600, limit=500)
    )[0].alarm.id
    made = h.client.post(
        "/api/suppressions",
        json={
            "enterprise": "E001",
            "tag": "TK102_LT",
            "reason": "calibration",
            "end": "2025-11-22T16:00:00Z",
        },
    )
    assert made.status_code == 201, made.text
    h.store(
        [
            Reading("E001", "gw1", "TK101_LT", 5.0, NOW_MS - 60_000),
            Reading("E002", "DB01-gw", "RC01", 100.0, NOW_MS - 60_000),
        ]
    )
    for enterprise in ("E001", "E002"):
        h.validator.check(
            Decoded(
                codec="hz-json",
                topic=f"hz/v1/{enterprise}/gw1/data",
                received_ms=NOW_MS,
                enterprise=enterprise,
                gateway="gw1",
                readings=[Reading(enterprise, "gw1", f"UNKNOWN_{enterprise}", 1.0, NOW_MS)],
            ),
            NOW_MS,
        )

    async def dead_letters(limit: int) -> list[DeadLetter]:
        return [
            DeadLetter(NOW_MS, Reading("E001", "gw1", "TK101_LT", 1.0, NOW_MS), "HTTP 400"),
            DeadLetter(NOW_MS, Reading("E002", "DB01-gw", "RC01", 1.0, NOW_MS), "HTTP 400"),
        ][:limit]

    h.console.dead_letters = dead_letters
    with sqlite3.connect(h.journal.path) as conn:  # a notification that failed for good
        cursor = conn.execute(
            "INSERT INTO outbox (alarm_id, seq, channel, status, attempts, next_attempt_ms, "
            "last_error, created_ms) VALUES (?, 1, 'email', 'dead', 3, 0, 'refused', ?)",
            (alarm_e1, NOW_MS),
        )
        dead_id = int(cursor.lastrowid or 0)
    return Tenants(h, alarm_e1, alarm_e2, made.json()["id"], dead_id)


def _missing_alike(response: Any, missing: Any, wrong: str, unknown: str) -> None:
    """404 with the same words as for an id that does not exist."""
    assert response.status_code == 404, response.text
    assert missing.status_code == 404
    assert response.json()["detail"].replace(wrong, "X") == missing.json()["detail"].replace(
        unknown, "X"
    )


def check_enterprises(t: Tenants) -> None:
    t.harness.login("ent2")
    assert [e["id"] for e in t.harness.client.get("/api/enterprises").json()] == ["E002"]


def check_enterprise(t: Tenants) -> None:
    c = t.harness.client
    t.harness.login("ent2")
    assert c.get("/api/enterprises/E002").status_code == 200
    _missing_alike(c.get("/api/enterprises/E001"), c.get("/api/enterprises/E999"), "E001", "E999")


def check_history(t: Tenants) -> None:
    c = t.harness.client
    t.harness.login("ent2")
    assert c.get("/api/points/E002/RC01/history").status_code == 200
    _missing_alike(
        c.get("/api/points/E001/TK101_LT/history"),
        c.get("/api/points/E999/TK101_LT/history"),
        "E001",
        "E999",
    )


def check_alarms(t: Tenants) -> None:
    c = t.harness.client
    t.harness.login("ent2")
    assert [a["id"] for a in c.get("/api/alarms").json()] == [t.alarm_e2]
    assert c.get("/api/alarms", params={"enterprise": "E001"}).json() == []
    assert [a["id"] for a in c.get("/api/alarms", params={"active": "true"}).json()] == [t.alarm_e2]


def check_alarm(t: Tenants) -> None:
    c = t.harness.client
    t.harness.login("ent2")
    assert c.get(f"/api/alarms/{t.alarm_e2}").status_code == 200
    _missing_alike(
        c.get(f"/api/alarms/{t.alarm_e1}"), c.get("/api/alarms/NOPE"), t.alarm_e1, "NOPE"
    )


def _step(path: str, body: dict[str, Any], user: str) -> Callable[[Tenants], None]:
    def check(t: Tenants) -> None:
        c = t.harness.client
        t.harness.login(user)
        before = t.harness.journal.get(t.alarm_e1)
        _missing_alike(
            c.post(f"/api/alarms/{t.alarm_e1}/{path}", json=body),
            c.post(f"/api/alarms/NOPE/{path}", json=body),
            t.alarm_e1,
            "NOPE",
        )
        assert t.harness.journal.get(t.alarm_e1) == before  # nothing changed
        assert c.post(f"/api/alarms/{t.alarm_e2}/{path}", json=body).status_code in {200, 409}

    return check


def check_bulk_ack(t: Tenants) -> None:
    t.harness.login("ent2")
    before = t.harness.journal.get(t.alarm_e1)
    ids = [t.alarm_e1, "NOPE", t.alarm_e2]
    body = t.harness.client.post("/api/alarms/ack", json={"ids": ids, "reason": "r"}).json()
    assert [a["id"] for a in body["acknowledged"]] == [t.alarm_e2]
    other, missing = body["refused"]
    assert (other["status"], missing["status"]) == (404, 404)
    assert other["detail"].replace(t.alarm_e1, "X") == missing["detail"].replace("NOPE", "X")
    assert t.harness.journal.get(t.alarm_e1) == before  # nothing changed


def check_rejects(t: Tenants) -> None:
    t.harness.login("ent2")
    body = t.harness.client.get("/api/ingest/rejects").json()
    assert [u["enterprise"] for u in body["unknown_tags"]] == ["E002"]
    assert body["recent"] == []
    t.harness.login("operator")
    body = t.harness.client.get("/api/ingest/rejects").json()
    assert sorted(u["enterprise"] for u in body["unknown_tags"]) == ["E001", "E002"]


def check_ingest_dead_letters(t: Tenants) -> None:
    t.harness.login("ent2")
    body = t.harness.client.get("/api/ingest/dead-letters").json()
    assert [d["enterprise"] for d in body] == ["E002"]


def check_stream(t: Tenants) -> None:
    h = t.harness
    h.login("ent2")
    with (
        ThreadPoolExecutor(max_workers=1) as pool,
        h.client.stream("GET", "/api/stream") as response,
    ):
        reader = EventReader(response, pool)
        assert reader.next()["comment"] == "connected"
        other = h.journal.get(t.alarm_e1)
        own = h.journal.get(t.alarm_e2)
        e1_point = h.console.registry.point("E001", "TK101_LT")
        h.publish(("alarm", other.model_dump(mode="json")))
        h.publish(reading_item(Reading("E001", "gw1", "TK101_LT", 9.0, NOW_MS), e1_point))
        h.publish(("gateway", {"enterprise": "E001", "gateway": "gw1", "state": "offline"}))
        h.publish(("reading", {"tag": "no enterprise named"}))
        h.publish(("alarm", own.model_dump(mode="json")))  # the marker: after the others
        seen = reader.next()
        assert seen["event"] == "alarm"
        assert json.loads(seen["data"])["id"] == t.alarm_e2
    # the views: another enterprise's page is 404 like an unknown one; the overview's
    # summaries are the caller's enterprises only
    for view in ("enterprise:E001", "installation:E001/MH01"):
        response = h.client.get("/api/stream", params={"view": view})
        missing = h.client.get("/api/stream", params={"view": view.replace("E001", "E999")})
        _missing_alike(response, missing, "E001", "E999")
    with (
        ThreadPoolExecutor(max_workers=1) as pool,
        h.client.stream("GET", "/api/stream", params={"view": "overview"}) as response,
    ):
        reader = EventReader(response, pool)
        assert reader.next()["comment"] == "connected"
        snapshot = reader.next()
        assert snapshot["event"] == "summaries"
        assert [s["enterprise"] for s in json.loads(snapshot["data"])["summaries"]] == ["E002"]
        h.publish(("alarm", {**other.model_dump(mode="json"), "id": "E1-2", "priority": "low"}))
        h.call(h.console.feed.tick)  # E001's summary changed: not for this caller
        h.publish(("alarm", {**own.model_dump(mode="json"), "id": "E2-2", "priority": "low"}))
        h.call(h.console.feed.tick)
        seen = reader.next()
        assert [s["enterprise"] for s in json.loads(seen["data"])["summaries"]] == ["E002"]


def check_map(t: Tenants) -> None:
    c = t.harness.client
    t.harness.login("ent2")
    body = c.get("/api/map").json()
    assert [e["id"] for e in body["enterprises"]] == ["E002"]
    assert [g["id"] for g in body["grids"]] == ["KS-07"]
    t.harness.login("operator")
    assert [e["id"] for e in c.get("/api/map").json()["enterprises"]] == ["E001", "E002"]


def check_kpis(t: Tenants) -> None:
    c = t.harness.client
    period = {"to": str(NOW_MS + 3_600_000)}  # the tenants' alarms are raised at NOW_MS
    t.harness.login("operator")
    every = c.get("/api/kpis", params=period)
    assert (every.json()["enterprises"], "E001" in every.text) == (2, True)
    t.harness.login("ent2")
    answer = c.get("/api/kpis", params=period)
    assert answer.status_code == 200
    assert (answer.json()["enterprises"], "E001" in answer.text) == (1, False)


def check_suppressions(t: Tenants) -> None:
    c = t.harness.client
    t.harness.login("operator7")
    assert c.get("/api/suppressions", params={"ended": "true"}).json() == []
    t.harness.login("operator")
    assert [s["id"] for s in c.get("/api/suppressions").json()] == [t.suppression_e1]


def check_create_suppression(t: Tenants) -> None:
    c = t.harness.client
    t.harness.login("operator7")
    body = {"enterprise": "E001", "tag": "TK101_LT", "reason": "r", "end": "2025-11-22T16:00:00Z"}
    refused = c.post("/api/suppressions", json=body)
    unknown = c.post("/api/suppressions", json={**body, "enterprise": "E999"})
    assert refused.status_code == unknown.status_code == 422
    assert refused.json()["detail"].replace("E001", "X") == unknown.json()["detail"].replace(
        "E999", "X"
    )
    assert t.harness.journal.suppressions() == t.harness.journal.suppressions(
        enterprises=["E001"]
    )  # only the fixture's one, of E001


def check_end_suppression(t: Tenants) -> None:
    c = t.harness.client
    t.harness.login("operator7")
    _missing_alike(
        c.delete(f"/api/suppressions/{t.suppression_e1}"),
        c.delete("/api/suppressions/9999"),
        str(t.suppression_e1),
        "9999",
    )
    assert [s.id for s in t.harness.journal.suppressions()] == [t.suppression_e1]  # still on


def check_dead_notifications(t: Tenants) -> None:
    c = t.harness.client
    t.harness.login("operator7")
    assert c.get("/api/notifications/dead").json() == []
    t.harness.login("operator")
    assert [d["id"] for d in c.get("/api/notifications/dead").json()] == [t.dead_notification_e1]


def check_retry(t: Tenants) -> None:
    c = t.harness.client
    t.harness.login("operator7")
    _missing_alike(
        c.post(f"/api/notifications/{t.dead_notification_e1}/retry"),
        c.post("/api/notifications/9999/retry"),
        str(t.dead_notification_e1),
        "9999",
    )
    t.harness.login("operator")
    assert [d["id"] for d in c.get("/api/notifications/dead").json()] == [t.dead_notification_e1]


def check_metrics(t: Tenants) -> None:
    """Metrics are labelled by enterprise: for callers who see every one, and for a
    scraper on this machine (not through a proxy)."""
    c = t.harness.client
    t.harness.login("ent2")
    assert c.get("/metrics").status_code == 404
    t.harness.login("operator")
    assert c.get("/metrics").status_code == 200
    t.harness.logout_client()
    assert c.get("/metrics").status_code == 401
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StarletteDeprecationWarning)
        from fastapi.testclient import TestClient  # noqa: PLC0415

    with TestClient(c.app, client=("127.0.0.1", 40000)) as local:
        assert local.get("/metrics").status_code == 200
        proxied = local.get("/metrics", headers={"X-Forwarded-For": "198.51.100.7"})
        assert proxied.status_code == 401


def check_me(t: Tenants) -> None:
    c = t.harness.client
    assert t.harness.login("ent2")["enterprises"] == ["E002"]
    assert t.harness.login("officer7")["enterprises"] == ["E002"]
    assert t.harness.login("officer3")["enterprises"] == ["E001"]
    assert c.put("/api/me", json={"lang": "en"}).json()["lang"] == "en"
    assert t.harness.login("ent2")["lang"] == "zh-CN"  # one's language is one's own


def _admin_only(method: str, url: str, body: dict[str, Any] | None) -> Callable[[Tenants], None]:
    """Users, the audit log and the registry span every enterprise: admins only, 403 for
    the others."""

    def check(t: Tenants) -> None:
        for user in ("ent2", "operator7", "officer7", "operator"):
            t.harness.login(user)
            response = t.harness.client.request(method, url, json=body)
            assert response.status_code == 403, (user, response.text)
        assert t.harness.users.get("ent2") is not None

    return check


CHECKS: dict[tuple[str, str], Callable[[Tenants], None]] = {
    ("GET", "/api/users"): _admin_only("GET", "/api/users", None),
    ("POST", "/api/users"): _admin_only(
        "POST",
        "/api/users",
        {"username": "x", "password": "0123456789ab", "role": "admin"},
    ),
    ("DELETE", "/api/users/{username}"): _admin_only("DELETE", "/api/users/ent2", None),
    ("GET", "/api/audit"): _admin_only("GET", "/api/audit", None),
    ("POST", "/api/admin/registry/reload"): _admin_only("POST", "/api/admin/registry/reload", None),
    ("GET", "/api/enterprises"): check_enterprises,
    ("GET", "/api/enterprises/{eid}"): check_enterprise,
    ("GET", "/api/points/{eid}/{tag}/history"): check_history,
    ("GET", "/api/alarms"): check_alarms,
    ("GET", "/api/alarms/{alarm_id}"): check_alarm,
    ("POST", "/api/alarms/{alarm_id}/ack"): _step("ack", {}, "operator7"),
    ("POST", "/api/alarms/ack"): check_bulk_ack,
    ("POST", "/api/alarms/{alarm_id}/shelve"): _step(
        "shelve", {"minutes": 5, "reason": "r"}, "operator7"
    ),
    ("POST", "/api/alarms/{alarm_id}/unshelve"): _step("unshelve", {}, "operator7"),
    ("POST", "/api/alarms/{alarm_id}/feedback"): _step(
        "feedback", {"cause": "c", "measures": "m"}, "ent2"
    ),
    ("POST", "/api/alarms/{alarm_id}/verify"): _step("verify", {"accepted": False}, "operator7"),
    ("GET", "/api/ingest/rejects"): check_rejects,
    ("GET", "/api/ingest/dead-letters"): check_ingest_dead_letters,
    ("GET", "/api/stream"): check_stream,
    ("GET", "/api/map"): check_map,
    ("GET", "/api/kpis"): check_kpis,
    ("GET", "/api/suppressions"): check_suppressions,
    ("POST", "/api/suppressions"): check_create_suppression,
    ("DELETE", "/api/suppressions/{suppression_id}"): check_end_suppression,
    ("GET", "/api/notifications/dead"): check_dead_notifications,
    ("POST", "/api/notifications/{notification_id}/retry"): check_retry,
    ("GET", "/metrics"): check_metrics,
    ("GET", "/api/me"): check_me,
    ("PUT", "/api/me"): check_me,
}
NO_TENANT_DATA = {
    ("GET", "/healthz"): "component status only",
    ("POST", "/api/login"): "before any caller",
    ("POST", "/api/logout"): "ends the caller's own session",
    ("GET", "/openapi.json"): "the schema, the same for everyone",
    ("GET", "/login"): "the login page",
    ("GET", "/favicon.ico"): "the site's icon",
}
PUBLIC = {("GET", "/healthz"), ("POST", "/api/login"), ("GET", "/login"), ("GET", "/favicon.ico")}


def _walk(routes: list[Any]) -> Iterator[Any]:
    """FastAPI keeps an included router as one entry (its routes are read when first
    matched); the app here includes routers without a prefix."""
    for route in routes:
        original = getattr(route, "original_router", None)
        if original is not None:
            yield from _walk(original.routes)
        else:
            yield route


def app_routes(harness: ConsoleHarness) -> Iterator[tuple[str, str, APIRoute]]:
    for route in _walk(harness.client.app.routes):  # type: ignore[attr-defined]
        if isinstance(route, APIRoute):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                yield method, route.path, route


def test_every_route_has_a_cross_tenant_check(harness: ConsoleHarness) -> None:
    routes = {
        (method, path)
        for method, path, route in app_routes(harness)
        if not route.name.startswith("page:")  # static pages: their data comes from the API
    }
    assert routes - set(CHECKS) - set(NO_TENANT_DATA) == set(), "routes without a check"
    assert set(CHECKS) - routes == set(), "checks of routes that no longer exist"


@pytest.mark.parametrize("route", sorted(CHECKS), ids=lambda r: f"{r[0]} {r[1]}")
def test_another_enterprise_is_invisible(tenants: Tenants, route: tuple[str, str]) -> None:
    CHECKS[route](tenants)


def test_every_route_but_login_and_health_needs_a_session(harness: ConsoleHarness) -> None:
    harness.logout_client()
    for method, path, route in app_routes(harness):
        if (method, path) in PUBLIC:
            continue
        url = path.format(
            eid="E001",
            iid="MH01",
            tag="TK101_LT",
            alarm_id="X",
            suppression_id=1,
            notification_id=1,
            username="ent1",
        )
        response = harness.client.request(method, url, json={}, follow_redirects=False)
        if route.name.startswith("page:"):
            assert response.status_code == 303, (method, path)
            assert response.headers["location"].startswith("/login?next=")
        else:
            assert response.status_code == 401, (method, path, response.text)

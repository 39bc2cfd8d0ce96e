"""Console login: sessions, cookie flags, CSRF, throttling, roles, audit, security headers."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from dashboards.api import SESSION_RECHECK_MS
from dashboards.users import SESSION_HOURS
from hazwatch.models import Condition
from tests.dashboards.conftest import TEST_PASSWORD, ConsoleHarness
from tests.dashboards.test_stream import EventReader

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

MakeCondition = Callable[..., Condition]


def _login(harness: ConsoleHarness, name: str, password: str = TEST_PASSWORD, **kw: Any) -> Any:
    harness.add_user(name) if name in {"ent1", "ent2", "admin"} else None
    return harness.client.post("/api/login", json={"username": name, "password": password}, **kw)


def test_login_sets_a_strict_httponly_session_cookie_and_returns_me(
    harness: ConsoleHarness,
) -> None:
    harness.logout_client()
    response = _login(harness, "ent1")
    assert response.status_code == 200
    me = response.json()
    assert me["username"] == "ent1"
    assert me["role"] == "enterprise"
    assert me["enterprises"] == ["E001"]
    assert me["tz"] == "Asia/Shanghai"
    assert me["lang"] == "zh-CN"
    assert len(me["csrf"]) >= 32
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("hz_session=")
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/"} <= flags
    assert "secure" not in flags  # plain HTTP: a Secure cookie would never come back
    assert f"max-age={SESSION_HOURS * 3600}" in flags


def test_over_tls_the_cookie_is_secure(harness: ConsoleHarness) -> None:
    harness.add_user("ent1")
    response = harness.client.post(
        "https://testserver/api/login", json={"username": "ent1", "password": TEST_PASSWORD}
    )
    assert response.status_code == 200
    flags = {p.strip().lower() for p in response.headers["set-cookie"].split(";")}
    assert "secure" in flags


def test_wrong_password_and_unknown_user_get_the_same_401(harness: ConsoleHarness) -> None:
    harness.logout_client()
    wrong = _login(harness, "ent1", "not the password")
    unknown = _login(harness, "nobody", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"detail": "wrong username or password"}
    assert "set-cookie" not in wrong.headers


@pytest.mark.parametrize("token", ["", "forged", "x" * 300])
def test_an_unknown_session_is_401_and_pages_redirect(harness: ConsoleHarness, token: str) -> None:
    harness.logout_client()
    harness.client.cookies.set("hz_session", token)
    response = harness.client.get("/api/alarms")
    assert response.status_code == 401
    assert response.json() == {"detail": "log in first (POST /api/login)"}
    page = harness.client.get("/", follow_redirects=False)
    assert (page.status_code, page.headers["location"]) == (303, "/login?next=/")


def test_a_session_expires(harness: ConsoleHarness) -> None:
    assert harness.client.get("/api/me").status_code == 200
    harness.clock.advance(SESSION_HOURS * 3_600_000 + 1)
    assert harness.client.get("/api/me").status_code == 401


def test_logout_ends_the_session_on_the_server(harness: ConsoleHarness) -> None:
    me = harness.client.get("/api/me")
    assert me.status_code == 200
    cookie = harness.client.cookies["hz_session"]
    out = harness.client.post("/api/logout")
    assert out.status_code == 204
    assert (
        'hz_session=""' in out.headers["set-cookie"]
        or "max-age=0" in out.headers["set-cookie"].lower()
    )
    harness.client.cookies.set("hz_session", cookie)  # the old cookie, replayed
    assert harness.client.get("/api/me").status_code == 401


def test_a_new_password_ends_the_sessions(harness: ConsoleHarness) -> None:
    assert harness.client.get("/api/me").status_code == 200
    harness.users.passwd("operator", "a brand new password")
    assert harness.client.get("/api/me").status_code == 401


@pytest.mark.parametrize("csrf", [None, "", "wrong"])
def test_state_changing_requests_need_the_csrf_token(
    harness: ConsoleHarness, make_condition: MakeCondition, csrf: str | None
) -> None:
    alarm_id = harness.apply(make_condition())[0].alarm.id
    right = harness.client.headers.pop("X-CSRF-Token")
    headers = {} if csrf is None else {"X-CSRF-Token": csrf}
    for method, url, body in [
        ("POST", f"/api/alarms/{alarm_id}/ack", {}),
        ("PUT", "/api/me", {"lang": "en"}),
        ("POST", "/api/logout", None),
    ]:
        response = harness.client.request(method, url, json=body, headers=headers)
        assert response.status_code == 403, (method, url)
        assert response.json() == {"detail": "missing or wrong X-CSRF-Token header"}
    assert harness.journal.get(alarm_id).state == "active_unack"
    ok = harness.client.post(
        f"/api/alarms/{alarm_id}/ack", json={}, headers={"X-CSRF-Token": right}
    )
    assert ok.status_code == 200


def test_another_sessions_csrf_token_does_not_do(harness: ConsoleHarness) -> None:
    other = harness.login("ent1")["csrf"]
    harness.login("operator")
    response = harness.client.put("/api/me", json={"lang": "en"}, headers={"X-CSRF-Token": other})
    assert response.status_code == 403


def test_failed_logins_are_throttled_per_account(harness: ConsoleHarness) -> None:
    harness.logout_client()
    for _ in range(5):
        assert _login(harness, "ent1", "not the password").status_code == 401
    refused = _login(harness, "ent1")  # even the right password, for now
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert _login(harness, "ent2").status_code == 200  # another account is not held back


def test_failed_logins_are_throttled_per_address(harness: ConsoleHarness) -> None:
    harness.logout_client()
    for n in range(20):
        assert _login(harness, f"guess{n}", "not the password").status_code == 401
    assert _login(harness, "ent2").status_code == 429


def test_a_success_clears_the_accounts_failures(harness: ConsoleHarness) -> None:
    harness.logout_client()
    for _ in range(4):
        _login(harness, "ent1", "nope nope nope")
    assert _login(harness, "ent1").status_code == 200
    for _ in range(4):
        _login(harness, "ent1", "nope nope nope")
    assert _login(harness, "ent1").status_code == 200


@pytest.mark.parametrize(
    ("user", "path", "body"),
    [
        ("ent1", "shelve", {"minutes": 5, "reason": "r"}),
        ("ent1", "verify", {"accepted": True}),
        ("officer3", "shelve", {"minutes": 5, "reason": "r"}),
        ("officer3", "feedback", {"cause": "c", "measures": "m"}),
        ("operator", "feedback", {"cause": "c", "measures": "m"}),
        ("admin", "ack", {}),
    ],
)
def test_a_role_acts_only_as_its_role(
    harness: ConsoleHarness,
    make_condition: MakeCondition,
    user: str,
    path: str,
    body: dict[str, Any],
) -> None:
    alarm_id = harness.apply(make_condition())[0].alarm.id
    harness.login(user)
    response = harness.client.post(f"/api/alarms/{alarm_id}/{path}", json=body)
    assert response.status_code == 403
    assert response.json()["detail"].startswith("the role ")
    assert harness.journal.get(alarm_id).state == "active_unack"


def test_the_enterprise_acknowledges_its_own_alarm(
    harness: ConsoleHarness, make_condition: MakeCondition
) -> None:
    alarm_id = harness.apply(make_condition())[0].alarm.id
    harness.login("ent1")
    response = harness.client.post(f"/api/alarms/{alarm_id}/ack", json={"comment": "on it"})
    assert response.status_code == 200
    [ack] = [t for t in harness.journal.transitions(alarm_id) if t["kind"] == "acknowledged"]
    assert ack["user"] == "ent1"


def test_a_grid_officer_may_not_suppress(harness: ConsoleHarness) -> None:
    harness.login("officer3")
    body = {"enterprise": "E001", "tag": "TK101_LT", "reason": "r", "end": "2025-11-22T16:00:00Z"}
    assert harness.client.post("/api/suppressions", json=body).status_code == 403
    assert harness.journal.suppressions() == []


def test_the_language_is_kept_per_user(harness: ConsoleHarness) -> None:
    assert harness.client.put("/api/me", json={"lang": "en"}).json()["lang"] == "en"
    assert harness.client.get("/api/me").json()["lang"] == "en"
    assert harness.users.get("operator").lang == "en"  # type: ignore[union-attr]
    assert harness.client.put("/api/me", json={"lang": "fr"}).status_code == 422


def test_every_action_is_in_the_audit_chain(
    harness: ConsoleHarness, make_condition: MakeCondition
) -> None:
    c = harness.client
    alarm_id = harness.apply(make_condition())[0].alarm.id
    assert c.post(
        f"/api/alarms/{alarm_id}/shelve", json={"minutes": 5, "reason": "test"}
    ).is_success
    assert c.post(f"/api/alarms/{alarm_id}/unshelve", json={}).is_success
    assert c.post(f"/api/alarms/{alarm_id}/ack", json={"comment": "seen"}).is_success
    harness.login("ent1")
    fed = c.post(f"/api/alarms/{alarm_id}/feedback", json={"cause": "c", "measures": "m"})
    assert fed.is_success
    harness.login("operator")
    assert c.post(f"/api/alarms/{alarm_id}/verify", json={"accepted": False}).is_success
    body = {"enterprise": "E001", "tag": "TK101_LT", "reason": "r", "end": "2025-11-22T16:00:00Z"}
    sid = c.post("/api/suppressions", json=body).json()["id"]
    assert c.delete(f"/api/suppressions/{sid}").is_success
    assert c.post("/api/logout").status_code == 204
    harness.logout_client()
    assert _login(harness, "ent1", "not the password").status_code == 401
    audit = harness.console.audit
    assert audit is not None
    rows = list(reversed(audit.rows(100)))
    assert [(r["actor"], r["action"]) for r in rows] == [
        ("operator", "login"),
        ("operator", "shelve"),
        ("operator", "unshelve"),
        ("operator", "ack"),
        ("ent1", "login"),
        ("ent1", "feedback"),
        ("operator", "verify"),
        ("operator", "suppress"),
        ("operator", "end_suppression"),
        ("operator", "logout"),
        ("ent1", "login_failed"),
    ]
    assert rows[1]["target"] == alarm_id
    assert rows[1]["detail"] == {"minutes": 5, "reason": "test"}
    assert rows[0]["address"] == "testclient"
    assert audit.verify() == (len(rows), None)


def test_security_headers_on_every_response(harness: ConsoleHarness) -> None:
    for url in ("/api/alarms", "/", "/login", "/static/login.js", "/api/nope", "/healthz"):
        response = harness.client.get(url, headers={"Origin": "https://evil.example"})
        h = response.headers
        csp = h["content-security-policy"]
        assert "default-src 'self'" in csp, url
        assert "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert h["x-content-type-options"] == "nosniff"
        assert h["referrer-policy"] == "no-referrer"
        assert "access-control-allow-origin" not in h  # CORS off
    preflight = harness.client.options(
        "/api/alarms",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_an_unexpected_error_is_500_without_the_trace(harness: ConsoleHarness) -> None:
    def broken() -> list[Any]:
        raise RuntimeError("secret detail at /srv/hazwatch/internal.py")

    harness.console.unknown_tags = broken
    with TestClient(harness.client.app, raise_server_exceptions=False) as client:
        client.cookies.set("hz_session", harness.client.cookies["hz_session"])
        response = client.get("/api/ingest/rejects")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}
    assert "secret" not in response.text
    assert response.headers["x-content-type-options"] == "nosniff"


def test_the_schema_is_for_logged_in_callers(harness: ConsoleHarness) -> None:
    schema = harness.client.get("/openapi.json")
    assert schema.status_code == 200
    assert "/api/login" in schema.json()["paths"]
    harness.logout_client()
    assert harness.client.get("/openapi.json").status_code == 401
    assert harness.client.get("/docs").status_code == 404


def test_a_stream_ends_with_its_session(
    harness: ConsoleHarness, make_condition: MakeCondition
) -> None:
    alarm = harness.apply(make_condition())[0].alarm
    item = ("alarm", alarm.model_dump(mode="json"))
    with (
        ThreadPoolExecutor(max_workers=1) as pool,
        harness.client.stream("GET", "/api/stream") as response,
    ):
        reader = EventReader(response, pool)
        assert reader.next()["comment"] == "connected"
        harness.publish(item)
        assert reader.next()["event"] == "alarm"  # within the recheck interval: sent
        harness.users.passwd("operator", "a brand new password")  # ends its sessions
        harness.clock.advance(SESSION_RECHECK_MS)
        harness.publish(item)
        with pytest.raises(StopIteration):  # the server ended the stream
            reader.next()

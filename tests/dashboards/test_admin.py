"""Admin routes: users over HTTP, and the audit log's newest rows."""

from __future__ import annotations

from tests.dashboards.conftest import TEST_PASSWORD, ConsoleHarness


def test_an_admin_adds_lists_and_removes_users(harness: ConsoleHarness) -> None:
    harness.login("admin")
    c = harness.client
    made = c.post(
        "/api/users",
        json={
            "username": "li",
            "password": "a long enough password",
            "role": "grid_officer",
            "grids": ["KS-07"],
        },
    )
    assert made.status_code == 201, made.text
    assert made.json() == {
        "username": "li",
        "role": "grid_officer",
        "grids": ["KS-07"],
        "enterprises": [],
        "lang": "zh-CN",
    }
    assert "li" in [u["username"] for u in c.get("/api/users").json()]
    again = c.post(
        "/api/users", json={"username": "li", "password": "0123456789ab", "role": "admin"}
    )
    assert again.status_code == 409
    login = c.post("/api/login", json={"username": "li", "password": "a long enough password"})
    assert login.json()["enterprises"] == ["E002"]
    harness.login("admin")
    assert c.delete("/api/users/li").status_code == 204
    assert c.delete("/api/users/li").status_code == 404
    assert c.delete("/api/users/admin").status_code == 409  # not oneself
    actions = [(r["actor"], r["action"], r["target"]) for r in c.get("/api/audit").json()]
    assert ("admin", "user_add", "li") in actions
    assert ("admin", "user_remove", "li") in actions


def test_bad_users_are_422(harness: ConsoleHarness) -> None:
    harness.login("admin")
    c = harness.client
    for body, says in [
        ({"username": "a", "password": "short", "role": "admin"}, "password"),
        ({"username": "a b", "password": TEST_PASSWORD, "role": "admin"}, "username"),
        ({"username": "a", "password": TEST_PASSWORD, "role": "king"}, "role"),
        (
            {
                "username": "a",
                "password": TEST_PASSWORD,
                "role": "enterprise",
                "enterprises": ["E999"],
            },
            "E999",
        ),
        ({"username": "a", "password": TEST_PASSWORD, "role": "grid_officer"}, "--grid"),
    ]:
        response = c.post("/api/users", json=body)
        assert response.status_code == 422, (body, response.text)
        assert says in response.json()["detail"]


def test_a_console_without_a_reloader_says_how_to_load_the_registry(
    harness: ConsoleHarness,
) -> None:
    # Reloads themselves: tests/test_registry_reload.py, on the whole service.
    harness.login("admin")
    answer = harness.client.post("/api/admin/registry/reload")
    assert answer.status_code == 409
    assert "restart the service" in answer.json()["detail"]

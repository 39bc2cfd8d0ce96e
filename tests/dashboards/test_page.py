"""The operator page and its static files."""

from __future__ import annotations

import re

from dashboards.app import STATIC_DIR
from tests.dashboards.conftest import ConsoleHarness


def test_root_serves_the_operator_page(harness: ConsoleHarness) -> None:
    response = harness.client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert '<script src="/static/app.js" defer></script>' in html
    assert '<link rel="stylesheet" href="/static/app.css">' in html
    assert "Logged-in users only" in html
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "unsafe-inline" not in csp


def test_pages_without_a_session_redirect_to_the_login_page(harness: ConsoleHarness) -> None:
    harness.logout_client()
    response = harness.client.get("/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/"
    login = harness.client.get("/login")
    assert login.status_code == 200
    assert '<script type="module" src="/static/login.js"></script>' in login.text
    assert "<script>" not in login.text


def test_static_files_are_served(harness: ConsoleHarness) -> None:
    js = harness.client.get("/static/app.js")
    assert js.status_code == 200
    assert "javascript" in js.headers["content-type"]
    assert "/api/stream" in js.text
    css = harness.client.get("/static/app.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert harness.client.get("/static/nope.js").status_code == 404


def test_page_loads_nothing_from_outside_and_never_writes_html_from_data() -> None:
    files = {
        p.name: p.read_text(encoding="utf-8")
        for p in STATIC_DIR.rglob("*")
        if p.is_file() and "vendor" not in p.relative_to(STATIC_DIR).parts
    }
    assert set(files) >= {"index.html", "app.js", "app.css", "login.html", "login.js"}
    for name, text in files.items():
        assert not re.search(r"(src|href)=[\"']?(https?:)?//", text), name
        assert "@import" not in text, name
    for name, text in files.items():
        if name.endswith(".js"):
            for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
                assert sink not in text, name


def test_page_uses_the_api_paths_of_the_contract() -> None:
    js = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    for path in ("/api/enterprises", "/api/alarms", "/api/ingest/rejects", "/api/stream"):
        assert path in js
    assert "/ack`" in js

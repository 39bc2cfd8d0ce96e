"""The operator page and its static files."""

from __future__ import annotations

import json
import re

from dashboards.app import STATIC_DIR
from tests.dashboards.conftest import ConsoleHarness


def test_root_serves_the_overview_page(harness: ConsoleHarness) -> None:
    response = harness.client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert '<script type="module" src="/static/index.js"></script>' in html
    assert '<link rel="stylesheet" href="/static/index.css">' in html
    assert '<body data-page="overview">' in html
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
    js = harness.client.get("/static/index.js")
    assert js.status_code == 200
    assert "javascript" in js.headers["content-type"]
    assert "/api/stream" in js.text
    css = harness.client.get("/static/index.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert harness.client.get("/static/nope.js").status_code == 404


def test_page_loads_nothing_from_outside_and_never_writes_html_from_data() -> None:
    files = {
        p.name: p.read_text(encoding="utf-8")
        for p in STATIC_DIR.rglob("*")
        if p.is_file() and "vendor" not in p.relative_to(STATIC_DIR).parts
    }
    assert set(files) >= {"index.html", "index.js", "index.css", "login.html", "login.js"}
    for name, text in files.items():
        assert not re.search(r"(src|href)=[\"']?(https?:)?//", text), name
        assert "@import" not in text, name
    for name, text in files.items():
        if name.endswith(".js"):
            for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
                assert sink not in text, name


def test_the_overview_draws_from_summaries_of_the_overview_view() -> None:
    js = (STATIC_DIR / "index.js").read_text(encoding="utf-8")
    assert '"/api/stream?view=overview"' in js
    assert "summaries: onSummaries" in js
    assert "/api/ingest/rejects" in js
    # never the points of every enterprise: the enterprise page reads those
    assert "/api/enterprises/" not in js


def test_every_text_of_the_overview_is_translated() -> None:
    js = (STATIC_DIR / "index.js").read_text(encoding="utf-8")
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    used = set(re.findall(r't\("([\w.]+)"', js)) | set(
        re.findall(r'data-i18n[\w-]*="([\w.]+)"', html)
    )
    used |= {f"risk.{r}" for r in ("red", "orange", "yellow", "blue")}
    for lang in ("en", "zh-CN"):
        known = json.loads((STATIC_DIR / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))
        assert used - set(known) == set(), lang

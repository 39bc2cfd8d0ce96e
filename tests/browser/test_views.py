"""The risk map, the enterprise and installation pages and the alarm KPIs in headless
Chromium, on the real console: each page shows something the test set up."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from selenium.webdriver.common.by import By

from hazwatch.clock import SystemClock
from hazwatch.models import AlarmType, Reading
from tests.browser.conftest import Browser, LiveConsole, condition
from tests.servers import free_port

MIN = 60_000


def _readings(live_console: LiveConsole) -> None:
    """An hour of Tank 101's level rising through H (10.5) to HH (11.0), one a minute."""
    now = SystemClock().now_ms()
    batch = [
        Reading("E001", "MH01-gw", "TK101_LT", 9.0 + 2.2 * k / 60, now - (60 - k) * MIN)
        for k in range(61)
    ]
    live_console.call(live_console.console.sink.write, batch)
    live_console.call(live_console.console.latest.update, batch)


def test_map_enterprise_installation_and_kpi_pages(
    live_console: LiveConsole, browser: Browser
) -> None:
    _readings(live_console)
    (hh,) = live_console.apply(condition(AlarmType.HH))  # E001: red, on a grade-2 installation
    live_console.apply(
        condition(
            AlarmType.STALE,
            enterprise="E002",
            installation="DB01",
            tag="RC01",
            message="no data",
        )
    )  # E002: yellow

    browser.login("operator", then="/map")
    e001 = browser.driver.find_element(By.CSS_SELECTOR, 'a.risk-marker[data-enterprise="E001"]')
    assert "risk-red" in (e001.get_attribute("class") or "").split()
    assert e001.text.startswith("Red")  # the colour's name, not only the colour
    assert e001.get_attribute("title") == (
        "Example Chemical Co.: Red: HH on TK101_LT, grade-2 installation"
    )
    e002 = browser.driver.find_element(By.CSS_SELECTOR, 'a.risk-marker[data-enterprise="E002"]')
    assert "risk-yellow" in (e002.get_attribute("class") or "").split()
    grids = browser.driver.find_elements(By.CSS_SELECTOR, "#map path.leaflet-interactive")
    assert len(grids) == 2  # both grid areas drawn, with no tile server
    assert "plain" in (browser.driver.find_element(By.ID, "map").get_attribute("class") or "")
    browser.shot("map")
    e001.click()
    browser.wait(lambda d: d.current_url.endswith("/enterprises/E001"))

    browser.ready()
    risk = browser.driver.find_element(By.ID, "plant-risk").text
    assert "HH on TK101_LT" in risk
    row = browser.driver.find_element(By.CSS_SELECTOR, 'tr[data-tag="TK101_LT"]')
    assert "HH" in row.find_element(By.CSS_SELECTOR, "td.state").text
    plot = browser.driver.find_element(By.ID, "trend-plot")
    assert plot.find_elements(By.CSS_SELECTOR, "canvas")
    assert int(plot.get_attribute("data-points") or 0) > 10
    assert plot.get_attribute("data-markers") == "1"  # the HH alarm's raise
    browser.shot("enterprise")

    browser.open("/installations/E001/MH01")
    browser.ready()
    tags = [
        tr.get_attribute("data-tag")
        for tr in browser.driver.find_elements(By.CSS_SELECTOR, "tr[data-tag]")
    ]
    assert "TK101_LT" in tags
    assert "R201_TT" not in tags  # MH02's point: not on MH01's page
    assert browser.driver.find_elements(By.CSS_SELECTOR, "#trend-plot canvas")
    browser.shot("installation")

    browser.open("/kpis")
    browser.ready()
    assert browser.driver.find_element(By.ID, "kpi-total").text == "2"
    top = browser.driver.find_elements(By.CSS_SELECTOR, '[data-kpi="top"] tbody tr')
    assert len(top) == 2
    browser.shot("kpis")
    # before login exists /api/me answers 404 (the shell then acts as the operator), and
    # no page has a favicon: neither is a fault of these pages
    errors = [e for e in browser.errors() if "/api/me " not in e and "/favicon.ico " not in e]
    assert errors == []
    assert hh.enterprise == "E001"


UNREACHABLE_TILES = f"http://127.0.0.1:{free_port()}/{{z}}/{{x}}/{{y}}.png"


@pytest.mark.parametrize("live_console", [{"map_tiles_url": UNREACHABLE_TILES}], indirect=True)
def test_map_falls_back_to_a_plain_background_when_the_tiles_do_not_answer(
    live_console: LiveConsole, browser: Browser
) -> None:
    live_console.apply(condition(AlarmType.H, value=10.7, limit=10.5))  # E001: orange
    browser.login("ent1zh", then="/map")
    browser.wait(lambda d: "plain" in (d.find_element(By.ID, "map").get_attribute("class") or ""))
    assert browser.driver.find_element(By.ID, "map-note").text == "底图服务器不可达：改用空白底图。"
    markers = browser.driver.find_elements(By.CSS_SELECTOR, "a.risk-marker")
    assert [m.get_attribute("data-enterprise") for m in markers] == ["E001"]  # not E002
    assert "risk-orange" in (markers[0].get_attribute("class") or "").split()
    assert markers[0].text.startswith("橙")
    assert "H" in (markers[0].get_attribute("title") or "")
    assert len(browser.driver.find_elements(By.CSS_SELECTOR, "#map path.leaflet-interactive")) == 1
    browser.shot("map-zh-tiles-unreachable")


def test_the_kpi_period_is_typed_and_shown_in_the_sites_time_zone(
    live_console: LiveConsole, browser: Browser
) -> None:
    site = ZoneInfo(live_console.console.timezone)
    assert datetime.now(site).utcoffset() != datetime.now().astimezone().utcoffset(), (
        "the browser's zone must differ from the site's for this test to say anything"
    )
    browser.login("operator", then="/kpis")
    browser.ready()
    now = datetime.now(site)
    shown = browser.driver.find_element(By.ID, "to").get_attribute("value")
    assert shown in {
        (now - timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M") for m in (0, 1)
    }  # the site's clock, not the browser's
    browser.driver.execute_script(
        "document.getElementById('from').value = '2026-01-01T08:00';"
        "document.getElementById('to').value = '2026-01-02T08:00';"
        "document.body.dataset.ready = '';"
        "document.getElementById('period').requestSubmit();"
    )
    browser.ready()
    asked: str = browser.driver.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name)"
        ".filter((n) => n.includes('/api/kpis')).pop()"
    )
    start = int(datetime(2026, 1, 1, 8, 0, tzinfo=site).timestamp() * 1000)
    end = int(datetime(2026, 1, 2, 8, 0, tzinfo=site).timestamp() * 1000)
    assert asked.endswith(f"/api/kpis?from={start}&to={end}")
    scope = browser.driver.find_element(By.ID, "kpi-scope").text
    assert scope.endswith("2026-01-01 08:00:00 – 2026-01-02 08:00:00 (Asia/Shanghai)")
    assert browser.errors() == []

"""The overview page in headless Chromium, on the real console and its live feed."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from hazwatch.clock import SystemClock
from hazwatch.models import Quality, Reading
from tests.browser.conftest import Browser, LiveConsole, condition


def tile_text(driver: WebDriver, eid: str) -> str:
    tiles = driver.find_elements(By.CSS_SELECTOR, f'.tile[data-id="{eid}"]')
    return tiles[0].text if tiles else ""


def test_the_overview_shows_each_enterprise_and_its_alarms_live(
    live_console: LiveConsole, browser: Browser
) -> None:
    browser.login("operator", then="/")
    browser.ready()
    browser.wait(lambda d: d.execute_script("return document.body.dataset.tiles") == "2")
    assert "No open alarms" in tile_text(browser.driver, "E001")
    assert "Blue" in tile_text(browser.driver, "E001")

    live_console.apply(condition())  # a critical HH on E001
    browser.wait(lambda d: "Critical" in tile_text(d, "E001"))
    text = tile_text(browser.driver, "E001")
    assert "Red" in text
    assert "1 unacked" in text
    # the red enterprise comes first
    first = browser.driver.find_element(By.CSS_SELECTOR, ".tile[style*='order: 0']")
    browser.wait(
        lambda d: (
            d.find_element(By.CSS_SELECTOR, ".tile[style*='order: 0']").get_attribute("data-id")
            == "E001"
        )
    )
    assert first is not None
    browser.shot("overview-live")
    assert browser.errors() == []


def test_a_stale_value_is_shown_as_stale_with_its_age(
    live_console: LiveConsole, browser: Browser
) -> None:
    browser.login("operator", then="/")
    browser.ready()
    # GD101 reports every 5 s; its last value is a minute old: stale (> 3 × 5 s).
    old = Reading("E001", "MH01-gw", "GD101", 3.0, SystemClock().now_ms() - 60_000, Quality.GOOD)
    live_console.call(live_console.console.latest.update, [old])
    browser.wait(lambda d: "Stale values: 1, oldest" in tile_text(d, "E001"))
    assert "oldest 1 min" in tile_text(browser.driver, "E001")
    assert "Stale values at 1 enterprises" in browser.driver.find_element(By.ID, "ov-totals").text
    browser.shot("overview-stale")
    assert browser.errors() == []


def test_an_enterprise_user_sees_only_its_own_enterprise_in_chinese(
    live_console: LiveConsole, browser: Browser
) -> None:
    live_console.apply(condition())  # E001's: not for E002's user
    live_console.add_user("e2", "enterprise", enterprises=("E002",), lang="zh-CN")
    browser.login("e2")
    browser.open("/")
    browser.ready()
    browser.wait(lambda d: d.execute_script("return document.body.dataset.tiles") == "1")
    assert tile_text(browser.driver, "E001") == ""
    text = tile_text(browser.driver, "E002")
    assert "蓝" in text  # blue, in Chinese
    assert "无未销号报警" in text
    browser.shot("overview-enterprise-user-zh")

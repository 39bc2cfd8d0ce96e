"""The alarm desk and the alarm's page in headless Chromium, on the real console."""

from __future__ import annotations

from selenium.webdriver.common.by import By

from hazwatch.models import AlarmType
from tests.browser.conftest import Browser, LiveConsole, condition


def rows(browser: Browser) -> list[str]:
    return [
        tr.get_attribute("data-id") or ""
        for tr in browser.driver.find_elements(By.CSS_SELECTOR, "#desk-rows tr")
    ]


def test_an_alarm_appears_live_and_is_acknowledged(
    live_console: LiveConsole, browser: Browser
) -> None:
    low = live_console.apply(condition(AlarmType.STALE, tag="TK101_TT", message="no data"))[0]
    browser.open("/desk")
    browser.ready()
    browser.wait(lambda d: rows(browser) == [low.id])
    (critical,) = live_console.apply(condition())
    browser.wait(lambda d: rows(browser) == [critical.id, low.id])
    browser.shot("desk-live")
    assert browser.errors() == []

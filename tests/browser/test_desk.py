"""The alarm desk and the alarm's page in headless Chromium, on the real console:
alarms arrive live in their place, the actions from the rows and the keyboard reach the
journal, refusals read as sentences, the sound cue and its mute, the filters."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

from hazwatch.models import AlarmState, AlarmType
from tests.browser.conftest import Browser, LiveConsole, condition


def rows(browser: Browser) -> list[str]:
    """The alarm ids of the desk's rows, top to bottom (read at once: rows are redrawn)."""
    ids: list[str] = browser.driver.execute_script(
        "return [...document.querySelectorAll('#desk-rows tr')].map((tr) => tr.dataset.id)"
    )
    return ids


def row(browser: Browser, alarm_id: str) -> WebElement:
    return browser.driver.find_element(By.CSS_SELECTOR, f'#desk-rows tr[data-id="{alarm_id}"]')


def click_action(browser: Browser, alarm_id: str, action: str) -> None:
    def click(driver: WebDriver) -> bool:
        del driver
        button = row(browser, alarm_id).find_element(
            By.CSS_SELECTOR, f"button[data-action={action}]"
        )
        button.click()
        return True

    browser.wait(click)


def actions_of(browser: Browser, alarm_id: str) -> list[str]:
    actions: list[str] = browser.driver.execute_script(
        "return [...document.querySelectorAll(`#desk-rows tr[data-id='${arguments[0]}'] "
        "button[data-action]`)].map((b) => b.dataset.action)",
        alarm_id,
    )
    return actions


def state_of(browser: Browser, alarm_id: str) -> str:
    state: str = browser.driver.execute_script(
        "return document.querySelector(`#desk-rows tr[data-id='${arguments[0]}']`)"
        "?.dataset.state ?? ''",
        alarm_id,
    )
    return state


def selected(browser: Browser) -> str:
    chosen: str = browser.driver.execute_script(
        "return document.querySelector('#desk-rows tr.selected')?.dataset.id ?? ''"
    )
    return chosen


def message(driver: WebDriver) -> str:
    return str(driver.find_element(By.ID, "desk-message").text)


def cues(browser: Browser) -> int:
    return int(browser.driver.execute_script("return Number(document.body.dataset.cues || 0)"))


def press(browser: Browser, keys: str) -> None:
    browser.driver.find_element(By.TAG_NAME, "body").send_keys(keys)


def test_alarms_arrive_live_in_priority_order_and_are_acknowledged(
    live_console: LiveConsole, browser: Browser
) -> None:
    stale = live_console.apply(condition(AlarmType.STALE, tag="TK101_TT", message="no data"))[0]
    browser.login("operator")
    browser.wait(lambda d: rows(browser) == [stale.id])
    (high_old,) = live_console.apply(
        condition(AlarmType.H, tag="TK102_LT", value=9.6, limit=9.5, message="Tank 102 high")
    )
    (critical,) = live_console.apply(condition())
    (high_new,) = live_console.apply(
        condition(AlarmType.H, tag="TK103_LT", value=9.7, limit=9.5, message="Tank 103 high")
    )
    # Critical first, then high (newest first), then low — however they arrived.
    browser.wait(lambda d: rows(browser) == [critical.id, high_new.id, high_old.id, stale.id])
    browser.shot("desk-live")

    click_action(browser, high_new.id, "ack")
    # Acknowledged, it goes below the unacknowledged alarm of its priority.
    browser.wait(lambda d: rows(browser) == [critical.id, high_old.id, high_new.id, stale.id])
    assert state_of(browser, high_new.id) == "active_ack"
    assert live_console.get(high_new.id).state is AlarmState.ACTIVE_ACK
    assert "ack" not in actions_of(browser, high_new.id)
    counts = browser.driver.find_element(By.ID, "desk-counts").text
    assert counts.startswith("4 open · 3 unacknowledged · 1 critical unacknowledged")
    browser.shot("desk-acknowledged")
    assert browser.errors() == []


def test_keyboard_moves_acks_and_shelves_and_a_too_long_shelf_is_explained(
    live_console: LiveConsole, browser: Browser
) -> None:
    (first,) = live_console.apply(condition())
    (second,) = live_console.apply(
        condition(AlarmType.H, tag="TK102_LT", value=9.6, limit=9.5, message="Tank 102 high")
    )
    browser.login("operator")
    browser.wait(lambda d: rows(browser) == [first.id, second.id])
    press(browser, "jj")
    browser.wait(lambda d: selected(browser) == second.id)
    press(browser, "k")
    browser.wait(lambda d: selected(browser) == first.id)
    press(browser, "a")
    browser.wait(lambda d: state_of(browser, first.id) == "active_ack")
    assert live_console.get(first.id).state is AlarmState.ACTIVE_ACK
    press(browser, "a")  # acknowledged already: the desk says why nothing happens
    browser.wait(lambda d: "not possible" in message(d))

    press(browser, "j")
    browser.wait(lambda d: selected(browser) == second.id)
    press(browser, "s")
    dialog = browser.wait(lambda d: d.find_element(By.ID, "dialog-shelve"))
    dialog.find_element(By.NAME, "reason").send_keys("level transmitter being recalibrated")
    minutes = dialog.find_element(By.NAME, "minutes")
    minutes.clear()
    minutes.send_keys("100000")
    dialog.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    alert = dialog.find_element(By.CSS_SELECTOR, "[role=alert]")
    browser.wait(lambda d: "limited to 480 minutes" in alert.text)
    browser.shot("desk-shelve-too-long")
    assert live_console.get(second.id).state is AlarmState.ACTIVE_UNACK
    minutes.clear()
    minutes.send_keys("30")
    dialog.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    browser.wait(lambda d: state_of(browser, second.id) == "shelved")
    shelved = live_console.get(second.id)
    assert shelved.state is AlarmState.SHELVED
    assert shelved.shelved_until is not None

    press(browser, "?")
    help_box = browser.wait(lambda d: d.find_element(By.ID, "help"))
    browser.wait(lambda d: help_box.is_displayed())
    assert "acknowledge" in help_box.text
    browser.shot("desk-help")
    assert browser.errors() == []


def test_a_new_critical_alarm_sounds_once_unless_muted(
    live_console: LiveConsole, browser: Browser
) -> None:
    browser.login("operator")
    live_console.apply(condition(AlarmType.H, tag="TK102_LT", value=9.6, limit=9.5))
    (critical,) = live_console.apply(condition())
    browser.wait(lambda d: critical.id in rows(browser))
    browser.wait(lambda d: cues(browser) == 1)  # the critical one, not the high one
    live_console.apply(condition(value=11.4))  # the same alarm, a new value: no new cue
    mute = browser.driver.find_element(By.ID, "mute")
    mute.click()
    assert mute.get_attribute("aria-pressed") == "true"
    (other,) = live_console.apply(condition(AlarmType.LL, tag="TK102_LT", value=0.1, limit=0.3))
    browser.wait(lambda d: other.id in rows(browser))
    assert cues(browser) == 1
    browser.driver.refresh()  # the mute is remembered
    browser.ready()
    assert browser.driver.find_element(By.ID, "mute").get_attribute("aria-pressed") == "true"
    assert browser.errors() == []


def test_filters_by_enterprise_grid_type_and_state(
    live_console: LiveConsole, browser: Browser
) -> None:
    (e001,) = live_console.apply(condition())
    (e002,) = live_console.apply(
        condition(
            AlarmType.H,
            enterprise="E002",
            installation="DB01",
            tag="RC01",
            value=320,
            limit=300,
            message="Residual current feeder 1 at 320 mA",
        )
    )
    browser.login("operator")
    browser.wait(lambda d: set(rows(browser)) == {e001.id, e002.id})
    Select(browser.driver.find_element(By.ID, "filter-grid")).select_by_value("KS-07")
    browser.wait(lambda d: rows(browser) == [e002.id])
    assert "grid=KS-07" in browser.driver.current_url
    Select(browser.driver.find_element(By.ID, "filter-grid")).select_by_value("")
    Select(browser.driver.find_element(By.ID, "filter-enterprise")).select_by_value("E001")
    browser.wait(lambda d: rows(browser) == [e001.id])
    Select(browser.driver.find_element(By.ID, "filter-enterprise")).select_by_value("")
    Select(browser.driver.find_element(By.ID, "filter-type")).select_by_value("H")
    browser.wait(lambda d: rows(browser) == [e002.id])
    Select(browser.driver.find_element(By.ID, "filter-type")).select_by_value("")
    live_console.call(live_console.service.acknowledge, e001.id, "")
    Select(browser.driver.find_element(By.ID, "filter-state")).select_by_value("unacked")
    browser.wait(lambda d: rows(browser) == [e002.id])
    browser.shot("desk-filtered")
    browser.driver.refresh()  # the filters are in the address
    browser.ready()
    browser.wait(lambda d: rows(browser) == [e002.id])
    assert browser.errors() == []


def test_the_alarm_page_lists_transitions_and_follows_live(
    live_console: LiveConsole, browser: Browser
) -> None:
    (alarm,) = live_console.apply(condition())
    live_console.call(live_console.service.acknowledge, alarm.id, "seen, calling the tank farm")
    browser.login("operator", then=f"/alarms/{alarm.id}")
    transitions = browser.driver.find_element(By.CSS_SELECTOR, "#transitions tbody")
    browser.wait(lambda d: len(transitions.find_elements(By.TAG_NAME, "tr")) == 2)
    assert "seen, calling the tank farm" in transitions.text
    assert "Acknowledged" in transitions.text
    live_console.apply(condition(active=False, value=10.0))
    browser.wait(lambda d: len(transitions.find_elements(By.TAG_NAME, "tr")) == 3)
    assert "Cleared" in transitions.text
    browser.shot("alarm-page")
    assert browser.errors() == []


def test_an_unknown_alarm_page_says_so(live_console: LiveConsole, browser: Browser) -> None:
    del live_console
    browser.login("operator")
    browser.open("/alarms/NOPE")
    browser.wait(lambda d: "No alarm NOPE" in d.find_element(By.ID, "alarm-message").text)


def test_the_alarm_page_shows_an_escalation_and_its_notifications_as_they_happen(
    live_console: LiveConsole, browser: Browser
) -> None:
    (alarm,) = live_console.apply(condition())
    browser.login("operator", then=f"/alarms/{alarm.id}")
    escalations = browser.driver.find_element(By.CSS_SELECTOR, "#escalations tbody")
    # Nobody acknowledges: the route's tier (after 1.2 s) tells the principal and the
    # grid officer, and the page shows it without being reloaded.
    browser.wait(lambda d: len(escalations.find_elements(By.TAG_NAME, "tr")) == 1)
    assert "told principal, grid_officer" in escalations.text
    assert "console" in escalations.text  # the channel it went out on
    notifications = browser.driver.find_element(By.CSS_SELECTOR, "#notifications tbody")
    browser.wait(lambda d: notifications.text.count("Delivered") == 2)  # raised, escalated
    assert "Escalated" in notifications.text
    assert live_console.get(alarm.id).escalation == 1
    browser.shot("alarm-escalated")
    assert browser.errors() == []


FLOOD_TAGS = [
    ("MH01", ["TK101_LT", "TK101_TT", "TK101_PT", "TK102_LT", "GD101", "GD102"]),
    ("MH02", ["R201_TT", "R201_PT", "R201_FT_CW", "GD201", "R201_FT_FEED", "R201_TT_CWR"]),
]


@pytest.mark.parametrize("live_console", [{"feed_buffer": 16}], indirect=True)
def test_a_desk_that_fell_behind_its_stream_reads_the_list_again(
    live_console: LiveConsole, browser: Browser
) -> None:
    browser.login("operator")
    browser.wait(lambda d: d.find_element(By.ID, "desk-counts").text.startswith("0 open"))
    flood = [
        condition(kind, installation=installation, tag=tag, value=1.0, limit=0.0, message=tag)
        for installation, tags in FLOOD_TAGS
        for tag in tags
        for kind in (AlarmType.FAULT, AlarmType.STALE, AlarmType.STUCK)
    ]
    alarms = live_console.apply(*flood)  # 36 alarms in one turn: the stream keeps 16
    browser.wait(lambda d: set(rows(browser)) == {a.id for a in alarms})
    dropped = live_console.console.metrics.value(
        "hazwatch_channel_dropped_total", {"channel": "console_feed"}
    )
    assert dropped >= len(alarms) - 16  # the stream did fall behind; the list was re-read
    assert browser.errors() == []


def test_acknowledging_what_the_filters_show_asks_one_reason(
    live_console: LiveConsole, browser: Browser
) -> None:
    stale = [
        live_console.apply(condition(AlarmType.STALE, tag=tag, message=f"{tag} no data"))[0]
        for tag in ("TK101_TT", "TK101_PT", "TK102_LT")
    ]
    (critical,) = live_console.apply(condition())
    browser.login("operator")
    browser.wait(lambda d: len(rows(browser)) == 4)
    Select(browser.driver.find_element(By.ID, "filter-type")).select_by_value("STALE")
    bulk = browser.driver.find_element(By.ID, "ack-shown")
    browser.wait(lambda d: bulk.text == "Acknowledge shown (3)")
    bulk.click()
    dialog = browser.wait(lambda d: d.find_element(By.ID, "dialog-bulk"))
    dialog.find_element(By.NAME, "reason").send_keys("tank farm data link down")
    browser.shot("desk-bulk-ack")
    dialog.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    browser.wait(lambda d: message(d) == "3 acknowledged, 0 refused.")
    browser.wait(lambda d: all(state_of(browser, a.id) == "active_ack" for a in stale))
    assert {live_console.get(a.id).state for a in stale} == {AlarmState.ACTIVE_ACK}
    assert live_console.get(critical.id).state is AlarmState.ACTIVE_UNACK  # not shown: untouched
    browser.wait(lambda d: bulk.text == "Acknowledge shown (0)" and not bulk.is_enabled())
    assert browser.errors() == []

"""Each role at the desk, through the login page: what it sees and may do. The closed
loop by hand — the enterprise feeds back, the operator verifies — the language switch,
and a screenshot of every page each role opens."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from hazwatch.models import AlarmState, AlarmType, Disposal
from tests.browser.conftest import Browser, LiveConsole, condition
from tests.browser.test_desk import actions_of, click_action, rows, state_of

E002_ALARM = {
    "enterprise": "E002",
    "installation": "DB01",
    "tag": "RC01",
    "value": 520.0,
    "limit": 500.0,
    "message": "Residual current feeder 1 at 520 mA above HH 500 mA",
}


def test_each_role_logs_in_and_sees_its_alarms_with_its_actions(
    live_console: LiveConsole, browser: Browser
) -> None:
    (e001,) = live_console.apply(condition())
    (e002,) = live_console.apply(condition(**E002_ALARM))  # type: ignore[arg-type]
    expected = {
        # name: (alarms seen, actions offered on E001's unacknowledged alarm)
        "operator": ({e001.id, e002.id}, ["ack", "shelve"]),
        "officer3": ({e001.id}, ["ack"]),
        "ent1": ({e001.id}, ["ack", "feedback"]),  # a critical alarm owes feedback
        "admin": ({e001.id, e002.id}, []),
        "ent2": ({e002.id}, None),  # last: the check below is of this user
    }
    for name, (seen, actions) in expected.items():
        browser.login(name)

        def shows_its_alarms(driver: object, seen: set[str] = seen) -> bool:
            del driver
            return set(rows(browser)) == seen

        browser.wait(shows_its_alarms)
        user = browser.driver.find_element(By.ID, "hz-user").text
        assert name in user
        if actions is not None:
            assert actions_of(browser, e001.id) == actions, name
        browser.shot(f"desk-{name}")
        assert browser.errors() == [], name
    # The enterprise user of E002 cannot open E001's alarm: it does not exist for them.
    browser.open(f"/alarms/{e001.id}")
    browser.wait(lambda d: f"No alarm {e001.id}" in d.find_element(By.ID, "alarm-message").text)
    browser.shot("alarm-not-yours")


def test_enterprise_feeds_back_and_operator_verifies_from_the_desk(
    live_console: LiveConsole, browser: Browser
) -> None:
    (alarm,) = live_console.apply(condition())
    browser.login("ent1")
    browser.wait(lambda d: rows(browser) == [alarm.id])
    click_action(browser, alarm.id, "ack")
    browser.wait(lambda d: state_of(browser, alarm.id) == "active_ack")
    assert "feedback" in actions_of(browser, alarm.id)  # a critical alarm owes it (交办)

    click_action(browser, alarm.id, "feedback")
    dialog = browser.wait(lambda d: d.find_element(By.ID, "dialog-feedback"))
    dialog.find_element(By.NAME, "cause").send_keys("Inlet valve XV-101 left open after filling")
    dialog.find_element(By.NAME, "measures").send_keys(
        "Valve closed, level back to 8.0 m; interlock on XV-101 tested"
    )
    browser.shot("desk-feedback-dialog")
    dialog.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    browser.wait(lambda d: "feedback" not in actions_of(browser, alarm.id))
    fed = live_console.get(alarm.id)
    assert fed.disposal is Disposal.AWAITING_VERIFICATION
    assert fed.feedback is not None
    assert fed.feedback.by == "ent1"
    live_console.apply(condition(active=False, value=8.0))  # the level falls back

    browser.login("operator")
    browser.wait(lambda d: rows(browser) == [alarm.id])  # cleared, still owed a verification
    browser.wait(lambda d: actions_of(browser, alarm.id) == ["verify"])
    click_action(browser, alarm.id, "verify")
    dialog = browser.wait(lambda d: d.find_element(By.ID, "dialog-verify"))
    dialog.find_element(By.CSS_SELECTOR, "input[name=accepted][value=true]").click()
    dialog.find_element(By.NAME, "comment").send_keys("Seen on site; interlock record checked")
    browser.shot("desk-verify-dialog")
    dialog.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    browser.wait(lambda d: rows(browser) == [])  # closed (销号): off the desk
    closed = live_console.get(alarm.id)
    assert (closed.state, closed.disposal) == (AlarmState.CLEARED, Disposal.CLOSED)
    browser.shot("desk-empty")

    browser.open(f"/alarms/{alarm.id}")
    browser.ready()
    transitions = browser.driver.find_element(By.CSS_SELECTOR, "#transitions tbody").text
    for step in ("Raised", "Acknowledged", "Feedback", "Cleared", "Verified"):
        assert step in transitions
    assert "ent1" in transitions
    assert "operator" in transitions
    loop = browser.driver.find_element(By.ID, "loop-facts").text
    assert "Inlet valve XV-101 left open after filling" in loop
    browser.shot("alarm-closed")
    assert browser.errors() == []


def test_the_language_switch_is_kept_for_the_user(
    live_console: LiveConsole, browser: Browser
) -> None:
    live_console.apply(condition())
    live_console.apply(condition(AlarmType.STALE, tag="TK101_TT", message="TK101_TT: no data"))
    browser.login("operator")
    assert browser.driver.find_element(By.TAG_NAME, "h1").text == "Alarm desk"
    Select(browser.driver.find_element(By.ID, "hz-lang")).select_by_value("zh-CN")
    browser.wait(lambda d: d.find_element(By.TAG_NAME, "h1").text == "报警台")
    browser.ready()
    assert browser.driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN"
    assert "紧急" in browser.driver.find_element(By.ID, "desk-rows").text
    browser.shot("desk-zh-CN")
    browser.driver.find_element(By.ID, "help-button").click()
    browser.wait(lambda d: d.find_element(By.ID, "help").is_displayed())
    browser.shot("desk-help-zh-CN")

    # Stored with the user, not the browser: a new session comes back in Chinese.
    browser.login("operator")
    assert browser.driver.find_element(By.TAG_NAME, "h1").text == "报警台"
    Select(browser.driver.find_element(By.ID, "hz-lang")).select_by_value("en")
    browser.wait(lambda d: d.find_element(By.TAG_NAME, "h1").text == "Alarm desk")
    assert browser.errors() == []


def test_logout_returns_to_the_login_page(live_console: LiveConsole, browser: Browser) -> None:
    del live_console
    browser.login("operator")
    browser.driver.find_element(By.ID, "hz-logout").click()
    browser.wait(lambda d: d.current_url.startswith(browser.base_url + "/login"))
    browser.shot("login")
    browser.open("/desk")  # the session is gone
    browser.wait(lambda d: "/login" in d.current_url)


def test_every_page_has_the_shell(live_console: LiveConsole, browser: Browser) -> None:
    """The nav bar with the user and the page marked, on every page of this console."""
    (alarm,) = live_console.apply(condition())
    browser.login("officer3", then="/")
    pages: dict[str, str | None] = {
        "/": "overview",
        "/desk": "desk",
        f"/alarms/{alarm.id}": "desk",
        "/map": "map",
        "/kpis": "kpis",
        "/enterprises/E001": None,  # reached from the map and the overview, not the nav
        "/installations/E001/MH01": None,
    }
    for path, active in pages.items():
        browser.open(path)
        browser.wait(lambda d: "officer3" in d.find_element(By.ID, "hz-user").text)
        nav = browser.driver.find_element(By.ID, "hz-nav")
        assert "Grid officer" in nav.text
        current = [
            a.get_attribute("data-nav")
            for a in nav.find_elements(By.CSS_SELECTOR, "a[aria-current=page]")
        ]
        assert current == ([active] if active else []), path
        name = "overview" if path == "/" else path.strip("/").split("/")[0]
        browser.shot(f"page-{name}-officer3")
    assert browser.errors() == []

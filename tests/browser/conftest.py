"""The console in a real browser: headless Chromium driven by Selenium.

``live_console`` runs the real console application (``dashboards.app.create_app``) under
uvicorn on a free loopback port, in its own event-loop thread, on a real journal, alarm
service, SQLite readings store and live feed in the test's temporary directory. Tests
raise alarms through the real :class:`AlarmService` (``LiveConsole.apply``), which is
what the pipeline does; the page sees them over the real SSE stream.

``browser`` is headless Debian ``chromium`` through ``/usr/bin/chromedriver`` (the
packages ``chromium`` and ``chromium-driver``; ``scripts/test`` installs them). A
missing driver fails the test naming the packages: browser tests are never skipped.
``shot(name)`` saves a screenshot under the test's ``tmp_path/screens`` and copies it
to ``/tmp/screens/`` (``HAZWATCH_SCREENS`` to change it), to be looked at.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn
from argon2 import PasswordHasher, profiles
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from alerting.journal import Journal
from alerting.service import AlarmService
from dashboards.app import create_app
from dashboards.deps import Console
from dashboards.feed import LiveFeed, alarm_item
from dashboards.users import ConsoleDb
from hazwatch.clock import SystemClock
from hazwatch.metrics import Metrics
from hazwatch.models import Alarm, AlarmType, Condition, Registry
from hazwatch.settings import IngestSettings
from ingest.gateways import GatewayTracker
from ingest.latest import LatestValues
from ingest.rejects import RejectLog
from ingest.sqlite import SqliteSink
from ingest.validation import ReadingValidator
from tests.servers import free_port

T = TypeVar("T")

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_S = 15.0
"""Longest wait for the page to show something (an explicit wait, polled by Selenium)."""
SCREENS = Path(os.environ.get("HAZWATCH_SCREENS", "/tmp/screens"))
PASSWORD = "browser-test-password-1"


@dataclass
class LiveConsole:
    """The console serving on ``base_url``; ``call`` runs code on its event loop."""

    base_url: str
    loop: asyncio.AbstractEventLoop
    journal: Journal
    service: AlarmService
    console: Console

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` (sync or async) on the console's loop and return its result:
        the journal's connection belongs to that thread."""

        async def run() -> Any:
            result = fn(*args)
            if isinstance(result, Awaitable):
                return await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(WAIT_S)

    def apply(self, *conditions: Condition) -> list[Alarm]:
        """Conditions through the alarm service, as the detectors hand them over."""
        return [event.alarm for event in self.call(self.service.handle, list(conditions))]

    def add_user(
        self, name: str, role: str, *, enterprises: tuple[str, ...] = (), lang: str = "en"
    ) -> None:
        """A console user with the password :data:`PASSWORD`, for ``Browser.login``."""
        assert self.console.users is not None
        self.console.users.add(
            name, PASSWORD, role, enterprises=enterprises, lang=lang, now_ms=SystemClock().now_ms()
        )

    def get(self, alarm_id: str) -> Alarm:
        alarm: Alarm = self.call(self.journal.get, alarm_id)
        return alarm


def condition(
    alarm_type: AlarmType = AlarmType.HH,
    *,
    active: bool = True,
    enterprise: str = "E001",
    installation: str = "MH01",
    tag: str = "TK101_LT",
    value: float = 11.2,
    limit: float = 11.0,
    message: str = "Tank 101 level 11.2 m above HH 11.0 m",
) -> Condition:
    return Condition(
        enterprise=enterprise,
        installation=installation,
        tag=tag,
        type=alarm_type,
        active=active,
        value=value,
        limit=limit,
        ts_ms=SystemClock().now_ms(),
        message=message,
    )


def _console(tmp_path: Path, registry: Registry) -> tuple[Console, Journal, AlarmService]:
    metrics = Metrics()
    clock = SystemClock()
    limits = IngestSettings()
    journal = Journal(tmp_path / "journal.db", [])
    latest = LatestValues()
    gateways = GatewayTracker(metrics)
    feed = LiveFeed(
        registry,
        clock,
        latest,
        gateways,
        open_alarms=lambda: journal.list_alarms(active=True, limit=10_000),
        on_drop=lambda name: metrics.channel_dropped.labels(name).inc(),
    )
    service = AlarmService(
        journal, [], metrics, clock, on_event=lambda event: feed.publish(alarm_item(event))
    )
    validator = ReadingValidator(registry, limits, metrics)
    console = Console(
        registry=registry,
        alarms=service,
        sink=SqliteSink(tmp_path / "readings.db", registry, metrics),
        latest=latest,
        rejects=RejectLog(limits, metrics),
        unknown_tags=validator.unknown_tags,
        gateways=gateways,
        metrics=metrics,
        feed=feed,
        health=lambda: {"journal": "ok"},
        clock=clock,
        users=ConsoleDb(tmp_path / "console.db", PasswordHasher.from_parameters(profiles.CHEAPEST)),
    )
    return console, journal, service


@pytest.fixture
def live_console(
    tmp_path: Path, example_registry: Registry, request: pytest.FixtureRequest
) -> Iterator[LiveConsole]:
    """``indirect`` parameters set fields of the :class:`Console` before it serves
    (``{"map_tiles_url": ...}``)."""
    console, journal, service = _console(tmp_path, example_registry)
    for key, value in getattr(request, "param", {}).items():
        setattr(console, key, value)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(console), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="console-loop", daemon=True)
    thread.start()

    def on_loop(coro: Any) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, loop)

    async def opened() -> None:
        journal.open()
        await console.sink.__aenter__()

    on_loop(opened()).result(WAIT_S)
    serving = on_loop(server.serve())
    ticking = on_loop(console.feed.run())  # summaries and stale items, as the service runs it
    live = LiveConsole(f"http://127.0.0.1:{port}", loop, journal, service, console)

    async def started() -> None:
        while not server.started:
            if serving.done():
                serving.result()  # raises why it stopped
            await asyncio.sleep(0.01)  # uvicorn sets a flag; it offers no event to await

    on_loop(started()).result(WAIT_S)
    try:
        yield live
    finally:
        server.should_exit = True
        serving.result(WAIT_S)
        ticking.cancel()

        async def closed() -> None:
            await console.sink.__aexit__(None, None, None)
            journal.close()
            if console.users is not None:
                console.users.close()

        on_loop(closed()).result(WAIT_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT_S)
        loop.close()


def _driver() -> webdriver.Chrome:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            pytest.fail(
                f"{path} not found: install the Debian packages chromium chromium-driver "
                "(scripts/test does this when run as root)"
            )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1600,900",
        "--lang=en-US",
        "--autoplay-policy=no-user-gesture-required",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@dataclass
class Browser:
    driver: webdriver.Chrome
    base_url: str
    screens: Path

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    def login(self, username: str, password: str = PASSWORD) -> None:
        """Log in through the login page, as a person does; waits until it has left it."""
        self.open("/login")
        self.driver.find_element(By.ID, "username").send_keys(username)
        self.driver.find_element(By.ID, "password").send_keys(password)
        self.driver.find_element(By.ID, "submit").click()
        self.wait(lambda d: "/login" not in d.current_url)

    def wait(self, what: Callable[[WebDriver], T], timeout: float = WAIT_S) -> T:
        return WebDriverWait(self.driver, timeout).until(what)

    def ready(self) -> None:
        """The page has loaded its data (its script sets ``body[data-ready]``)."""
        self.wait(lambda d: d.execute_script("return document.body.dataset.ready === '1'"))

    def shot(self, name: str) -> Path:
        """A screenshot of the page as it is, kept with the test and in ``SCREENS``."""
        self.screens.mkdir(parents=True, exist_ok=True)
        path = self.screens / f"{name}.png"
        assert self.driver.save_screenshot(str(path)), name
        SCREENS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SCREENS / path.name)
        return path

    def errors(self) -> list[str]:
        """Severe messages of the browser's console (script errors, failed loads)."""
        log: list[dict[str, Any]] = self.driver.get_log("browser")  # type: ignore[no-untyped-call]
        return [entry["message"] for entry in log if entry["level"] == "SEVERE"]


@pytest.fixture
def browser(live_console: LiveConsole, tmp_path: Path) -> Iterator[Browser]:
    driver = _driver()
    try:
        browser = Browser(driver, live_console.base_url, tmp_path / "screens")
        # every page needs a login: the browser starts as an operator who sees everything
        live_console.add_user("operator", "operator")
        browser.login("operator")
        yield browser
    finally:
        driver.quit()

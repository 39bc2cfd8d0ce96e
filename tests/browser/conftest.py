"""The console in a real browser: headless Chromium driven by Selenium.

``live_console`` runs the real console application (``dashboards.app.create_app``) under
uvicorn on a free loopback port, in its own event-loop thread, on a real journal, alarm
service, SQLite readings store and live feed in the test's temporary directory. Tests
raise alarms through the real :class:`AlarmService` (``LiveConsole.apply``), which is
what the pipeline does; the page sees them over the real SSE stream.

``browser`` is headless Debian ``chromium`` through ``/usr/bin/chromedriver`` (the
packages ``chromium`` and ``chromium-driver``; ``scripts/test`` installs them). A
missing driver fails the test naming the packages: browser tests are never skipped.
The console has its users (``USERS``: one of each role, in a ``console.db`` with argon2's
cheapest parameters so tests stay fast); ``browser.login(name)`` logs in through the
login page like a person. ``shot(name)`` saves a screenshot under the test's
``tmp_path/screens`` and copies it to ``/tmp/screens/`` (``HAZWATCH_SCREENS`` to change
it), to be looked at.
"""

from __future__ import annotations

import asyncio
import functools
import io
import os
import re
import shutil
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from argon2 import PasswordHasher, profiles
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from alerting.channels import build_channels
from alerting.journal import Journal
from alerting.messages import MessageBuilder
from alerting.service import AlarmService
from dashboards.app import create_app
from dashboards.deps import Console
from dashboards.feed import LiveFeed, alarm_item
from dashboards.users import ConsoleDb
from hazwatch.app import FEED_BUFFER
from hazwatch.clock import SystemClock
from hazwatch.metrics import Metrics
from hazwatch.models import Alarm, Condition, Registry
from hazwatch.settings import IngestSettings, load_settings
from ingest.gateways import GatewayTracker
from ingest.latest import LatestValues
from ingest.rejects import RejectLog
from ingest.sqlite import SqliteSink
from ingest.validation import ReadingValidator
from tests import helpers
from tests.servers import free_port

T = TypeVar("T")

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_S = 15.0
"""Longest wait for the page to show something (an explicit wait, polled by Selenium)."""
PASSWORD = "correct horse battery"
USERS: dict[str, dict[str, Any]] = {
    "admin": {"role": "admin"},
    "operator": {"role": "operator"},
    "officer3": {"role": "grid_officer", "grids": ("KS-03",)},  # sees E001
    "ent1": {"role": "enterprise", "enterprises": ("E001",)},
    "ent2": {"role": "enterprise", "enterprises": ("E002",)},
    "ent1zh": {"role": "enterprise", "enterprises": ("E001",), "lang": "zh-CN"},
}
"""The example registry: E001 is in grid KS-03, E002 in KS-07."""
_REFUSED = re.compile(r"/api/\S* - Failed to load resource: .* status of 4\d\d ")
"""The console's line for an API call answered 4xx."""
SCREENS = Path(os.environ.get("HAZWATCH_SCREENS", "/tmp/screens"))


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
        """One more console user (password :data:`PASSWORD`) for ``Browser.login``."""
        assert self.console.users is not None
        self.console.users.add(
            name, PASSWORD, role, enterprises=enterprises, lang=lang, now_ms=SystemClock().now_ms()
        )

    def get(self, alarm_id: str) -> Alarm:
        alarm: Alarm = self.call(self.journal.get, alarm_id)
        return alarm


condition = functools.partial(helpers.condition, message="Tank 101 level 11.2 m above HH 11.0 m")
"""The desk's default alarm: a critical HH on TK101_LT, timed now."""


ALERTING: dict[str, Any] = {
    "alerting.console_notifier": True,
    "alerting.language": "en",
    "alerting.routes": [
        {
            "name": "critical",
            "types": ["HH", "LL"],
            "notify": ["duty", "principal", "grid_officer"],
            # Escalated (督办) after 1.2 s unacknowledged, so a test can watch it happen.
            "escalate": [{"after_min": 0.02, "notify": ["principal", "grid_officer"]}],
        },
        {"name": "everything else", "notify": ["duty"]},
    ],
}
"""Routing as configured on a site, with the console notifier (it writes to a buffer) as
the one channel that reaches people; feedback is owed by the default deadlines."""


@dataclass
class _Built:
    console: Console
    journal: Journal
    service: AlarmService
    users: ConsoleDb
    http: httpx.AsyncClient


def _console(tmp_path: Path, registry: Registry, feed_buffer: int = FEED_BUFFER) -> _Built:
    """The console's collaborators as ``hazwatch run`` wires them (hazwatch/app.py)."""
    settings = load_settings(overrides=ALERTING)
    metrics = Metrics()
    clock = SystemClock()
    limits = IngestSettings()
    http = httpx.AsyncClient()
    channels = build_channels(settings, registry, http, out=io.StringIO(), mqtt=False)
    journal = Journal(
        tmp_path / "journal.db", [n.name for n in channels.notifiers], policy=channels.router
    )
    latest = LatestValues()
    gateways = GatewayTracker(metrics)
    feed = LiveFeed(
        registry,
        clock,
        latest,
        gateways,
        open_alarms=lambda: journal.list_alarms(active=True, limit=10_000),
        maxsize=feed_buffer,
        on_drop=lambda name: metrics.channel_dropped.labels(name).inc(),
    )
    a = settings.alerting
    service = AlarmService(
        journal,
        channels.notifiers,
        metrics,
        clock,
        on_event=lambda event: feed.publish(alarm_item(event)),
        people=channels.router.people_channels,
        builder=MessageBuilder(registry, a.language, "http://127.0.0.1/", a.timezone),
        flood=a.flood,
        max_attempts=a.max_attempts,
        channel_alarm_s=a.channel_alarm_s,
    )
    validator = ReadingValidator(registry, limits, metrics)
    users = ConsoleDb(tmp_path / "console.db", PasswordHasher.from_parameters(profiles.CHEAPEST))
    for name, spec in USERS.items():
        users.add(
            name,
            PASSWORD,
            spec["role"],
            grids=spec.get("grids", ()),
            enterprises=spec.get("enterprises", ()),
            lang=spec.get("lang", "en"),
            now_ms=clock.now_ms(),
        )
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
        shelve_max_min=a.shelve_max_min,
        users=users,
    )
    return _Built(console, journal, service, users, http)


@pytest.fixture
def live_console(
    tmp_path: Path, example_registry: Registry, request: pytest.FixtureRequest
) -> Iterator[LiveConsole]:
    """``indirect`` parameters set fields of the :class:`Console` before it serves
    (``{"map_tiles_url": ...}``), and ``feed_buffer`` the live feed's per-stream bound."""
    params = dict(getattr(request, "param", {}))
    built = _console(tmp_path, example_registry, params.pop("feed_buffer", FEED_BUFFER))
    console, journal, service = built.console, built.journal, built.service
    for key, value in params.items():
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

    async def opened() -> list[asyncio.Task[None]]:
        journal.open()
        await console.sink.__aenter__()
        # Delivery and escalation run as in the service: notifications and 督办 are real.
        return [
            asyncio.create_task(service.run_outbox(), name="alarm-outbox"),
            asyncio.create_task(service.run_followup(), name="alarm-followup"),
            # summaries and stale items, as the service runs it
            asyncio.create_task(console.feed.run(), name="console-feed"),
        ]

    loops = on_loop(opened()).result(WAIT_S)
    serving = on_loop(server.serve())
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

        async def closed() -> None:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            service.close()
            await console.sink.__aexit__(None, None, None)
            journal.close()
            await built.http.aclose()

        on_loop(closed()).result(WAIT_S)
        built.users.close()
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

    def wait(self, what: Callable[[WebDriver], T], timeout: float = WAIT_S) -> T:
        # A live page redraws its rows: an element found a moment ago may be gone.
        return WebDriverWait(
            self.driver, timeout, ignored_exceptions=(StaleElementReferenceException,)
        ).until(what)

    def login(self, name: str, then: str = "/desk") -> None:
        """Log in as ``name`` (one of USERS) on the login page, arriving at ``then``."""
        self.driver.delete_all_cookies()
        self.open(then)  # not logged in: sent to /login?next=...
        self.wait(lambda d: "/login" in d.current_url)
        self.driver.find_element(By.ID, "username").send_keys(name)
        self.driver.find_element(By.ID, "password").send_keys(PASSWORD)
        self.driver.find_element(By.ID, "submit").click()
        self.wait(lambda d: d.current_url == self.base_url + then)
        # The shell is up (it shows who is logged in); the page's data may still load.
        self.wait(lambda d: name in d.find_element(By.ID, "hz-user").text)
        if then != "/":  # the overview's own script does not say when it is ready
            self.ready()

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
        """Script errors and failed loads in the browser's console. An API answer that
        refuses (4xx) is the page's business, shown to the user and checked there; a
        missing file or a 5xx is not."""
        log: list[dict[str, Any]] = self.driver.get_log("browser")  # type: ignore[no-untyped-call]
        return [
            entry["message"]
            for entry in log
            if entry["level"] == "SEVERE" and not _REFUSED.search(entry["message"])
        ]


@pytest.fixture
def browser(live_console: LiveConsole, tmp_path: Path) -> Iterator[Browser]:
    driver = _driver()
    try:
        browser = Browser(driver, live_console.base_url, tmp_path / "screens")
        # every page needs a login: the browser starts as the operator who sees everything
        # (a test may log in as someone else)
        browser.login("operator")
        yield browser
    finally:
        driver.quit()

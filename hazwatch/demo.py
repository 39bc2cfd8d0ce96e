"""``hazwatch demo``: the whole pipeline in one process, no servers needed.

An embedded MQTT broker (amqtt, the optional ``demo`` extra), SQLite storage and
journal in a fresh temporary directory, the bundled example sites, and the tank
overfill scenario on a loop, its time compressed by ``speed`` (5 by default): within a
minute the console shows live values, an H and an HH alarm.

The messages people would get are printed on the terminal (the console notifier), and
escalation runs on short demo timers: an HH nobody acknowledges for 18 s is escalated
(督办) to the principal and the grid officer. A demo actor (:class:`DemoDesk`) then
plays the monitoring centre, the enterprise and the grid officer once — acknowledge,
feedback, verification — so one closed loop (发现—交办—整改—反馈—核查—销号) runs before
your eyes; after it, acknowledging and feeding back are yours, in the console.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import tempfile
import time
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import structlog

from dashboards.feed import View
from hazwatch.errors import ConfigError
from hazwatch.models import AlarmType
from hazwatch.registry import load_registry
from hazwatch.settings import load_settings

log = structlog.get_logger(__name__)

BROKER_SHUTDOWN_TIMEOUT_S = 5.0
DESK_PAUSE_S = 3.0
"""How long the demo actor waits before each step (so the terminal can be followed)."""
DEMO_ALERTING: dict[str, Any] = {
    "alerting.console_notifier": True,
    "alerting.language": "en",
    "alerting.routes": [
        {
            "name": "demo: critical",
            "types": ["HH", "LL", "SUSPENDED_LOAD"],
            "notify": ["duty", "principal", "grid_officer"],
            "escalate": [
                {"after_min": 0.3, "notify": ["principal", "grid_officer"]},
                {"after_min": 1.5, "notify": ["regulator"]},
            ],
            "remind_every_min": 1,
        },
        {"name": "demo: warning", "types": ["H", "L", "ROC", "TREND"], "notify": ["duty"]},
        {"name": "demo: instrument", "notify": ["technical"]},
    ],
}
"""The demo's alerting: people told on the terminal, escalation in seconds not minutes."""


def examples_dir() -> Path:
    """The example registry, config and scenarios shipped inside the package."""
    return Path(str(resources.files("simulators") / "examples"))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    """A pure-Python MQTT 3.1.1 broker on a loopback port, for the demo only.

    Production uses Mosquitto or EMQX (docker-compose.yml): amqtt keeps no
    persistent sessions for anonymous clients (docs/architecture.md#measured-facts-mqtt, 9).
    """

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self._broker: Any = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def __aenter__(self) -> Self:
        try:
            from amqtt.broker import Broker  # noqa: PLC0415 - optional extra
        except ImportError as exc:
            raise ConfigError(
                "the demo needs the optional 'demo' extra (amqtt): "
                "pip install 'hazwatch[demo]' — `make demo` installs it"
            ) from exc
        # amqtt logs every packet at INFO; keep the demo's terminal readable.
        logging.getLogger("amqtt").setLevel(logging.WARNING)
        logging.getLogger("transitions").setLevel(logging.WARNING)
        self._broker = Broker(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
                "plugins": {
                    "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
                },
            }
        )
        await self._broker.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await asyncio.wait_for(self._broker.shutdown(), BROKER_SHUTDOWN_TIMEOUT_S)
        except TimeoutError:
            log.warning("demo_broker_shutdown_timeout", seconds=BROKER_SHUTDOWN_TIMEOUT_S)


class DemoDesk:
    """Plays, once, the people of the closed loop for the first HH alarm: the monitoring
    centre acknowledges it after its escalation, the enterprise feeds back once it has
    cleared, the grid officer verifies and closes it. Each step goes through the same
    service methods as the console's routes, and is printed."""

    def __init__(self, service: Any) -> None:
        self._service = service
        self._alarm_id: str | None = None
        self._done: set[str] = set()

    def _say(self, text: str) -> None:
        print(f"\n>>> demo desk: {text}", flush=True)  # noqa: T201 - the demo's narration

    async def run(self) -> None:
        with self._service.feed.subscribe(View("desk")) as channel:
            async for event in channel:
                data = event.data
                if event.kind != "alarm" or data["type"] != "HH":
                    continue
                if self._alarm_id is None and data["state"] == "active_unack":
                    self._alarm_id = data["id"]
                if data["id"] == self._alarm_id:
                    await self._step(data)
                if "verified" in self._done:
                    self._say("the loop is closed; acknowledge and feed back in the console now")
                    return

    async def _step(self, alarm: dict[str, Any]) -> None:
        alarms = self._service.alarms
        alarm_id = alarm["id"]
        if alarm["escalation"] and alarm["state"] in {"active_unack", "cleared_unack"}:
            await self._once(
                "ack",
                alarm_id,
                "the monitoring centre acknowledges the escalated HH",
                lambda: alarms.acknowledge(alarm_id, "called the site", "demo operator"),
            )
        elif alarm["state"] == "cleared" and alarm["disposal"] == "awaiting_feedback":
            await self._once(
                "feedback",
                alarm_id,
                "the enterprise feeds back cause and measures (处置反馈)",
                lambda: alarms.feedback(
                    alarm_id,
                    "transfer into TK101 ran on past its high level",
                    "inlet closed, transfer pump started; high-level interlock tested",
                    "E001 duty room",
                ),
            )
        elif alarm["disposal"] == "awaiting_verification":
            await self._once(
                "verified",
                alarm_id,
                "the grid officer verifies and closes the alarm (核查, 销号)",
                lambda: alarms.verify(
                    alarm_id, accepted=True, comment="seen on site", user="Grid officer Zhang"
                ),
            )

    async def _once(self, step: str, alarm_id: str, text: str, act: Any) -> None:
        if step in self._done:
            return
        self._done.add(step)
        await asyncio.sleep(DESK_PAUSE_S)
        self._say(f"{text} ({alarm_id})")
        try:
            act()
        except Exception as exc:  # the person at the console may have been quicker
            self._say(f"{step} not needed: {exc}")


DEMO_USERS: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...], str], ...] = (
    # name, role, grids, enterprises, what it sees
    ("admin", "admin", (), (), "users; every enterprise"),
    ("operator", "operator", (), (), "the monitoring centre: every enterprise"),
    ("officer", "grid_officer", ("KS-03",), (), "grid KS-03 (E001)"),
    ("e001", "enterprise", (), ("E001",), "enterprise E001"),
)


def demo_users(db_path: Path) -> str:
    """Create the demo's console users with passwords made now; their logins as text."""
    from dashboards.users import ConsoleDb  # noqa: PLC0415

    db = ConsoleDb(db_path)
    lines = []
    try:
        for name, role, grids, enterprises, what in DEMO_USERS:
            password = secrets.token_urlsafe(12)
            db.add(
                name,
                password,
                role,
                grids=grids,
                enterprises=enterprises,
                now_ms=int(time.time() * 1000),
            )
            lines.append(f"    {name:<9} {password}   {role} — {what}\n")
    finally:
        db.close()
    return "".join(lines)


async def run_demo(listen: str = "127.0.0.1:8000", speed: float = 5.0) -> None:
    """Run broker, service and simulator until cancelled (Ctrl-C)."""
    from hazwatch.app import Hazwatch  # noqa: PLC0415 - keeps `hazwatch --help` fast
    from simulators.broker import Broker  # noqa: PLC0415
    from simulators.publisher import ScenarioPublisher  # noqa: PLC0415
    from simulators.scenario import load_scenario  # noqa: PLC0415

    examples = examples_dir()
    workdir = Path(tempfile.mkdtemp(prefix="hazwatch-demo-"))
    async with EmbeddedBroker(free_port()) as broker:
        settings = load_settings(
            examples / "hazwatch.toml",
            overrides={
                "registry": str(examples / "registry"),
                "mqtt.url": broker.url,
                "storage.path": str(workdir / "readings.db"),
                "journal.path": str(workdir / "journal.db"),
                "ingest.spool_path": str(workdir / "spool.db"),
                "console.listen": listen,
                "console.db": str(workdir / "console.db"),
                **DEMO_ALERTING,
            },
        )
        registry = load_registry(settings.registry)
        logins = demo_users(settings.console.db)
        scenario = load_scenario(examples / "scenarios" / "tank_overfill.toml", registry)
        publisher = ScenarioPublisher(
            Broker(broker.host, broker.port, tls=False), registry, scenario, speed=speed, loop=True
        )
        limits = [e for e in scenario.expect if e.type in (AlarmType.H, AlarmType.HH)]
        when = ", then ".join(  # the middle of each expected alarm's window, in wall seconds
            f"{e.type.value} on {e.enterprise}/{e.tag} "
            f"at ~{sum(scenario.window(e)) / 2 / speed:.0f} s"
            for e in limits
        )
        async with Hazwatch(settings, registry) as service, publisher:
            print(  # noqa: T201 - the demo's one message to the person at the terminal
                f"\nhazwatch demo is running.\n"
                f"  console:   {service.console_url}\n"
                f"  broker:    {broker.url} (embedded)\n"
                f"  scenario:  {scenario.name} at {speed:g}× — {when}; it repeats every "
                f"{scenario.duration_s / speed:.0f} s\n"
                f"  data:      {workdir}\n"
                f"  logins (passwords made for this run):\n{logins}"
                f"  alerting:  messages to people are printed here; an HH nobody acknowledges "
                f"for 18 s is escalated (督办), then a demo desk acknowledges it, feeds back and "
                f"verifies it once\n"
                f"Press Ctrl-C to stop.\n",
                flush=True,
            )
            async with asyncio.TaskGroup() as tg:
                tg.create_task(service.run(), name="service")
                tg.create_task(publisher.run(), name="simulator")
                tg.create_task(DemoDesk(service).run(), name="demo-desk")

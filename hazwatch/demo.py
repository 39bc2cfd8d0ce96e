"""``hazwatch demo``: the whole pipeline in one process, no servers needed.

An embedded MQTT broker (amqtt, the optional ``demo`` extra), SQLite storage and
journal in a fresh temporary directory, the bundled example sites, and the tank
overfill scenario on a loop, its time compressed by ``speed`` (5 by default): within a
minute the console shows live values, an H and an HH alarm.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import tempfile
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import structlog

from hazwatch.errors import ConfigError
from hazwatch.models import AlarmType
from hazwatch.registry import load_registry
from hazwatch.settings import load_settings

log = structlog.get_logger(__name__)

BROKER_SHUTDOWN_TIMEOUT_S = 5.0


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
    persistent sessions for anonymous clients (REFERENCE.md, MQTT 9).
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
            },
        )
        registry = load_registry(settings.registry)
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
                f"Press Ctrl-C to stop.\n",
                flush=True,
            )
            async with asyncio.TaskGroup() as tg:
                tg.create_task(service.run(), name="service")
                tg.create_task(publisher.run(), name="simulator")

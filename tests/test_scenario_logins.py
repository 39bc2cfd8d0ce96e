"""A scenario end to end through a broker running the generated gateway ACL.

Each simulated gateway is a Sparkplug B edge node with a login of its own, made by
``hazwatch gateway add ... --format sparkplug-b --save-login FILE``; the scenario
publishes through those logins (``--logins FILE``), the service decodes and raises
the alarms, and the run watches them as the service's own user. Without the logins
the service's own user may not publish a gateway's data (tests/test_broker_acl.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from hazwatch.errors import ConfigError
from hazwatch.registry import load_registry
from hazwatch.settings import IngestSettings
from ingest.codecs import build_routes
from ingest.sparkplug import sparkplug_b_pb2 as pb
from simulators.broker import Broker
from simulators.gateways import gateways_for
from simulators.logins import GatewayLogins
from simulators.recording import RecordedMessage
from simulators.replay import Replayer
from simulators.runner import run_external
from tests.conftest import EXAMPLE_REGISTRY, RunService
from tests.helpers import eventually
from tests.servers import Mosquitto
from tests.test_broker_acl import SERVICE_PASSWORD, Deployed, deploy
from tests.test_scenarios import QUICK_OVERFILL

pytestmark = pytest.mark.integration

SPARKPLUG = ["--format", "sparkplug-b"]
EDGE_NODES = {  # the example registry's gateways, each a Sparkplug edge node
    f"{g.enterprise}.{g.gateway}": (f"{g.gateway.lower()}-secret", SPARKPLUG)
    for g in gateways_for(load_registry(EXAMPLE_REGISTRY))
}


@pytest.fixture
def logins_file(tmp_path: Path) -> Path:
    return tmp_path / "sim-logins.toml"


@pytest.fixture
def deployed(tmp_path: Path, logins_file: Path) -> Iterator[Deployed]:
    with deploy(tmp_path, EDGE_NODES, save_login=logins_file) as deployment:
        yield deployment


@pytest.fixture
def mosquitto(deployed: Deployed) -> Mosquitto:
    """run_service's broker: the deployed one (hazwatch on its own listener)."""
    return deployed.broker


CODECS = [{"kind": "hz-json"}, {"kind": "sparkplug-b"}]


async def test_a_sparkplug_scenario_through_the_gateway_acl(
    run_service: RunService, mosquitto: Mosquitto, tmp_path: Path, logins_file: Path
) -> None:
    await run_service(
        {
            "registry": str(EXAMPLE_REGISTRY),
            "detectors.tick_s": 0.2,
            "mqtt.username": "hazwatch",
            "mqtt.password": SERVICE_PASSWORD,
            "ingest.codecs": CODECS,
        }
    )
    config = tmp_path / "hazwatch.toml"
    config.write_text(
        f'registry = "{EXAMPLE_REGISTRY}"\n'
        f'[mqtt]\nurl = "{mosquitto.url}"\nusername = "hazwatch"\n'
        f'password = "{SERVICE_PASSWORD}"\n'
        + "".join(f"[[ingest.codecs]]\nkind = {orjson.dumps(c['kind']).decode()}\n" for c in CODECS)
    )
    scenario = tmp_path / "quick.toml"
    scenario.write_text(QUICK_OVERFILL)
    report = await run_external(scenario, config, fmt="sparkplug-b", logins=logins_file)
    assert report.passed, "\n".join(report.lines())
    assert [r.alarm.raised_s for r in report.expected if r.alarm] == [5.0, 5.0]
    assert report.readings > 0


def test_each_gateway_takes_its_own_login_and_a_missing_one_is_named(
    deployed: Deployed, logins_file: Path
) -> None:
    logins = GatewayLogins.load(logins_file)
    broker = Broker("127.0.0.1", deployed.broker.port, tls=False)
    chosen = logins.broker_for(broker, "spBv1.0/E001/NDATA/MH02-gw", "gateway E001/MH02-gw")
    assert (chosen.username, chosen.password) == ("E001.MH02-gw", EDGE_NODES["E001.MH02-gw"][0])
    assert logins.for_topic("hz/v1/E001/MH02-gw/data") is None  # a Sparkplug login only
    with pytest.raises(ConfigError, match=r"no login may publish spBv1\.0/E003/NDATA/gw"):
        logins.broker_for(broker, "spBv1.0/E003/NDATA/gw", "gateway E003/gw")


async def test_replay_publishes_each_message_as_the_gateway_it_came_from(
    run_service: RunService, mosquitto: Mosquitto, logins_file: Path
) -> None:
    service = await run_service(
        {
            "registry": str(EXAMPLE_REGISTRY),
            "mqtt.username": "hazwatch",
            "mqtt.password": SERVICE_PASSWORD,
            "ingest.codecs": CODECS,
        }
    )
    now = service.clock.now_ms()

    def birth(tag: str, value: float) -> bytes:
        payload = pb.Payload(timestamp=now, seq=0)
        payload.metrics.add(name=tag, datatype=10, double_value=value, timestamp=now)
        return payload.SerializeToString()

    recording = [
        RecordedMessage(now, "spBv1.0/E001/NBIRTH/MH01-gw", birth("TK101_LT", 2.5)),
        RecordedMessage(now + 1, "spBv1.0/E002/NBIRTH/DB01-gw", birth("RC01", 7.5)),
        RecordedMessage(
            now + 2, "spBv1.0/E003/NBIRTH/gw", birth("TK101_LT", 9.0)
        ),  # nobody's login
    ]
    replayer = Replayer(
        Broker("127.0.0.1", mosquitto.port, tls=False),
        speed=1000,
        routes=build_routes(IngestSettings.model_validate({"codecs": CODECS})),
        logins=GatewayLogins.load(logins_file),
    )
    await replayer.run(recording)
    assert (replayer.published, replayer.acknowledged, replayer.refused) == (2, 2, 0)
    assert replayer.no_login == 1
    await eventually(
        lambda: all(
            service.latest.get(e, t) is not None
            for e, t in [("E001", "TK101_LT"), ("E002", "RC01")]
        ),
        what="both gateways' replayed readings",
    )
    assert service.latest.get("E002", "RC01").value == 7.5  # type: ignore[union-attr]

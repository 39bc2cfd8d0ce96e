"""MQTT over TLS and mutual TLS against a real Mosquitto TLS listener.

The test makes its own CA and certificates (``tests/pki.py``). Every MQTT client of
hazwatch is exercised: the ingest's hand-written connection, the alarm notifier and
the scenario runner's alarm watcher (aiomqtt), and the simulators' paho clients —
all with the one context of ``hazwatch.tls``. The refusals — a CA that does not
match, an expired broker or client certificate, no client certificate — each end
in one line that says who refused what.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from alerting.notifiers import MqttAlarmNotifier
from hazwatch.errors import BrokerError, ConfigError
from hazwatch.settings import MqttSettings, load_settings
from hazwatch.tls import mqtt_ssl_context
from ingest.connection import MqttConnection, MqttConnectionError, MqttRefused
from simulators.broker import Broker, BrokerConnection
from simulators.runner import AlarmWatcher
from tests.conftest import EXAMPLE_REGISTRY, RunService
from tests.helpers import eventually
from tests.pki import Pki, make_pki, tls_listener
from tests.servers import Mosquitto, free_port

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("mosquitto")]


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def ports() -> dict[str, int]:
    return {"tls": free_port(), "expired": free_port()}


@pytest.fixture
def mosquitto(tmp_path: Path, pki: Pki, ports: dict[str, int]) -> Iterator[Mosquitto]:
    """Mosquitto with a plain listener (for the fixtures), a mutual-TLS listener, and a
    TLS listener whose own certificate has expired."""
    server = Mosquitto(
        tmp_path / "mosquitto",
        extra_config=tls_listener(ports["tls"], pki)
        + tls_listener(ports["expired"], pki, server_cert=pki.expired_server_cert),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def tls_settings(port: int, pki: Pki, **changes: object) -> MqttSettings:
    fields: dict[str, object] = {
        "url": f"mqtts://localhost:{port}",
        "client_id": "tls-test",
        "ca_file": pki.ca,
        "cert_file": pki.client_cert,
        "key_file": pki.client_key,
        **changes,
    }
    return MqttSettings.model_validate(fields)


async def test_ingest_notifier_watcher_and_simulators_over_mutual_tls(
    run_service: RunService, pki: Pki, ports: dict[str, int]
) -> None:
    mqtt = tls_settings(ports["tls"], pki)
    service = await run_service(
        {
            "registry": str(EXAMPLE_REGISTRY),
            "mqtt.url": mqtt.url,
            "mqtt.ca_file": str(pki.ca),
            "mqtt.cert_file": str(pki.client_cert),
            "mqtt.key_file": str(pki.client_key),
        }
    )  # returns once the ingest subscribed: over TLS, with its client certificate
    async with AlarmWatcher(mqtt) as watcher:  # aiomqtt over TLS
        gateway = Broker.from_settings(mqtt.model_copy(update={"client_id": "gw"}))
        connection = BrokerConnection(gateway, "sim-E001-MH01-gw", reconnect=False)
        async with connection:  # paho over TLS, as the simulators connect
            payload = orjson.dumps({"readings": [{"tag": "TK101_LT", "v": 11.6}]})
            connection.client.publish("hz/v1/E001/MH01-gw/data", payload, qos=1)
            await eventually(
                lambda: service.metrics.value("hazwatch_ingest_readings_total") == 1,
                what="the reading ingested",
            )
        # the HH alarm went out through the notifier's own TLS connection
        await eventually(
            lambda: any(a.type == "HH" for a in watcher.alarms.values()),
            what="the HH alarm received over TLS",
        )


async def test_a_wrong_ca_is_refused_with_one_clear_error(pki: Pki, ports: dict[str, int]) -> None:
    wrong = tls_settings(ports["tls"], pki, ca_file=pki.other_ca)
    with pytest.raises(MqttRefused) as refused:  # retried slowly: a configuration to mend
        await MqttConnection.open(wrong, lambda _: None, 1024)
    message = str(refused.value)
    assert message.startswith(f"TLS: the broker localhost:{ports['tls']} presented a certificate")
    assert re.search(
        "self-signed certificate in certificate chain|unable to get local issuer", message
    )
    assert str(pki.other_ca) in message
    assert "\n" not in message
    async with MqttAlarmNotifier(wrong, timeout_s=5) as notifier:
        assert not notifier.connected
    with pytest.raises(BrokerError):
        async with BrokerConnection(Broker.from_settings(wrong), "sim", reconnect=False):
            pass


async def test_an_expired_broker_certificate_is_refused(pki: Pki, ports: dict[str, int]) -> None:
    with pytest.raises(MqttRefused, match="certificate has expired"):
        await MqttConnection.open(tls_settings(ports["expired"], pki), lambda _: None, 1024)


@pytest.mark.parametrize("client", ["expired", "none"])
async def test_the_broker_refuses_an_expired_or_missing_client_certificate(
    pki: Pki, ports: dict[str, int], client: str
) -> None:
    if client == "expired":
        settings = tls_settings(ports["tls"], pki, cert_file=pki.expired_client_cert)
        sent = str(pki.expired_client_cert)
    else:
        settings = tls_settings(ports["tls"], pki, cert_file=None, key_file=None)
        sent = "no client certificate"
    with pytest.raises(MqttConnectionError) as refused:
        await MqttConnection.open(settings, lambda _: None, 1024)
    message = str(refused.value)
    assert message.startswith(f"TLS: the broker localhost:{ports['tls']} refused this client")
    assert sent in message


async def test_the_host_name_is_checked_unless_tls_insecure(
    pki: Pki, ports: dict[str, int]
) -> None:
    """The broker's certificate names localhost only, not 127.0.0.1."""
    by_address = tls_settings(ports["tls"], pki, url=f"mqtts://127.0.0.1:{ports['tls']}")
    with pytest.raises(MqttRefused, match="IP address mismatch"):
        await MqttConnection.open(by_address, lambda _: None, 1024)
    insecure = by_address.model_copy(update={"tls_insecure": True})
    conn = await MqttConnection.open(insecure, lambda _: None, 1024)  # the chain still checked
    await conn.disconnect()
    context = mqtt_ssl_context(insecure)
    assert context is not None
    assert context.verify_mode is ssl.CERT_REQUIRED


def test_tls_settings_are_checked_at_load(tmp_path: Path, pki: Pki) -> None:
    with pytest.raises(ConfigError, match="ca_file need an mqtts:// url"):
        load_settings(None, environ={}, overrides={"mqtt.ca_file": str(pki.ca)})
    with pytest.raises(ConfigError, match="key_file needs cert_file"):
        load_settings(
            None,
            environ={},
            overrides={"mqtt.url": "mqtts://h", "mqtt.key_file": str(pki.client_key)},
        )
    config = tmp_path / "hazwatch.toml"
    config.write_text('[mqtt]\nurl = "mqtts://broker"\nca_file = "certs/ca.pem"\n')
    settings = load_settings(config, environ={})
    assert settings.mqtt.ca_file == tmp_path / "certs" / "ca.pem"  # relative to the file
    with pytest.raises(ConfigError, match=r"^mqtt\.ca_file: cannot load .*ca\.pem"):
        mqtt_ssl_context(settings.mqtt)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    bad_cert = settings.mqtt.model_copy(update={"ca_file": pki.ca, "cert_file": garbage})
    with pytest.raises(ConfigError, match=r"^mqtt\.cert_file/key_file: cannot load"):
        mqtt_ssl_context(bad_cert)


async def test_the_paho_simulators_read_tls_files_from_the_environment(
    pki: Pki, ports: dict[str, int]
) -> None:
    env = {
        "HAZWATCH_MQTT__CA_FILE": str(pki.ca),
        "HAZWATCH_MQTT__CERT_FILE": str(pki.client_cert),
        "HAZWATCH_MQTT__KEY_FILE": str(pki.client_key),
    }
    broker = Broker.from_url(f"mqtts://localhost:{ports['tls']}", environ=env)
    async with BrokerConnection(broker, "recorder", reconnect=False) as connection:
        assert connection.client.is_connected()

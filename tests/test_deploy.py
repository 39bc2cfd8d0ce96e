"""The deployment files users start from: valid, pinned, loopback-only, no secrets.

There is no Docker engine on the development machines, so docker-compose.yml is
checked here for what can be checked without one (see README, "What was tested").
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from hazwatch.settings import load_settings
from tests.conftest import EXAMPLES

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_image_is_pinned_to_a_version() -> None:
    images = {name: svc["image"] for name, svc in COMPOSE["services"].items()}
    assert set(images) == {"mosquitto", "influxdb", "hazwatch"}
    for name, image in images.items():
        _, _, tag = image.partition(":")
        assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"{name}: {image} is not pinned"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11\.\d+-slim-bookworm$", dockerfile, re.MULTILINE)


def test_every_published_port_is_on_loopback() -> None:
    for name, svc in COMPOSE["services"].items():
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_secrets_come_from_the_environment_not_the_files() -> None:
    for name, svc in COMPOSE["services"].items():
        for key, value in svc.get("environment", {}).items():
            if any(word in key for word in ("PASSWORD", "TOKEN")):
                assert str(value).startswith("${"), f"{name}.{key} is a literal secret"
    shipped = tomllib.loads((ROOT / "deploy" / "hazwatch.toml").read_text())
    assert "password" not in shipped["mqtt"]
    assert "token" not in shipped["storage"]["influxdb"]


def test_mosquitto_config_sets_the_limits_whose_defaults_lose_data() -> None:
    conf = dict(
        line.split(None, 1)
        for line in (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert int(conf["max_queued_messages"].split()[0]) >= 100_000
    assert int(conf["autosave_interval"].split()[0]) <= 60
    assert conf["allow_anonymous"].split()[0] == "false"
    assert conf["use_username_as_clientid"].split()[0] == "true"
    acl = (ROOT / "deploy" / "mosquitto" / "acl").read_text()
    assert "pattern write hz/v1/%u/#" in acl


def test_shipped_configs_are_valid_settings() -> None:
    deployed = load_settings(ROOT / "deploy" / "hazwatch.toml", environ={})
    assert deployed.storage.backend == "influxdb"
    assert deployed.storage.influxdb.api == "v2"
    example = load_settings(EXAMPLES / "hazwatch.toml", environ={})
    assert example.console.host == "127.0.0.1"
    assert example.mqtt.host == "127.0.0.1"

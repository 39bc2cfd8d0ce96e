"""Gateway logins of every format: their ACL lines, and the logins refused because one
enterprise could then publish as another (tests/test_broker_acl.py runs the ACL on a
real Mosquitto)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from hazwatch.errors import ConfigError
from hazwatch.gatewaytopics import FAMILIES
from hazwatch.logins import GatewayCommand, Login, LoginFiles, command, service_acl
from ingest.codecs import CODEC_KINDS
from ingest.routes import topic_matches


def add(directory: Path, enterprise: str, gateway: str | None, fmt: str, **params: str) -> str:
    return command(
        GatewayCommand(
            "add", enterprise, gateway, directory, format=fmt, params=params, password="pw"
        )
    )


def test_every_codec_kind_has_a_topic_family() -> None:
    assert set(FAMILIES) == set(CODEC_KINDS)


@pytest.mark.parametrize(
    ("login", "writes", "refused"),
    [
        (
            Login("E001", "n1", "sparkplug-b"),
            "spBv1.0/E001/NDATA/n1",
            ["spBv1.0/E002/NDATA/n1", "spBv1.0/E001/NDATA/n2", "spBv1.0/E001/NCMD/n1"],
        ),
        (
            Login("E001", "n1", "sparkplug-b", (("group", "PlantA"),)),
            "spBv1.0/PlantA/DDATA/n1/plc",
            ["spBv1.0/E001/DDATA/n1/plc", "spBv1.0/PlantA/DDATA/n2/plc"],
        ),
        (Login("E001", "modbus", "neuron"), "/neuron/E001/modbus/grp", ["/neuron/E002/modbus/g"]),
        (
            Login("E002", "tb", "thingsboard"),
            "E002/v1/gateway/telemetry",
            ["v1/gateway/telemetry", "E001/v1/gateway/telemetry"],
        ),
        (Login("E001", "h1", "telegraf"), "telegraf/h1/E001", ["telegraf/h1/E002"]),
        (Login("E001", "DL-1", "field-map"), "vendor/E001/DL-1/up", ["vendor/E002/DL-1/up"]),
    ],
)
def test_a_login_writes_its_own_topics_only(login: Login, writes: str, refused: list[str]) -> None:
    assert any(topic_matches(f, writes) for f in login.writes())
    for topic in refused:
        assert not any(topic_matches(f, topic) for f in login.writes()), topic


def test_the_service_reads_every_format_and_writes_commands_and_state() -> None:
    lines = service_acl("hazwatch", [Login("E002", "tb", "thingsboard")], ["host-a"])
    assert "topic read spBv1.0/+/NDATA/+" in lines
    assert "topic read spBv1.0/STATE/host-a" in lines
    assert "topic write spBv1.0/+/NCMD/+" in lines
    assert "topic write spBv1.0/STATE/host-a" in lines
    assert "topic write hz/v1/+/alarms" in lines
    assert "topic read E002/v1/gateway/telemetry" in lines  # the login's own prefix
    assert not any(line.startswith("topic write") and "DATA" in line for line in lines)


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        (
            ("E001", "n1", "sparkplug-b", {"group": "PlantA"}),
            ("E002", "n2", "sparkplug-b", {"group": "PlantA"}),
            "group 'PlantA' is E001's",
        ),
        (
            ("E001", "n1", "neuron", {"app": "shared"}),
            ("E002", "n2", "neuron", {"app": "shared"}),
            "app 'shared' is E001's",
        ),
        (
            ("E001", "tb", "thingsboard", {"prefix": ""}),
            ("E002", "tb", "thingsboard", {"prefix": ""}),
            "mount_point",
        ),
        (
            ("E001", "d1", "field-map", {"topic": "meters/+/up"}),
            ("E002", "d2", "field-map", {"topic": "meters/x/up"}),
            "one enterprise could publish as the other",
        ),
    ],
)
def test_a_login_that_could_publish_as_another_enterprise_is_refused(
    tmp_path: Path,
    first: tuple[str, str, str, dict[str, str]],
    second: tuple[str, str, str, dict[str, str]],
    message: str,
) -> None:
    add(tmp_path, first[0], first[1], first[2], **first[3])
    with pytest.raises(ConfigError, match=message):
        add(tmp_path, second[0], second[1], second[2], **second[3])
    assert [login.username for login in LoginFiles(tmp_path).logins()] == [f"{first[0]}.{first[1]}"]
    # the same enterprise may share them
    add(tmp_path, first[0], "other", second[2], **second[3])


@pytest.mark.parametrize(
    ("fmt", "params", "message"),
    [
        ("field-map", {"topic": "hz/v1/E002/gw/data"}, "hazwatch reads as hz-json"),
        ("field-map", {"topic": "hz/v1/E001/alarms"}, "hazwatch writes"),
        ("field-map", {"topic": "spBv1.0/STATE/hazwatch"}, "hazwatch writes"),
        ("field-map", {"topic": "vendor/#"}, "expected a topic without spaces or #"),
        ("sparkplug-b", {"group": "Plant A"}, "--group: expected 1-64 characters"),
        ("thingsboard", {"prefix": "E001"}, "each ending in /"),
        ("neuron", {"group": "x"}, "--group is not an id of this format"),
        ("modbus", {}, "--format: expected one of hz-json, sparkplug-b"),
    ],
)
def test_bad_ids_and_topics_are_refused_naming_the_option(
    tmp_path: Path, fmt: str, params: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        add(tmp_path, "E001", "gw", fmt, **params)


def test_formats_are_kept_beside_passwd_and_the_acl_follows_them(tmp_path: Path) -> None:
    add(tmp_path, "E001", "node1", "sparkplug-b", group="PlantA")
    add(tmp_path, "E001", "gw1", "hz-json")
    files = LoginFiles(tmp_path)
    state = tomllib.loads(files.formats.read_text())
    assert state["logins"]["E001.node1"] == {"format": "sparkplug-b", "group": "PlantA"}
    acl = files.acl.read_text()
    assert "user E001.node1\ntopic write spBv1.0/PlantA/NBIRTH/node1\n" in acl
    assert "topic read spBv1.0/PlantA/NCMD/node1\n" in acl
    # hz-json logins written before logins.toml existed stay hz-json
    files.passwd.write_text(files.passwd.read_text() + "E002.old:$7$x$y$z\n")
    files.write_acl()
    assert "user E002.old\ntopic write hz/v1/E002/old/data\n" in files.acl.read_text()
    command(GatewayCommand("remove", "E001", "node1", tmp_path))
    assert "E001.node1" not in files.formats.read_text()
    assert "node1" not in files.acl.read_text()


def test_save_login_keeps_the_password_for_simulators_and_does_not_print_it(
    tmp_path: Path,
) -> None:
    saved = tmp_path / "sim-logins.toml"
    out = command(
        GatewayCommand("add", "E001", "node1", tmp_path, format="sparkplug-b", save_login=saved)
    )
    doc = tomllib.loads(saved.read_text())
    password = doc["E001.node1"]["password"]
    assert password not in out
    assert f"password: saved to {saved}" in out
    assert doc["E001.node1"]["writes"][1] == "spBv1.0/E001/NDATA/node1"
    assert saved.stat().st_mode & 0o077 == 0


def test_the_docs_table_names_every_format_and_its_ids() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "gateways.md").read_text()
    section = doc.split("## Logins and the broker ACL", 1)[1].split("\n## ", 1)[0]
    rows = {
        cells[1].strip(" `"): cells[2]
        for line in section.splitlines()
        if line.startswith("| `") and len(cells := line.split("|")) > 3 and "--format" not in line
    }
    assert set(rows) == set(FAMILIES)
    for fmt, fam in FAMILIES.items():
        assert [f"--{name}" for name, _ in fam.params] == re.findall(r"--[a-z]+", rows[fmt])


def test_the_sparkplug_host_ids_given_once_are_kept(tmp_path: Path) -> None:
    """`--config` gives hazwatch's host ids; a later `add` without it keeps them."""
    command(
        GatewayCommand("add", "E001", "n1", tmp_path, format="sparkplug-b", host_ids=["plant-host"])
    )
    add(tmp_path, "E001", "gw1", "hz-json")
    acl = LoginFiles(tmp_path).acl.read_text()
    assert "topic write spBv1.0/STATE/plant-host\n" in acl
    assert "spBv1.0/STATE/hazwatch" not in acl

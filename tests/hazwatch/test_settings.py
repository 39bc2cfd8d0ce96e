"""Settings: TOML file, environment overrides, relative paths, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from hazwatch.errors import ConfigError
from hazwatch.settings import load_settings, url_without_userinfo


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hazwatch.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_file_values_and_relative_paths(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'registry = "reg"\n[storage]\nbackend = "influxdb"\n'
        '[storage.influxdb]\nurl = "http://127.0.0.1:9999"\napi = "v2"\n',
    )
    settings = load_settings(path, environ={})
    assert settings.registry == tmp_path / "reg"
    assert settings.journal.path == tmp_path / "var" / "journal.db"
    assert settings.ingest.spool_path == tmp_path / "var" / "spool.db"
    assert settings.storage.backend == "influxdb"
    assert settings.storage.influxdb.api == "v2"
    assert settings.storage.influxdb.url == "http://127.0.0.1:9999"


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[mqtt]\nurl = "mqtt://127.0.0.1:1883"\n')
    settings = load_settings(
        path,
        environ={
            "HAZWATCH_MQTT__URL": "mqtts://broker.local:8883",
            "HAZWATCH_STORAGE__INFLUXDB__TOKEN": "s3cret",
            "HAZWATCH_CONSOLE__LISTEN": "127.0.0.1:9100",
            "HAZWATCH_ALERTING__WEBHOOKS": '["http://127.0.0.1:1/hook"]',
            "HAZWATCH_REGISTRY": "/abs/registry",
            "OTHER_VARIABLE": "ignored",
        },
    )
    assert (settings.mqtt.host, settings.mqtt.port, settings.mqtt.tls) == (
        "broker.local",
        8883,
        True,
    )
    assert settings.storage.influxdb.token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)  # secrets never print
    assert settings.console.port == 9100
    assert settings.alerting.webhooks == ("http://127.0.0.1:1/hook",)
    assert settings.registry == Path("/abs/registry")


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        ("[storage]\nbackend = 'mongo'\n", {}, "storage.backend"),
        ("[mqtt]\nurl = 'http://x'\n", {}, "expected mqtt://host"),
        ("[mqtt]\nurll = 'mqtt://x'\n", {}, "mqtt.urll: unknown key"),
        ("", {"HAZWATCH_CONSOLE__LISTEN": "8000"}, "expected host:port"),
        ("", {"HAZWATCH_INGEST__MAX_READINGS": "-1"}, "ingest.max_readings"),
        ("[mqtt\n", {}, "not valid TOML"),
    ],
)
def test_invalid_settings_say_where_and_what(
    tmp_path: Path, text: str, environ: dict[str, str], expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as info:
        load_settings(path, environ=environ)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "absent.toml", environ={})


def test_disabled_alarm_types_are_checked(tmp_path: Path) -> None:
    settings = load_settings(
        write(tmp_path, '[detectors]\ndisabled = ["TREND", "STALE"]\n'), environ={}
    )
    assert [t.value for t in settings.detectors.disabled] == ["TREND", "STALE"]
    with pytest.raises(ConfigError, match=r"detectors\.disabled"):
        load_settings(write(tmp_path, '[detectors]\ndisabled = ["HIGH"]\n'), environ={})


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://admin:s3cret@influx:8086/api", "http://influx:8086/api"),
        ("mqtts://user@broker.example", "mqtts://broker.example"),
        ("mqtt://127.0.0.1:1883", "mqtt://127.0.0.1:1883"),
        ("http://influx:8086/a@b", "http://influx:8086/a@b"),  # an @ in the path stays
    ],
)
def test_a_url_is_shown_without_its_credentials(url: str, shown: str) -> None:
    assert url_without_userinfo(url) == shown


@pytest.mark.parametrize("listen", ["127.0.0.1:8000", "127.0.0.2:0", "[::1]:8000", "localhost:80"])
def test_the_console_listens_on_loopback(listen: str) -> None:
    settings = load_settings(None, environ={}, overrides={"console.listen": listen})
    assert settings.console.listen == listen


@pytest.mark.parametrize("listen", ["0.0.0.0:8000", "[::]:8000", "192.168.1.5:8000", "web:80"])
def test_any_other_console_address_is_not_loopback(tmp_path: Path, listen: str) -> None:
    """Any address loads; the service refuses one others can reach while console.db has
    no user (tests/hazwatch/test_console_listen.py)."""
    path = write(tmp_path, f'[console]\nlisten = "{listen}"\n')
    settings = load_settings(path, environ={})
    assert not settings.console.loopback


def test_the_site_time_zone_is_an_iana_name(tmp_path: Path) -> None:
    assert load_settings(None, environ={}).console.timezone == "Asia/Shanghai"
    path = write(tmp_path, '[console]\ntimezone = "Mars/Olympus"\n')
    with pytest.raises(ConfigError) as refused:
        load_settings(path, environ={})
    assert "console.timezone: " in str(refused.value)
    assert "Mars/Olympus" in str(refused.value)

"""The ``hazwatch`` command as a user runs it: real subprocesses, real output."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

from tests.conftest import EXAMPLE_REGISTRY, EXAMPLES
from tests.helpers import Gateway
from tests.servers import Influxd, Mosquitto, free_port

HAZWATCH = [sys.executable, "-m", "hazwatch.cli"]


def hazwatch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HAZWATCH, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_check_config_prints_a_summary() -> None:
    result = hazwatch("check-config", "--config", str(EXAMPLES / "hazwatch.toml"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "enterprises:   2" in out
    assert "installations: 4" in out
    assert "points:        20" in out
    # The ESD valve state has no alarm limits, and is listed as such.
    assert "without limits: 5" in out
    assert "E001/MH02/ESD201_ZSC" in out
    assert "models:        MH01.normal, MH02.normal, MH03.normal, DB01.normal (ANOMALY)" in out
    assert out.rstrip().endswith("OK")


def test_check_config_names_the_codecs_and_refuses_overlapping_ones(tmp_path: Path) -> None:
    config = tmp_path / "hazwatch.toml"
    base = f'registry = "{EXAMPLE_REGISTRY}"\n'
    codecs = (
        '[[ingest.codecs]]\nkind = "hz-json"\n'
        '[[ingest.codecs]]\nkind = "sparkplug-b"\n'
        '[[ingest.codecs]]\nkind = "telegraf"\n[[ingest.codecs.map]]\nenterprise = "E001"\n'
    )
    config.write_text(base + codecs)
    result = hazwatch("check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "codecs:        hz-json, sparkplug-b, telegraf" in result.stdout
    overlapping = codecs + '[[ingest.codecs]]\nkind = "neuron"\nname = "everything"\n'
    overlapping += 'topics = ["#"]\n[[ingest.codecs.map]]\nenterprise = "E001"\n'
    config.write_text(base + overlapping)
    result = hazwatch("check-config", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ingest.codecs: hz-json (hz/v1/+/+/data) and ")
    assert "everything (#) subscribe overlapping topics" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_env_override_is_applied() -> None:
    result = hazwatch(
        "check-config",
        "--config",
        str(EXAMPLES / "hazwatch.toml"),
        env={"HAZWATCH_STORAGE__BACKEND": "influxdb", "HAZWATCH_STORAGE__INFLUXDB__API": "v3"},
    )
    assert result.returncode == 0, result.stderr
    assert "storage:       influxdb v3 at http://127.0.0.1:8086" in result.stdout


def test_bad_registry_stops_with_one_clear_line_and_no_traceback(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    shutil.copytree(EXAMPLE_REGISTRY, registry)
    table = registry / "points" / "E002.csv"
    table.write_text(table.read_text().replace("300,500", "300,abc"))
    config = tmp_path / "hazwatch.toml"
    config.write_text('registry = "registry"\n')
    for command in ("check-config", "run"):
        result = hazwatch(command, "--config", str(config))
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("error: ")
        assert "E002.csv:2: column 'hh': expected a number or an empty cell, got 'abc'" in (
            result.stderr
        )


def test_bad_setting_stops_with_a_clear_line(tmp_path: Path) -> None:
    config = tmp_path / "hazwatch.toml"
    config.write_text('[storage]\nbackend = "mongodb"\n')
    result = hazwatch("check-config", "--config", str(config))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "storage.backend" in result.stderr
    assert "'sqlite' or 'influxdb'" in result.stderr


@pytest.mark.parametrize(
    ("route", "says"),
    [
        (
            'notify = ["principle"]',
            "alerting.routes.0.notify: unknown role 'principle'",
        ),
        (
            'notify = ["duty"]\nchannels = ["pager"]',
            "alerting.routes.0.channels: unknown channel 'pager'",
        ),
        (
            'notify = ["duty"]\nchannels = ["sms"]',
            "routes.0.channels: channel 'sms' is not configured",
        ),
        (
            'notify = ["duty"]\nchannels = ["dingtalk"]',
            "alerting.routes.0.channels: channel 'dingtalk' is not configured",
        ),
        (
            'notify = ["duty"]\n[[alerting.routes.escalate]]\nafter_min = 5\nnotify = ["mayor"]',
            "alerting.routes.0.escalate.0.notify: unknown role 'mayor'",
        ),
    ],
)
def test_a_bad_routing_rule_stops_with_one_line_naming_file_and_key(
    tmp_path: Path, route: str, says: str
) -> None:
    config = tmp_path / "hazwatch.toml"
    config.write_text(
        f'registry = "{EXAMPLE_REGISTRY}"\n[[alerting.routes]]\nname = "mine"\n{route}\n'
    )
    for command in ("check-config", "run"):
        result = hazwatch(command, "--config", str(config))
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"error: {config}: ")
        assert says in lines[0]


@pytest.mark.integration
def test_run_with_influxdb_v1_stores_readings_and_stops_on_sigterm(
    tmp_path: Path, mosquitto: Mosquitto, influxd_server: Influxd, influx_db: str
) -> None:
    """`hazwatch run --config FILE` against plain influxd 1.x with the §3.4 keys."""
    console_port = free_port()
    config = tmp_path / "hazwatch.toml"
    config.write_text(
        f'registry = "{EXAMPLE_REGISTRY}"\n'
        f'[mqtt]\nurl = "{mosquitto.url}"\nclient_id = "hazwatch-cli-test"\n'
        f'[storage]\nbackend = "influxdb"\n'
        f'[storage.influxdb]\nurl = "{influxd_server.url}"\napi = "v1"\n'
        f'database = "{influx_db}"\n'
        f'[journal]\npath = "var/journal.db"\n'
        f'[console]\nlisten = "127.0.0.1:{console_port}"\n'
    )
    proc = subprocess.Popen(
        [*HAZWATCH, "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        health: dict[str, str] = {}
        while health.get("mqtt") != "ok":  # wait for the service's own report
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, f"no healthy service: {health}"
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{console_port}/healthz", timeout=1
                ) as response:
                    health = orjson.loads(response.read()).get("components", {})
            except OSError:
                time.sleep(0.05)
                continue
            if health.get("mqtt") != "ok":
                time.sleep(0.05)
        gateway = Gateway(mosquitto.port, "E001", "MH01-gw")
        now = int(time.time() * 1000)
        gateway.publish([{"tag": "TK101_LT", "v": 5.0 + n / 10, "ts": now + n} for n in range(20)])
        gateway.close()
        while influxd_server.count(influx_db) < 20:
            assert time.monotonic() < deadline + 30, "readings did not reach influxd"
            time.sleep(0.05)
        assert influxd_server.count(influx_db) == 20
        assert (tmp_path / "var" / "journal.db").exists()  # relative to the config file
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr


def test_check_config_names_a_tls_file_that_cannot_be_loaded(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES / "registry", tmp_path / "registry")
    config = tmp_path / "hazwatch.toml"
    config.write_text(
        'registry = "registry"\n[mqtt]\nurl = "mqtts://broker:8883"\nca_file = "ca.pem"\n'
    )
    result = hazwatch("check-config", "--config", str(config))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"error: mqtt.ca_file: cannot load {tmp_path / 'ca.pem'}: No such file or directory\n"
    )

"""The test servers themselves: they start, answer, and stop."""

from __future__ import annotations

import socket

import pytest

from tests.servers import Influxd, Mosquitto

pytestmark = pytest.mark.integration


def test_mosquitto_accepts_connections_and_stops(mosquitto: Mosquitto) -> None:
    with socket.create_connection(("127.0.0.1", mosquitto.port), 2):
        pass
    mosquitto.stop()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", mosquitto.port), 1):
        pass


def test_influxd_answers_influxql(influxd_server: Influxd) -> None:
    influxd_server.query("CREATE DATABASE servers_check")
    result = influxd_server.query("SHOW DATABASES", db="servers_check")
    names = [row[0] for row in result["results"][0]["series"][0]["values"]]  # type: ignore[index]
    assert "servers_check" in names

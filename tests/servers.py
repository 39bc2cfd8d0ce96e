"""Real Mosquitto and InfluxDB 1.x servers for tests, on free loopback ports.

Each server gets a temporary config and data directory, is started as a child
process, waited for by probing its port (never by sleeping a fixed time), and
stopped after. A missing binary fails with the Debian package to install — the
test command installs them when run as root (see ``scripts/test``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hazwatch.demo import free_port as free_port  # noqa: PLC0414 - re-exported for the tests

MOSQUITTO_BIN = os.environ.get("HAZWATCH_TEST_MOSQUITTO", "mosquitto")
INFLUXD_BIN = os.environ.get("HAZWATCH_TEST_INFLUXD", "influxd")
START_TIMEOUT_S = 30.0


class ServerMissing(RuntimeError):
    pass


def find_binary(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin")
    if path is None:
        raise ServerMissing(
            f"{name!r} not found: install the Debian package {package!r} "
            f"(apt-get install {package}); `make test` does this when run as root"
        )
    return path


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)  # polling a port: there is no event to await from another process
    raise RuntimeError(f"server did not open port {port} in {START_TIMEOUT_S}s: {log.read_text()}")


@dataclass
class Mosquitto:
    """A Mosquitto broker on ``127.0.0.1:port`` with persistence in ``workdir``."""

    workdir: Path
    port: int = field(default_factory=free_port)
    extra_config: str = ""
    proc: subprocess.Popen[bytes] | None = None
    config: str = ""
    """A whole configuration instead of the generated one (its listeners must include
    ``port``, on 127.0.0.1): tests of the shipped deploy/mosquitto/mosquitto.conf."""

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "mosquitto.log"

    def start(self) -> None:
        binary = find_binary(MOSQUITTO_BIN, "mosquitto")
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            self.config
            or f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            "autosave_interval 30\n"
            # Explicit, large queue limits: the defaults drop silently
            # (docs/architecture.md#measured-facts-mqtt, 4).
            "max_queued_messages 1000000\n"
            "max_inflight_messages 1000\n"
            f"log_dest file {self.log}\n"
            # Started as root, Mosquitto drops to the user `mosquitto`, which cannot write
            # into pytest's directories: it would keep nothing across a restart.
            + ("user root\n" if os.geteuid() == 0 else "")
            + "log_type error\nlog_type warning\nlog_type notice\n"
            + self.extra_config
        )
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        for port in [self.port, *self.extra_ports]:
            _wait_for_port(port, self.proc, self.log)

    @property
    def extra_ports(self) -> list[int]:
        """Ports of the listeners ``extra_config`` adds (waited for too)."""
        return [
            int(line.split()[1])
            for line in (self.config or self.extra_config).splitlines()
            if line.startswith("listener ") and int(line.split()[1]) != self.port
        ]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


@dataclass
class Influxd:
    """InfluxDB 1.x (Debian ``influxd``) on ``127.0.0.1:port``, data in ``workdir``."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "influxd.log"

    def start(self) -> None:
        binary = find_binary(INFLUXD_BIN, "influxdb")
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "influxdb.conf"
        conf.write_text(
            "reporting-disabled = true\n"
            f'bind-address = "127.0.0.1:{free_port()}"\n'
            f'[meta]\n  dir = "{self.workdir}/meta"\n'
            f'[data]\n  dir = "{self.workdir}/data"\n  wal-dir = "{self.workdir}/wal"\n'
            "  query-log-enabled = false\n"
            "[monitor]\n  store-enabled = false\n"
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n'
            "  log-enabled = false\n  auth-enabled = false\n"
            "[continuous_queries]\n  enabled = false\n"
        )
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [binary, "-config", str(conf)], stdout=log, stderr=subprocess.STDOUT
            )
        _wait_for_port(self.port, self.proc, self.log)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:  # the port opens before /ping answers 204
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as r:
                    if r.status == 204:
                        return
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.02)

    def query(self, q: str, db: str = "hazwatch") -> dict[str, object]:
        """Run InfluxQL and return the decoded JSON (test helper)."""
        import json  # noqa: PLC0415
        from urllib.parse import urlencode  # noqa: PLC0415

        data = urlencode({"q": q, "db": db}).encode()
        with urllib.request.urlopen(f"{self.url}/query", data=data, timeout=10) as r:
            result: dict[str, object] = json.loads(r.read())
            return result

    def count(self, db: str = "hazwatch", where: str = "") -> int:
        """Number of stored ``reading`` points (0 when the measurement does not exist)."""
        result = self.query(f"SELECT count(value) FROM reading {where}", db)
        series = result["results"][0].get("series")  # type: ignore[index]
        return int(series[0]["values"][0][1]) if series else 0

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


@contextlib.contextmanager
def running(server: Mosquitto | Influxd) -> Iterator[Mosquitto | Influxd]:
    server.start()
    try:
        yield server
    finally:
        server.stop()

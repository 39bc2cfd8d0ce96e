"""Soak: hours of steady load with the faults a year brings, on the real service.

    .venv/bin/python bench/soak.py                      # 120 min, the goal's faults
    .venv/bin/python bench/soak.py --minutes 18 --broker-every 240 --influx-every 330

What runs: a Mosquitto (persistence on, ``autosave_interval 30``) and an influxd
started here on free loopback ports, and ``hazwatch run`` with its normal wiring —
InfluxDB backend, spool, detectors, alerting and its journal — on a generated
registry (``simulators.load``: every point has limits the load stays within).

The load: ``--gateways`` gateways (200) × ``--points`` points (50) sampled once a
second — 10,000 readings/s — as hz-json batch messages, QoS 1. Each gateway is a
connection of its own that stays connected for a random ``--session`` span
(30–120 s), disconnects cleanly and connects again; what it sampled meanwhile waits
in its own queue and is sent after. A message counts as sent once the broker
acknowledged it; one in flight when a connection breaks is sent again (storage is
idempotent: the same series and timestamp overwrite).

The faults: every ``--broker-every`` seconds (600) Mosquitto is stopped (SIGTERM) for
``--broker-down`` seconds (15) and started again; every ``--influx-every`` seconds (900)
influxd likewise for ``--influx-down`` (30). The service is configured to alarm after
5 s without the broker (``[mqtt] disconnect_alarm_s``) and after 10 s of historian lag
(``[ingest] lag_alarm_s``), so each fault must show in the journal as a SYSTEM alarm
(``broker_disconnected`` / ``historian_lag``) raised after it started and cleared after
it ended.

Before and after each broker stop the script copies ``mosquitto.db`` (``db-N-before``,
``db-N-after`` in the broker's work directory) and prints the persistent sessions it
holds: the session the broker will restore, or the evidence that it lost it.

What it prints: hazwatch's RSS every ``--sample`` seconds, and at the end

- RSS after the warm-up: first, min, max, last, the largest deviation from the first
  post-warm-up sample (the goal: within ±10 %) and the least-squares slope in MiB per
  hour. The warm-up (``--warmup`` minutes) lasts by default until a minute after the
  first time both servers were restarted together (the least common multiple of
  their periods: 30 min with the defaults) — or, when that is past half the run,
  until a minute after each was restarted once. RSS rises in steps while the
  service takes in a backlog (after a broker restart: what the gateways queued;
  after an influxd restart: the spool), and the largest backlog is the one after a
  restart of both; the allocator keeps that high-water mark. A warm-up that ends
  before it measures the fault schedule, not a leak (bench/RESULTS.md, "Soak");
- readings sent (acknowledged by the broker) and readings stored in influxd, and the
  difference (the goal: 0 lost);
- each injected fault with the SYSTEM alarm that matched it (raised/cleared), and
  every other SYSTEM alarm of the run.

A summary JSON goes to ``--out`` (default: the work directory).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import shutil
import sqlite3
import struct
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
from harness import PY, ROOT, Influxd, Mosquitto, stop_process

from ingest import packets
from simulators.load import DISCONNECT, LoadSpec, _GatewayStream, write_load_registry
from tests.servers import free_port

ENTERPRISE = "LOAD"
DB = "soak"
DISCONNECT_ALARM_S = 5
LAG_ALARM_S = 10
WINDOW = 100
"""Unacknowledged messages per gateway connection at most."""
CONNACK, PUBACK = 2, 4


# --- the gateways --------------------------------------------------------------------


@dataclass
class Totals:
    readings_sampled: int = 0
    readings_acked: int = 0
    messages_acked: int = 0
    connects: int = 0
    clean_disconnects: int = 0
    broken_connections: int = 0
    refused_connects: int = 0


class _Link(asyncio.Protocol):
    """One gateway connection: CONNACK, and PUBACKs by packet id."""

    def __init__(self, on_ack: Callable[[int], None]) -> None:
        self.on_ack = on_ack
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        loop = asyncio.get_running_loop()
        self.connack: asyncio.Future[int] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        i = 0
        while len(buf) - i >= 2:
            length = buf[i + 1]  # the broker sends a publisher only 2-byte-body packets
            if len(buf) - i < 2 + length:
                break
            kind = buf[i] >> 4
            if kind == CONNACK and not self.connack.done():
                self.connack.set_result(buf[i + 3])
            elif kind == PUBACK:
                self.on_ack(int.from_bytes(buf[i + 2 : i + 4], "big"))
            i += 2 + length
        del buf[:i]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connack.done():
            self.connack.set_exception(exc or ConnectionError("closed"))
        if not self.closed.done():
            self.closed.set_result(None)


class SoakGateway:
    """Samples on its 1 Hz schedule into a queue; a connection loop drains it."""

    def __init__(self, spec: LoadSpec, gateway: str, totals: Totals, rng: random.Random) -> None:
        self.spec = spec
        self.name = gateway
        self.stream = _GatewayStream(spec, gateway)
        self.totals = totals
        self.rng = rng
        self.queue: deque[tuple[bytes, bytes, int]] = deque()
        self.inflight: dict[int, tuple[bytes, bytes, int]] = {}
        self.next_id = 0
        self.more = asyncio.Event()
        self.room = asyncio.Event()
        self.drained = asyncio.Event()
        self.sampling = True

    async def sample(self, t0: float, samples: int, phase: float) -> None:
        loop = asyncio.get_running_loop()
        for index in range(samples):
            wait = t0 + phase + index / self.spec.rate - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            for message in self.stream.sample(index):
                self.queue.append(message)
                self.totals.readings_sampled += message[2]
            self.more.set()
        self.sampling = False
        self.more.set()

    @property
    def done(self) -> bool:
        return not self.sampling and not self.queue and not self.inflight

    def _acked(self, packet_id: int) -> None:
        message = self.inflight.pop(packet_id, None)
        if message is not None:
            self.totals.readings_acked += message[2]
            self.totals.messages_acked += 1
        if len(self.inflight) <= WINDOW // 2:
            self.room.set()
        if not self.inflight:
            self.drained.set()

    async def run(self, host: str, port: int, session_s: tuple[float, float]) -> None:
        loop = asyncio.get_running_loop()
        while not self.done:
            try:
                _, link = await loop.create_connection(lambda: _Link(self._acked), host, port)
            except OSError:
                self.totals.refused_connects += 1
                await asyncio.sleep(self.rng.uniform(0.5, 1.5))
                continue
            try:
                await self._session(link, loop.time() + self.rng.uniform(*session_s))
            except (ConnectionError, OSError, TimeoutError):
                self.totals.broken_connections += 1
                await asyncio.sleep(self.rng.uniform(0.5, 1.5))
            finally:
                if link.transport is not None:
                    link.transport.close()
                # Not acknowledged: sent again on the next connection, oldest first.
                self.queue.extendleft(reversed(list(self.inflight.values())))
                self.inflight.clear()

    async def _session(self, link: _Link, until: float) -> None:
        assert link.transport is not None
        loop = asyncio.get_running_loop()
        client_id = f"soak-{ENTERPRISE}-{self.name}"
        link.transport.write(packets.connect(client_id, 60, clean_session=True))
        code = await asyncio.wait_for(link.connack, 10)
        if code != 0:
            raise ConnectionError(f"CONNACK {code}")
        self.totals.connects += 1
        self.room.set()
        while loop.time() < until and not self.done:
            if link.closed.done():
                raise ConnectionError("broker closed the connection")
            if not self.queue or len(self.inflight) >= WINDOW:
                self.more.clear()
                waiters = {asyncio.ensure_future(self.more.wait()), link.closed}
                if len(self.inflight) >= WINDOW:
                    self.room.clear()
                    waiters.add(asyncio.ensure_future(self.room.wait()))
                await asyncio.wait(
                    waiters, timeout=max(0.0, until - loop.time()), return_when="FIRST_COMPLETED"
                )
                for w in waiters:
                    if w is not link.closed:
                        w.cancel()
                continue
            out = []
            while self.queue and len(self.inflight) < WINDOW:
                message = self.queue.popleft()
                self.next_id = self.next_id % 0xFFFF + 1
                self.inflight[self.next_id] = message
                topic, payload, _ = message
                n = len(topic) + 2 + len(payload)
                out.append(
                    b"\x32"
                    + packets.remaining_length(n)
                    + topic
                    + self.next_id.to_bytes(2, "big")
                    + payload
                )
            link.transport.write(b"".join(out))
        # A clean goodbye: let what is in flight be acknowledged first.
        if self.inflight:
            self.drained.clear()
            drained = asyncio.ensure_future(self.drained.wait())
            await asyncio.wait({drained, link.closed}, timeout=10, return_when="FIRST_COMPLETED")
            drained.cancel()
        if link.closed.done() or self.inflight:
            raise ConnectionError("broker closed the connection")
        link.transport.write(DISCONNECT)
        self.totals.clean_disconnects += 1


# --- faults, memory, results ---------------------------------------------------------


@dataclass
class Fault:
    kind: str
    """``broker`` or ``influxd``."""
    started_ms: int
    back_ms: int = 0
    alarm: dict[str, object] = field(default_factory=dict)
    sessions: dict[str, list[str]] = field(default_factory=dict)
    """Broker faults: the persistent sessions in ``mosquitto.db`` just before the stop
    and after it (what the broker restores), copies kept as ``db-N-before|after``."""


def persisted_sessions(db: Path) -> list[str]:
    """Client ids of the sessions in a Mosquitto persistence file (format 6, the one
    Mosquitto 2.0 writes: a 23-byte header, then chunks of type, length, body; a
    ``CLIENT`` chunk's body is expiry time, expiry interval, last mid, id length, ...,
    then the id). Debian ships no ``mosquitto_db_dump``."""
    data = db.read_bytes() if db.exists() else b""
    ids, at = [], 23
    while at + 8 <= len(data):
        kind, length = struct.unpack_from(">II", data, at)
        body = data[at + 8 : at + 8 + length]
        at += 8 + length
        if kind == DB_CHUNK_CLIENT:
            id_len = struct.unpack_from(">H", body, 14)[0]
            ids.append(body[24 : 24 + id_len].decode())
    return ids


DB_CHUNK_CLIENT = 6


EXPECTED_ALARM = {"broker": "broker_disconnected", "influxd": "historian_lag"}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def inject(
    kind: str, server: Mosquitto | Influxd, down_s: float, faults: list[Fault]
) -> None:
    fault = Fault(kind, now_ms())
    faults.append(fault)
    print(f"  fault: {kind} stopped (SIGTERM) for {down_s:g} s", flush=True)
    if isinstance(server, Mosquitto):
        fault.sessions["before"] = keep_db(server, f"db-{len(faults)}-before")
    await asyncio.to_thread(server.stop)
    if isinstance(server, Mosquitto):
        fault.sessions["after"] = keep_db(server, f"db-{len(faults)}-after")
        print(f"  fault: sessions in mosquitto.db {fault.sessions}", flush=True)
    await asyncio.sleep(down_s)
    await asyncio.to_thread(server.start)
    fault.back_ms = now_ms()
    print(f"  fault: {kind} back", flush=True)


def keep_db(broker: Mosquitto, name: str) -> list[str]:
    db = broker.workdir / "mosquitto.db"
    if db.exists():
        shutil.copy(db, broker.workdir / name)
    return persisted_sessions(db)


async def fault_schedule(
    kind: str,
    server: Mosquitto | Influxd,
    every_s: float,
    down_s: float,
    end: float,
    faults: list[Fault],
) -> None:
    loop = asyncio.get_running_loop()
    at = loop.time() + every_s
    while at + down_s + 60 < end:  # a fault the run cannot see recover is not injected
        await asyncio.sleep(at - loop.time())
        await inject(kind, server, down_s, faults)
        at += every_s


def system_alarms(journal: Path) -> list[dict[str, object]]:
    """Every raise and clear of a SYSTEM alarm in the journal, oldest first."""
    conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute(
            "SELECT a.tag, t.kind, t.at_ms, a.id FROM transitions t "
            "JOIN alarms a ON a.id = t.alarm_id WHERE a.type = 'SYSTEM' "
            "AND t.kind IN ('raised', 'cleared') ORDER BY t.at_ms, t.seq"
        ).fetchall()
    finally:
        conn.close()
    return [{"tag": r[0], "kind": r[1], "at_ms": r[2], "alarm": r[3]} for r in rows]


def match_faults(faults: list[Fault], events: list[dict[str, object]]) -> list[dict[str, object]]:
    """Give each fault the first raise of its alarm after it started (and before the
    next fault of its kind), and the first clear of that tag after the raise."""
    used: set[int] = set()
    for fault in faults:
        tag = EXPECTED_ALARM[fault.kind]
        raise_i = next(
            (
                i
                for i, e in enumerate(events)
                if i not in used
                and e["tag"] == tag
                and e["kind"] == "raised"
                and fault.started_ms <= int(e["at_ms"]) <= fault.back_ms + 60_000  # type: ignore[call-overload]
            ),
            None,
        )
        if raise_i is None:
            continue
        used.add(raise_i)
        raised = events[raise_i]
        clear_i = next(
            (
                i
                for i, e in enumerate(events)
                if i > raise_i and i not in used and e["tag"] == tag and e["kind"] == "cleared"
            ),
            None,
        )
        fault.alarm = {"tag": tag, "raised_ms": raised["at_ms"]}
        if clear_i is not None:
            used.add(clear_i)
            fault.alarm["cleared_ms"] = events[clear_i]["at_ms"]
    return [e for i, e in enumerate(events) if i not in used]


def influx_count(influx: Influxd) -> int:
    data = urllib.parse.urlencode({"q": "SELECT count(value) FROM reading", "db": DB}).encode()
    with urllib.request.urlopen(f"{influx.url}/query", data=data, timeout=600) as r:
        doc = json.loads(r.read())
    series = doc["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


def create_db(influx: Influxd) -> None:
    data = urllib.parse.urlencode({"q": f'CREATE DATABASE "{DB}"'}).encode()
    with urllib.request.urlopen(f"{influx.url}/query", data=data, timeout=60) as r:
        r.read()


def spool_depth(console: str) -> float | None:
    """``hazwatch_spool_depth_readings`` from /metrics (None while unreachable)."""
    try:
        with urllib.request.urlopen(f"{console}metrics", timeout=10) as r:
            text = r.read().decode()
    except (urllib.error.URLError, OSError):
        return None
    for line in text.splitlines():
        if line.startswith("hazwatch_spool_depth_readings "):
            return float(line.split()[1])
    return None


def default_warmup_s(args: argparse.Namespace) -> float:
    """See the module's docstring: until the first restart of both, plus a minute."""
    broker, influx = round(args.broker_every), round(args.influx_every)
    both = broker * influx // math.gcd(broker, influx)
    if both + 60 <= args.minutes * 30:
        return both + max(args.broker_down, args.influx_down) + 60
    return max(broker + args.broker_down, influx + args.influx_down) + 60


def rss_summary(samples: list[tuple[float, float]], warmup_s: float) -> dict[str, float]:
    after = [(t, r) for t, r in samples if t >= warmup_s]
    if len(after) < 2:
        return {}
    first = after[0][1]
    ts = [t / 3600 for t, _ in after]
    rs = [r for _, r in after]
    mt, mr = sum(ts) / len(ts), sum(rs) / len(rs)
    var = sum((t - mt) ** 2 for t in ts)
    slope = sum((t - mt) * (r - mr) for t, r in zip(ts, rs, strict=True)) / var if var else 0.0
    return {
        "first_mib": round(first, 1),
        "min_mib": round(min(rs), 1),
        "max_mib": round(max(rs), 1),
        "last_mib": round(rs[-1], 1),
        "max_deviation_pct": round(100 * max(abs(r - first) for r in rs) / first, 1),
        "slope_mib_per_h": round(slope, 1),
    }


# --- the run -------------------------------------------------------------------------


def write_config(work: Path, registry: Path, mqtt: Mosquitto, influx: Influxd) -> tuple[Path, str]:
    console_port = free_port()
    config = work / "hazwatch.toml"
    config.write_text(
        f'registry = "{registry}"\n'
        f'[mqtt]\nurl = "{mqtt.url}"\nclient_id = "hazwatch-soak"\n'
        f"disconnect_alarm_s = {DISCONNECT_ALARM_S}\n"
        f'[storage]\nbackend = "influxdb"\npath = "{work}/readings.db"\n'
        f'[storage.influxdb]\nurl = "{influx.url}"\napi = "v1"\ndatabase = "{DB}"\n'
        f'[journal]\npath = "{work}/journal.db"\n'
        f'[ingest]\nspool_path = "{work}/spool.db"\nlag_alarm_s = {LAG_ALARM_S}\n'
        f'[console]\nlisten = "127.0.0.1:{console_port}"\n'
    )
    return config, f"http://127.0.0.1:{console_port}/"


async def soak(args: argparse.Namespace, work: Path) -> dict[str, object]:
    duration_s = args.minutes * 60
    warmup_s = args.warmup * 60 if args.warmup is not None else default_warmup_s(args)
    spec = LoadSpec(
        gateways=args.gateways,
        points=args.points,
        rate=1.0,
        duration=duration_s,
        enterprise=ENTERPRISE,
    )
    registry = write_load_registry(work / "registry", spec)
    mqtt, influx = Mosquitto(work / "mosquitto"), Influxd(work / "influxd")
    mqtt.start()
    influx.start()
    create_db(influx)
    config, console = write_config(work, registry, mqtt, influx)
    log = (work / "hazwatch.log").open("ab")
    cmd = [PY, "-m", "hazwatch.cli", "--log-level", "warning", "run", "--config", str(config)]
    service = await asyncio.to_thread(subprocess.Popen, cmd, cwd=ROOT, stdout=log, stderr=log)
    proc = psutil.Process(service.pid)
    totals = Totals()
    faults: list[Fault] = []
    samples: list[tuple[float, float]] = []
    rng = random.Random(7)
    try:
        while spool_depth(console) is None:  # the console answers once the wiring is up
            if service.poll() is not None:
                raise RuntimeError(f"hazwatch exited: see {work}/hazwatch.log")
            await asyncio.sleep(0.5)
        loop = asyncio.get_running_loop()
        t0 = loop.time() + 1
        end = t0 + duration_s
        gateways = [SoakGateway(spec, gw, totals, rng) for gw in spec.gateway_ids()]
        samples_n = round(duration_s * spec.rate)
        tasks = [
            *(
                asyncio.create_task(gw.sample(t0, samples_n, k / len(gateways)))
                for k, gw in enumerate(gateways)
            ),
            *(
                asyncio.create_task(
                    gw.run("127.0.0.1", mqtt.port, (args.session_min, args.session_max))
                )
                for gw in gateways
            ),
        ]
        fault_tasks = [
            asyncio.create_task(
                fault_schedule("broker", mqtt, args.broker_every, args.broker_down, end, faults)
            ),
            asyncio.create_task(
                fault_schedule("influxd", influx, args.influx_every, args.influx_down, end, faults)
            ),
        ]
        print(
            f"soak: {args.minutes:g} min, {spec.gateways} gateways x {spec.points} points at 1 Hz "
            f"= {spec.gateways * spec.points:,} readings/s; work dir {work}",
            flush=True,
        )
        print("   min   RSS MiB   sampled     acked  spool  connects  broken", flush=True)
        while loop.time() < end + 1:
            await asyncio.sleep(min(args.sample, max(0.1, end + 1 - loop.time())))
            t = loop.time() - t0
            rss = proc.memory_info().rss / 2**20
            samples.append((t, rss))
            depth = await asyncio.to_thread(spool_depth, console)
            print(
                f"{t / 60:6.1f} {rss:9.1f} {totals.readings_sampled:9,} {totals.readings_acked:9,}"
                f" {depth if depth is not None else -1:6.0f} {totals.connects:9,}"
                f" {totals.broken_connections:7,}",
                flush=True,
            )
        await asyncio.gather(*fault_tasks)
        print("load over: waiting for every gateway's queue to be acknowledged", flush=True)
        async with asyncio.timeout(300):
            await asyncio.gather(*tasks)
        print("waiting for influxd to hold every acknowledged reading", flush=True)
        stored, last_change = 0, time.monotonic()
        while stored < totals.readings_acked and time.monotonic() - last_change < 120:
            await asyncio.sleep(10)
            now_stored = await asyncio.to_thread(influx_count, influx)
            if now_stored != stored:
                stored, last_change = now_stored, time.monotonic()
        await asyncio.sleep(args.clear_wait)  # a last alarm's clear (historian caught up)
        events = await asyncio.to_thread(system_alarms, work / "journal.db")
        others = match_faults(faults, events)
        return {
            "args": vars(args),
            "readings_per_s": spec.gateways * spec.points,
            "totals": asdict(totals),
            "readings_stored": stored,
            "readings_lost": totals.readings_acked - stored,
            "rss": rss_summary(samples, warmup_s),
            "warmup_s": warmup_s,
            "rss_samples": [(round(t), round(r, 1)) for t, r in samples],
            "faults": [asdict(f) for f in faults],
            "other_system_alarms": others,
            "service_exit": service.poll(),
        }
    finally:
        stop_process(service)
        mqtt.stop()
        influx.stop()


def report(result: dict[str, object]) -> None:
    rss = result["rss"]
    print("\n=== soak result")
    print(f"RSS after the warm-up of {result['warmup_s'] / 60:g} min: {rss}")
    totals = result["totals"]
    print(
        f"readings sampled {totals['readings_sampled']:,}, acknowledged by the broker "  # type: ignore[index]
        f"{totals['readings_acked']:,}, stored {result['readings_stored']:,}, "  # type: ignore[index]
        f"lost {result['readings_lost']:,}"
    )
    print(
        f"gateway connections: {totals['connects']:,} connects, "  # type: ignore[index]
        f"{totals['clean_disconnects']:,} clean disconnects, "  # type: ignore[index]
        f"{totals['broken_connections']:,} broken by faults, "  # type: ignore[index]
        f"{totals['refused_connects']:,} refused connects"  # type: ignore[index]
    )
    for f in result["faults"]:  # type: ignore[attr-defined]
        alarm = f["alarm"]
        start = f["started_ms"]
        if not alarm:
            seen = "NO SYSTEM ALARM"
        else:
            raised = (alarm["raised_ms"] - start) / 1000
            cleared = alarm.get("cleared_ms")
            seen = f"{alarm['tag']} raised +{raised:.1f} s, " + (
                f"cleared +{(cleared - start) / 1000:.1f} s" if cleared else "NOT CLEARED"
            )
        print(f"  fault {f['kind']:8} down {(f['back_ms'] - start) / 1000:5.1f} s: {seen}")
    print(f"other SYSTEM alarm events: {result['other_system_alarms']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=120)
    parser.add_argument("--gateways", type=int, default=200)
    parser.add_argument("--points", type=int, default=50, help="per gateway, sampled at 1 Hz")
    parser.add_argument("--session-min", type=float, default=30)
    parser.add_argument("--session-max", type=float, default=120)
    parser.add_argument("--broker-every", type=float, default=600)
    parser.add_argument("--broker-down", type=float, default=15)
    parser.add_argument("--influx-every", type=float, default=900)
    parser.add_argument("--influx-down", type=float, default=30)
    parser.add_argument("--sample", type=float, default=30, help="seconds between RSS samples")
    parser.add_argument(
        "--warmup",
        type=float,
        help="minutes before RSS counts (default: until a minute after the first restart "
        "of both servers at once)",
    )
    parser.add_argument("--clear-wait", type=float, default=15)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="hazwatch-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(soak(args, work))
    out = args.out or work / "soak.json"
    out.write_text(json.dumps(result, indent=1, default=str))
    report(result)
    print(f"summary: {out}")
    ok = result["readings_lost"] == 0 and all(
        f["alarm"].get("cleared_ms")  # type: ignore[attr-defined]
        for f in result["faults"]  # type: ignore[attr-defined]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

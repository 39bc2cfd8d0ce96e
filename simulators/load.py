"""A load generator for the ingest benchmark: many gateways, sustained rate.

Each gateway is one MQTT 3.1.1 connection on a raw asyncio socket. It publishes QoS 1
PUBLISH packets built from pre-encoded parts (topic field, reading arrays) and keeps
at most ``window`` of them unacknowledged, counting the broker's PUBACKs.

Why a hand-written encoder and not paho: paho's ``publish()`` costs ~90 µs per QoS 1
message, so a paho publisher tops out near 11,000 messages/s on a whole core
(docs/architecture.md#the-load-generator) — on one-reading-per-message loads it would measure itself
and take a core from the system under test. What a load generator needs of MQTT is
four packets (CONNECT, PUBLISH QoS 1, PUBACK, DISCONNECT), a few lines each; no
maintained Python library offers pre-encoded QoS 1 publishing with a bounded window.

Loads (names as in :class:`LoadSpec`):

- **batches**: gateway ``gNN`` publishes its ``points`` readings on
  ``hz/v1/{enterprise}/gNN/data``, 100 readings per message, with an increasing ``seq``;
- **singles** (``--singles``): one reading per message on
  ``hz/v1/{enterprise}/gNN/tag/{tag}`` — one message per meter.

Every point is sampled ``rate`` times per second for ``duration`` seconds. By default
every gateway sends its sample at the same instant (a burst of ``gateways × points``
readings each period, the worst case); with ``spread`` gateway *k* of *n* sends its
samples *k/n* of a period later, as independent gateways on 1 Hz clocks do. A sample is
stamped with the wall-clock milliseconds when it is sent (bumped by 1 ms if needed so
that no series repeats a timestamp: stored readings are never overwritten). A rate
above what the broker takes simply sends as fast as the window allows.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from ingest import packets

READINGS_PER_MESSAGE = 100
DEFAULT_WINDOW = 1000
VALUES = tuple(40.0 + 0.5 * n for n in range(16))
"""Normal values, between the generated registry's L (10) and H (80) limits."""
LIMITS = {"min": "0", "max": "100", "l": "10", "h": "80", "hh": "90", "interval_s": "60"}

# --- the MQTT 3.1.1 encoder (only what a publisher needs) --------------------------

DISCONNECT = b"\xe0\x00"
_CONNACK, _PUBACK = 2, 4


class MqttProtocolError(RuntimeError):
    pass


def encode_connect(client_id: str) -> bytes:
    """CONNECT: MQTT 3.1.1, clean session, no keepalive, no will, no credentials."""
    return packets.connect(client_id, 0, clean_session=True)


def encode_publish(topic_field: bytes, packet_id: int, payload: bytes) -> bytes:
    """PUBLISH, QoS 1, not retained; ``topic_field`` is ``utf8(topic)``, pre-encoded."""
    n = len(topic_field) + 2 + len(payload)
    return (
        b"\x32" + packets.remaining_length(n) + topic_field + packet_id.to_bytes(2, "big") + payload
    )


class _Connection(asyncio.Protocol):
    """One publisher connection: counts PUBACKs, wakes the sender when the window frees."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.inflight = 0
        self.acked = 0
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        loop = asyncio.get_running_loop()
        self.connack: asyncio.Future[int] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.room = asyncio.Event()
        self.drained = asyncio.Event()
        self.drained.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        i, n, acks = 0, len(buf), 0
        while n - i >= 2:
            length = buf[i + 1]
            if length & 0x80:  # the broker sends us only CONNACK and PUBACK (2 bytes)
                self._fail(MqttProtocolError(f"unexpected long packet {buf[i]:#x}"))
                return
            if n - i < 2 + length:
                break
            kind = buf[i] >> 4
            if kind == _PUBACK:
                acks += 1
            elif kind == _CONNACK and not self.connack.done():
                self.connack.set_result(buf[i + 3])
            i += 2 + length
        del buf[:i]
        if acks:
            self.acked += acks
            self.inflight -= acks
            if self.inflight <= self.window // 2:
                self.room.set()
            if self.inflight == 0:
                self.drained.set()

    def _fail(self, exc: Exception) -> None:
        if self.transport is not None:
            self.transport.close()
        if not self.connack.done():
            self.connack.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connack.done():
            self.connack.set_exception(exc or ConnectionError("connection closed"))
        if not self.closed.done():
            self.closed.set_result(None)
        self.room.set()
        self.drained.set()

    def send(self, packets: list[bytes]) -> None:
        """Write ``packets`` in one system call (one write per packet would cost more
        than encoding it)."""
        assert self.transport is not None
        self.transport.write(b"".join(packets))
        self.inflight += len(packets)
        self.drained.clear()
        if self.inflight >= self.window:
            self.room.clear()


# --- the load ----------------------------------------------------------------------


@dataclass(frozen=True)
class LoadSpec:
    gateways: int
    points: int
    """Points per gateway (meters per gateway with ``singles``)."""
    rate: float
    """Samples per point per second."""
    duration: float
    singles: bool = False
    enterprise: str = "LOAD"
    spread: bool = False
    """Gateways' samples spread evenly over the period instead of all at once."""
    window: int = DEFAULT_WINDOW

    @property
    def samples(self) -> int:
        return max(1, round(self.rate * self.duration))

    @property
    def messages_per_sample(self) -> int:
        """Messages one gateway sends per sample."""
        if self.singles:
            return self.points
        return -(-self.points // READINGS_PER_MESSAGE)

    @property
    def total_readings(self) -> int:
        return self.gateways * self.points * self.samples

    @property
    def total_messages(self) -> int:
        return self.gateways * self.messages_per_sample * self.samples

    def gateway_ids(self) -> list[str]:
        return [f"g{n:02d}" for n in range(1, self.gateways + 1)]

    def tags(self, gateway: str) -> list[str]:
        prefix = "M" if self.singles else "P"
        return [f"{gateway}_{prefix}{n:04d}" for n in range(1, self.points + 1)]


@dataclass(frozen=True)
class LoadResult:
    messages: int
    readings: int
    acked: int
    elapsed_s: float
    """First publish to last PUBACK."""
    cpu_s: float
    started_at: float = 0.0
    """Wall-clock time (epoch s) of the first publish: where a benchmark's clock starts."""

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "messages": self.messages,
            "readings": self.readings,
            "acked": self.acked,
            "elapsed_s": round(self.elapsed_s, 3),
            "readings_per_s": round(self.readings_per_s),
            "messages_per_s": round(self.messages / self.elapsed_s) if self.elapsed_s else 0,
            "cpu_s": round(self.cpu_s, 3),
            "started_at": self.started_at,
        }


def write_load_registry(root: Path, spec: LoadSpec) -> Path:
    """A registry holding every point of ``spec`` (one installation per gateway), with
    limits that the generated values stay within."""
    (root / "enterprises").mkdir(parents=True, exist_ok=True)
    (root / "points").mkdir(exist_ok=True)
    e = spec.enterprise
    installations = "".join(
        f'[[installations]]\nid = "{gw.upper()}"\nname = "Load {gw}"\ngrade = 3\n'
        f'points = "points/{e}.csv"\n'
        for gw in spec.gateway_ids()
    )
    (root / "enterprises" / f"{e}.toml").write_text(
        f'id = "{e}"\nname = "Load test"\ngrid = "G1"\n{installations}'
    )
    kind = "power" if spec.singles else "other"
    rows = ["installation,tag,name,kind," + ",".join(LIMITS)]
    for gw in spec.gateway_ids():
        rows += [
            f"{gw.upper()},{t},Point {t},{kind}," + ",".join(LIMITS.values()) for t in spec.tags(gw)
        ]
    (root / "points" / f"{e}.csv").write_text("\n".join(rows) + "\n")
    return root


class _GatewayStream:
    """The pre-encoded packets of one gateway, sample after sample."""

    def __init__(self, spec: LoadSpec, gateway: str) -> None:
        prefix = f"hz/v1/{spec.enterprise}/{gateway}"
        tags = spec.tags(gateway)
        self.singles = spec.singles
        self.seq = 0
        self.last_ts = 0
        if spec.singles:
            self.topics = [packets.utf8(f"{prefix}/tag/{t}") for t in tags]
            self.values = [orjson.dumps(v) for v in VALUES]
        else:
            self.topic = packets.utf8(f"{prefix}/data")
            chunks = [
                tags[i : i + READINGS_PER_MESSAGE]
                for i in range(0, len(tags), READINGS_PER_MESSAGE)
            ]
            # [variant][chunk] -> the encoded readings array of one message
            self.arrays = [
                [orjson.dumps([{"tag": t, "v": v} for t in chunk]) for chunk in chunks]
                for v in VALUES
            ]
            self.sizes = [len(chunk) for chunk in chunks]

    def sample(self, index: int) -> Iterator[tuple[bytes, bytes, int]]:
        """(topic field, payload, readings) of every message of sample ``index``."""
        ts = max(time.time_ns() // 1_000_000, self.last_ts + 1)
        self.last_ts = ts
        variant = index % len(VALUES)
        if self.singles:
            value = self.values[variant]
            tail = b',"ts":%d}' % ts
            for topic in self.topics:
                yield topic, b'{"v":' + value + tail, 1
        else:
            for array, size in zip(self.arrays[variant], self.sizes, strict=True):
                self.seq += 1
                yield self.topic, b'{"seq":%d,"ts":%d,"readings":%b}' % (self.seq, ts, array), size


async def _publish_gateway(  # noqa: PLR0917 - one call site
    spec: LoadSpec, gateway: str, host: str, port: int, started: list[float], phase: float
) -> tuple[int, int, int]:
    loop = asyncio.get_running_loop()
    stream = _GatewayStream(spec, gateway)
    _, conn = await loop.create_connection(lambda: _Connection(spec.window), host, port)
    try:
        assert conn.transport is not None
        conn.transport.write(encode_connect(f"load-{spec.enterprise}-{gateway}"))
        code = await asyncio.wait_for(conn.connack, 10)
        if code != 0:
            raise MqttProtocolError(f"broker refused the connection: CONNACK {code}")
        if not started:
            started += [time.perf_counter(), time.time()]
        t0 = loop.time() + phase / spec.rate
        messages = readings = 0
        packet_id = 0
        for index in range(spec.samples):
            wait = t0 + index / spec.rate - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)  # the schedule itself
            pending: list[bytes] = []
            for topic, payload, size in stream.sample(index):
                if conn.inflight + len(pending) >= conn.window:
                    if pending:
                        conn.send(pending)
                        pending = []
                    await conn.room.wait()
                    if conn.closed.done():
                        raise ConnectionError(f"{gateway}: broker closed the connection")
                packet_id = packet_id % 0xFFFF + 1
                pending.append(encode_publish(topic, packet_id, payload))
                messages += 1
                readings += size
            if pending:
                conn.send(pending)
        await conn.drained.wait()
        if conn.closed.done() and conn.inflight:
            raise ConnectionError(f"{gateway}: connection lost with {conn.inflight} unacked")
        conn.transport.write(DISCONNECT)
        return messages, readings, conn.acked
    finally:
        if conn.transport is not None:
            conn.transport.close()


async def run_load(spec: LoadSpec, broker_url: str) -> LoadResult:
    """Publish the whole load; returns once every message was acknowledged."""
    parts = urlsplit(broker_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 1883
    cpu0 = _cpu_s()
    started: list[float] = []
    results = await asyncio.gather(
        *(
            _publish_gateway(spec, gw, host, port, started, k / spec.gateways if spec.spread else 0)
            for k, gw in enumerate(spec.gateway_ids())
        )
    )
    elapsed = time.perf_counter() - started[0]
    return LoadResult(
        messages=sum(r[0] for r in results),
        readings=sum(r[1] for r in results),
        acked=sum(r[2] for r in results),
        elapsed_s=elapsed,
        cpu_s=_cpu_s() - cpu0,
        started_at=started[1],
    )


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

"""Latency at half load (issue 10): publish → stored, and publish → alarm for hazwatch.

Two shapes of the same offered rate: **burst** (every gateway sends its sample at the
same instant — ``gateways × points`` readings at once each period, the worst case)
and **spread** (gateway *k* of *n* sends *k/n* of a period later, as independent
gateways on their own 1 Hz clocks do). An alarm probe is one reading above HH on a
point of its own, published once (QoS 1) at an even pace through the run; its alarm
is timed when the alarm JSON arrives on ``hz/v1/{enterprise}/alarms`` — what a
subscriber of the platform sees — and when its first notification attempt reaches a
webhook (a local HTTP receiver, :class:`WebhookReceiver`, configured as hazwatch's
``[alerting] webhooks`` feed): alarm → notified is that arrival minus the alarm's
arrival on the topic. For hazwatch the run ends with a scrape of its
``/metrics``: where the alarms' time went, stage by stage
(``hazwatch_alarm_stage_seconds``, ``hazwatch_ingest_stage_seconds``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from harness import (
    ALARM_TAGS,
    Load,
    Row,
    generate,
    generator_result,
    influx_query,
    points_written,
    probe,
    publish_one,
    start_subject,
    stop_process,
)

from simulators.load import LoadSpec
from tests.servers import Influxd, Mosquitto


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


class AlarmListener:
    """Receive times of the first alarm event per tag on ``hz/v1/{enterprise}/alarms``."""

    def __init__(self, port: int, enterprise: str) -> None:
        import paho.mqtt.client as paho  # noqa: PLC0415
        from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

        self.first: dict[str, float] = {}
        subscribed = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-alarms")

        def on_message(_c: object, _u: object, message: paho.MQTTMessage) -> None:
            tag = json.loads(message.payload).get("tag", "")
            self.first.setdefault(tag, time.time())

        self._client.on_message = on_message
        self._client.on_subscribe = lambda *_: subscribed.set()
        self._client.on_connect = lambda c, *_: c.subscribe(f"hz/v1/{enterprise}/alarms", qos=1)
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        if not subscribed.wait(10):
            raise RuntimeError("alarm listener: no SUBACK")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class WebhookReceiver:
    """A local HTTP server: the arrival time of the first POST per alarm tag (each
    request is answered 204 at once, as a receiver that queues its work does)."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        first = self.first

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                arrived = time.time()
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with contextlib.suppress(ValueError, AttributeError):
                    first.setdefault(json.loads(body)["alarm"]["tag"], arrived)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


_BUCKET = re.compile(r"^(hazwatch_\w+)_bucket\{([^}]*)\} (\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')
STAGES = {  # histogram: (its label, how the figures name it)
    "hazwatch_alarm_latency_seconds": ("channel", "reading → published on"),
    "hazwatch_alarm_stage_seconds": ("stage", "alarm"),
    "hazwatch_ingest_stage_seconds": ("stage", "batch"),
}


def stage_figures(console_port: int) -> str:
    """p50/p99 (bucket upper bounds) of hazwatch's alarm and ingest stage histograms."""
    with urllib.request.urlopen(f"http://127.0.0.1:{console_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    buckets: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for line in text.splitlines():
        m = _BUCKET.match(line)
        if m is None or m[1] not in STAGES:
            continue
        labels = dict(_LABEL.findall(m[2]))
        label, prefix = STAGES[m[1]]
        name = f"{prefix} {labels[label]}"
        buckets.setdefault((m[1], name), []).append((float(labels["le"]), float(m[3])))
    out = []
    for (_, stage), rows in sorted(buckets.items()):
        total = rows[-1][1]
        if not total:
            continue

        def q(share: float, rows: list[tuple[float, float]] = rows, total: float = total) -> str:
            le = next(le for le, n in rows if n >= share * total)
            return "inf" if le == float("inf") else f"≤{1000 * le:g}"

        out.append(f"{stage} p50 {q(0.5)} p99 {q(0.99)} ms (n {total:.0f})")
    return "; ".join(out)


def run_latency(
    system: str, load: Load, influx: Influxd, tmp: Path, rate: float, *, spread: bool = False
) -> Row:
    """Publish at ``rate`` readings/s; publish → stored p50/p99 from the publish schedule
    and influxd's ``pointsWrittenOK`` polled every 10 ms (readings are stored in the
    order they are published); for hazwatch also publish → alarm on the MQTT alarm topic."""
    base = load.spec
    per_sample = base.gateways * base.points
    duration = 10.0 if base.duration > 1 else 6.0
    spec = LoadSpec(
        base.gateways, base.points, rate / per_sample, duration, base.singles, spread=spread
    )
    shape = "spread" if spread else "burst"
    work = tmp / f"{load.name}-{system}-latency-{shape}"
    work.mkdir()
    db = f"bench_{load.name}_{system.replace('-', '_')}_latency_{shape}"
    row = Row(f"{system} latency {shape}", load.name, spec.total_readings)
    mqtt = Mosquitto(work / "mosquitto")
    mqtt.start()
    subject = listener = receiver = None
    try:
        influx_query(influx, f'CREATE DATABASE "{db}"')
        latency_load = Load(load.name, spec, load.naive)
        extra = ""
        if system == "hazwatch":
            receiver = WebhookReceiver()
            extra = f'[alerting]\nwebhooks = ["{receiver.url}"]\nallow_private = ["127.0.0.1"]\n'
        subject = start_subject(system, work, mqtt, influx, db, latency_load, extra)
        assert subject is not None
        if system == "hazwatch":
            listener = AlarmListener(mqtt.port, spec.enterprise)
        probe(mqtt, influx, db, spec)
        baseline = points_written(influx)
        curve: list[tuple[float, int]] = []
        generator = generate(mqtt, spec, work)
        spikes: dict[str, float] = {}
        spike_every = duration / (ALARM_TAGS + 2)
        next_spike = time.time() + spike_every
        deadline = time.time() + duration + 120
        while time.time() < deadline:
            now = time.time()
            written = points_written(influx) - baseline
            if not curve or written != curve[-1][1]:
                curve.append((now, written))
            if written >= spec.total_readings:
                break
            if listener is not None and now >= next_spike and len(spikes) < ALARM_TAGS:
                tag = f"ALARM_{len(spikes) + 1:03d}"
                ts = int(now * 1000)
                topic = f"hz/v1/{spec.enterprise}/g01/tag/{tag}"
                spikes[tag] = now
                publish_one(mqtt.port, topic, json.dumps({"v": 95.0, "ts": ts}).encode())
                next_spike += spike_every
            time.sleep(0.01)
        generator.wait(60)
        started = generator_result(work)["started_at"]
        written_at = [t for t, _ in curve]
        delays = []
        for k in range(1, spec.total_readings + 1, max(1, spec.total_readings // 2000)):
            if spread:  # the k-th reading: k / (readings per second) into the run
                published = started + (k - 1) / (per_sample * spec.rate)
            else:
                published = started + ((k - 1) // per_sample) / spec.rate
            i = next((i for i, (_, w) in enumerate(curve) if w >= k), None)
            if i is not None:
                delays.append(1000 * max(0.0, written_at[i] - published))
        row.stored = curve[-1][1] if curve else 0
        row.elapsed_s = (curve[-1][0] - started) if curve else 0.0
        row.note = (
            f"offered {rate:,.0f}/s ({shape}), load average {os.getloadavg()[0]:.2f}; "
            f"publish → stored p50 {percentile(delays, 0.5):.0f} ms, "
            f"p99 {percentile(delays, 0.99):.0f} ms"
        )
        if listener is not None:
            time.sleep(1.0)  # the last spikes' alarms are on their way: wait, then read
            alarm_ms = [
                1000 * (listener.first[t] - s) for t, s in spikes.items() if t in listener.first
            ]
            row.note += (
                f"; publish → alarm p50 {percentile(alarm_ms, 0.5):.0f} ms, p99 "
                f"{percentile(alarm_ms, 0.99):.0f} ms, max {max(alarm_ms, default=0):.0f} ms "
                f"({len(alarm_ms)} of {len(spikes)} alarms)"
            )
            if receiver is not None:
                notified_ms = [
                    1000 * (receiver.first[t] - listener.first[t])
                    for t in spikes
                    if t in receiver.first and t in listener.first
                ]
                row.note += (
                    f"; alarm → webhook notified p50 {percentile(notified_ms, 0.5):.0f} ms, "
                    f"p99 {percentile(notified_ms, 0.99):.0f} ms, "
                    f"max {max(notified_ms, default=0):.0f} ms ({len(notified_ms)} notified)"
                )
            port = re.search(r'listen = "127.0.0.1:(\d+)"', (work / "hazwatch.toml").read_text())
            with contextlib.suppress(OSError, StopIteration):
                if port is not None:
                    row.note += f"; in-process: {stage_figures(int(port[1]))}"
        return row
    finally:
        if listener is not None:
            listener.close()
        if receiver is not None:
            receiver.close()
        if subject is not None:
            stop_process(subject)
        mqtt.stop()
        with contextlib.suppress(OSError):
            influx_query(influx, f'DROP DATABASE "{db}"')

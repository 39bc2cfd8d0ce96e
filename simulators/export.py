"""``hazwatch export``: stored readings of a time range, as a recording.

Reads the storage the configuration names — InfluxDB over the v1 query API
(InfluxQL on ``/query``, the one every major version serves) or the embedded SQLite
file — oldest first, streaming (InfluxDB's ``chunked`` answers; a SQLite cursor), and
writes what gateways would have sent: for each timestamp and installation one hz-json
``data`` message on ``hz/v1/{enterprise}/{installation}-gw/data`` (the simulators'
gateway naming), ``t`` = the readings' time::

    {"ts": 1763820000000, "readings": [{"tag": "TK101_LT", "v": 3.42},
                                       {"tag": "TK101_TT", "v": 25.1, "q": "uncertain"}]}

A message holds at most ``[ingest] max_readings`` readings and ``max_payload_bytes``
bytes (more are split over several messages), so the service accepts it. Replayed
into a fresh service, an export stores the same points again; a backtest over it
sees the readings arrive exactly at their own time. What storage does not keep —
rejected messages, gateway statuses, seq numbers, receive times — is not in an export.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, groupby
from pathlib import Path
from typing import Any

import httpx
import orjson

from hazwatch.errors import ExportError
from hazwatch.models import ms_to_iso
from hazwatch.settings import InfluxSettings, IngestSettings, StorageSettings, url_without_userinfo
from ingest.influx import influx_credentials
from ingest.lineprotocol import MEASUREMENT, influxql_identifier
from simulators.gateways import gateway_id
from simulators.recording import RecordedMessage, RecordingHeader, RecordingWriter

CHUNK_SIZE = 10_000
"""Rows per chunk of InfluxDB's streamed answer."""


@dataclass(frozen=True, slots=True)
class StoredReading:
    ts_ms: int
    enterprise: str
    installation: str
    tag: str
    value: float
    quality: str


@dataclass(frozen=True)
class ExportResult:
    readings: int
    messages: int


def export(
    storage: StorageSettings,
    limits: IngestSettings,
    *,
    start_ms: int,
    end_ms: int,
    out: Path,
    on_progress: Callable[[int], None] | None = None,
) -> ExportResult:
    """Write the readings of ``start_ms <= ts < end_ms`` to a new recording ``out``.

    ``on_progress(ts_ms)`` is called with the time reached after each timestamp. The
    storage is asked before ``out`` is created, so an unreachable InfluxDB or a
    missing file leaves no empty recording behind.
    """
    if end_ms <= start_ms:
        raise ExportError(
            f"expected the end after the start, got {ms_to_iso(start_ms)} .. {ms_to_iso(end_ms)}"
        )
    if storage.backend == "influxdb":
        found = influx_readings(storage.influxdb, start_ms, end_ms)
        influx = storage.influxdb
        where = f"influxdb {url_without_userinfo(influx.url)} database {influx.database}"
    else:
        found = sqlite_readings(storage.path, start_ms, end_ms)
        where = f"sqlite {storage.path}"
    first = next(found, None)
    source = found if first is None else chain([first], found)
    header = RecordingHeader(
        started_ms=start_ms,
        source=f"export of {where}, {ms_to_iso(start_ms)} .. {ms_to_iso(end_ms)}",
    )
    readings = messages = 0
    with RecordingWriter(out, header) as writer:
        for ts_ms, rows in groupby(source, key=lambda r: r.ts_ms):
            group = list(rows)
            readings += len(group)
            for message in gateway_messages(ts_ms, group, limits):
                writer.write(message)
                messages += 1
            if on_progress is not None:
                on_progress(ts_ms)
    return ExportResult(readings=readings, messages=messages)


def gateway_messages(
    ts_ms: int, readings: Iterable[StoredReading], limits: IngestSettings
) -> Iterator[RecordedMessage]:
    """The hz-json ``data`` messages that carry ``readings`` (all of time ``ts_ms``): one
    per (enterprise, installation), split to keep within the service's limits."""
    head = b'{"ts":%d,"readings":[' % ts_ms
    ordered = sorted(readings, key=lambda r: (r.enterprise, r.installation, r.tag))
    for (enterprise, installation), group in groupby(
        ordered, key=lambda r: (r.enterprise, r.installation)
    ):
        topic = f"hz/v1/{enterprise}/{gateway_id(installation)}/data"
        items: list[bytes] = []
        size = len(head) + 2
        for reading in group:
            item: dict[str, Any] = {"tag": reading.tag, "v": reading.value}
            if reading.quality != "good":
                item["q"] = reading.quality
            encoded = orjson.dumps(item)
            if items and (
                len(items) >= limits.max_readings
                or size + len(encoded) + 1 > limits.max_payload_bytes
            ):
                yield RecordedMessage(ts_ms, topic, head + b",".join(items) + b"]}")
                items, size = [], len(head) + 2
            items.append(encoded)
            size += len(encoded) + 1
        if items:
            yield RecordedMessage(ts_ms, topic, head + b",".join(items) + b"]}")


# --- reading storage ---------------------------------------------------------------------


def influx_readings(
    settings: InfluxSettings, start_ms: int, end_ms: int
) -> Iterator[StoredReading]:
    """§3.8 points of ``start_ms <= time < end_ms``, oldest first, streamed in chunks."""
    measurement = influxql_identifier(MEASUREMENT)
    query = (
        'SELECT "value", "quality", "enterprise", "installation", "tag" '  # noqa: S608
        f"FROM {measurement} WHERE time >= {int(start_ms)}ms AND time < {int(end_ms)}ms"
    )
    params = {
        "q": query,
        "db": settings.database,
        "epoch": "ms",
        "chunked": "true",
        "chunk_size": str(CHUNK_SIZE),
    }
    headers, auth = influx_credentials(settings)
    where = url_without_userinfo(settings.url)
    url = settings.url.rstrip("/") + "/query"
    try:
        with (
            httpx.Client(timeout=settings.timeout_s) as client,
            client.stream("GET", url, params=params, headers=headers, auth=auth) as response,
        ):
            if response.status_code != 200:
                text = response.read().decode("utf-8", "replace")[:500].strip()
                raise ExportError(f"InfluxDB at {where}: HTTP {response.status_code}: {text}")
            for line in response.iter_lines():
                if line.strip():
                    yield from _chunk_rows(orjson.loads(line), where)
    except httpx.TransportError as exc:
        raise ExportError(f"cannot read from InfluxDB at {where}: {exc!r}") from exc


def _chunk_rows(chunk: dict[str, Any], where: str) -> Iterator[StoredReading]:
    for result in chunk.get("results", []):
        if "error" in result:
            raise ExportError(f"InfluxDB at {where} refused the export query: {result['error']}")
        for series in result.get("series", []):
            columns = series["columns"]
            expected = ["time", "value", "quality", "enterprise", "installation", "tag"]
            if columns != expected:
                raise ExportError(
                    f"InfluxDB at {where}: expected columns {expected}, got {columns}"
                )
            for ts, value, quality, enterprise, installation, tag in series["values"]:
                if value is None:  # a point written by something else, without a value
                    continue
                yield StoredReading(
                    int(ts), enterprise, installation, tag, float(value), quality or "good"
                )


def sqlite_readings(path: Path, start_ms: int, end_ms: int) -> Iterator[StoredReading]:
    """The SQLite store's readings of ``start_ms <= ts < end_ms``, oldest first, opened
    read-only (a running service may keep writing)."""
    if not path.exists():
        raise ExportError(f"{path}: no such file (storage.path of the configuration)")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise ExportError(f"{path}: cannot open: {exc}") from exc
    try:
        cursor = conn.execute(
            "SELECT ts_ms, enterprise, installation, tag, value, quality FROM reading "
            "WHERE ts_ms >= ? AND ts_ms < ? ORDER BY ts_ms, enterprise, installation, tag",
            (start_ms, end_ms),
        )
        while rows := cursor.fetchmany(CHUNK_SIZE):
            for row in rows:
                yield StoredReading(*row)
    except sqlite3.Error as exc:
        raise ExportError(f"{path}: cannot read readings: {exc}") from exc
    finally:
        conn.close()

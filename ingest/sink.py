"""The storage seam: where validated readings go, and where history comes from.

Two sinks implement :class:`ReadingSink`: :class:`ingest.influx.InfluxSink`
(InfluxDB 1.x/2.x/3.x) and :class:`ingest.sqlite.SqliteSink` (the embedded
default). Both are idempotent — a reading is keyed by (enterprise, tag, ts_ms), so
a retried or redelivered batch overwrites itself instead of doubling — and both
raise the same two errors, which decide what the pipeline does::

    SinkUnavailable   transient (down, timeout, 5xx, locked): retry with backoff;
                      the MQTT acks wait meanwhile (backpressure)
    SinkRejected      permanent for these readings (4xx): never retry blindly

Retry and batching live once, in :class:`ingest.writer.SinkWriter`, not in each
sink (the shape of Telegraf's running output). A sink that speaks line protocol
also implements :class:`LineSink`: the writer then posts the spooled bytes as they
are.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol, Self, runtime_checkable

from hazwatch.metrics import Metrics
from hazwatch.models import Reading, Registry
from hazwatch.settings import StorageSettings

MAX_HISTORY_BUCKETS = 10_000
"""A history query may ask for at most this many buckets (a chart has fewer pixels)."""


class ReadingSink(Protocol):
    """An async context manager: ``async with sink: await sink.write(readings)``."""

    name: str
    """``"sqlite"`` or ``"influxdb"``: the ``backend`` label of the sink metrics."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def write(self, readings: Sequence[Reading]) -> None:
        """Store readings; raises ``SinkUnavailable`` (retry later) or ``SinkRejected``."""
        ...

    async def history(
        self, enterprise: str, tag: str, start_ms: int, end_ms: int, step_ms: int
    ) -> list[tuple[int, float]]:
        """``(bucket start, mean value)`` for ``start_ms <= ts < end_ms``, oldest first.

        Buckets are aligned to the epoch (as InfluxDB's ``GROUP BY time()`` does), so
        the first bucket may start before ``start_ms``; empty buckets are left out.
        """
        ...

    async def ping(self) -> bool:
        """Is the storage answering? Never raises (for ``/healthz``)."""
        ...


@runtime_checkable
class LineSink(Protocol):
    """A sink that also takes line protocol as spooled (the writer's fast path)."""

    async def write_lines(self, body: bytes, points: int) -> None:
        """Store ``points`` lines (joined by ``\\n``); raises as ``ReadingSink.write``."""
        ...


def build_sink(storage: StorageSettings, registry: Registry, metrics: Metrics) -> ReadingSink:
    """The sink the settings ask for (``[storage] backend``)."""
    # Imported here: both sink modules import this one (the protocol and helpers).
    if storage.backend == "influxdb":
        from ingest.influx import InfluxSink  # noqa: PLC0415

        return InfluxSink(storage.influxdb, registry, metrics)
    from ingest.sqlite import SqliteSink  # noqa: PLC0415

    return SqliteSink(storage.path, registry, metrics)


def check_history_range(start_ms: int, end_ms: int, step_ms: int) -> None:
    """Refuse ranges no chart needs before they reach a database (``ValueError``)."""
    if step_ms <= 0:
        raise ValueError(f"step: expected a positive number of ms, got {step_ms}")
    if end_ms <= start_ms:
        raise ValueError(f"expected end > start, got start={start_ms} end={end_ms}")
    buckets = (end_ms - start_ms) // step_ms
    if buckets > MAX_HISTORY_BUCKETS:
        raise ValueError(
            f"expected at most {MAX_HISTORY_BUCKETS} buckets, got {buckets} "
            f"({end_ms - start_ms} ms in steps of {step_ms} ms): use a larger step"
        )


@contextmanager
def measured_write(metrics: Metrics, backend: str, points: int) -> Iterator[None]:
    """Time one write in ``sink_write_seconds`` and, if it succeeds, count its points."""
    started = time.perf_counter()
    try:
        yield
    finally:
        metrics.sink_write_seconds.labels(backend).observe(time.perf_counter() - started)
    metrics.sink_written.labels(backend).inc(points)

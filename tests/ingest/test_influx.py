"""InfluxSink against a real influxd (1.x), plus the request shapes of the 2.x/3.x APIs."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from hazwatch.errors import SinkRejected, SinkUnavailable
from hazwatch.metrics import Metrics
from hazwatch.models import Reading, Registry
from hazwatch.settings import InfluxSettings, StorageSettings
from ingest.influx import InfluxSink
from ingest.sink import build_sink
from ingest.sqlite import SqliteSink
from tests.servers import Influxd, free_port

pytestmark = pytest.mark.integration

MakeReading = Callable[..., Reading]
T0 = 1_763_820_000_000
TAGS = ["TK101_LT", "TK101_TT", "TK101_PT", "TK102_LT", "GD101"]


def thousand_readings(make_reading: MakeReading) -> list[Reading]:
    return [make_reading(TAGS[n % 5], n / 7, T0 + (n // 5) * 1000) for n in range(1000)]


def settings_for(server: Influxd | str, database: str, **extra: object) -> InfluxSettings:
    url = server if isinstance(server, str) else server.url
    return InfluxSettings(url=url, database=database, timeout_s=5, **extra)  # type: ignore[arg-type]


def assert_same_buckets(got: list[tuple[int, float]], expected: list[tuple[int, float]]) -> None:
    assert [start for start, _ in got] == [start for start, _ in expected]
    assert [mean for _, mean in got] == pytest.approx([mean for _, mean in expected])


async def test_writes_are_counted_once_and_idempotent(
    influxd_server: Influxd, influx_db: str, example_registry: Registry, make_reading: MakeReading
) -> None:
    metrics = Metrics()
    readings = thousand_readings(make_reading)
    async with InfluxSink(
        settings_for(influxd_server, influx_db), example_registry, metrics
    ) as sink:
        await sink.write(readings)
        assert influxd_server.count(influx_db) == 1000
        await sink.write(readings)  # a redelivered batch overwrites itself
        assert influxd_server.count(influx_db) == 1000
        assert await sink.ping()
    assert metrics.value("hazwatch_sink_written_points_total", {"backend": "influxdb"}) == 2000
    assert metrics.value("hazwatch_sink_write_seconds_count", {"backend": "influxdb"}) == 2


async def test_big_batches_go_in_several_requests(
    influxd_server: Influxd, influx_db: str, example_registry: Registry, make_reading: MakeReading
) -> None:
    metrics = Metrics()
    readings = [make_reading(TAGS[n % 5], 1.0, T0 + n // 5) for n in range(12_000)]
    async with InfluxSink(
        settings_for(influxd_server, influx_db), example_registry, metrics
    ) as sink:
        await sink.write(readings)
    assert influxd_server.count(influx_db) == 12_000
    assert metrics.value("hazwatch_sink_write_seconds_count", {"backend": "influxdb"}) == 3
    assert metrics.value("hazwatch_sink_written_points_total", {"backend": "influxdb"}) == 12_000


async def test_history_returns_bucket_means_like_the_sqlite_sink(
    tmp_path: Path,
    influxd_server: Influxd,
    influx_db: str,
    example_registry: Registry,
    make_reading: MakeReading,
) -> None:
    readings = thousand_readings(make_reading)
    args = ("E001", "TK101_LT", T0 + 2500, T0 + 60_000, 7000)
    async with InfluxSink(
        settings_for(influxd_server, influx_db), example_registry, Metrics()
    ) as influx:
        assert await influx.history(*args) == []  # nothing written yet
        await influx.write(readings)
        buckets = await influx.history(*args)
    async with SqliteSink(tmp_path / "r.db", example_registry, Metrics()) as sqlite:
        await sqlite.write(readings)
        assert_same_buckets(await sqlite.history(*args), buckets)
    # TK101_LT is reading n = 5k: value 5k/7 at T0 + k s; buckets are epoch-aligned
    expected: dict[int, list[float]] = {}
    for k in range(200):
        ts = T0 + k * 1000
        if T0 + 2500 <= ts < T0 + 60_000:
            expected.setdefault(ts - ts % 7000, []).append(5 * k / 7)
    assert_same_buckets(buckets, [(b, sum(v) / len(v)) for b, v in sorted(expected.items())])
    assert buckets[0][0] == T0 + 2000  # epoch-aligned: starts before the window


async def test_a_closed_port_is_unavailable(
    example_registry: Registry, make_reading: MakeReading
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with InfluxSink(settings_for(url, "hazwatch"), example_registry, Metrics()) as sink:
        with pytest.raises(SinkUnavailable, match="cannot reach InfluxDB"):
            await sink.write([make_reading()])
        assert not await sink.ping()
        with pytest.raises(SinkUnavailable):
            await sink.history("E001", "TK101_LT", T0, T0 + 1000, 100)


async def test_database_is_created_before_the_first_write_once_influxd_is_up(
    tmp_path: Path, example_registry: Registry, make_reading: MakeReading
) -> None:
    server = Influxd(tmp_path / "late-influxd")
    async with InfluxSink(settings_for(server, "late"), example_registry, Metrics()) as sink:
        with pytest.raises(SinkUnavailable):  # entering did not fail; the write does
            await sink.write([make_reading()])
        server.start()
        try:
            await sink.write([make_reading()])
            assert server.count("late") == 1
        finally:
            server.stop()


async def test_a_dropped_database_is_created_again(
    influxd_server: Influxd, influx_db: str, example_registry: Registry, make_reading: MakeReading
) -> None:
    async with InfluxSink(
        settings_for(influxd_server, influx_db), example_registry, Metrics()
    ) as sink:
        await sink.write([make_reading(ts_ms=T0)])
        influxd_server.query(f'DROP DATABASE "{influx_db}"')
        with pytest.raises(SinkUnavailable, match="database not found"):
            await sink.write([make_reading(ts_ms=T0 + 1)])
        await sink.write([make_reading(ts_ms=T0 + 1)])  # the pipeline's retry
    assert influxd_server.count(influx_db) == 1


async def test_a_field_type_conflict_is_rejected_with_influx_text(
    influxd_server: Influxd, influx_db: str, example_registry: Registry, make_reading: MakeReading
) -> None:
    metrics = Metrics()
    async with InfluxSink(
        settings_for(influxd_server, influx_db), example_registry, metrics
    ) as sink:
        # someone else wrote an integer `value` into the same shard first
        line = b"reading,enterprise=E001,installation=MH01,kind=level,tag=TK101_LT value=1i "
        request = urllib.request.Request(
            f"{influxd_server.url}/write?db={influx_db}&precision=ms",
            data=line + str(T0).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 204
        with pytest.raises(SinkRejected, match="field type conflict") as caught:
            await sink.write([make_reading("TK101_TT", 2.5, T0 + 1)])
    assert caught.value.status == 400
    assert metrics.value("hazwatch_sink_written_points_total", {"backend": "influxdb"}) == 0


def test_build_sink_follows_the_settings(tmp_path: Path, example_registry: Registry) -> None:
    sqlite = build_sink(StorageSettings(path=tmp_path / "x.db"), example_registry, Metrics())
    influx = build_sink(StorageSettings(backend="influxdb"), example_registry, Metrics())
    assert (sqlite.name, influx.name) == ("sqlite", "influxdb")
    assert isinstance(influx, InfluxSink)


# --- request shapes: InfluxDB 2.x/3.x cannot run here, so their side is a MockTransport ----


Requests = list[httpx.Request]


def recording_client(requests: Requests, status: int = 204, text: str = "") -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(status, text=text)

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


@pytest.mark.parametrize(
    ("extra", "path", "params", "authorization"),
    [
        (
            {"api": "v2", "org": "acme", "token": SecretStr("t0k")},
            "/api/v2/write",
            {"org": "acme", "bucket": "hz", "precision": "ms"},
            "Token t0k",
        ),
        (
            {"api": "v3", "token": SecretStr("t0k")},
            "/api/v3/write_lp",
            {"db": "hz", "precision": "millisecond"},
            "Bearer t0k",
        ),
        (
            {"api": "v1", "token": SecretStr("t0k")},
            "/write",
            {"db": "hz", "precision": "ms"},
            "Token t0k",
        ),
        (
            {"api": "v1", "username": "u", "password": SecretStr("p")},
            "/write",
            {"db": "hz", "precision": "ms"},
            "Basic dTpw",
        ),
    ],
)
async def test_write_requests_per_api(
    example_registry: Registry,
    make_reading: MakeReading,
    extra: dict[str, object],
    path: str,
    params: dict[str, str],
    authorization: str,
) -> None:
    requests: Requests = []
    client = recording_client(requests)
    settings = settings_for("http://influx.example:8086", "hz", **extra)
    async with client, InfluxSink(settings, example_registry, Metrics(), client=client) as sink:
        await sink.write([make_reading("TK101_LT", 2, T0)])
    write = requests[-1]
    assert write.method == "POST"
    assert write.url.path == path
    assert dict(write.url.params) == params
    assert write.headers["Authorization"] == authorization
    assert write.content.startswith(b"reading,enterprise=E001,")
    assert b" value=2.0," in write.content
    if extra["api"] == "v1":  # the database is created first, with the same credentials
        assert requests[0].url.path == "/query"
        assert requests[0].headers["Authorization"] == authorization
        assert b"CREATE+DATABASE" in requests[0].content
    else:
        assert len(requests) == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, SinkUnavailable),
        (503, SinkUnavailable),
        (429, SinkUnavailable),
        (401, SinkUnavailable),  # configuration: the readings are not at fault
        (301, SinkUnavailable),  # a proxy redirecting (httpx does not follow): configuration
        (307, SinkUnavailable),
        (404, SinkUnavailable),
        (400, SinkRejected),
        (413, SinkRejected),
        (422, SinkRejected),
    ],
)
async def test_status_codes(
    example_registry: Registry, make_reading: MakeReading, status: int, error: type[Exception]
) -> None:
    requests: Requests = []
    client = recording_client(requests, status, '{"error":"' + "x" * 2000 + '"}')
    settings = settings_for("http://influx.example:8086", "hz", api="v3")
    async with client, InfluxSink(settings, example_registry, Metrics(), client=client) as sink:
        with pytest.raises(error, match=f"HTTP {status}") as caught:
            await sink.write([make_reading()])
    assert len(str(caught.value)) < 700  # influx's text is truncated
    if isinstance(caught.value, SinkRejected):
        assert caught.value.status == status


async def test_gzip_writes_are_stored_the_same(
    influxd_server: Influxd, influx_db: str, example_registry: Registry, make_reading: MakeReading
) -> None:
    settings = settings_for(influxd_server, influx_db).model_copy(update={"gzip": True})
    async with InfluxSink(settings, example_registry, Metrics()) as sink:
        await sink.write(thousand_readings(make_reading))
    assert influxd_server.count(influx_db) == 1000


def _request_errors(cls: type[httpx.RequestError] = httpx.RequestError) -> list[type[Exception]]:
    found: list[type[Exception]] = [cls]
    for sub in cls.__subclasses__():
        found += _request_errors(sub)
    return found


@pytest.mark.parametrize("error", _request_errors(), ids=lambda e: e.__name__)
async def test_every_request_error_is_unavailable_never_an_escape(
    example_registry: Registry, make_reading: MakeReading, error: type[httpx.RequestError]
) -> None:
    """DecodingError, TooManyRedirects... escaped the writer before (and with it the
    service's TaskGroup): whatever httpx raises is the storage being unusable for now."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise error("odd answer", request=request)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    settings = settings_for("http://influx.example:8086", "hz", api="v3")
    async with client, InfluxSink(settings, example_registry, Metrics(), client=client) as sink:
        with pytest.raises(SinkUnavailable, match=r"influx\.example"):
            await sink.write([make_reading()])
        assert not await sink.ping()


async def test_an_answer_that_cannot_be_decoded_is_unavailable(
    example_registry: Registry, make_reading: MakeReading
) -> None:
    """A real socket answering "gzip" that is not: httpx's own DecodingError."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot gzip!"
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = settings_for(f"http://127.0.0.1:{port}", "hz", api="v2", token="t")
    async with server, InfluxSink(settings, example_registry, Metrics()) as sink:
        with pytest.raises(SinkUnavailable, match="DecodingError"):
            await sink.write_lines(b"reading,enterprise=E001 value=1 1", 1)

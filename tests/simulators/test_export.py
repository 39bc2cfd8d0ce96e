"""Export: stored readings back out as gateway messages, from SQLite and a real influxd."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from hazwatch.errors import ExportError, RecordingError
from hazwatch.metrics import Metrics
from hazwatch.models import Quality, Reading, Registry
from hazwatch.registry import load_registry
from hazwatch.settings import IngestSettings, Settings, load_settings
from ingest.sink import build_sink
from simulators.export import StoredReading, export, gateway_messages
from simulators.recording import RecordingReader
from tests.helpers import write_registry
from tests.servers import Influxd, free_port

T0 = 1_763_820_000_000


def stored(
    ts: int,
    tag: str,
    value: float,
    *,
    enterprise: str = "E1",
    installation: str = "U1",
    quality: str = "good",
) -> StoredReading:
    return StoredReading(ts, enterprise, installation, tag, value, quality)


def test_one_message_per_installation_and_time_in_tag_order() -> None:
    rows = [
        stored(T0, "B", 2.0),
        stored(T0, "A", 1.0, quality="bad"),
        stored(T0, "X", 3.0, installation="U2"),
        stored(T0, "Y", 4.5, enterprise="E0"),
    ]
    messages = list(gateway_messages(T0, rows, IngestSettings()))
    assert [(m.t, m.topic) for m in messages] == [
        (T0, "hz/v1/E0/U1-gw/data"),
        (T0, "hz/v1/E1/U1-gw/data"),
        (T0, "hz/v1/E1/U2-gw/data"),
    ]
    assert orjson.loads(messages[1].payload) == {
        "ts": T0,
        "readings": [{"tag": "A", "v": 1.0, "q": "bad"}, {"tag": "B", "v": 2.0}],
    }
    assert not any(m.retain for m in messages)


def test_large_installations_are_split_within_the_services_limits() -> None:
    rows = [stored(T0, f"T{n:03d}", n * 1.5) for n in range(25)]
    by_count = list(gateway_messages(T0, rows, IngestSettings(max_readings=10)))
    assert [len(orjson.loads(m.payload)["readings"]) for m in by_count] == [10, 10, 5]
    by_size = list(gateway_messages(T0, rows, IngestSettings(max_payload_bytes=200)))
    assert all(len(m.payload) <= 200 for m in by_size)
    tags = [r["tag"] for m in by_size for r in orjson.loads(m.payload)["readings"]]
    assert tags == [f"T{n:03d}" for n in range(25)]


@pytest.fixture
def registry_dir(tmp_path: Path) -> Path:
    return write_registry(tmp_path / "reg", "E1", ["LT1", "LT2"], interval_s="10")


def readings() -> list[Reading]:
    """Three timestamps of two points, one reading uncertain."""
    return [
        Reading("E1", "gw", tag, value + k, T0 + k * 1000, quality)
        for k in range(3)
        for tag, value, quality in (("LT1", 1.25, Quality.GOOD), ("LT2", 7.0, Quality.UNCERTAIN))
    ]


async def store(settings: Settings, registry: Registry) -> None:
    async with build_sink(settings.storage, registry, Metrics()) as sink:
        await sink.write(readings())


def exported(path: Path) -> list[tuple[int, str, str, float, str]]:
    """(ts, enterprise, tag, value, quality) of every reading in a recording."""
    found = []
    with RecordingReader(path) as reader:
        for message in reader:
            doc = orjson.loads(message.payload)
            assert message.t == doc["ts"]
            enterprise = message.topic.split("/")[2]
            found += [
                (doc["ts"], enterprise, r["tag"], r["v"], r.get("q", "good"))
                for r in doc["readings"]
            ]
    return found


def expected(start: int, end: int) -> list[tuple[int, str, str, float, str]]:
    return [
        (r.ts_ms, r.enterprise, r.tag, r.value, r.quality.value)
        for r in readings()
        if start <= r.ts_ms < end
    ]


async def test_export_from_sqlite_holds_exactly_the_stored_points_of_the_range(
    tmp_path: Path, registry_dir: Path
) -> None:
    settings = load_settings(
        None,
        environ={},
        overrides={"registry": str(registry_dir), "storage.path": str(tmp_path / "r.db")},
    )
    await store(settings, load_registry(registry_dir))
    out = tmp_path / "export.jsonl"
    seen: list[int] = []
    result = export(
        settings.storage,
        settings.ingest,
        start_ms=T0 + 1000,
        end_ms=T0 + 3000,
        out=out,
        on_progress=seen.append,
    )
    assert exported(out) == expected(T0 + 1000, T0 + 3000)
    assert (result.readings, result.messages) == (4, 2)
    assert seen == [T0 + 1000, T0 + 2000]
    with RecordingReader(out) as reader:
        assert reader.header.started_ms == T0 + 1000
        assert reader.header.source.startswith(f"export of sqlite {tmp_path / 'r.db'}, ")

    with pytest.raises(RecordingError, match="already exists"):
        export(settings.storage, settings.ingest, start_ms=T0, end_ms=T0 + 1, out=out)
    missing = settings.storage.model_copy(update={"path": tmp_path / "none.db"})
    with pytest.raises(ExportError, match=r"none.db: no such file"):
        export(missing, settings.ingest, start_ms=T0, end_ms=T0 + 1, out=tmp_path / "x.jsonl")
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.integration
async def test_export_from_influxdb_holds_exactly_the_stored_points_of_the_range(
    tmp_path: Path, registry_dir: Path, influxd_server: Influxd, influx_db: str
) -> None:
    settings = load_settings(
        None,
        environ={},
        overrides={
            "registry": str(registry_dir),
            "storage.backend": "influxdb",
            "storage.influxdb.url": influxd_server.url,
            "storage.influxdb.database": influx_db,
        },
    )
    await store(settings, load_registry(registry_dir))
    out = tmp_path / "export.jsonl"
    result = export(settings.storage, settings.ingest, start_ms=T0, end_ms=T0 + 2000, out=out)
    assert exported(out) == expected(T0, T0 + 2000)
    assert (result.readings, result.messages) == (4, 2)

    unknown = settings.storage.influxdb.model_copy(update={"database": "no_such_db"})
    with pytest.raises(ExportError, match="database not found: no_such_db"):
        export(
            settings.storage.model_copy(update={"influxdb": unknown}),
            settings.ingest,
            start_ms=T0,
            end_ms=T0 + 1,
            out=tmp_path / "x.jsonl",
        )
    down = settings.storage.influxdb.model_copy(update={"url": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(ExportError, match=r"cannot read from InfluxDB at http://127\.0\.0\.1"):
        export(
            settings.storage.model_copy(update={"influxdb": down}),
            settings.ingest,
            start_ms=T0,
            end_ms=T0 + 1,
            out=tmp_path / "y.jsonl",
        )
    assert not (tmp_path / "x.jsonl").exists()

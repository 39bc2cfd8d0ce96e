"""The recording format: round trips byte for byte, and clear errors naming the line."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hazwatch.errors import RecordingError
from hazwatch.settings import IngestSettings
from ingest.codecs import build_routes
from simulators.recording import (
    RecordedMessage,
    RecordingHeader,
    RecordingReader,
    RecordingWriter,
)

HEADER = RecordingHeader(started_ms=1_763_820_000_000, source="mqtt://127.0.0.1:1883")


def write(path: Path, messages: list[RecordedMessage]) -> None:
    with RecordingWriter(path, HEADER) as writer:
        for message in messages:
            writer.write(message)


def read(path: Path) -> tuple[RecordingHeader, list[RecordedMessage]]:
    with RecordingReader(path) as reader:
        return reader.header, list(reader)


def test_round_trip_keeps_text_binary_and_empty_payloads_and_the_retain_flag(
    tmp_path: Path,
) -> None:
    messages = [
        RecordedMessage(1_763_820_000_123, "hz/v1/E001/gw/data", b'{"seq": 1, "readings": []}'),
        RecordedMessage(1_763_820_000_124, "hz/v1/E001/gw/data", b'{"seq": 2, "r": [\xff\xfe]}'),
        RecordedMessage(1_763_820_000_125, "hz/v1/E001/gw/status", b"online", retain=True),
        RecordedMessage(1_763_820_000_126, "hz/v1/E001/gw/tag/T1", b""),
        RecordedMessage(1_763_820_000_127, "hz/v1/E001/gw/tag/T1", "3.5 °C\n".encode()),
    ]
    path = tmp_path / "rec.jsonl"
    write(path, messages)

    header, back = read(path)

    assert header == HEADER
    assert back == messages
    lines = path.read_bytes().splitlines()
    assert orjson.loads(lines[0]) == {
        "format": "hazwatch-recording",
        "version": 1,
        "started_ms": 1_763_820_000_000,
        "source": "mqtt://127.0.0.1:1883",
    }
    # text stays readable; the invalid UTF-8 payload is base64, and keys come in order
    assert lines[1] == (
        b'{"t":1763820000123,"topic":"hz/v1/E001/gw/data",'
        b'"payload":"{\\"seq\\": 1, \\"readings\\": []}","retain":false}'
    )
    assert orjson.loads(lines[2])["payload_b64"] == "eyJzZXEiOiAyLCAiciI6IFv//l19"
    assert "payload" not in orjson.loads(lines[2])
    assert orjson.loads(lines[3])["retain"] is True


@given(st.lists(st.tuples(st.binary(max_size=64), st.booleans()), max_size=20))
def test_any_payload_survives_a_round_trip(
    tmp_path_factory: pytest.TempPathFactory, items: list[tuple[bytes, bool]]
) -> None:
    path = tmp_path_factory.mktemp("rec") / "rec.jsonl"
    messages = [
        RecordedMessage(n, "hz/v1/E/g/data", payload, retain)
        for n, (payload, retain) in enumerate(items)
    ]
    write(path, messages)
    assert read(path)[1] == messages


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    path.write_text("precious\n")
    with pytest.raises(RecordingError, match="already exists"):
        write(path, [])
    assert path.read_text() == "precious\n"


def lines_file(tmp_path: Path, *lines: str, end: str = "\n") -> Path:
    path = tmp_path / "rec.jsonl"
    path.write_text("\n".join(lines) + end, encoding="utf-8")
    return path


HEADER_LINE = '{"format": "hazwatch-recording", "version": 1, "started_ms": 5, "source": ""}'
GOOD = '{"t": 10, "topic": "hz/v1/E/g/data", "payload": "{}"}'


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("not json", r"rec.jsonl:3: expected one JSON object, got invalid JSON"),
        ("[1, 2]", r"rec.jsonl:3: expected one JSON object, got array \[1, 2\]"),
        (
            '{"t": "10", "topic": "a", "payload": ""}',
            r":3: t: expected epoch milliseconds \(an integer\), got string '10'",
        ),
        ('{"t": 10, "payload": ""}', r":3: topic: expected a string, got null"),
        (
            '{"t": 10, "topic": "a"}',
            r":3: expected payload \(text\) or payload_b64 \(base64\), got neither",
        ),
        (
            '{"t": 10, "topic": "a", "payload": "", "payload_b64": ""}',
            r":3: expected payload or payload_b64, got both",
        ),
        ('{"t": 10, "topic": "a", "payload_b64": "***"}', r":3: payload_b64: expected base64"),
        (
            '{"t": 10, "topic": "a", "payload": "", "retain": 1}',
            r":3: retain: expected true or false, got integer 1",
        ),
    ],
)
def test_a_bad_line_stops_reading_with_its_line_number(
    tmp_path: Path, line: str, expected: str
) -> None:
    path = lines_file(tmp_path, HEADER_LINE, GOOD, line, GOOD)
    with RecordingReader(path) as reader, pytest.raises(RecordingError, match=expected) as caught:
        list(reader)
    assert caught.value.line == 3


def test_blank_lines_are_skipped_and_unknown_keys_ignored(tmp_path: Path) -> None:
    extra = '{"t": 11, "topic": "hz/v1/E/g/data", "payload": "x", "note": "later versions"}'
    path = lines_file(tmp_path, HEADER_LINE, "", GOOD, "   ", extra)
    header, messages = read(path)
    assert header == RecordingHeader(started_ms=5, source="")
    assert [m.t for m in messages] == [10, 11]


def test_a_last_line_cut_short_is_named_as_such(tmp_path: Path) -> None:
    path = lines_file(tmp_path, HEADER_LINE, GOOD, '{"t": 12, "topic": "hz/v1/E', end="")
    with (
        RecordingReader(path) as reader,
        pytest.raises(RecordingError, match=":3: the last line is cut short"),
    ):
        list(reader)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", r"rec.jsonl: expected a hazwatch-recording header on line 1, got an empty file"),
        (GOOD + "\n", r"rec.jsonl:1: expected a header .*got format null"),
        (
            '{"format": "hazwatch-recording", "version": 2, "started_ms": 1, "source": ""}\n',
            r":1: expected version 1 \(what this hazwatch reads\), got integer 2",
        ),
        (
            '{"format": "hazwatch-recording", "version": 1, "source": ""}\n',
            r":1: started_ms: expected epoch milliseconds",
        ),
    ],
)
def test_a_bad_header_is_refused(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "rec.jsonl"
    path.write_text(content)
    with pytest.raises(RecordingError, match=expected):
        RecordingReader(path).__enter__()


def test_a_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match=r"nope.jsonl: no such file"):
        RecordingReader(tmp_path / "nope.jsonl").__enter__()


def test_the_reader_reports_how_far_it_got(tmp_path: Path) -> None:
    path = lines_file(tmp_path, HEADER_LINE, GOOD, GOOD)
    with RecordingReader(path) as reader:
        assert reader.size == path.stat().st_size
        assert reader.bytes_read == len(HEADER_LINE) + 1
        list(reader)
        assert (reader.line, reader.bytes_read) == (3, reader.size)


@pytest.mark.parametrize(
    ("topic", "gateway"),
    [
        ("hz/v1/E001/gw/data", True),
        ("hz/v1/E001/gw/tag/TK101_LT", True),
        ("hz/v1/E001/gw/status", True),
        ("hz/v1/E001/alarms", False),
        ("hz/v1/E001/gw/other", False),
        ("spBv1.0/group/NDATA/node", False),
    ],
)
def test_only_the_topics_the_service_subscribes_to_are_gateway_topics(
    topic: str, gateway: bool
) -> None:
    assert build_routes(IngestSettings()).is_gateway_topic(topic) is gateway

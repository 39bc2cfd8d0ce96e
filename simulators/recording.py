"""Recordings: what crossed an MQTT broker, as JSON Lines (docs/recording.md).

One UTF-8 line per item; the first is a header (lines folded here)::

    {"format": "hazwatch-recording", "version": 1, "started_ms": 1763820000000,
     "source": "mqtt://127.0.0.1:1883"}
    {"t": 1763820000123, "topic": "hz/v1/E001/MH01-gw/data",
     "payload": "{\\"seq\\": 1, ...}", "retain": false}
    {"t": 1763820000480, "topic": "hz/v1/E001/MH01-gw/data",
     "payload_b64": "eyJzZXEiOiD/fQ==", "retain": false}

``t`` is the receive time (epoch ms). A payload that is valid UTF-8 is kept as text
(``payload``), anything else as base64 (``payload_b64``), so every payload — a
malformed one above all — survives a round trip byte for byte.

Reading and writing stream (one line in memory at a time): recordings can be GBs.
A line that is not what the format says stops reading with a :class:`RecordingError`
naming the file and line; a recording is evidence, and silently skipping part of it
would change what a replay or a backtest shows. Blank lines are skipped, and keys a
reader does not know are ignored (later versions may add some).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Self

import orjson

from hazwatch.errors import RecordingError
from ingest.codec import describe

FORMAT = "hazwatch-recording"
VERSION = 1


@dataclass(frozen=True, slots=True)
class RecordingHeader:
    started_ms: int
    """When recording started (epoch ms); for an export, the start of its time range."""
    source: str
    """Where it came from: a broker URL without credentials, or the storage exported."""


@dataclass(frozen=True, slots=True)
class RecordedMessage:
    t: int
    """Receive time, epoch ms (for an export: the readings' time)."""
    topic: str
    payload: bytes
    retain: bool = False


def encode_header(header: RecordingHeader) -> bytes:
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "started_ms": header.started_ms,
        "source": header.source,
    }
    return orjson.dumps(doc) + b"\n"


def encode_message(message: RecordedMessage) -> bytes:
    doc: dict[str, Any] = {"t": message.t, "topic": message.topic}
    try:
        doc["payload"] = message.payload.decode("utf-8")
    except UnicodeDecodeError:
        doc["payload_b64"] = base64.b64encode(message.payload).decode("ascii")
    doc["retain"] = message.retain
    return orjson.dumps(doc) + b"\n"


class RecordingWriter:
    """Writes a new recording: ``with RecordingWriter(path, header) as w: w.write(m)``.

    Refuses to overwrite an existing file (a recording is hard to make again). Lines
    are buffered; :meth:`flush` pushes them to the file (the recorder calls it every
    second, so a killed recorder loses at most that). Safe to ``write`` from one thread
    while another calls ``flush`` (buffered files lock themselves).
    """

    def __init__(self, path: Path, header: RecordingHeader) -> None:
        self.path = path
        self.header = header
        self.messages = 0
        self.bytes_written = 0
        self._file: IO[bytes] | None = None

    def __enter__(self) -> Self:
        try:
            self._file = self.path.open("xb")
        except FileExistsError as exc:
            raise RecordingError(
                "already exists: choose another file name (a recording is never overwritten)",
                file=self.path,
            ) from exc
        except OSError as exc:
            raise RecordingError(f"cannot create: {exc.strerror}", file=self.path) from exc
        self._write(encode_header(self.header))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def write(self, message: RecordedMessage) -> None:
        self._write(encode_message(message))
        self.messages += 1

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def _write(self, line: bytes) -> None:
        if self._file is None:
            raise RuntimeError("RecordingWriter is not open: use `with RecordingWriter(...)`")
        try:
            self._file.write(line)
        except OSError as exc:
            raise RecordingError(f"cannot write: {exc.strerror}", file=self.path) from exc
        self.bytes_written += len(line)


class RecordingReader:
    """Reads a recording, streaming: ``with RecordingReader(path) as r: for m in r: ...``.

    ``header`` is read on entry. While iterating, ``line`` is the number of the line
    last read and ``bytes_read`` how far into the file (of ``size`` bytes) it got —
    for progress bars. Iterate once.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.line = 0
        self.bytes_read = 0
        self.size = 0
        self._file: IO[bytes] | None = None
        self._header: RecordingHeader | None = None

    @property
    def header(self) -> RecordingHeader:
        if self._header is None:
            raise RuntimeError("RecordingReader is not open: use `with RecordingReader(...)`")
        return self._header

    def __enter__(self) -> Self:
        try:
            self._file = self.path.open("rb")
            self.size = self.path.stat().st_size
        except FileNotFoundError as exc:
            raise RecordingError("no such file", file=self.path) from exc
        except OSError as exc:
            raise RecordingError(f"cannot read: {exc.strerror}", file=self.path) from exc
        try:
            self._header = self._read_header()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __iter__(self) -> Iterator[RecordedMessage]:
        for doc in self._objects():
            yield self._message(doc)

    def _read_header(self) -> RecordingHeader:
        first = next(self._objects(), None)
        if first is None:
            raise RecordingError(
                f"expected a {FORMAT} header on line 1, got an empty file", file=self.path
            )
        if first.get("format") != FORMAT:
            raise self._error(
                f'expected a header {{"format": "{FORMAT}", "version": {VERSION}, ...}}, '
                f"got format {describe(first.get('format'))}"
            )
        version = first.get("version")
        if version != VERSION:
            raise self._error(
                f"expected version {VERSION} (what this hazwatch reads), got {describe(version)}"
            )
        return RecordingHeader(
            started_ms=self._epoch_ms(first, "started_ms"),
            source=self._text(first, "source", allow_empty=True),
        )

    def _objects(self) -> Iterator[dict[str, Any]]:
        assert self._file is not None
        for raw in self._file:
            self.line += 1
            self.bytes_read += len(raw)
            if not raw.strip():
                continue
            try:
                doc = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                if not raw.endswith(b"\n"):
                    raise self._error(
                        "the last line is cut short (the recorder was killed while writing?): "
                        "delete it to use the rest"
                    ) from exc
                raise self._error(f"expected one JSON object, got invalid JSON ({exc})") from exc
            if not isinstance(doc, dict):
                raise self._error(f"expected one JSON object, got {describe(doc)}")
            yield doc

    def _message(self, doc: dict[str, Any]) -> RecordedMessage:
        if "payload" in doc and "payload_b64" in doc:
            raise self._error("expected payload or payload_b64, got both")
        if "payload" in doc:
            payload = self._text(doc, "payload", allow_empty=True).encode("utf-8")
        elif "payload_b64" in doc:
            encoded = self._text(doc, "payload_b64", allow_empty=True)
            try:
                payload = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise self._error(f"payload_b64: expected base64, got {describe(encoded)}") from exc
        else:
            raise self._error("expected payload (text) or payload_b64 (base64), got neither")
        retain = doc.get("retain", False)
        if type(retain) is not bool:
            raise self._error(f"retain: expected true or false, got {describe(retain)}")
        return RecordedMessage(
            t=self._epoch_ms(doc, "t"),
            topic=self._text(doc, "topic", allow_empty=False),
            payload=payload,
            retain=retain,
        )

    def _epoch_ms(self, doc: dict[str, Any], key: str) -> int:
        value = doc.get(key)
        if type(value) is not int or value < 0:
            raise self._error(
                f"{key}: expected epoch milliseconds (an integer), got {describe(value)}"
            )
        return value

    def _text(self, doc: dict[str, Any], key: str, *, allow_empty: bool) -> str:
        value = doc.get(key)
        if type(value) is not str or (not value and not allow_empty):
            raise self._error(f"{key}: expected a string, got {describe(value)}")
        return value

    def _error(self, message: str) -> RecordingError:
        return RecordingError(message, file=self.path, line=self.line)

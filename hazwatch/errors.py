"""The exception tree of hazwatch.

::

    HazwatchError
    ├── ConfigError          settings file or environment override is invalid
    ├── RegistryError        a registry file is invalid (carries file, row, column)
    ├── PayloadRejected      a gateway message failed decoding or validation (carries reason)
    ├── SpoolUnavailable     the durable spool cannot write (disk full, I/O): not acked
    ├── IngestPaused         ingest takes nothing for now (the alarm journal cannot write)
    ├── SinkError            storage could not take a batch
    │   ├── SinkUnavailable  transient: connection refused, timeout, 5xx — retry later
    │   └── SinkRejected     permanent for these lines: 4xx — never retry them blindly
    ├── JournalError         the alarm journal refused an operation (a transition: 409)
    │   ├── AlarmNotFound
    │   └── JournalUnavailable   the journal could not read or write (disk full, I/O): 503
    ├── NotifierError        a notification channel failed to deliver
    ├── UpstreamError        an uplink's platform did not take a request (carries status)
    ├── BrokerError          an MQTT broker refused or lost the connection (record, replay)
    ├── RecordingError       a recording file is unreadable or malformed (carries file, line)
    ├── ExportError          the storage could not be read for an export
    └── ModelError           a model of normal operation cannot be learned, read or used

Messages say what was expected and what came, so an operator can act on them
without reading code.
"""

from __future__ import annotations

from pathlib import Path


class HazwatchError(Exception):
    """Root of every error hazwatch raises on purpose."""


class ConfigError(HazwatchError):
    pass


class RegistryError(HazwatchError):
    """A registry file is wrong. ``str()`` reads ``file:row: column: message``."""

    def __init__(
        self, message: str, *, file: Path | str, row: int | None = None, column: str | None = None
    ) -> None:
        self.file = str(file)
        self.row = row
        self.column = column
        self.detail = message
        where = self.file
        if row is not None:
            where += f":{row}"
        if column is not None:
            where += f": column {column!r}"
        super().__init__(f"{where}: {message}")


class PayloadRejected(HazwatchError):
    """A message from a gateway was rejected; ``reason`` is a short, countable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class SpoolUnavailable(HazwatchError):
    """The spool could not commit a batch: it is not acknowledged (the broker sends it
    again), and the pipeline says so with the ``spool_failing`` SYSTEM alarm."""


class IngestPaused(HazwatchError):
    """The pipeline refuses batches for now (they are not acknowledged: the broker
    keeps them); ``str()`` says why."""


class SinkError(HazwatchError):
    pass


class SinkUnavailable(SinkError):
    pass


class SinkRejected(SinkError):
    """The sink refused some lines permanently (e.g. InfluxDB 400 partial write)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class JournalError(HazwatchError):
    pass


class JournalUnavailable(JournalError):
    """The journal's storage failed (disk full, I/O error, not open): nothing of the
    operation was recorded; it may succeed later. Not a refusal of the transition."""


class AlarmNotFound(JournalError):
    def __init__(self, alarm_id: str) -> None:
        self.alarm_id = alarm_id
        super().__init__(f"no alarm with id {alarm_id!r}")


class NotifierError(HazwatchError):
    """``permanent``: the receiver refused this notification for good (a 4xx, an SMTP
    5xx for the recipient, an SSRF refusal): it is dead-lettered, not retried."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        self.permanent = permanent
        super().__init__(message)


class UpstreamError(HazwatchError):
    """A supervising platform did not take an uplink request: unreachable, timed out,
    or answered with an error (``status``: the HTTP status, if one came). Always
    retried; the records stay queued."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class BrokerError(HazwatchError):
    pass


class RecordingError(HazwatchError):
    """A recording (JSON Lines, docs/recording.md) is wrong. ``str()`` reads
    ``file:line: message``; ``line`` is ``None`` for problems of the file as a whole."""

    def __init__(self, message: str, *, file: Path | str, line: int | None = None) -> None:
        self.file = str(file)
        self.line = line
        self.detail = message
        where = self.file if line is None else f"{self.file}:{line}"
        super().__init__(f"{where}: {message}")


class ExportError(HazwatchError):
    pass


class ModelError(HazwatchError):
    """``hazwatch learn`` cannot fit a model from its recordings, or a model file
    (``[detectors] models``) is unreadable, of another version, or does not match the
    registry. The message names the file, the installation and the point."""

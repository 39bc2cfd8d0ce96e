"""InfluxDB line protocol for the schema of docs/contract.md §8, and InfluxQL literals
for queries.

One point per reading (one line; wrapped here)::

    reading,enterprise=E001,installation=MH01,kind=level,tag=TK101_LT
        value=3.42,quality="good" 1763820000123

- tag keys sorted (what InfluxDB does internally; it saves it the sort);
- ``value`` always a float literal (``repr(float)``: ``1.0``, never ``1``-looking
  ints with an ``i``), so the field type can never drift
  (docs/architecture.md#measured-facts-influxdb);
- ``quality`` a string field; the timestamp in ms (the write says ``precision=ms``).

The series key (measurement + tags) depends only on the point, so it is built once
per registered point and cached: this is the hot path of every write.

Escaping (never paste input): measurement — comma, space; tag keys and values —
comma, equals sign, space; string fields — double quote and backslash. Backslashes
in tag values are *refused* rather than escaped: InfluxDB 2.x/3.x read ``\\\\`` as one
backslash but 1.x keeps both (measured on 1.6: ``a\\\\b`` is stored as ``a\\\\b``,
and a value ending in a backslash is a parse error), so no escaping round-trips on
every version. Newlines end a line and cannot be escaped at all. Ids are validated
at the edge (``hazwatch.models.ID_PATTERN``/``TAG_PATTERN``), so refusal only ever
triggers on a bug or a hand-edited registry.

InfluxQL: ``tag`` is a keyword (``SHOW TAG KEYS``), so ``WHERE tag = 'x'`` is a parse
error — identifiers are always double-quoted with :func:`influxql_identifier`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

from hazwatch.errors import SinkRejected
from hazwatch.models import AlarmEvent, Quality, Reading, Registry, iso_to_ms

MEASUREMENT = "reading"
ALARM_MEASUREMENT = "alarm"

_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})
_STRING_FIELD_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"'})
_INFLUXQL_ESCAPES = str.maketrans({"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n"})
_UNREPRESENTABLE = ("\\", "\n", "\r")


def _refuse_unrepresentable(text: str, what: str) -> None:
    if not text:
        raise ValueError(f"{what}: expected a non-empty string, got ''")
    for char in _UNREPRESENTABLE:
        if char in text:
            raise ValueError(
                f"{what}: expected no backslash or line break (no escaping of them "
                f"round-trips on every InfluxDB version), got {text!r}"
            )


def escape_measurement(name: str) -> str:
    _refuse_unrepresentable(name, "measurement")
    return name.translate(_MEASUREMENT_ESCAPES)


def escape_tag(text: str) -> str:
    """Escape a tag key or value: ``a b,c=d`` → ``a\\ b\\,c\\=d``. Raises ``ValueError``."""
    _refuse_unrepresentable(text, "tag")
    return text.translate(_TAG_ESCAPES)


def string_field(text: str) -> str:
    """A quoted string field value: ``say "hi"`` → ``"say \\"hi\\""``."""
    if "\n" in text or "\r" in text:
        raise ValueError(f"string field: expected no line break, got {text!r}")
    return '"' + text.translate(_STRING_FIELD_ESCAPES) + '"'


def float_field(value: float) -> str:
    """A float literal InfluxDB stores as float: ``1`` → ``1.0``; refuses NaN and ±inf."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"float field: expected a finite number, got {value!r}")
    return repr(value)


def influxql_string(text: str) -> str:
    """A single-quoted InfluxQL string literal: ``it's`` → ``'it\\'s'``."""
    return "'" + text.translate(_INFLUXQL_ESCAPES) + "'"


def influxql_identifier(name: str) -> str:
    """A double-quoted InfluxQL identifier (``"tag"``, a database name...)."""
    return '"' + name.translate(_INFLUXQL_ESCAPES) + '"'


def series_key(tags: dict[str, str], measurement: str = MEASUREMENT) -> str:
    """``reading,enterprise=E001,...``: the measurement and its tags, keys sorted."""
    parts = [escape_measurement(measurement)]
    parts.extend(f"{escape_tag(k)}={escape_tag(v)}" for k, v in sorted(tags.items()))
    return ",".join(parts)


def alarm_line(event: AlarmEvent) -> str:
    """One alarm state change as a point of measurement ``alarm`` (docs/contract.md §8),
    at the change's time: tags ``enterprise``, ``installation``, ``priority``, ``tag``,
    ``type``; fields ``state``, ``event``, ``message``, ``id``, ``seq`` (integer),
    ``value`` and ``limit`` (floats, absent when the alarm has none). Raises
    ``ValueError`` for what line protocol cannot carry (a backslash in a tag).

    >>> from hazwatch.models import Alarm
    >>> alarm = Alarm(id="A1", enterprise="E001", installation="MH01", tag="TK101_LT",
    ...     type="HH", priority="critical", state="active_unack", value=11.2, limit=11.0,
    ...     raised_at="2025-11-22T14:00:00.000Z", cleared_at=None,
    ...     message='Tank 101 "level" high')
    >>> event = AlarmEvent(alarm=alarm, previous_state=None, kind="raised",
    ...     at="2025-11-22T14:00:00.000Z", seq=1)
    >>> head, rest = alarm_line(event).split(" ", 1)
    >>> head
    'alarm,enterprise=E001,installation=MH01,priority=critical,tag=TK101_LT,type=HH'
    >>> print(rest.replace(",", "\\n"))
    state="active_unack"
    event="raised"
    message="Tank 101 \\"level\\" high"
    id="A1"
    seq=1i
    value=11.2
    limit=11.0 1763820000000
    """
    alarm = event.alarm
    key = series_key(
        {
            "enterprise": alarm.enterprise,
            "installation": alarm.installation,
            "priority": alarm.priority.value,
            "tag": alarm.tag,
            "type": alarm.type.value,
        },
        ALARM_MEASUREMENT,
    )
    message = " ".join(alarm.message.splitlines())
    fields = [
        f"state={string_field(alarm.state.value)}",
        f"event={string_field(str(event.kind))}",
        f"message={string_field(message)}",
        f"id={string_field(alarm.id)}",
    ]
    if event.seq is not None:
        fields.append(f"seq={event.seq}i")
    if alarm.value is not None and math.isfinite(alarm.value):
        fields.append(f"value={float_field(alarm.value)}")
    if alarm.limit is not None and math.isfinite(alarm.limit):
        fields.append(f"limit={float_field(alarm.limit)}")
    return f"{key} {','.join(fields)} {iso_to_ms(event.at)}"


_QUALITY_FIELDS = {q: f"quality={string_field(q.value)}" for q in Quality}
_QUALITIES_BY_FIELD = {string_field(q.value): q for q in Quality}
_VALUE = " value="
_QUALITY = ",quality="


class LineEncoder:
    """Readings → line protocol and back, with the series key cached per registered point.

    :meth:`body` is the ingest's hot path: it runs once per reading, at the edge, and
    its bytes are what the spool keeps and the writer posts (nothing downstream builds
    a line again). ``tag`` sorts last among the series key's tags, so a key is a head —
    ``"reading,enterprise=…,installation=…,kind=…,tag="``, one string shared by every
    point of an installation and kind — followed by the tag; per point the cache holds
    a reference to its head (not a ~160-byte key of its own), and a line is one
    f-string: head, tag, the value's ``repr``, the quality field, the timestamp.
    :meth:`parse` is the way back, for the rare paths that need ``Reading`` objects
    again (detectors after a crash, dead letters, a sink that does not speak line
    protocol).
    """

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._heads: dict[str, dict[str, str]] = {}  # enterprise -> tag -> its key's head
        self._shared: dict[str, str] = {}  # head -> head: one string per distinct head
        self._points: dict[str, tuple[str, str]] = {}
        """series key -> (enterprise, tag): only once :meth:`parse` needs it."""

    def series_key(self, enterprise: str, tag: str) -> str:
        """Raises ``KeyError`` for a point the registry does not hold."""
        head = self._head(enterprise, tag)
        return head + tag if head is not None else self._key(enterprise, tag)

    def _head(self, enterprise: str, tag: str) -> str | None:
        """The head of the point's series key (``None`` for a tag that needs escaping:
        no registered tag does, its pattern has no space, comma or equals sign)."""
        heads = self._heads.setdefault(enterprise, {})
        head = heads.get(tag)
        if head is None:
            point = self._registry.point(enterprise, tag)
            if point is None:
                raise KeyError((enterprise, tag))
            if escape_tag(tag) != tag:
                return None
            tags = {"enterprise": enterprise, "installation": point.installation}
            key = series_key({**tags, "kind": point.kind.value}) + ",tag="
            head = heads[point.tag] = self._shared.setdefault(key, key)
        return head

    def _key(self, enterprise: str, tag: str) -> str:
        point = self._registry.point(enterprise, tag)
        if point is None:
            raise KeyError((enterprise, tag))
        return series_key(
            {
                "enterprise": enterprise,
                "installation": point.installation,
                "tag": tag,
                "kind": point.kind.value,
            }
        )

    def line(self, reading: Reading) -> str:
        key = self.series_key(reading.enterprise, reading.tag)
        return (
            f"{key}{_VALUE}{float_field(reading.value)},{_QUALITY_FIELDS[reading.quality]} "
            f"{reading.ts_ms}"
        )

    def lines(self, readings: Sequence[Reading]) -> list[str]:
        """One line per reading. Raises ``SinkRejected`` if any cannot be written.

        That only happens for readings the validator should have stopped (a point
        not in the registry, a non-finite value), so the whole batch is refused
        before anything is sent rather than half-written.
        """
        try:
            return list(map(self.line, readings))
        except (KeyError, ValueError) as exc:
            raise _refused(exc) from exc

    def body(self, readings: Sequence[Reading]) -> bytes:
        """The readings as line protocol, one line each, joined by ``\\n`` (no trailing one).

        The same lines as :meth:`lines`, built with one dictionary lookup per reading
        (~0.5 µs). Raises ``SinkRejected`` as :meth:`lines` does.
        """
        out: list[str] = []
        enterprise: str | None = None
        heads: dict[str, str] = {}
        qualities = _QUALITY_FIELDS
        isfinite = math.isfinite
        try:
            for r in readings:
                if r.enterprise != enterprise:  # a message is one enterprise
                    enterprise = r.enterprise
                    heads = self._heads.setdefault(enterprise, {})
                tag = r.tag
                head = heads.get(tag)
                if head is None and (head := self._head(r.enterprise, tag)) is None:
                    out.append(self.line(r))
                    continue
                value = float(r.value)
                if not isfinite(value):
                    value = float(float_field(value))  # raises ValueError, with the message
                out.append(f"{head}{tag} value={value!r},{qualities[r.quality]} {r.ts_ms}")
        except (KeyError, ValueError) as exc:
            raise _refused(exc) from exc
        return "\n".join(out).encode()

    def parse(self, body: bytes, gateway: str, stamped_ms: int | None = None) -> list[Reading]:
        """The readings of a :meth:`body` again (``gateway`` is not in the line).

        ``stamped_ms``: the receive time, if the message had readings that took it as
        their time (``Reading.receive_time``); those readings are the ones whose time
        equals it. Raises ``ValueError`` for a line this encoder did not write.
        """
        readings: list[Reading] = []
        for line in body.decode().split("\n"):
            head, _, ts = line.rpartition(" ")
            key, _, fields = head.partition(_VALUE)
            value, _, quality = fields.partition(_QUALITY)
            point = self._points.get(key) or self._point_of(key)
            found = _QUALITIES_BY_FIELD.get(quality)
            if found is None:
                raise ValueError(f"line protocol: expected a quality field, got {line!r}")
            ts_ms = int(ts)
            enterprise, tag = point
            stamped = ts_ms == stamped_ms
            readings.append(Reading(enterprise, gateway, tag, float(value), ts_ms, found, stamped))
        return readings

    def _point_of(self, key: str) -> tuple[str, str]:
        """The point of a series key: index every registered point once (the first
        :meth:`parse` pays for it; a service that never parses never keeps it)."""
        for point in self._registry.points():
            with contextlib.suppress(ValueError):  # an id no line can hold: never written
                self._points[self.series_key(point.enterprise, point.tag)] = (
                    point.enterprise,
                    point.tag,
                )
        found = self._points.get(key)
        if found is None:
            raise ValueError(
                f"line protocol: expected the series key of a registered point, got {key!r}"
            )
        return found


def _refused(exc: Exception) -> SinkRejected:
    return SinkRejected(
        f"cannot write these readings as line protocol: {exc!r} "
        "(expected registered points with finite values)"
    )

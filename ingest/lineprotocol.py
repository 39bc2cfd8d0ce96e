"""InfluxDB line protocol for the §3.8 schema, and InfluxQL literals for queries.

One point per reading (one line; wrapped here)::

    reading,enterprise=E001,installation=MH01,kind=level,tag=TK101_LT
        value=3.42,quality="good" 1763820000123

- tag keys sorted (what InfluxDB does internally; it saves it the sort);
- ``value`` always a float literal (``repr(float)``: ``1.0``, never ``1``-looking
  ints with an ``i``), so the field type can never drift (REFERENCE.md, InfluxDB);
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

import math
from collections.abc import Sequence
from typing import Any

from hazwatch.errors import SinkRejected
from hazwatch.models import Quality, Reading, Registry

MEASUREMENT = "reading"

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


_QUALITY_FIELDS = {q: f"quality={string_field(q.value)}" for q in Quality}
_QUALITY_FIELDS_BY_NAME = {q.value: field for q, field in _QUALITY_FIELDS.items()}


class LineEncoder:
    """Readings → line protocol, with the series key cached per registered point."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._keys: dict[tuple[str, str], str] = {}

    def series_key(self, enterprise: str, tag: str) -> str:
        """Raises ``KeyError`` for a point the registry does not hold."""
        cache_key = (enterprise, tag)
        key = self._keys.get(cache_key)
        if key is None:
            point = self._registry.point(enterprise, tag)
            if point is None:
                raise KeyError(cache_key)
            key = series_key(
                {
                    "enterprise": enterprise,
                    "installation": point.installation,
                    "tag": tag,
                    "kind": point.kind.value,
                }
            )
            self._keys[cache_key] = key
        return key

    def line(self, reading: Reading) -> str:
        key = self.series_key(reading.enterprise, reading.tag)
        return (
            f"{key} value={float_field(reading.value)},{_QUALITY_FIELDS[reading.quality]} "
            f"{reading.ts_ms}"
        )

    def row_lines(self, rows: Sequence[Sequence[Any]]) -> list[str]:
        """Lines of spooled rows (``ingest.spool.Row``), as :meth:`lines` does for readings."""
        key = self.series_key
        try:
            return [
                f"{key(e, t)} value={float_field(v)},{_QUALITY_FIELDS_BY_NAME[q]} {ts}"
                for e, _, t, v, ts, q, _ in rows
            ]
        except (KeyError, ValueError) as exc:
            raise SinkRejected(
                f"cannot write these readings as line protocol: {exc!r} "
                "(expected registered points with finite values)"
            ) from exc

    def lines(self, readings: Sequence[Reading]) -> list[str]:
        """One line per reading. Raises ``SinkRejected`` if any cannot be written.

        That only happens for readings the validator should have stopped (a point
        not in the registry, a non-finite value), so the whole batch is refused
        before anything is sent rather than half-written.
        """
        try:
            return list(map(self.line, readings))
        except (KeyError, ValueError) as exc:
            raise SinkRejected(
                f"cannot write these readings as line protocol: {exc!r} "
                "(expected registered points with finite values)"
            ) from exc

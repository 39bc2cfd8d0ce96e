"""A vendor's own JSON, described by configuration: which keys hold tag, value, time, unit.

Smart-electricity meters and many site gateways send JSON of their own design, e.g.::

    {"devId": "DL-0001", "ts": 1763820000,
     "data": [{"id": "Ia", "val": 12.3, "unit": "A"}, {"id": "IL", "val": 35, "unit": "mA"}]}
    {"sn": "DL-0002", "time": 1763820000123, "values": {"Ia": 12.3, "T1": 41.5}}

Options (``[ingest.codecs.options]``)::

    readings = "data"       # key of the readings: an array of objects, or an object
                            # tag → value; "" = the document itself
    tag = "id"              # in each reading object: the tag's key...
    value = "val"           # ... the value's ...
    time = "ts"             # ... the time's (absent in a reading: the message's)
    unit = "unit"           # ... the unit's ("" = none)
    message_time = "ts"     # the message-level time's key ("" = none)
    device = "devId"        # the message-level device's key ("" = none: map by topic)
    time_unit = "s"         # epoch "s" or "ms" (RFC 3339 strings are read too)
    numeric_strings = false # accept "12.3" as a number (many vendors quote numbers)
    units = {}              # unit → factor, e.g. {mA = 1, A = 1000}: values in the
                            # registry's unit; a unit not listed is rejected (bad_unit)

Fields for ``[[ingest.codecs.map]]``: ``device``, ``tag``. Defaults: gateway
``{device}``, tag ``{tag}``; the enterprise must be given.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

from pydantic import Field

from hazwatch.errors import ConfigError
from hazwatch.settings import CodecSettings, IngestSettings, MappingRule
from ingest.codec import CodecContext, Problem, describe
from ingest.gatewayjson import (
    TIME_UNITS_MS,
    CodecOptions,
    GatewayJsonCodec,
    Walk,
    epoch_ms,
    object_doc,
    parse_options,
)
from ingest.jsonpayload import number


class FieldMapOptions(CodecOptions):
    readings: str = "data"
    tag: str = "tag"
    value: str = "value"
    time: str = "ts"
    unit: str = ""
    message_time: str = "ts"
    device: str = ""
    time_unit: Literal["s", "ms"] = "ms"
    numeric_strings: bool = False
    units: dict[str, float] = Field(default_factory=dict)


class FieldMapCodec(GatewayJsonCodec):
    kind = "field-map"
    FIELDS = ("device", "tag")
    TOPICS = ()
    MAP: ClassVar[tuple[MappingRule, ...]] = (MappingRule(gateway="{device}", tag="{tag}"),)

    def __init__(self, entry: CodecSettings, where: str, limits: IngestSettings) -> None:
        self.options = parse_options(FieldMapOptions, entry, where)
        if not entry.topics:
            raise ConfigError(f"{where}.topics: field-map has no default topics: list them")
        self._unit_ms = TIME_UNITS_MS[self.options.time_unit]
        super().__init__(entry, where, limits)

    def walk(self, walk: Walk, doc: Any) -> None:
        o = self.options
        container = doc
        message_ts: int | None = None
        device = ""
        if o.readings or o.device or o.message_time:
            doc = object_doc(doc, f'{{"{o.readings}": ...}}')
            if o.readings:
                if o.readings not in doc:
                    raise Problem("bad_structure", f"expected the key {o.readings!r}, got none")
                container = doc[o.readings]
            if o.message_time and o.message_time in doc:
                message_ts = epoch_ms(doc[o.message_time], self._unit_ms, o.message_time)
            if o.device:
                raw = doc.get(o.device)
                if type(raw) not in (str, int) or raw == "":
                    raise Problem(
                        "bad_structure", f"{o.device}: expected a device id, got {describe(raw)}"
                    )
                device = str(raw)
        target = walk.target(device, {"device": device})
        if target is None:
            return
        if isinstance(container, dict):
            items = [(k, v, message_ts, None) for k, v in container.items()]
        elif isinstance(container, list):
            items = [self._item(n, item, message_ts) for n, item in enumerate(container)]
        else:
            raise Problem(
                "bad_structure",
                f"{o.readings or 'the document'}: expected an array or an object, got "
                f"{describe(container)}",
            )
        for tag, raw, ts_ms, unit in items:
            walk.reading(target, device, {"device": device}, ("tag", tag), (raw, unit), ts_ms)
        walk.part(target)

    def _item(self, n: int, item: Any, message_ts: int | None) -> tuple[str, Any, int | None, Any]:
        o = self.options
        if not isinstance(item, dict) or type(item.get(o.tag)) not in (str, int):
            raise Problem(
                "bad_structure",
                f'[{n}]: expected {{"{o.tag}": ..., "{o.value}": ...}}, got {describe(item)}',
            )
        ts_ms = epoch_ms(item[o.time], self._unit_ms, o.time) if o.time in item else message_ts
        return str(item[o.tag]), item.get(o.value), ts_ms, item.get(o.unit) if o.unit else None

    def value(self, raw: Any) -> float:
        value, unit = raw
        o = self.options
        if o.numeric_strings and type(value) is str:
            try:
                parsed = float(value)
            except ValueError:
                raise Problem(
                    "bad_value", f"expected a number, got {describe(value)}", "value"
                ) from None
            if not math.isfinite(parsed):
                raise Problem(
                    "not_finite", f"expected a finite number, got {describe(value)}", "value"
                )
            value = parsed
        result = number(value, "value")
        if not (o.units and o.unit):
            return result
        if unit is not None:
            factor = o.units.get(unit) if type(unit) is str else None
            if factor is None:
                raise Problem(
                    "bad_unit",
                    f"expected one of {', '.join(o.units)}, got {describe(unit)}",
                    "unit",
                )
            return result * factor
        raise Problem("bad_unit", f"expected a unit ({', '.join(o.units)}), got none", "unit")


def build(entry: CodecSettings, where: str, context: CodecContext) -> FieldMapCodec:
    return FieldMapCodec(entry, where, context.limits)

"""Telegraf's MQTT output with the JSON serializer: single metrics and batches.

Topic (Telegraf's default): ``telegraf/{host}/{plugin}``. Payloads::

    {"fields": {"field_1": 30, "n_images": 660}, "name": "docker",
     "tags": {"host": "raynor"}, "timestamp": 1458229140}                single
    {"metrics": [{"fields": ..., "name": ..., "tags": ..., "timestamp": ...}, ...]}  batch

``timestamp`` is in Telegraf's ``json_timestamp_units`` — seconds unless configured;
set the same here (``options.timestamp_units``: ``s``, ``ms``, ``us``, ``ns``). A
``json_timestamp_format`` of RFC 3339 is read too. Every numeric or boolean field is
one reading; a string field is rejected alone (``bad_value``).

Fields for ``[[ingest.codecs.map]]``: ``name`` (the measurement), ``field``, and each
Telegraf tag by its key (``host``, ``slave_id``...). Defaults: gateway ``{host}``, tag
``{name}.{field}``; the enterprise must be given.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

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


class TelegrafOptions(CodecOptions):
    timestamp_units: Literal["s", "ms", "us", "ns"] = "s"


class TelegrafCodec(GatewayJsonCodec):
    kind = "telegraf"
    FIELDS = None  # name, field and every Telegraf tag
    TOPICS = ("telegraf/+/+",)
    MAP: ClassVar[tuple[MappingRule, ...]] = (MappingRule(gateway="{host}", tag="{name}.{field}"),)

    def __init__(self, entry: CodecSettings, where: str, limits: IngestSettings) -> None:
        self.options = parse_options(TelegrafOptions, entry, where)
        self._unit_ms = TIME_UNITS_MS[self.options.timestamp_units]
        super().__init__(entry, where, limits)

    def walk(self, walk: Walk, doc: Any) -> None:
        doc = object_doc(doc, '{"name", "fields", "tags", "timestamp"} or {"metrics": [...]}')
        if "metrics" in doc:
            metrics = doc["metrics"]
            if not isinstance(metrics, list):
                raise Problem(
                    "bad_structure", f"metrics: expected an array, got {describe(metrics)}"
                )
            for n, metric in enumerate(metrics):
                try:
                    self._metric(walk, metric)
                except Problem as exc:  # one broken metric of a batch costs only itself
                    walk.reject(exc.at(f"metrics[{n}]"))
        else:
            self._metric(walk, doc)

    def _metric(self, walk: Walk, metric: Any) -> None:
        metric = object_doc(metric, '{"name", "fields", "tags", "timestamp"}')
        name, fields, tags = metric.get("name"), metric.get("fields"), metric.get("tags", {})
        if type(name) is not str or not isinstance(fields, dict) or not isinstance(tags, dict):
            raise Problem(
                "bad_structure",
                'expected {"name": string, "fields": {...}, "tags": {...}}, got name '
                f"{describe(name)}, fields {describe(fields)}, tags {describe(tags)}",
            )
        ts_ms = (
            epoch_ms(metric["timestamp"], self._unit_ms, "timestamp")
            if "timestamp" in metric
            else None
        )
        source = {str(k): str(v) for k, v in tags.items()}
        source["name"] = name
        key = tuple(sorted(source.items()))
        target = walk.target(key, source)
        if target is None:
            return
        for field, raw in fields.items():
            walk.reading(target, key, source, ("field", field), raw, ts_ms)
        walk.part(target)


def build(entry: CodecSettings, where: str, context: CodecContext) -> TelegrafCodec:
    return TelegrafCodec(entry, where, context.limits)

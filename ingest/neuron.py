"""EMQ Neuron's MQTT upload: values-format and tags-format, Neuron 2.0 to 2.x.

Topics (Neuron's defaults): ``/neuron/{app}/upload`` (2.2, 2.3; 2.0 and 2.1 without the
leading ``/``) and ``/neuron/{app}/{driver}/{group}`` (2.4 on: the upload topic is set
per group subscription). Payloads, one per south node group and poll::

    {"timestamp": 1650006388943, "node": "modbus", "group": "grp",
     "values": {"tag0": 123}, "errors": {"tag1": 2014}}                     values-format
    {"timestamp": 1647497389075, "node": "modbus", "group": "grp",
     "tags": [{"name": "tag0", "value": 123}, {"name": "tag1", "error": 2014}]}  tags-format

Neuron 2.0 names the node and group ``node_name`` / ``group_name``; both spellings
are read. ``timestamp`` is epoch milliseconds. A tag Neuron could not read comes with
an error code instead of a value: that tag is rejected with reason ``source_error``
(the gateway's own word that the instrument is not being read), the others are kept.
Neuron's read and write responses (``.../read/resp``, ``.../write/resp``) share the
2.4 topic shape and are left aside, not rejected.

Fields for ``[[ingest.codecs.map]]``: ``node``, ``group``, ``tag``. Defaults: gateway
``{node}``, tag ``{tag}``; the enterprise must be given.
"""

from __future__ import annotations

from typing import Any, ClassVar

from hazwatch.settings import CodecSettings, MappingRule
from ingest.codec import CodecContext, Problem, describe
from ingest.gatewayjson import GatewayJsonCodec, Walk, epoch_ms, object_doc

_RESPONSES = (("read", "resp"), ("write", "resp"))


class NeuronCodec(GatewayJsonCodec):
    kind = "neuron"
    FIELDS = ("node", "group", "tag")
    TOPICS = ("/neuron/+/upload", "neuron/+/upload", "/neuron/+/+/+")
    MAP: ClassVar[tuple[MappingRule, ...]] = (MappingRule(gateway="{node}", tag="{tag}"),)

    def walk(self, walk: Walk, doc: Any) -> None:
        if tuple(walk.topic[-2:]) in _RESPONSES:
            return
        doc = object_doc(doc, '{"node", "group", "timestamp", "values" or "tags"}')
        node = _name(doc, "node", "node_name")
        group = _name(doc, "group", "group_name")
        ts_ms = epoch_ms(doc["timestamp"], 1, "timestamp") if "timestamp" in doc else None
        fields = {"node": node, "group": group}
        target = walk.target((node, group), fields)
        if target is None:
            return
        key = (node, group)
        values, errors = _points(doc)
        for name, raw in values:
            walk.reading(target, key, fields, ("tag", name), raw, ts_ms)
        for name, code in errors:
            walk.reject(
                Problem(
                    "source_error",
                    f"{node}/{group} {name}: Neuron reported error {describe(code)} instead "
                    "of a value",
                )
            )
        walk.part(target)  # a message with only errors still shows the gateway alive


def _name(doc: dict[str, Any], key: str, old_key: str) -> str:
    value = doc.get(key, doc.get(old_key))
    if type(value) is not str or not value:
        raise Problem(
            "bad_structure", f"{key} (or {old_key}): expected a name, got {describe(value)}"
        )
    return value


def _points(doc: dict[str, Any]) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """(name, value) and (name, error code) pairs, from either format."""
    if "values" in doc or "errors" in doc:
        values, errors = doc.get("values", {}), doc.get("errors", {})
        for key, part in (("values", values), ("errors", errors)):
            if not isinstance(part, dict):
                raise Problem("bad_structure", f"{key}: expected an object, got {describe(part)}")
        return list(values.items()), list(errors.items())
    tags = doc.get("tags")
    if not isinstance(tags, list):
        raise Problem(
            "bad_structure",
            f'expected "values" (values-format) or "tags" (tags-format), got {describe(tags)}',
        )
    found: list[tuple[str, Any]] = []
    failed: list[tuple[str, Any]] = []
    for n, item in enumerate(tags):
        name = item.get("name") if isinstance(item, dict) else None
        if type(name) is not str:
            raise Problem(
                "bad_structure", f'tags[{n}]: expected {{"name", "value"}}, got {describe(item)}'
            )
        if "error" in item and "value" not in item:
            failed.append((name, item["error"]))
        else:
            found.append((name, item.get("value")))
    return found, failed


def build(entry: CodecSettings, where: str, context: CodecContext) -> NeuronCodec:
    return NeuronCodec(entry, where, context.limits)

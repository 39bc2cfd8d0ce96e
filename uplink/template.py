"""Request bodies built from JSON templates (docs/uplink.md, "Templates").

Each province names its fields its own way (``quotaId``, ``collectTime``, ``datas``),
so an uplink's JSON is configured, not coded. A template is a JSON value (in the
config, a TOML inline table); its strings are where the fields go:

- a string that is exactly one field, ``"{value}"``, becomes that field's value
  with its own JSON type: a number stays a number, ``"{alarm}"`` is an object;
- any other string is Python format syntax and stays a string: ``"T-{tag}"``,
  ``"{value:.2f}"``; ``{{`` and ``}}`` are literal braces;
- in a body template, ``"{records}"`` is the array of the request's records, each
  built from the record template.

Every template is tried on sample fields when the uplink is built, so a misspelt
field is a ``ConfigError`` naming the uplink, the template and the key at start —
not a broken request a day later.

>>> t = JsonTemplate({"id": "{tag}", "v": "{value}", "txt": "{value:.1f} {unit}"},
...                  frozenset({"tag", "value", "unit"}), "example")
>>> t.render({"tag": "TK101_LT", "value": 3.42, "unit": "m"})
{'id': 'TK101_LT', 'v': 3.42, 'txt': '3.4 m'}
"""

from __future__ import annotations

import datetime as dt
import re
import string
from collections.abc import Callable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from hazwatch.errors import ConfigError

READING_FIELDS = frozenset(
    {
        "seq", "uplink", "enterprise", "enterprise_name", "installation", "gateway", "tag",
        "name", "kind", "unit", "value", "quality", "ts_ms", "ts_s", "time", "local_time",
    }
)  # fmt: skip
ALARM_FIELDS = frozenset(
    {
        "seq", "uplink", "key", "event", "alarm", "alarm_id", "alarm_seq", "kind", "at",
        "at_ms", "local_time", "previous_state", "enterprise", "installation", "tag", "type",
        "priority", "state", "value", "limit", "message", "raised_at", "cleared_at",
    }
)  # fmt: skip
BODY_FIELDS = frozenset(
    {
        "uplink", "stream", "batch_id", "enterprise", "count", "first_seq", "last_seq",
        "sent_ms", "sent_s", "sent_time", "local_sent_time", "records",
    }
)  # fmt: skip

DEFAULT_READING_RECORD: dict[str, Any] = {
    "seq": "{seq}",
    "enterprise": "{enterprise}",
    "installation": "{installation}",
    "gateway": "{gateway}",
    "tag": "{tag}",
    "kind": "{kind}",
    "unit": "{unit}",
    "v": "{value}",
    "q": "{quality}",
    "ts": "{ts_ms}",
}
DEFAULT_ALARM_RECORD: dict[str, Any] = {
    "seq": "{seq}",
    "key": "{key}",
    "kind": "{kind}",
    "at": "{at}",
    "previous_state": "{previous_state}",
    "alarm": "{alarm}",
}
DEFAULT_BODY: dict[str, Any] = {
    "uplink": "{uplink}",
    "stream": "{stream}",
    "batch": "{batch_id}",
    "enterprise": "{enterprise}",
    "sent": "{sent_ms}",
    "records": "{records}",
}

_Node = Callable[[Mapping[str, Any]], Any]
_FORMATTER = string.Formatter()
_BASE_NAME = re.compile(r"[^.\[]*")


class JsonTemplate:
    """A template compiled once; ``render(fields)`` builds one JSON value."""

    def __init__(self, template: Any, fields: frozenset[str], where: str) -> None:
        self.fields = fields
        self._render = self._compile(template, where)

    def render(self, values: Mapping[str, Any]) -> Any:
        return self._render(values)

    def _compile(self, node: Any, where: str) -> _Node:
        if isinstance(node, dict):
            items = [(str(k), self._compile(v, f"{where}.{k}")) for k, v in node.items()]
            return lambda values: {k: render(values) for k, render in items}
        if isinstance(node, list):
            parts = [self._compile(v, f"{where}[{n}]") for n, v in enumerate(node)]
            return lambda values: [render(values) for render in parts]
        if isinstance(node, str):
            return self._compile_string(node, where)
        return lambda _values: node

    def _compile_string(self, text: str, where: str) -> _Node:
        try:
            parsed = list(_FORMATTER.parse(text))
        except ValueError as exc:
            raise ConfigError(f"{where}: {text!r} is not a valid template: {exc}") from exc
        names = [name for _, name, _, _ in parsed if name is not None]
        for name in names:
            base = _BASE_NAME.match(name)
            if not name or base is None or base.group() not in self.fields:
                raise ConfigError(
                    f"{where}: unknown field {{{name}}} in {text!r}; known: {sorted(self.fields)}"
                )
        if not names:
            literal = text.replace("{{", "{").replace("}}", "}")
            return lambda _values: literal
        if len(parsed) == 1 and parsed[0][0] == "" and not parsed[0][2] and not parsed[0][3]:
            name = names[0]
            if name in self.fields:  # a plain field: its own JSON type
                return lambda values: values[name]
        return text.format_map


def check(template: JsonTemplate, sample: Mapping[str, Any], where: str) -> None:
    """Render once on sample fields: a bad format spec (``{tag:.2f}``) fails here."""
    try:
        template.render(sample)
    except (ValueError, KeyError, IndexError, AttributeError, TypeError) as exc:
        raise ConfigError(f"{where}: the template does not render: {exc}") from exc


class LocalTime:
    """Epoch milliseconds as the platform wants its times (``{local_time}``).

    >>> LocalTime("%Y-%m-%d %H:%M:%S", "Asia/Shanghai")(1763820000123)
    '2025-11-22 22:00:00'
    >>> LocalTime("%Y-%m-%dT%H:%M:%S%z", "+08:00")(1763820000123)
    '2025-11-22T22:00:00+0800'
    """

    def __init__(self, time_format: str, zone: str) -> None:
        self._format = time_format
        self._zone: dt.tzinfo
        if re.fullmatch(r"[+-]\d{2}:\d{2}", zone):
            sign = -1 if zone[0] == "-" else 1
            offset = dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
            self._zone = dt.timezone(sign * offset)
        else:
            self._zone = ZoneInfo(zone)

    def __call__(self, ts_ms: int) -> str:
        return dt.datetime.fromtimestamp(ts_ms / 1000, tz=self._zone).strftime(self._format)

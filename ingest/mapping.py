"""Gateway formats name things their own way: rules turn those names into hazwatch's.

A Sparkplug edge node is ``group/edge_node/device`` with metrics like
``Tank 101/Level``; a Neuron message names a south node, a group and tags. hazwatch
stores readings by enterprise, gateway and tag. ``[[ingest.codecs.map]]`` rules
(:class:`hazwatch.settings.MappingRule`) say how, per codec:

- ``match``: globs on the format's fields (``{"group": "PlantA*"}``), all must match;
- ``enterprise``, ``gateway``, ``tag``: templates over the same fields
  (``"{edge_node}-{device}"``; ``{topic[1]}`` is a level of the MQTT topic).

Rules are tried in order, the kind's defaults last; a field a matching rule leaves out
comes from the next matching rule (so ``enterprise = "E001"`` alone keeps the kind's
gateway and tag). ``[ingest.codecs] tags`` renames a produced tag to a registry tag.

A source nothing maps is rejected (``unmapped``); an enterprise or gateway id outside
``[A-Za-z0-9_-]{1,64}`` is rejected (``bad_id``). A tag that is not a registry tag —
not even a valid one, like ``Tank 101/Level`` — is kept as a reading the validator
lists under unknown tags, like any unregistered tag: the list is the operator's
to-do list for ``tags`` renames.
"""

from __future__ import annotations

import fnmatch
import re
import string
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hazwatch.errors import ConfigError
from hazwatch.models import ID_PATTERN, TAG_PATTERN
from hazwatch.settings import MappingRule
from ingest.codec import printable

SOURCES_CACHED = 10_000
TAGS_CACHED = 200_000
UNKNOWN_TAG_CHARS = 128
_ID = re.compile(ID_PATTERN)
_TAG = re.compile(TAG_PATTERN)
_FIELDS = ("enterprise", "gateway", "tag")


class TopicLevels(list[str]):
    """The MQTT topic as a template field: ``{topic}`` is the whole, ``{topic[1]}`` a level."""

    def __str__(self) -> str:
        return "/".join(self)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


class MappingProblem(Exception):
    """A source the rules cannot place; ``reason`` is a rejection code."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True, slots=True)
class Target:
    """Where one source's readings go: its enterprise and gateway, and its tag template."""

    enterprise: str
    gateway: str
    tag_template: str


class NameMapper:
    """The rules of one codec (see the module docstring).

    ``fields``: the names the format offers templates and globs (``topic`` is always
    there; ``None``: the format's names are open, e.g. Telegraf's tags); templates naming
    anything else are refused here, at start, with the key.
    """

    def __init__(
        self,
        where: str,
        rules: Sequence[MappingRule],
        defaults: Sequence[MappingRule],
        tags: Mapping[str, str],
        fields: Sequence[str] | None,
    ) -> None:
        self._where = where
        self._rules = [*rules, *defaults]
        self._renames = dict(tags)
        allowed = None if fields is None else {*fields, "topic"}
        for n, rule in enumerate(rules):
            for key, value in (*((f"match.{k}", k) for k in rule.match), *_templates(rule)):
                name = value if key.startswith("match.") else None
                names = (
                    [name]
                    if name is not None
                    else _template_fields(value, f"{where}.map[{n}].{key}")
                )
                for field in names:
                    if allowed is not None and field not in allowed:
                        raise ConfigError(
                            f"{where}.map[{n}].{key}: unknown field {field!r} "
                            f"(this format has: {', '.join(sorted(allowed))})"
                        )
        for n, (produced, tag) in enumerate(self._renames.items()):
            if not _TAG.fullmatch(tag):
                raise ConfigError(
                    f"{where}.tags[{n}]: {produced!r} = {tag!r}: expected a registry tag "
                    "(1-128 characters of A-Z a-z 0-9 _ . : -)"
                )
        for name in _FIELDS:
            if not any(getattr(rule, name) is not None for rule in self._rules):
                raise ConfigError(
                    f'{where}: no map rule gives the {name}: add [[...map]] {name} = "..."'
                )
        self._targets: dict[Hashable, Target | MappingProblem] = {}
        self._tags: dict[tuple[Hashable, str], str] = {}

    def target(self, key: Hashable, fields: Mapping[str, Any]) -> Target:
        """The target of the source ``fields`` (remembered by ``key``); raises
        :class:`MappingProblem`."""
        found = self._targets.get(key)
        if found is None:
            found = self._resolve(fields)
            if len(self._targets) >= SOURCES_CACHED:
                self._targets.clear()
            self._targets[key] = found
        if isinstance(found, MappingProblem):
            raise found
        return found

    def cached(self, key: Hashable, name: str) -> str | None:
        """The tag of point ``name`` of source ``key`` if it was made before (no dict built)."""
        return self._tags.get((key, name))

    def tag(self, key: Hashable, target: Target, fields: Mapping[str, Any], name: str) -> str:
        """The tag of point ``name`` of a source (remembered by ``key`` and ``name``)."""
        cached = self._tags.get((key, name))
        if cached is not None:
            return cached
        try:
            produced = target.tag_template.format_map(fields)
        except (KeyError, IndexError, ValueError):
            produced = name
        tag = self._renames.get(produced, produced)
        if not _TAG.fullmatch(tag):
            # Not a registry tag: listed as unknown (bounded, printable) for a rename.
            tag = printable(tag, UNKNOWN_TAG_CHARS) or "(empty)"
        if len(self._tags) >= TAGS_CACHED:
            self._tags.clear()
        self._tags[key, name] = tag
        return tag

    def _resolve(self, fields: Mapping[str, Any]) -> Target | MappingProblem:
        chosen: dict[str, str] = {}
        for rule in self._rules:
            if not all(
                fnmatch.fnmatchcase(str(fields.get(k, "")), glob) for k, glob in rule.match.items()
            ):
                continue
            for name in _FIELDS:
                value = getattr(rule, name)
                if name not in chosen and value is not None:
                    chosen[name] = value
            if len(chosen) == len(_FIELDS):
                break
        shown = ", ".join(f"{k}={printable(str(v), 60)!r}" for k, v in fields.items() if v != "")
        missing = [name for name in _FIELDS if name not in chosen]
        if missing:
            return MappingProblem(
                "unmapped",
                f"no {self._where}.map rule gives {' and '.join(missing)} for {shown}",
            )
        ids: list[str] = []
        for name in ("enterprise", "gateway"):
            try:
                value = chosen[name].format_map(fields)
            except (KeyError, IndexError, ValueError) as exc:
                return MappingProblem(
                    "unmapped", f"{name} template {chosen[name]!r} does not fit {shown}: {exc!r}"
                )
            if not _ID.fullmatch(value):
                return MappingProblem(
                    "bad_id",
                    f"{name} {printable(value, 80)!r} (from {chosen[name]!r} on {shown}): "
                    "expected 1-64 characters of A-Z a-z 0-9 _ -",
                )
            ids.append(value)
        return Target(ids[0], ids[1], chosen["tag"])


def _templates(rule: MappingRule) -> list[tuple[str, str]]:
    return [(name, value) for name in _FIELDS if (value := getattr(rule, name)) is not None]


def _template_fields(template: str, where: str) -> list[str]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"{where}: not a template: {exc}") from exc
    return [re.split(r"[.\[]", field)[0] for _, field, _, _ in parsed if field is not None]

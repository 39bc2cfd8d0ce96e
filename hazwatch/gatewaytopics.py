"""The MQTT topics of each gateway format, as a broker ACL needs them.

One :class:`TopicFamily` per format hazwatch decodes (docs/gateways.md): the topics a
gateway of that format publishes and reads, and those hazwatch's own user reads and
writes. ``hazwatch gateway add`` (:mod:`hazwatch.logins`) turns them into Mosquitto ACL
lines for one login. Templates name the login's ids — ``{enterprise}``, ``{gateway}``
(``+`` for an enterprise-wide login) and the format's own (:attr:`TopicFamily.params`:
a Sparkplug ``group``, a Neuron ``app``...) — and ``{host_id}``, hazwatch's Sparkplug
host id.

Each family puts the enterprise (or an id given to one enterprise only) in the topic,
because that is what a broker can check: a login of E001 must not be able to write a
topic that is decoded as E002's. :func:`check_apart` refuses a login whose topics
overlap another enterprise's, or the topics hazwatch reads for every format or writes.
Where the format's topics cannot carry it (ThingsBoard's fixed ``v1/gateway/...``),
the enterprise comes from a Mosquitto ``mount_point`` prefix on the gateway's listener.

>>> SPARKPLUG_B.topics(SPARKPLUG_B.gateway_writes, {"group": "PlantA", "gateway": "n1"})[:2]
['spBv1.0/PlantA/NBIRTH/n1', 'spBv1.0/PlantA/NDATA/n1']
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hazwatch.errors import ConfigError
from hazwatch.models import ID_PATTERN
from ingest.routes import filters_overlap

DEFAULT_HOST_ID = "hazwatch"
_ID = re.compile(ID_PATTERN)
_PREFIX = re.compile(r"^([A-Za-z0-9_-]{1,64}/){0,4}$")
_LEVEL = re.compile(r"^(\+|[^\s+#\x00]*)$")


@dataclass(frozen=True)
class TopicFamily:
    """The topics of one gateway format (see the module docstring)."""

    format: str
    gateway_writes: tuple[str, ...]
    service_reads: tuple[str, ...]
    """Templates naming a login's ids are read per login; the others always."""
    gateway_reads: tuple[str, ...] = ()
    service_writes: tuple[str, ...] = ()
    params: tuple[tuple[str, str], ...] = ()
    """The format's own ids: (name, default template over ``enterprise``/``gateway``)."""
    owned: str = ""
    """The param that belongs to one enterprise (the codec maps it to that enterprise)."""
    overlap_hint: str = ""
    """Said when a login of this format would share topics with another enterprise."""

    def ids(self, enterprise: str, gateway: str | None, given: Mapping[str, str]) -> dict[str, str]:
        """The login's ids: the format's params as given, else their defaults; checked."""
        unknown = set(given) - {name for name, _ in self.params}
        if unknown:
            known = ", ".join(f"--{n}" for n, _ in self.params) or "none"
            raise ConfigError(
                f"{self.format}: {', '.join(f'--{n}' for n in sorted(unknown))} is not an id of "
                f"this format (its ids: {known})"
            )
        ids = {"enterprise": enterprise, "gateway": gateway or "+"}
        for name, default in self.params:
            value = given.get(name)
            ids[name] = default.format(**ids) if value is None else value
            _check_param(self.format, name, ids[name])
        return ids

    def topics(self, templates: Iterable[str], ids: Mapping[str, str]) -> list[str]:
        return [t.format(host_id=DEFAULT_HOST_ID, **ids) for t in templates]

    def service_topics(self, host_id: str) -> tuple[list[str], list[str]]:
        """What hazwatch reads and writes for this format whatever the logins are."""
        shared = [t for t in self.service_reads if _fields(t) <= {"host_id"}]
        return (
            [t.format(host_id=host_id) for t in shared],
            [t.format(host_id=host_id) for t in self.service_writes],
        )

    def service_reads_of(self, ids: Mapping[str, str]) -> list[str]:
        """What hazwatch reads for one login (topics its ids decide)."""
        own = [t for t in self.service_reads if not _fields(t) <= {"host_id"}]
        return self.topics(own, ids)


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _check_param(fmt: str, name: str, value: str) -> None:
    if name == "prefix":
        if not _PREFIX.fullmatch(value):
            raise ConfigError(
                f"{fmt} --prefix: expected '' or levels of A-Z a-z 0-9 _ - each ending in / "
                f"(the listener's mount_point, e.g. 'E002/'), got {value!r}"
            )
    elif name == "topic":
        levels = value.split("/")
        if (
            not value
            or not all(_LEVEL.fullmatch(level) for level in levels)
            or not all(level.isprintable() for level in levels)
        ):
            raise ConfigError(
                f"{fmt} --topic: expected a topic without spaces or # (+ for a whole "
                f"level), got {value!r}"
            )
    elif value != "+" and not _ID.fullmatch(value):
        raise ConfigError(
            f"{fmt} --{name}: expected 1-64 characters of A-Z a-z 0-9 _ -, got {value!r}"
        )


HZ_JSON = TopicFamily(
    format="hz-json",
    gateway_writes=(
        "hz/v1/{enterprise}/{gateway}/data",
        "hz/v1/{enterprise}/{gateway}/status",
        "hz/v1/{enterprise}/{gateway}/tag/+",
    ),
    gateway_reads=("hz/v1/{enterprise}/{gateway}/cmd/#",),
    service_reads=("hz/v1/+/+/data", "hz/v1/+/+/status", "hz/v1/+/+/tag/+", "hz/v1/+/alarms"),
    service_writes=("hz/v1/+/alarms",),
)
_SPB = "spBv1.0/{group}"
SPARKPLUG_B = TopicFamily(
    format="sparkplug-b",
    params=(("group", "{enterprise}"),),
    gateway_writes=(
        *(f"{_SPB}/{kind}/{{gateway}}" for kind in ("NBIRTH", "NDATA", "NDEATH")),
        *(f"{_SPB}/{kind}/{{gateway}}/+" for kind in ("DBIRTH", "DDATA", "DDEATH")),
    ),
    gateway_reads=(f"{_SPB}/NCMD/{{gateway}}", f"{_SPB}/DCMD/{{gateway}}/+", "spBv1.0/STATE/+"),
    service_reads=(
        *(f"spBv1.0/+/{kind}/+" for kind in ("NBIRTH", "NDATA", "NDEATH")),
        *(f"spBv1.0/+/{kind}/+/+" for kind in ("DBIRTH", "DDATA", "DDEATH")),
        "spBv1.0/STATE/{host_id}",
    ),
    service_writes=("spBv1.0/+/NCMD/+", "spBv1.0/STATE/{host_id}"),
    owned="group",
    overlap_hint="give each enterprise its own Sparkplug group (--group) or edge node ids",
)
NEURON = TopicFamily(
    format="neuron",
    params=(("app", "{enterprise}"),),
    gateway_writes=("/neuron/{app}/{gateway}/+",),
    service_reads=("/neuron/+/+/+",),
    owned="app",
    overlap_hint="name each enterprise's Neuron north app apart (--app, default the enterprise)",
)
THINGSBOARD = TopicFamily(
    format="thingsboard",
    params=(("prefix", "{enterprise}/"),),
    gateway_writes=tuple(
        f"{{prefix}}v1/gateway/{t}" for t in ("telemetry", "connect", "disconnect")
    ),
    gateway_reads=tuple(
        f"{{prefix}}v1/gateway/{t}" for t in ("rpc", "attributes", "attributes/response")
    ),
    service_reads=tuple(
        f"{{prefix}}v1/gateway/{t}" for t in ("telemetry", "connect", "disconnect")
    ),
    owned="prefix",
    overlap_hint=(
        "ThingsBoard's topics name no enterprise: give each enterprise's gateways a "
        "listener with its own mount_point (--prefix, default '{enterprise}/')"
    ),
)
TELEGRAF = TopicFamily(
    format="telegraf",
    params=(("host", "{gateway}"),),
    gateway_writes=("telegraf/{host}/{enterprise}",),
    service_reads=("telegraf/+/+",),
)
FIELD_MAP = TopicFamily(
    format="field-map",
    params=(("topic", "vendor/{enterprise}/{gateway}/up"),),
    gateway_writes=("{topic}",),
    service_reads=("{topic}",),
    overlap_hint="give each enterprise's devices their own topics (--topic)",
)
FAMILIES: dict[str, TopicFamily] = {
    f.format: f for f in (HZ_JSON, SPARKPLUG_B, NEURON, THINGSBOARD, TELEGRAF, FIELD_MAP)
}


def family(fmt: str) -> TopicFamily:
    found = FAMILIES.get(fmt)
    if found is None:
        raise ConfigError(f"--format: expected one of {', '.join(FAMILIES)}, got {fmt!r}")
    return found


@dataclass(frozen=True)
class LoginTopics:
    """One login as :func:`check_apart` sees it."""

    username: str
    enterprise: str
    format: str
    ids: Mapping[str, str]
    writes: tuple[str, ...]


def check_apart(login: LoginTopics, others: Iterable[LoginTopics]) -> None:
    """Refuse a login that could write a topic another enterprise's login writes, one
    hazwatch reads for another format, or one hazwatch writes; or that takes an id
    another enterprise's login of its format owns (a Sparkplug group, a Neuron app, a
    ThingsBoard prefix: the codec's map gives each to one enterprise)."""
    fam = FAMILIES[login.format]
    hint = f"; {fam.overlap_hint}" if fam.overlap_hint else ""
    guarded = []
    for other_family in FAMILIES.values():
        reads, own_writes = other_family.service_topics(DEFAULT_HOST_ID)
        guarded += [(f"hazwatch writes ({other_family.format})", t) for t in own_writes]
        if other_family is not fam:
            guarded += [(f"hazwatch reads as {other_family.format}", t) for t in reads]
    for topic in login.writes:
        for what, reserved in guarded:
            if filters_overlap(topic, reserved):
                raise ConfigError(f"{login.username}: {topic} overlaps {reserved}, which {what}")
    for other in others:
        if other.enterprise == login.enterprise:
            continue
        owned = fam.owned
        if owned and other.format == login.format and other.ids[owned] == login.ids[owned]:
            raise ConfigError(
                f"{login.username}: {login.format} {owned} {login.ids[owned]!r} is "
                f"{other.enterprise}'s (login {other.username}){hint}"
            )
        for topic in login.writes:
            for theirs in other.writes:
                if filters_overlap(topic, theirs):
                    raise ConfigError(
                        f"{login.username} would write {topic}, and {other.username} of "
                        f"{other.enterprise} writes {theirs}: one enterprise could publish "
                        f"as the other{hint}"
                    )

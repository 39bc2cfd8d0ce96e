"""The registry of codec kinds: ``[[ingest.codecs]]`` → the codecs and their routes.

One place builds every payload codec from configuration, for the service
(``hazwatch/app.py``), record/replay and the backtest (``simulators/``)::

    [[ingest.codecs]]            # the default when no entry is given
    kind = "hz-json"

    [[ingest.codecs]]
    kind = "neuron"
    topics = ["/neuron/E001/+/+"]
    [[ingest.codecs.map]]
    enterprise = "E001"

Adding a format is one module with a ``build(entry, where, context)`` function and one
line in :data:`CODEC_KINDS`. Every problem in an entry — an unknown kind or option, a
template naming a field the format lacks, two codecs subscribing overlapping topics —
stops start-up with a ``ConfigError`` naming the entry (docs/gateways.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hazwatch.clock import Clock, SystemClock
from hazwatch.errors import ConfigError
from hazwatch.metrics import Metrics
from hazwatch.settings import CodecSettings, IngestSettings, MqttSettings
from ingest import fieldmap, hzjson, neuron, telegraf, thingsboard
from ingest.codec import CodecContext, PayloadCodec
from ingest.routes import CodecRoutes
from ingest.session import SessionDuties
from ingest.sparkplug import codec as sparkplug

CodecBuilder = Callable[[CodecSettings, str, CodecContext], PayloadCodec]

CODEC_KINDS: dict[str, CodecBuilder] = {
    "hz-json": hzjson.build,
    "sparkplug-b": sparkplug.build,
    "neuron": neuron.build,
    "thingsboard": thingsboard.build,
    "telegraf": telegraf.build,
    "field-map": fieldmap.build,
}


def build_codecs(
    limits: IngestSettings, *, clock: Clock | None = None, metrics: Metrics | None = None
) -> list[PayloadCodec]:
    """Every configured codec, in configuration order."""
    context = CodecContext(limits, clock or SystemClock(), metrics or Metrics())
    codecs: list[PayloadCodec] = []
    for n, entry in enumerate(limits.codecs):
        where = f"ingest.codecs[{n}]"
        builder = CODEC_KINDS.get(entry.kind)
        if builder is None:
            raise ConfigError(
                f"{where}.kind: unknown codec kind {entry.kind!r} (known: {', '.join(CODEC_KINDS)})"
            )
        codecs.append(builder(entry, f"{where} ({entry.kind})", context))
    return codecs


def build_routes(limits: IngestSettings) -> CodecRoutes:
    """The configured codecs with their topics checked against each other (for decoding
    recordings: nothing is connected, nothing published)."""
    return CodecRoutes(build_codecs(limits))


@dataclass(frozen=True)
class ConnectionPlan:
    """One MQTT connection of the ingest: its settings, its codecs, its session duties."""

    mqtt: MqttSettings
    routes: CodecRoutes
    duties: SessionDuties | None


def plan_connections(codecs: list[PayloadCodec], mqtt: MqttSettings) -> list[ConnectionPlan]:
    """The codecs without session duties share one connection (``mqtt.client_id``, a
    persistent session); each codec with duties (a Sparkplug host) gets its own, with
    client id ``{client_id}-{name}`` (:mod:`ingest.session` says why)."""
    CodecRoutes(codecs)  # overlaps are refused across all connections
    plain = [c for c in codecs if getattr(c, "duties", None) is None]
    plans = [ConnectionPlan(mqtt, CodecRoutes(plain), None)] if plain else []
    for codec in codecs:
        duties: SessionDuties | None = getattr(codec, "duties", None)
        if duties is not None:
            own = mqtt.model_copy(update={"client_id": f"{mqtt.client_id}-{duties.name}"})
            plans.append(ConnectionPlan(own, CodecRoutes([codec]), duties))
    return plans

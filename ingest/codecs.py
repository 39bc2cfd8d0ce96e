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

Adding a format is one module with a ``build(entry, where, limits)`` function and one
line in :data:`CODEC_KINDS`. Every problem in an entry — an unknown kind or option, a
template naming a field the format lacks, two codecs subscribing overlapping topics —
stops start-up with a ``ConfigError`` naming the entry (docs/gateways.md).
"""

from __future__ import annotations

from collections.abc import Callable

from hazwatch.errors import ConfigError
from hazwatch.settings import CodecSettings, IngestSettings
from ingest import fieldmap, hzjson, neuron, telegraf, thingsboard
from ingest.codec import PayloadCodec
from ingest.routes import CodecRoutes

CodecBuilder = Callable[[CodecSettings, str, IngestSettings], PayloadCodec]

CODEC_KINDS: dict[str, CodecBuilder] = {
    "hz-json": hzjson.build,
    "neuron": neuron.build,
    "thingsboard": thingsboard.build,
    "telegraf": telegraf.build,
    "field-map": fieldmap.build,
}


def build_codecs(limits: IngestSettings) -> list[PayloadCodec]:
    """Every configured codec, in configuration order."""
    codecs: list[PayloadCodec] = []
    for n, entry in enumerate(limits.codecs):
        where = f"ingest.codecs[{n}]"
        builder = CODEC_KINDS.get(entry.kind)
        if builder is None:
            raise ConfigError(
                f"{where}.kind: unknown codec kind {entry.kind!r} (known: {', '.join(CODEC_KINDS)})"
            )
        codecs.append(builder(entry, f"{where} ({entry.kind})", limits))
    return codecs


def build_routes(limits: IngestSettings) -> CodecRoutes:
    """The configured codecs with their topics checked against each other."""
    return CodecRoutes(build_codecs(limits))

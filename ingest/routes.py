"""Which codec decodes a topic: one table, used by the service, record/replay and backtest.

Every codec subscribes its own topic filters (:meth:`PayloadCodec.topic_filters`).
A topic is decoded by the codec whose filter matches it — by exactly one: two codecs
whose filters could both match one topic are refused when the routes are built, naming
both (which one would decode a message on such a topic would be an accident of order).

The live source (:class:`ingest.source.MqttSource`) and the simulators' replay and
backtest route through :class:`CodecRoutes`, so a recording is decoded as the service
decodes it.
"""

from __future__ import annotations

from collections.abc import Sequence

from hazwatch.errors import ConfigError
from ingest.codec import PayloadCodec

ROUTES_CACHED = 100_000
"""Topics whose codec is remembered (a topic is one gateway's one kind of message)."""


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic matching: ``+`` one level, ``#`` the rest (also none).

    >>> topic_matches("hz/v1/+/+/data", "hz/v1/E001/gw1/data")
    True
    >>> topic_matches("hz/#", "hz"), topic_matches("hz/+", "hz/a/b")
    (True, False)
    """
    levels = topic.split("/")
    for n, part in enumerate(topic_filter.split("/")):
        if part == "#":
            return True
        if n >= len(levels) or (part not in ("+", levels[n])):
            return False
    return len(levels) == n + 1


def filters_overlap(first: str, second: str) -> bool:
    """Could one topic match both filters?

    >>> filters_overlap("hz/v1/+/+/data", "hz/#"), filters_overlap("a/+/c", "a/b/+")
    (True, True)
    >>> filters_overlap("spBv1.0/+/NDATA/+", "spBv1.0/STATE/+"), filters_overlap("a/#", "a")
    (False, True)
    """
    a, b = first.split("/"), second.split("/")
    for n in range(max(len(a), len(b))):
        x = a[n] if n < len(a) else None
        y = b[n] if n < len(b) else None
        if x == "#" or y == "#":
            return True  # "#" also matches the parent level: a/# matches a
        if x is None or y is None:
            return False
        if x != y and "+" not in (x, y):
            return False
    return True


class CodecRoutes:
    """The codecs of a deployment and the topics each decodes (see the module docstring).

    Raises ``ConfigError`` when two codecs' filters overlap, or two codecs share a name.
    """

    def __init__(self, codecs: Sequence[PayloadCodec]) -> None:
        self.codecs = list(codecs)
        routes: list[tuple[str, PayloadCodec]] = []
        names: set[str] = set()
        for codec in self.codecs:
            if codec.name in names:
                raise ConfigError(
                    f"ingest.codecs: two codecs are named {codec.name!r}: give each a name"
                )
            names.add(codec.name)
            for topic_filter in codec.topic_filters():
                for other_filter, other in routes:
                    if other is not codec and filters_overlap(topic_filter, other_filter):
                        raise ConfigError(
                            f"ingest.codecs: {other.name} ({other_filter}) and {codec.name} "
                            f"({topic_filter}) subscribe overlapping topics: a message could "
                            "match both; narrow one of them with `topics`"
                        )
                routes.append((topic_filter, codec))
        self._routes = routes
        self._cache: dict[str, PayloadCodec | None] = {}

    def topic_filters(self) -> list[str]:
        return [topic_filter for topic_filter, _ in self._routes]

    def codec(self, topic: str) -> PayloadCodec | None:
        """The codec that decodes ``topic``; ``None`` if no codec subscribes it."""
        try:
            return self._cache[topic]
        except KeyError:
            pass
        found = next((c for f, c in self._routes if topic_matches(f, topic)), None)
        if len(self._cache) >= ROUTES_CACHED:
            self._cache.clear()
        self._cache[topic] = found
        return found

    def is_gateway_topic(self, topic: str) -> bool:
        return self.codec(topic) is not None

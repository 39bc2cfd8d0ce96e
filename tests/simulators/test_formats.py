"""Every simulated format decodes, with the entry codec_entry gives, to the same
enterprise, gateway, tags and values as hz-json — the premise of running a scenario in it."""

from __future__ import annotations

import pytest

from hazwatch.logins import Login
from hazwatch.models import Quality, Registry
from hazwatch.settings import CodecSettings, IngestSettings
from ingest.codecs import build_routes
from ingest.routes import topic_matches
from ingest.sparkplug.host import rebirth_request
from simulators.formats import FORMATS, SparkplugFormat, codec_entry, gateway_format
from simulators.gateways import GatewayBehaviour, gateways_for

TS = 1_763_820_000_000


def decode_all(
    fmt: str, messages: list[tuple[str, bytes]]
) -> list[tuple[str, str, str, float, str]]:
    routes = build_routes(
        IngestSettings(codecs=(CodecSettings.model_validate(codec_entry(fmt)),))  # type: ignore[arg-type]
    )
    found = []
    for topic, payload in messages:
        codec = routes.codec(topic)
        assert codec is not None, topic
        decoded = codec.decode(topic, payload, TS)
        assert decoded.rejections == [], decoded.rejections
        found += [
            (r.enterprise, r.gateway, r.tag, r.value, r.quality.value)
            for part in decoded.parts()
            for r in part.readings
        ]
    return found


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_sample_in_each_format_decodes_like_hz_json(fmt: str, example_registry: Registry) -> None:
    gateway = next(g for g in gateways_for(example_registry) if not g.meter)
    values = [
        (p, 1.0 + n, Quality.UNCERTAIN if n == 1 else Quality.GOOD)
        for n, p in enumerate(gateway.points)
    ]
    behaviour = GatewayBehaviour(gateway, encoder=gateway_format(fmt, gateway))  # type: ignore[arg-type]
    messages = [(m.topic, m.payload) for m in behaviour.messages(values, TS)]
    found = decode_all(fmt, messages)
    expected = {(p.enterprise, gateway.gateway, p.tag) for p in gateway.points}
    assert {r[:3] for r in found} == expected
    qualities_kept = fmt in ("hz-json", "sparkplug-b")
    assert {r[4] for r in found} == ({"good", "uncertain"} if qualities_kept else {"good"})


def test_the_simulated_edge_node_births_first_and_again_when_asked(
    example_registry: Registry,
) -> None:
    gateway = gateways_for(example_registry)[0]
    node = gateway_format("sparkplug-b", gateway)
    assert isinstance(node, SparkplugFormat)
    values = [(p, 1.0, Quality.GOOD) for p in gateway.points]
    kinds = [node.sample(values, TS)[0].topic.split("/")[2] for _ in range(2)]
    node.on_command(node.commands()[0], rebirth_request(TS))
    kinds.append(node.sample(values, TS)[0].topic.split("/")[2])
    node.reconnect()
    kinds.append(node.sample(values, TS)[0].topic.split("/")[2])
    assert kinds == ["NBIRTH", "NDATA", "NBIRTH", "NBIRTH"]
    assert (node.rebirths_asked, node.bd_seq) == (1, 1)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_simulated_gateway_publishes_what_its_default_login_may(
    fmt: str, example_registry: Registry
) -> None:
    """`hazwatch gateway add E G --format F` lets the simulator's gateway G publish all it
    does in F (samples, will, hello, goodbye) and read its commands: the simulators can
    run against a broker with the generated ACL."""
    gateway = gateways_for(example_registry)[0]
    encoder = gateway_format(fmt, gateway)  # type: ignore[arg-type]
    login = Login(gateway.enterprise, gateway.gateway, fmt)
    values = [(p, 1.0, Quality.GOOD) for p in gateway.points]
    behaviour = GatewayBehaviour(gateway, encoder=encoder)
    published = [m.topic for m in behaviour.messages(values, TS)]
    if encoder is None:
        published.append(gateway.status_topic)
    else:
        will = encoder.will()
        published += [m.topic for m in [*encoder.hello(), *encoder.goodbye()]]
        published += [] if will is None else [will.topic]
    for topic in published:
        assert any(topic_matches(allowed, topic) for allowed in login.writes()), topic
    for topic in [] if encoder is None else encoder.commands():
        assert topic in login.reads(), topic

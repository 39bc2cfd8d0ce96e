"""One routing table for every codec: overlapping subscriptions are refused at start."""

from __future__ import annotations

import doctest
import subprocess
import sys
from pathlib import Path

import pytest

import ingest.gatewayjson
import ingest.jsonpayload
import ingest.mapping
import ingest.routes
import ingest.sparkplug.births
import ingest.sparkplug.host
from hazwatch.errors import ConfigError
from hazwatch.settings import CodecSettings, IngestSettings, MappingRule, MqttSettings
from ingest.codecs import build_codecs, build_routes, plan_connections
from ingest.routes import CodecRoutes, filters_overlap

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "module",
    [
        ingest.routes,
        ingest.mapping,
        ingest.jsonpayload,
        ingest.gatewayjson,
        ingest.sparkplug.births,
        ingest.sparkplug.host,
    ],
)
def test_doctests_run(module: object) -> None:
    assert doctest.testmod(module).failed == 0  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("first", "second", "overlap"),
    [
        ("hz/v1/+/+/data", "hz/v1/+/+/data", True),
        ("hz/v1/+/+/data", "hz/v1/E1/+/+", True),
        ("hz/v1/+/+/data", "hz/v1/+/+/status", False),
        ("spBv1.0/+/NDATA/+", "spBv1.0/G1/NDATA/n1", True),
        ("spBv1.0/G1/NDATA/+", "spBv1.0/G2/NDATA/+", False),
        ("/neuron/+/upload", "/neuron/+/+/+", False),
        ("telegraf/#", "telegraf", True),
        ("a/b", "a/b/c", False),
    ],
)
def test_filters_overlap(first: str, second: str, overlap: bool) -> None:
    assert filters_overlap(first, second) is overlap
    assert filters_overlap(second, first) is overlap


def neuron(name: str, topics: tuple[str, ...]) -> CodecSettings:
    return CodecSettings(
        kind="neuron", name=name, topics=topics, map=(MappingRule(enterprise="E001"),)
    )


def test_two_codecs_on_overlapping_topics_are_refused_naming_both() -> None:
    limits = IngestSettings(
        codecs=(
            CodecSettings(kind="hz-json"),
            neuron("plant-a", ("/neuron/a/+/+",)),
            neuron("all", ("/neuron/#",)),
        )
    )
    with pytest.raises(ConfigError, match=r"plant-a \(/neuron/a/\+/\+\) and all \(/neuron/#\)"):
        build_routes(limits)


def test_two_codecs_of_one_name_are_refused() -> None:
    limits = IngestSettings(codecs=(neuron("n", ("/a/+",)), neuron("n", ("/b/+",))))
    with pytest.raises(ConfigError, match="two codecs are named 'n'"):
        build_routes(limits)


def test_each_topic_goes_to_its_codec() -> None:
    routes = build_routes(
        IngestSettings(codecs=(CodecSettings(kind="hz-json"), neuron("n", ("/neuron/+/upload",))))
    )
    assert routes.codec("hz/v1/E1/g/data").name == "hz-json"  # type: ignore[union-attr]
    assert routes.codec("/neuron/x/upload").name == "n"  # type: ignore[union-attr]
    assert routes.codec("hz/v1/E1/alarms") is None


def test_a_sparkplug_host_gets_a_connection_of_its_own() -> None:
    codecs = build_codecs(
        IngestSettings(
            codecs=(
                CodecSettings(kind="hz-json"),
                CodecSettings(kind="sparkplug-b", name="spb", options={"host_id": "h1"}),
            )
        )
    )
    plans = plan_connections(codecs, MqttSettings(client_id="ingest"))
    assert [(p.mqtt.client_id, p.duties is None) for p in plans] == [
        ("ingest", True),
        ("ingest-spb", False),
    ]
    assert "spBv1.0/STATE/h1" in plans[1].routes.topic_filters()
    assert CodecRoutes(codecs).codec("spBv1.0/G/NDATA/n") is codecs[1]


def test_the_committed_sparkplug_module_is_what_protoc_makes_of_the_proto(tmp_path: Path) -> None:
    """The generated module is committed (installing needs no compiler); this keeps it
    and its .proto from drifting apart."""
    proto = "ingest/sparkplug/sparkplug_b.proto"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            ".",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            proto,
        ],
        cwd=ROOT,
        check=True,
    )
    for name in ("sparkplug_b_pb2.py", "sparkplug_b_pb2.pyi"):
        made = (tmp_path / "ingest" / "sparkplug" / name).read_text()
        assert made == (ROOT / "ingest" / "sparkplug" / name).read_text(), name

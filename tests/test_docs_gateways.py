"""docs/gateways.md cannot drift: every sample config there builds its codecs, and every
sample payload decodes with the config above it into readings (no rejection but the
ones the text says)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import orjson
import pytest
from google.protobuf import text_format

from hazwatch.settings import Settings
from ingest.codecs import build_codecs
from ingest.sparkplug import sparkplug_b_pb2 as pb

DOC = Path(__file__).resolve().parents[1] / "docs" / "gateways.md"
BLOCK = re.compile(r"```(toml|json|text)\n(.*?)```", re.DOTALL)
NOW = 1_763_820_000_000
ALLOWED = {"source_error"}  # the Neuron sample shows a read error on purpose


def blocks() -> list[tuple[str, str]]:
    return BLOCK.findall(DOC.read_text(encoding="utf-8"))


def samples() -> dict[str, tuple[str, list[tuple[str, str, str]]]]:
    """kind → (its config, [(block type, topic, payload text)])."""
    found: dict[str, tuple[str, list[tuple[str, str, str]]]] = {}
    kind = ""
    for lang, text in blocks():
        first, _, rest = text.partition("\n")
        if lang == "toml" and first.startswith("# codec: "):
            kind = first.removeprefix("# codec: ")
            found[kind] = (text, [])
        elif lang in ("json", "text") and first.startswith("# topic: "):
            found[kind][1].append((lang, first.removeprefix("# topic: "), rest))
    return found


def test_every_config_block_is_valid() -> None:
    configs = [text for lang, text in blocks() if lang == "toml"]
    assert len(configs) >= 6
    for text in configs:
        build_codecs(Settings.model_validate(tomllib.loads(text)).ingest)


def test_every_kind_has_a_sample_config_and_payload() -> None:
    assert set(samples()) == {"sparkplug-b", "neuron", "thingsboard", "telegraf", "field-map"}
    assert all(payloads for _, payloads in samples().values())


@pytest.mark.parametrize("kind", sorted(samples()))
def test_the_sample_payloads_decode_with_the_sample_config(kind: str) -> None:
    config, payloads = samples()[kind]
    [codec] = build_codecs(Settings.model_validate(tomllib.loads(config)).ingest)
    enterprise = re.search(r'enterprise = "(E\d+)"', config)
    assert enterprise is not None
    stored = []
    for lang, topic, text in payloads:
        decoded = codec.decode(topic, _bytes(lang, text), NOW)
        assert {r.reason for r in decoded.rejections} <= ALLOWED, decoded.rejections
        stored += [r for part in decoded.parts() for r in part.readings]
    assert stored
    assert {r.enterprise for r in stored} == {enterprise.group(1)}
    registered = [r.tag for r in stored if re.fullmatch(r"[A-Z]+\d+_[A-Z]+|I[aL]", r.tag)]
    assert registered == [r.tag for r in stored]  # the samples map to registry-like tags


def _bytes(lang: str, text: str) -> bytes:
    if lang == "json":
        orjson.loads(text)  # the sample is valid JSON
        return text.encode()
    return text_format.Parse(text, pb.Payload()).SerializeToString()

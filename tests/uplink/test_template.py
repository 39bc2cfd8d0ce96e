"""Templates: typed fields, formatted strings, and errors that name the key."""

from __future__ import annotations

import doctest
import json

import pytest

import uplink.template
from hazwatch.clock import ManualClock
from hazwatch.errors import ConfigError
from hazwatch.models import Reading, Registry
from hazwatch.uplink_settings import UplinkSettings
from uplink.queue import QueuedRecord
from uplink.service import build_requests
from uplink.template import READING_FIELDS, JsonTemplate


def test_doctests() -> None:
    assert doctest.testmod(uplink.template).failed == 0


def test_nested_structures_literals_and_braces() -> None:
    t = JsonTemplate(
        {"a": ["{tag}", 1, None, True], "b": {"c": "{{literal}}"}, "d": "{tag}-{value:.0f}"},
        READING_FIELDS,
        "t",
    )
    assert t.render({"tag": "X", "value": 2.6}) == {
        "a": ["X", 1, None, True],
        "b": {"c": "{literal}"},
        "d": "X-3",
    }


def test_an_unknown_field_names_uplink_template_and_key(example_registry: Registry) -> None:
    settings = UplinkSettings.model_validate(
        {
            "name": "prov",
            "url": "http://127.0.0.1:9/",
            "readings": {"record": {"data": {"quotaId": "{tga}"}}},
        }
    )
    with pytest.raises(ConfigError) as caught:
        build_requests(settings, example_registry, ManualClock())
    message = str(caught.value)
    assert "uplink 'prov': readings.record.data.quotaId" in message
    assert "{tga}" in message


def test_a_format_spec_that_cannot_render_is_refused_at_start(
    example_registry: Registry,
) -> None:
    settings = UplinkSettings.model_validate(
        {"name": "p", "url": "http://h/", "readings": {"record": {"v": "{tag:.2f}"}}}
    )
    with pytest.raises(ConfigError, match=r"readings\.record: the template does not render"):
        build_requests(settings, example_registry, ManualClock())


def test_a_provincial_shape_with_local_time_and_one_request_per_enterprise(
    example_registry: Registry,
) -> None:
    settings = UplinkSettings.model_validate(
        {
            "name": "prov",
            "url": "http://h/api",
            "readings": {
                "path": "/realtime/{enterprise}",
                "record": {
                    "quotaId": "{tag}",
                    "value": "{value}",
                    "collectTime": "{local_time}",
                    "dataId": "{seq}",
                },
                "body": {"enterpriseCode": "{enterprise}", "datas": "{records}", "n": "{count}"},
            },
        }
    )
    builder = build_requests(settings, example_registry, ManualClock(1_763_820_000_000))
    records = [
        QueuedRecord(
            7,
            "reading",
            "E001",
            0,
            reading=Reading("E001", "g", "TK101_LT", 3.5, 1_763_820_000_000),
        ),
        QueuedRecord(
            8, "reading", "E002", 0, reading=Reading("E002", "g", "X", 1.0, 1_763_820_001_000)
        ),
        QueuedRecord(
            9,
            "reading",
            "E001",
            0,
            reading=Reading("E001", "g", "TK101_LT", 3.6, 1_763_820_002_000),
        ),
    ]
    out = builder.requests(records)
    assert [o.seqs for o in out] == [[7, 9], [8]]
    first = out[0].request
    assert first.target == "/realtime/E001"
    assert first.key == "prov-7-9"
    assert json.loads(first.sealed.body) == {
        "enterpriseCode": "E001",
        "n": 2,
        "datas": [
            {
                "quotaId": "TK101_LT",
                "value": 3.5,
                "collectTime": "2025-11-22 22:00:00",
                "dataId": 7,
            },
            {
                "quotaId": "TK101_LT",
                "value": 3.6,
                "collectTime": "2025-11-22 22:00:02",
                "dataId": 9,
            },
        ],
    }

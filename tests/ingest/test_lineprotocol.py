"""Line protocol and InfluxQL escaping: unit tests, then the real influxd agrees."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hazwatch.errors import SinkRejected
from hazwatch.metrics import Metrics
from hazwatch.models import (
    Enterprise,
    Installation,
    Point,
    PointKind,
    Quality,
    Reading,
    Registry,
)
from hazwatch.settings import InfluxSettings
from ingest.influx import InfluxSink
from ingest.lineprotocol import (
    LineEncoder,
    escape_measurement,
    escape_tag,
    float_field,
    influxql_identifier,
    influxql_string,
    series_key,
    string_field,
)
from tests.servers import Influxd

MakeReading = Callable[..., Reading]
TS = 1_763_820_000_123


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("plain", "plain"),
        ("a b", r"a\ b"),
        ("a,b", r"a\,b"),
        ("a=b", r"a\=b"),
        ("x v=999 1700000008", r"x\ v\=999\ 1700000008"),
        ('q"uote', 'q"uote'),
        ("温度", "温度"),
    ],
)
def test_escape_tag(raw: str, escaped: str) -> None:
    assert escape_tag(raw) == escaped


@pytest.mark.parametrize("raw", ["a\\b", "end\\", "a\nb", "a\rb", "x\nr,sensor=s1", ""])
def test_tags_that_cannot_round_trip_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="tag"):
        escape_tag(raw)


def test_escape_measurement() -> None:
    assert escape_measurement("my reading,x=1") == r"my\ reading\,x=1"


def test_string_field() -> None:
    assert string_field('say "hi" \\ bye') == r'"say \"hi\" \\ bye"'
    with pytest.raises(ValueError, match="line break"):
        string_field("a\nb")


@pytest.mark.parametrize(
    ("value", "literal"), [(1, "1.0"), (0.0, "0.0"), (-3.5, "-3.5"), (1e20, "1e+20")]
)
def test_values_are_always_float_literals(value: float, literal: str) -> None:
    assert float_field(value) == literal


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_values_are_refused(value: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        float_field(value)


def test_influxql_literals() -> None:
    assert influxql_string("it's") == r"'it\'s'"
    assert influxql_string("a\\b") == r"'a\\b'"
    assert influxql_string("x' OR 1=1 --") == r"'x\' OR 1=1 --'"
    assert influxql_identifier('my "db"') == r'"my \"db\""'


def test_series_key_sorts_tag_keys() -> None:
    assert series_key({"tag": "T1", "enterprise": "E 1"}) == r"reading,enterprise=E\ 1,tag=T1"


def test_encoder_writes_the_schema(example_registry: Registry, make_reading: MakeReading) -> None:
    encoder = LineEncoder(example_registry)
    lines = encoder.lines(
        [
            make_reading("TK101_LT", 3, TS),
            make_reading("ESD201_ZSC", 1.0, TS + 1, quality=Quality.UNCERTAIN),
        ]
    )
    assert lines == [
        (
            "reading,enterprise=E001,installation=MH01,kind=level,tag=TK101_LT "
            f'value=3.0,quality="good" {TS}'
        ),
        (
            "reading,enterprise=E001,installation=MH02,kind=state,tag=ESD201_ZSC "
            f'value=1.0,quality="uncertain" {TS + 1}'
        ),
    ]


def test_a_message_body_holds_the_same_lines_and_parses_back(
    example_registry: Registry, make_reading: MakeReading
) -> None:
    encoder = LineEncoder(example_registry)
    readings = [
        make_reading("TK101_LT", 3, TS),
        make_reading("ESD201_ZSC", 1.0, TS + 1, quality=Quality.BAD),
    ]
    body = encoder.body(readings)
    assert body.decode().split("\n") == encoder.lines(readings)
    fresh = LineEncoder(example_registry)  # after a restart: no key built yet
    assert fresh.parse(body, "gw1") == [
        make_reading("TK101_LT", 3.0, TS),
        make_reading("ESD201_ZSC", 1.0, TS + 1, quality=Quality.BAD),
    ]
    with pytest.raises(SinkRejected, match="registered"):
        encoder.body([*readings, make_reading("NOT_THERE")])
    with pytest.raises(SinkRejected, match="finite"):
        encoder.body([make_reading("TK101_LT", float("nan"))])
    with pytest.raises(ValueError, match="registered point"):
        encoder.parse(b'reading,tag=X value=1.0,quality="good" 1', "gw1")
    with pytest.raises(ValueError, match="quality"):
        encoder.parse(body.replace(b'"bad"', b'"awful"'), "gw1")


def test_encoder_caches_the_series_key(example_registry: Registry) -> None:
    """Per point, a reference to its key's head — ``"reading,...,tag="``, one string for
    every point of an installation and kind — and the key is the head and the tag
    (memory per point: nothing else is kept)."""
    encoder = LineEncoder(example_registry)
    key = encoder.series_key("E001", "TK101_LT")
    assert key == "reading,enterprise=E001,installation=MH01,kind=level,tag=TK101_LT"
    assert key == encoder.series_key("E001", "TK101_LT")
    encoder.series_key("E001", "TK102_LT")  # the same installation and kind
    heads = encoder._heads["E001"]
    assert heads["TK101_LT"] is heads["TK102_LT"]
    assert heads["TK101_LT"] + "TK101_LT" == key
    assert encoder._points == {}  # built by the first parse only


def test_encoder_refuses_unregistered_points(
    example_registry: Registry, make_reading: MakeReading
) -> None:
    encoder = LineEncoder(example_registry)
    with pytest.raises(SinkRejected, match="registered"):
        encoder.lines([make_reading("TK101_LT"), make_reading("NOT_THERE")])


# --- against the real influxd ------------------------------------------------------

AWKWARD = [
    # valid ids with every character the patterns allow besides letters and digits
    ("E-0_1", "MH-01_a", "TK.101:LT-a_b"),
    ("e", "I", "a:b:c"),
    ("E" * 64, "M" * 64, "T" * 128),
    # not valid ids, but the escaping must still keep them intact
    ("E 001", "tank farm, north", "T=1 v=999"),
    ("E,x=1", "MH 01", "x v=999 1700000008"),
    ("企业", "储罐区", "液位'1\""),
    ("=E", ",", " lead"),
]


def awkward_registry() -> Registry:
    enterprises = {}
    for enterprise, installation, tag in AWKWARD:
        point = Point(
            enterprise=enterprise,
            installation=installation,
            tag=tag,
            name="awkward",
            kind=PointKind.OTHER,
        )
        enterprises[enterprise] = Enterprise(
            id=enterprise,
            name="x",
            grid="G",
            installations=(Installation(id=installation, name="x", grade=1, points=(point,)),),
        )
    return Registry(enterprises=enterprises)


@pytest.mark.integration
async def test_awkward_tag_values_round_trip_through_influxd(
    influxd_server: Influxd, influx_db: str
) -> None:
    settings = InfluxSettings(url=influxd_server.url, database=influx_db)
    async with InfluxSink(settings, awkward_registry(), Metrics()) as sink:
        await sink.write(
            [
                Reading(enterprise, "gw1", tag, float(n), TS + n)
                for n, (enterprise, _, tag) in enumerate(AWKWARD)
            ]
        )
    assert influxd_server.count(influx_db) == len(AWKWARD)
    for n, (enterprise, installation, tag) in enumerate(AWKWARD):
        where = (
            f'WHERE "enterprise" = {influxql_string(enterprise)} '
            f'AND "installation" = {influxql_string(installation)} '
            f'AND "tag" = {influxql_string(tag)}'
        )
        assert influxd_server.count(influx_db, where) == 1, (enterprise, installation, tag)
        result = influxd_server.query(
            f'SELECT "value", "quality" FROM "reading" {where}', influx_db
        )
        values = result["results"][0]["series"][0]["values"]  # type: ignore[index]
        assert [row[1:] for row in values] == [[float(n), "good"]]
    stored = influxd_server.query('SHOW TAG VALUES FROM "reading" WITH KEY = "tag"', influx_db)
    tags = {row[1] for row in stored["results"][0]["series"][0]["values"]}  # type: ignore[index]
    assert tags == {tag for _, _, tag in AWKWARD}
    fields = influxd_server.query('SHOW FIELD KEYS FROM "reading"', influx_db)
    assert fields["results"][0]["series"][0]["values"] == [  # type: ignore[index]
        ["quality", "string"],
        ["value", "float"],
    ]

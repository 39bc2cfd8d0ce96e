"""Registry loading: the example loads; every kind of mistake names file, row and column."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from hazwatch.errors import RegistryError
from hazwatch.models import EnterpriseStatus, PointKind
from hazwatch.registry import load_registry
from tests.conftest import EXAMPLE_REGISTRY

HEADER = "installation,tag,name,kind,unit,min,max,ll,l,h,hh,deadband,roc_per_min,interval_s\n"


@pytest.fixture
def registry_dir(tmp_path: Path) -> Path:
    """A copy of the example registry that a test may break."""
    target = tmp_path / "registry"
    shutil.copytree(EXAMPLE_REGISTRY, target)
    return target


def write_points(registry_dir: Path, rows: str, header: str = HEADER) -> Path:
    table = registry_dir / "points" / "E001.csv"
    table.write_text(header + rows, encoding="utf-8")
    return table


def test_example_registry_loads_with_its_points() -> None:
    registry = load_registry(EXAMPLE_REGISTRY)
    assert set(registry.enterprises) == {"E001", "E002"}
    level = registry.point("E001", "TK101_LT")
    assert level is not None
    assert (level.installation, level.kind, level.hh, level.deadband) == (
        "MH01",
        PointKind.LEVEL,
        11.0,
        0.05,
    )
    assert level.roc_per_min is None  # an empty cell is "not set", not zero
    reactor = registry.point("E001", "R201_TT")
    assert reactor is not None
    assert reactor.installation == "MH02"
    assert registry.enterprises["E001"].status is EnterpriseStatus.OPERATING
    assert registry.enterprises["E001"].contacts["principal"].name == "Principal Wang"
    assert registry.point("E001", "NOPE") is None
    assert (level.gateway, reactor.gateway) == ("MH01-gw", "MH02-gw")  # the optional column


@pytest.mark.parametrize(
    ("row", "column", "expected"),
    [
        ("MH01,TK1,Tank,level,m,0,12,,,x,,,,10\n", "h", "expected a number"),
        ("MH01,TK1,Tank,liquid,m,0,12,,,,,,,10\n", "kind", "expected one of"),
        ("MH01,TK 1,Tank,level,m,0,12,,,,,,,10\n", "tag", "expected 1-128 characters"),
        ("MH01,TK1,Tank,level,m,0,12,,,11,10,,,10\n", "hh", "expected hh >= h"),
        ("MH01,TK1,Tank,level,m,12,0,,,,,,,10\n", "max", "expected max > min"),
        ("MH01,TK1,Tank,level,m,0,12,,,,13,,,10\n", "hh", "outside the instrument range"),
        ("MH01,TK1,Tank,level,m,0,12,,,,,-1,,10\n", "deadband", "expected a number >= 0"),
        ("MH01,TK1,Tank,level,m,0,12,,,,,,,0\n", "interval_s", "expected a number > 0"),
        ("MH01,TK1,Tank,level,m,0,12,,,,nan,,,10\n", "hh", "expected a finite number"),
        ("MH01,TK1,,level,m,0,12,,,,,,,10\n", "name", "expected a name"),
        ("MH01,TK1,Tank,level,m,0,12,,,,,,,10,gw/1\n", "gateway", "expected a gateway id"),
    ],
)
def test_bad_cell_names_file_row_and_column(
    registry_dir: Path, row: str, column: str, expected: str
) -> None:
    table = write_points(
        registry_dir, "MH01,OK1,Fine,level,m,0,12,,,,,,,10,\n" + row, HEADER[:-1] + ",gateway\n"
    )
    with pytest.raises(RegistryError) as info:
        load_registry(registry_dir)
    err = info.value
    assert (Path(err.file), err.row, err.column) == (table.resolve(), 3, column)
    assert expected in str(err)
    assert f"E001.csv:3: column {column!r}" in str(err)


def test_unknown_column_is_an_error_so_typos_do_not_pass(registry_dir: Path) -> None:
    write_points(registry_dir, "MH01,TK1,Tank,level,m,0,12,,,,,,,10,1\n", HEADER[:-1] + ",hhh\n")
    with pytest.raises(RegistryError, match=r"unknown column.*'hhh'"):
        load_registry(registry_dir)


def test_point_of_undeclared_installation(registry_dir: Path) -> None:
    write_points(registry_dir, "MH09,TK1,Tank,level,m,0,12,,,,,,,10\n")
    with pytest.raises(RegistryError, match="installation 'MH09' is not declared"):
        load_registry(registry_dir)


def test_duplicate_tag(registry_dir: Path) -> None:
    write_points(registry_dir, "MH01,TK1,A,level,m,,,,,,,,,\nMH02,TK1,B,level,m,,,,,,,,,\n")
    with pytest.raises(RegistryError, match="'TK1' appears twice"):
        load_registry(registry_dir)


def test_enterprise_grid_must_exist(registry_dir: Path) -> None:
    file = registry_dir / "enterprises" / "E002.toml"
    file.write_text(file.read_text().replace('grid = "KS-07"', 'grid = "XX-99"'))
    with pytest.raises(RegistryError, match=r"'XX-99' is not in grids\.toml") as info:
        load_registry(registry_dir)
    assert info.value.file == str(file)


def test_enterprise_id_must_match_file_name(registry_dir: Path) -> None:
    file = registry_dir / "enterprises" / "E002.toml"
    file.write_text(file.read_text().replace('id = "E002"', 'id = "E003"'))
    with pytest.raises(RegistryError, match="does not match the file name"):
        load_registry(registry_dir)


def test_bad_toml_and_missing_table(registry_dir: Path) -> None:
    (registry_dir / "enterprises" / "E002.toml").write_text("id = ")
    with pytest.raises(RegistryError, match="not valid TOML"):
        load_registry(registry_dir)
    (registry_dir / "enterprises" / "E002.toml").unlink()
    (registry_dir / "points" / "E001.csv").unlink()
    with pytest.raises(RegistryError, match="point table not found"):
        load_registry(registry_dir)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="registry directory not found"):
        load_registry(tmp_path / "nowhere")


def test_points_are_slotted_records_validated_on_construction() -> None:
    """One Point per monitored point lives as long as the process: no __dict__ each
    (bench/memory.py measures the bytes; this only guards the shape)."""
    registry = load_registry(EXAMPLE_REGISTRY)
    points = registry.points()
    assert points
    assert not any(hasattr(p, "__dict__") for p in points)
    # repeated cells are one object per table
    units: dict[tuple[str, str], str] = {}
    for p in points:
        assert units.setdefault((p.enterprise, p.unit), p.unit) is p.unit
    level = registry.point("E001", "TK101_LT")
    assert level is not None
    copy = level.model_copy(update={"hh": 11.5})
    assert (copy.hh, copy.h, copy.tag) == (11.5, level.h, level.tag)
    with pytest.raises(ValueError, match="kind"):
        level.model_copy(update={"kind": "liquid"})
    fields: dict[str, Any] = {"enterprise": "E", "installation": "I", "tag": "T", "name": "N"}
    with pytest.raises(ValueError, match="hh2"):
        type(level)(**fields, kind=PointKind.LEVEL, hh2=1)  # type: ignore[call-arg]


def test_example_enterprises_and_grids_are_placed_on_the_map() -> None:
    registry = load_registry(EXAMPLE_REGISTRY)
    assert registry.enterprises["E001"].location == (121.481, 30.794)
    area = registry.grids["KS-03"].area
    assert len(area) == 4
    assert area[0] == (121.462, 30.780)


def test_location_is_optional(registry_dir: Path) -> None:
    file = registry_dir / "enterprises" / "E002.toml"
    file.write_text("\n".join(x for x in file.read_text().splitlines() if "location" not in x))
    assert load_registry(registry_dir).enterprises["E002"].location is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[121.4]", r"location: expected \[lon, lat\], two numbers in degrees, got \[121\.4\]"),
        ('["121.4", 30.8]', r"location: expected \[lon, lat\]"),
        ("[121.4, 30.8, 5]", r"location: expected \[lon, lat\]"),
        ("[true, 30.8]", r"location: expected \[lon, lat\]"),
        ("[30.8, 121.4]", r"location: latitude must lie in \[-90, 90\], got 121\.4"),
        ("[200.0, 30.8]", r"location: longitude must lie in \[-180, 180\], got 200\.0"),
        ("nan", r"location: expected \[lon, lat\]"),
    ],
)
def test_a_bad_location_names_file_and_key(registry_dir: Path, value: str, message: str) -> None:
    file = registry_dir / "enterprises" / "E002.toml"
    text = file.read_text().replace("location = [121.449, 30.819]", f"location = {value}")
    file.write_text(text)
    with pytest.raises(RegistryError, match=message) as info:
        load_registry(registry_dir)
    assert info.value.file == str(file)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(f"{file}: location: ")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[[121.4, 30.8], [121.5, 30.8]]", r"grid #1: area: expected a polygon"),
        ("[[121.4, 30.8], [121.5, 30.8], [121.5, 95]]", r"grid #1: area\[2\]: latitude"),
        ('"north"', r"grid #1: area: expected a polygon"),
    ],
)
def test_a_bad_grid_area_names_file_and_key(registry_dir: Path, value: str, message: str) -> None:
    file = registry_dir / "grids.toml"
    text = file.read_text()
    start = text.index("area = ")
    file.write_text(text[:start] + f"area = {value}" + text[text.index("\n", start) :])
    with pytest.raises(RegistryError, match=message) as info:
        load_registry(registry_dir)
    assert info.value.file == str(file)

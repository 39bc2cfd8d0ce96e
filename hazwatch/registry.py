"""Load the registry: what is monitored, and who is responsible (docs/contract.md §3).

A directory holding ``enterprises/*.toml``, the CSV point tables they name, and
``grids.toml``. Every problem raises ``RegistryError`` naming the file, the row and
the column, and saying what was expected — a wrong limit in a point table is a
missed or a false alarm, so nothing is guessed and unknown columns are errors.
"""

from __future__ import annotations

import csv
import itertools
import math
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hazwatch.errors import RegistryError
from hazwatch.models import (
    ID_PATTERN,
    TAG_PATTERN,
    Contact,
    Enterprise,
    Grid,
    Point,
    PointKind,
    Registry,
)

TEXT_COLUMNS = ("installation", "tag", "name", "kind", "unit")
NUMBER_COLUMNS = (
    "min",
    "max",
    "ll",
    "l",
    "h",
    "hh",
    "deadband",
    "roc_per_min",
    "interval_s",
    "on_delay_s",
    "off_delay_s",
    "stuck_s",
    "roc_window_s",
    "trend_horizon_s",
)
OPTIONAL_TEXT_COLUMNS = ("gateway",)
"""``gateway``: the id of the gateway that reports the point (its topic's ``{gateway}``):
the point belongs to it before it ever reports (docs/detectors.md, GATEWAY_OFFLINE)."""
POINT_COLUMNS = TEXT_COLUMNS + NUMBER_COLUMNS + OPTIONAL_TEXT_COLUMNS
"""Every column a point table may have, in the documented order; others are errors."""
REQUIRED_COLUMNS = ("installation", "tag", "name", "kind")
NON_NEGATIVE_COLUMNS = (
    "deadband",
    "roc_per_min",
    "on_delay_s",
    "off_delay_s",
    "stuck_s",
    "trend_horizon_s",
)
POSITIVE_COLUMNS = ("interval_s", "roc_window_s")
CONTACT_ROLES = ("principal", "technical", "operations", "duty")

_ID = re.compile(ID_PATTERN)
_TAG = re.compile(TAG_PATTERN)


def load_registry(directory: Path) -> Registry:
    """Read and validate a registry directory."""
    if not directory.is_dir():
        raise RegistryError("registry directory not found", file=directory)
    grids_file = directory / "grids.toml"
    grids = _load_grids(grids_file) if grids_file.exists() else {}
    enterprise_dir = directory / "enterprises"
    files = sorted(enterprise_dir.glob("*.toml")) if enterprise_dir.is_dir() else []
    if not files:
        raise RegistryError("no enterprise files (expected enterprises/*.toml)", file=directory)
    enterprises: dict[str, Enterprise] = {}
    for file in files:
        enterprise = _load_enterprise(file, directory, grids, grids_file.exists())
        enterprises[enterprise.id] = enterprise
    return Registry(enterprises=enterprises, grids=grids)


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"not valid TOML: {exc}", file=file) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"cannot read: {exc}", file=file) from exc


def _validation_message(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        problems.append(f"{where}: {msg}" if where else msg)
    return "; ".join(problems)


def _load_grids(file: Path) -> dict[str, Grid]:
    data = _read_toml(file)
    grids: dict[str, Grid] = {}
    entries = data.get("grids", [])
    if not isinstance(entries, list):
        raise RegistryError("expected [[grids]] tables", file=file)
    for n, entry in enumerate(entries, start=1):
        if isinstance(entry, dict) and "area" in entry:
            area = _area(entry["area"], f"grid #{n}: area", file)
            entry = {**entry, "area": area}  # noqa: PLW2901 - the validated form
        try:
            grid = Grid.model_validate(entry)
        except ValidationError as exc:
            raise RegistryError(f"grid #{n}: {_validation_message(exc)}", file=file) from exc
        if grid.id in grids:
            raise RegistryError(f"grid {grid.id!r} is defined twice", file=file)
        grids[grid.id] = grid
    return grids


def _load_enterprise(
    file: Path, directory: Path, grids: dict[str, Grid], grids_known: bool
) -> Enterprise:
    data = _read_toml(file)
    eid = data.get("id")
    if not isinstance(eid, str) or not _ID.fullmatch(eid):
        raise RegistryError(
            f"id: expected 1-64 characters of A-Z a-z 0-9 _ -, got {eid!r}", file=file
        )
    if eid != file.stem:
        raise RegistryError(f"id {eid!r} does not match the file name {file.name!r}", file=file)
    if grids_known and data.get("grid") not in grids:
        raise RegistryError(
            f"grid: {data.get('grid')!r} is not in grids.toml (known: {', '.join(sorted(grids))})",
            file=file,
        )
    if "location" in data:
        data = {**data, "location": lon_lat(data["location"], "location", file)}
    contacts = data.get("contacts", {})
    if not isinstance(contacts, dict):
        raise RegistryError("contacts: expected [contacts.<role>] tables", file=file)
    for role in contacts:
        if role not in CONTACT_ROLES:
            raise RegistryError(
                f"contacts.{role}: unknown role (expected one of {', '.join(CONTACT_ROLES)})",
                file=file,
            )
    installations = data.get("installations", [])
    if not isinstance(installations, list):
        raise RegistryError("installations: expected [[installations]] tables", file=file)
    tables: dict[Path, list[Point]] = {}
    built: list[dict[str, Any]] = []
    for n, inst in enumerate(installations, start=1):
        if not isinstance(inst, dict):
            raise RegistryError(f"installation #{n}: expected a table", file=file)
        iid = inst.get("id")
        if not isinstance(iid, str) or not _ID.fullmatch(iid):
            raise RegistryError(
                f"installation #{n}: id: expected 1-64 characters of A-Z a-z 0-9 _ -, got {iid!r}",
                file=file,
            )
        points_name = inst.get("points")
        points: tuple[Point, ...] = ()
        if points_name is not None:
            if not isinstance(points_name, str):
                raise RegistryError(f"installation {iid}: points: expected a path", file=file)
            table = (directory / points_name).resolve()
            if table not in tables:
                tables[table] = load_point_table(table, eid)
            points = tuple(p for p in tables[table] if p.installation == iid)
        built.append({**inst, "points": points})
    declared = {i["id"] for i in built}
    seen: set[str] = set()
    for table, table_points in tables.items():
        for point in table_points:
            if point.installation not in declared:
                raise RegistryError(
                    f"tag {point.tag}: installation {point.installation!r} is not declared in "
                    f"{file.name} (declared: {', '.join(sorted(declared))})",
                    file=table,
                )
            if point.tag in seen:
                raise RegistryError(f"tag {point.tag!r} appears twice in {eid}", file=table)
            seen.add(point.tag)
    try:
        return Enterprise.model_validate(
            {
                **data,
                "contacts": {
                    role: Contact.model_validate(c) if isinstance(c, dict) else c
                    for role, c in contacts.items()
                },
                "installations": built,
            }
        )
    except ValidationError as exc:
        raise RegistryError(_validation_message(exc), file=file) from exc


def lon_lat(value: Any, key: str, file: Path) -> tuple[float, float]:
    """``[lon, lat]``: two finite numbers, longitude in [-180, 180], latitude in [-90, 90].

    >>> lon_lat([121.1, 30.6], "location", Path("E001.toml"))
    (121.1, 30.6)
    """
    expected = "expected [lon, lat], two numbers in degrees"
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise RegistryError(f"{key}: {expected}, got {value!r}", file=file)
    lon, lat = float(value[0]), float(value[1])
    if not (math.isfinite(lon) and -180 <= lon <= 180):
        raise RegistryError(
            f"{key}: longitude must lie in [-180, 180], got {value[0]!r}", file=file
        )
    if not (math.isfinite(lat) and -90 <= lat <= 90):
        raise RegistryError(f"{key}: latitude must lie in [-90, 90], got {value[1]!r}", file=file)
    return (lon, lat)


def _area(value: Any, key: str, file: Path) -> tuple[tuple[float, float], ...]:
    """A polygon: at least three ``[lon, lat]`` corners."""
    if not isinstance(value, list) or len(value) < 3:
        raise RegistryError(
            f"{key}: expected a polygon, a list of at least three [lon, lat], got {value!r}",
            file=file,
        )
    return tuple(lon_lat(v, f"{key}[{i}]", file) for i, v in enumerate(value))


def load_point_table(file: Path, enterprise: str) -> list[Point]:
    """Read one CSV point table; an empty cell means "not set"."""
    try:
        text = file.read_text(encoding="utf-8-sig")  # spreadsheets add a BOM
    except FileNotFoundError as exc:
        raise RegistryError("point table not found", file=file) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"cannot read (expected UTF-8 CSV): {exc}", file=file) from exc
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in reader.fieldnames or []]
    unknown = [h for h in header if h not in POINT_COLUMNS]
    if unknown:
        raise RegistryError(
            f"unknown column(s) {', '.join(map(repr, unknown))} "
            f"(expected: {', '.join(POINT_COLUMNS)})",
            file=file,
            row=1,
        )
    missing = [h for h in REQUIRED_COLUMNS if h not in header]
    if missing:
        raise RegistryError(f"missing column(s) {', '.join(missing)}", file=file, row=1)
    reader.fieldnames = header
    points: list[Point] = []
    # One float object per distinct cell text, shared by the table's points: the same
    # limits repeat down a point table, and a float is 24 bytes.
    numbers: dict[str, float] = {}
    for row_number, row in enumerate(reader, start=2):
        if None in row:
            raise RegistryError("more cells than columns", file=file, row=row_number)
        cells = {k: (v or "").strip() for k, v in row.items()}
        if not any(cells.values()):
            continue
        points.append(_point(cells, enterprise, file, row_number, numbers))
    return points


def _point(
    cells: dict[str, str], enterprise: str, file: Path, row: int, shared: dict[str, float]
) -> Point:
    def fail(column: str, message: str) -> RegistryError:
        return RegistryError(message, file=file, row=row, column=column)

    if not _ID.fullmatch(cells["installation"]):
        raise fail("installation", f"expected an installation id, got {cells['installation']!r}")
    if not _TAG.fullmatch(cells["tag"]):
        raise fail("tag", f"expected 1-128 characters of A-Z a-z 0-9 _ . : -, got {cells['tag']!r}")
    if not cells["name"]:
        raise fail("name", "expected a name, got an empty cell")
    gateway = cells.get("gateway", "")
    if gateway and not _ID.fullmatch(gateway):
        raise fail("gateway", f"expected a gateway id (1-64 of A-Z a-z 0-9 _ -), got {gateway!r}")
    try:
        kind = PointKind(cells["kind"])
    except ValueError as exc:
        kinds = ", ".join(k.value for k in PointKind)
        raise fail("kind", f"expected one of {kinds}, got {cells['kind']!r}") from exc
    numbers: dict[str, float | None] = {}
    for column in NUMBER_COLUMNS:
        raw = cells.get(column, "")
        if not raw:
            numbers[column] = None
            continue
        try:
            value = shared[raw] if raw in shared else float(raw)
        except ValueError as exc:
            raise fail(column, f"expected a number or an empty cell, got {raw!r}") from exc
        if not math.isfinite(value):
            raise fail(column, f"expected a finite number, got {raw!r}")
        if column in NON_NEGATIVE_COLUMNS and value < 0:
            raise fail(column, f"expected a number >= 0, got {raw!r}")
        if column in POSITIVE_COLUMNS and value <= 0:
            raise fail(column, f"expected a number > 0, got {raw!r}")
        numbers[column] = shared.setdefault(raw, value)
    _check_order(numbers, fail)
    # Interned: installation ids and units repeat on every row; kept once each.
    return Point(
        enterprise=sys.intern(enterprise),
        installation=sys.intern(cells["installation"]),
        tag=cells["tag"],
        name=cells["name"],
        kind=kind,
        unit=sys.intern(cells.get("unit", "")),
        gateway=sys.intern(gateway) if gateway else None,
        **numbers,
    )


def _check_order(numbers: dict[str, float | None], fail: Any) -> None:
    """Limits must read ll <= l <= h <= hh, and lie within the instrument range."""
    lo, hi = numbers["min"], numbers["max"]
    if lo is not None and hi is not None and lo >= hi:
        raise fail("max", f"expected max > min ({lo:g}), got {hi:g}")
    ordered = [(c, numbers[c]) for c in ("ll", "l", "h", "hh") if numbers[c] is not None]
    for (c1, v1), (c2, v2) in itertools.pairwise(ordered):
        assert v1 is not None
        assert v2 is not None
        if v1 > v2:
            raise fail(c2, f"expected {c2} >= {c1} ({v1:g}), got {v2:g}")
    for column, value in ordered:
        assert value is not None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise fail(column, f"limit {value:g} lies outside the instrument range [{lo}, {hi}]")

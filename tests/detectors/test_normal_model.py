"""Model files: written the same every time, refused with one line naming the file (and
the point) when cut short, of another version, or not matching the registry."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
import pytest

from detectors.normal_model import (
    ModelFile,
    check_models,
    encode,
    read_model_file,
    registry_sha256,
)
from hazwatch.errors import ModelError
from hazwatch.models import Installation, Registry
from tests.detectors.test_anomaly import hand_model, registry


def write(path: Path, registry_hash: str | None = None) -> Path:
    path.write_bytes(
        encode(ModelFile((hand_model(),), registry_hash or registry_sha256(registry())))
    )
    return path


def test_a_model_file_reads_back_as_written_and_writes_the_same_bytes(tmp_path: Path) -> None:
    path = write(tmp_path / "m.json")
    loaded = read_model_file(path)
    assert loaded.path == str(path)
    [model] = loaded.models
    original = hand_model()
    assert (model.name, model.tags, model.period_s) == ("U1.normal", ("A", "B", "C"), 10.0)
    assert model.pca.loadings.tolist() == original.pca.loadings.tolist()
    assert (model.pca.t2_limit, model.pca.spe_limit) == (9.0, 4.0)
    assert encode(dataclasses.replace(loaded, path="")) == path.read_bytes()
    doc = orjson.loads(path.read_bytes())
    assert (doc["format"], doc["version"]) == ("hazwatch-model", 1)
    assert doc["registry_sha256"] == registry_sha256(registry())
    assert check_models([loaded], registry()) == []


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda raw: raw[: len(raw) // 2], "not a complete model file (cut short, or not JSON"),
        (lambda raw: b"", "not a complete model file"),
        (
            lambda raw: raw.replace(b'"version": 1', b'"version": 2'),
            "model file version 2; this hazwatch reads version 1",
        ),
        (lambda raw: raw.replace(b"hazwatch-model", b"other-model"), "not a hazwatch model file"),
        (lambda raw: raw.replace(b'"t2_limit": 9.0', b'"t2_limit": -9.0'), "must be > 0"),
        (
            lambda raw: raw.replace(b'"scale": [', b'"scale": [1.0, '),
            "scale has shape (4,), expected (3,)",
        ),
    ],
)
def test_a_damaged_or_foreign_model_file_is_refused_naming_the_file(
    tmp_path: Path, damage: object, message: str
) -> None:
    path = write(tmp_path / "m.json")
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    with pytest.raises(ModelError) as info:
        read_model_file(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ")
    assert message in text
    assert "\n" not in text


def test_a_missing_model_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"nope\.json: model file not found"):
        read_model_file(tmp_path / "nope.json")


def changed(**point_changes: object) -> Registry:
    """The test registry with point B changed."""
    reg = registry()
    enterprise = reg.enterprises["E1"]
    [unit] = enterprise.installations
    points = tuple(p.model_copy(update=point_changes) if p.tag == "B" else p for p in unit.points)
    installations: tuple[Installation, ...] = (unit.model_copy(update={"points": points}),)
    if point_changes.get("installation"):
        installations += (Installation(id=str(point_changes["installation"]), name="U2", grade=3),)
    return Registry(
        enterprises={"E1": enterprise.model_copy(update={"installations": installations})}
    )


@pytest.mark.parametrize(
    ("registry_now", "message"),
    [
        (changed(unit="degC"), "point B: unit (empty) in the model, degC in the registry"),
        (changed(max=50.0), "point B: max 100.0 in the model, 50.0 in the registry"),
        (changed(kind="flow"), "point B: kind other in the model, flow in the registry"),
        (changed(installation="U2"), "point B is in installation U2 now"),
        (changed(tag="B2"), "point B is not in the registry"),
        (
            changed(tag="U1.normal"),
            "its name U1.normal is a registered tag (the ANOMALY alarm's tag)",
        ),
    ],
)
def test_a_model_the_registry_contradicts_is_refused_naming_the_point(
    tmp_path: Path, registry_now: Registry, message: str
) -> None:
    path = write(tmp_path / "m.json")
    with pytest.raises(ModelError) as info:
        check_models([read_model_file(path)], registry_now)
    assert str(info.value) == f"{path}: model E1/U1: {message} — learn the model again"


def test_two_models_of_one_installation_are_refused_and_other_changes_only_noted(
    tmp_path: Path,
) -> None:
    a, b = write(tmp_path / "a.json"), write(tmp_path / "b.json", registry_hash="0" * 64)
    with pytest.raises(
        ModelError, match=rf"{b}: model E1/U1: a second model for it \(the first in {a}\)"
    ):
        check_models([read_model_file(a), read_model_file(b)], registry())
    # learned on another version of the registry, the modelled points the same: fine
    assert check_models([read_model_file(b)], registry()) == [
        f"{b}: learned on another version of the registry; its modelled points are unchanged"
    ]

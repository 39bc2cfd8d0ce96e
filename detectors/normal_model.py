"""Model files: the learned normal behaviour of installations, as ``hazwatch learn`` writes
them and ``[detectors] models`` loads them.

One JSON file holds one model per installation (:class:`InstallationModel`: the points
in their order, the sample period, the PCA of :mod:`detectors.pca` and its limits) and
says what it was learned from: the recordings (name and SHA-256), the training range,
and the registry's hash. The same recordings give the same bytes — keys sorted, floats
written exactly, nothing about *when* it was learned — so a model can be reviewed,
versioned and reproduced.

Loading checks, and refuses with one line naming the file (and the installation and
point): a file cut short or not JSON, another format or version, inconsistent arrays;
a point the registry no longer has, or has moved to another installation, or whose
kind, unit or range changed (the model's scaling would be wrong); two models for one
installation; a model name that is a registered tag. A registry changed elsewhere (its
hash differs, every modelled point the same) is fine — :func:`check_models` says so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from detectors.pca import PcaModel
from hazwatch.errors import ModelError
from hazwatch.models import Point, Registry

FORMAT = "hazwatch-model"
VERSION = 1
NAME_SUFFIX = ".normal"
"""An installation's model is named ``<installation>.normal``: the ANOMALY alarm's tag."""
CHECKED = ("kind", "unit", "min", "max")
"""What of a point the model depends on (its scaling was learned in these units)."""


def model_name(installation: str) -> str:
    return installation + NAME_SUFFIX


@dataclass(frozen=True, slots=True)
class ModelPoint:
    tag: str
    kind: str
    unit: str
    min: float | None
    max: float | None
    interval_s: float | None

    @classmethod
    def of(cls, point: Point) -> ModelPoint:
        return cls(point.tag, point.kind.value, point.unit, point.min, point.max, point.interval_s)


@dataclass(frozen=True)
class InstallationModel:
    enterprise: str
    installation: str
    name: str
    """The ANOMALY alarm's ``tag``."""
    period_s: float
    points: tuple[ModelPoint, ...]
    pca: PcaModel
    first_ms: int
    """The first and last sample the model was learned from."""
    last_ms: int

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(p.tag for p in self.points)


@dataclass(frozen=True)
class ModelFile:
    models: tuple[InstallationModel, ...]
    registry_sha256: str
    recordings: tuple[tuple[str, str], ...] = ()
    """``(file name, SHA-256)`` of each recording learned from, in order."""
    path: str = ""
    """Where it was loaded from (empty for one being written)."""


def registry_sha256(registry: Registry) -> str:
    """A hash of every point table row of the registry (all columns)."""
    rows = sorted(
        (dataclasses.asdict(p) for p in registry.points()),
        key=lambda row: (row["enterprise"], row["tag"]),
    )
    return hashlib.sha256(orjson.dumps(rows, option=orjson.OPT_SORT_KEYS)).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- writing ------------------------------------------------------------------------------


def encode(model_file: ModelFile) -> bytes:
    """The file's bytes: the same model, the same bytes."""
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "registry_sha256": model_file.registry_sha256,
        "recordings": [{"file": name, "sha256": sha} for name, sha in model_file.recordings],
        "models": [_model_doc(m) for m in model_file.models],
    }
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"


def _model_doc(model: InstallationModel) -> dict[str, Any]:
    pca = model.pca
    return {
        "enterprise": model.enterprise,
        "installation": model.installation,
        "name": model.name,
        "period_s": model.period_s,
        "points": [dataclasses.asdict(p) for p in model.points],
        "first_ms": model.first_ms,
        "last_ms": model.last_ms,
        "train_samples": pca.train_samples,
        "holdout_samples": pca.holdout_samples,
        "variance": pca.variance,
        "confidence": pca.confidence,
        "mean": pca.mean.tolist(),
        "scale": pca.scale.tolist(),
        "loadings": pca.loadings.tolist(),
        "eigenvalues": pca.eigenvalues.tolist(),
        "explained": pca.explained.tolist(),
        "t2_limit": pca.t2_limit,
        "spe_limit": pca.spe_limit,
    }


# --- reading --------------------------------------------------------------------------------


def read_model_file(path: Path) -> ModelFile:
    """Read and check one model file; :class:`ModelError` names the file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ModelError(f"{path}: model file not found") from exc
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the model file: {exc.strerror}") from exc
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ModelError(
            f"{path}: not a complete model file (cut short, or not JSON: {exc}); "
            "learn it again with hazwatch learn"
        ) from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelError(f"{path}: not a hazwatch model file (expected format {FORMAT!r})")
    if doc.get("version") != VERSION:
        raise ModelError(
            f"{path}: model file version {doc.get('version')!r}; this hazwatch reads "
            f"version {VERSION} — learn it again with this version's hazwatch learn"
        )
    try:
        models = tuple(_model(entry) for entry in doc["models"])
        recordings = tuple((r["file"], r["sha256"]) for r in doc["recordings"])
        registry_hash = str(doc["registry_sha256"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path}: not a usable model file: {_what(exc)}") from exc
    return ModelFile(models, registry_hash, recordings, str(path))


def _what(exc: Exception) -> str:
    return f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)


def _model(doc: dict[str, Any]) -> InstallationModel:
    points = tuple(ModelPoint(**p) for p in doc["points"])
    tags = tuple(p.tag for p in points)
    m = len(points)
    where = f"{doc['enterprise']}/{doc['installation']}"
    mean = _array(doc["mean"], (m,), where, "mean")
    scale = _array(doc["scale"], (m,), where, "scale")
    eigenvalues = _array(doc["eigenvalues"], None, where, "eigenvalues")
    k = len(eigenvalues)
    loadings = _array(doc["loadings"], (m, k), where, "loadings")
    explained = _array(doc["explained"], (k,), where, "explained")
    limits = (float(doc["t2_limit"]), float(doc["spe_limit"]))
    if not (np.all(scale > 0) and np.all(eigenvalues > 0) and min(limits) > 0 and 0 < k < m):
        raise ValueError(f"{where}: scales, eigenvalues and limits must be > 0, 0 < k < points")
    period = float(doc["period_s"])
    if not period > 0:
        raise ValueError(f"{where}: period_s must be > 0, got {period}")
    pca = PcaModel(
        tags=tags,
        mean=mean,
        scale=scale,
        loadings=loadings,
        eigenvalues=eigenvalues,
        explained=explained,
        t2_limit=limits[0],
        spe_limit=limits[1],
        variance=float(doc["variance"]),
        confidence=float(doc["confidence"]),
        train_samples=int(doc["train_samples"]),
        holdout_samples=int(doc["holdout_samples"]),
    )
    return InstallationModel(
        enterprise=str(doc["enterprise"]),
        installation=str(doc["installation"]),
        name=str(doc["name"]),
        period_s=period,
        points=points,
        pca=pca,
        first_ms=int(doc["first_ms"]),
        last_ms=int(doc["last_ms"]),
    )


def _array(
    value: Any, shape: tuple[int, ...] | None, where: str, key: str
) -> np.ndarray[Any, np.dtype[np.float64]]:
    found = np.asarray(value, dtype=np.float64)
    if (shape is not None and found.shape != shape) or (shape is None and found.ndim != 1):
        raise ValueError(f"{where}: {key} has shape {found.shape}, expected {shape or '(k,)'}")
    if not np.all(np.isfinite(found)):
        raise ValueError(f"{where}: {key} holds a value that is not a finite number")
    return found


# --- against the registry ----------------------------------------------------------------


def check_models(model_files: Sequence[ModelFile], registry: Registry) -> list[str]:
    """Refuse (:class:`ModelError`, one line naming the file, the model and the point)
    what the registry contradicts; return notes on what is fine but worth saying (the
    registry changed since the model was learned, its points did not)."""
    notes: list[str] = []
    seen: dict[tuple[str, str], str] = {}
    current_hash = registry_sha256(registry)
    for model_file in model_files:
        for model in model_file.models:
            where = f"{model_file.path}: model {model.enterprise}/{model.installation}"
            key = (model.enterprise, model.installation)
            if key in seen:
                raise ModelError(f"{where}: a second model for it (the first in {seen[key]})")
            seen[key] = model_file.path
            for problem in _problems(model, registry):
                raise ModelError(f"{where}: {problem} — learn the model again")
        if model_file.registry_sha256 != current_hash:
            notes.append(
                f"{model_file.path}: learned on another version of the registry; its "
                "modelled points are unchanged"
            )
    return notes


def _problems(model: InstallationModel, registry: Registry) -> Iterable[str]:
    enterprise = registry.enterprises.get(model.enterprise)
    if enterprise is None:
        yield f"enterprise {model.enterprise} is not in the registry"
        return
    if not any(i.id == model.installation for i in enterprise.installations):
        yield f"installation {model.installation} is not in the registry"
    if registry.point(model.enterprise, model.name) is not None:
        yield f"its name {model.name} is a registered tag (the ANOMALY alarm's tag)"
    for learned in model.points:
        point = registry.point(model.enterprise, learned.tag)
        if point is None:
            yield f"point {learned.tag} is not in the registry"
            continue
        if point.installation != model.installation:
            yield f"point {learned.tag} is in installation {point.installation} now"
        now = ModelPoint.of(point)
        for column in CHECKED:
            was, is_ = getattr(learned, column), getattr(now, column)
            if was != is_ and not (_number(was) and _number(is_) and math.isclose(was, is_)):
                yield (
                    f"point {learned.tag}: {column} {_show(was)} in the model, "
                    f"{_show(is_)} in the registry"
                )


def _number(value: object) -> bool:
    return isinstance(value, float | int)


def _show(value: object) -> str:
    return "(empty)" if value in (None, "") else f"{value}"

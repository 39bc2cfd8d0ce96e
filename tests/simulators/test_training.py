"""``hazwatch learn``: recordings of normal operation in, a reproducible model file out;
bad training input stopped with one line naming the installation, the point and the
count; and ``backtest --model`` showing what the model would have raised."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from detectors.normal_model import read_model_file
from hazwatch.errors import ModelError
from hazwatch.registry import load_registry
from hazwatch.settings import load_settings
from simulators.recording import RecordedMessage, RecordingHeader, RecordingWriter
from simulators.training import LearnOptions, learn
from tests.helpers import write_registry

T0 = 1_767_571_200_000
INTERVAL_MS = 10_000
HAZWATCH = [sys.executable, "-m", "hazwatch.cli"]


def plant_values(n: int, seed: int = 3) -> np.ndarray:
    """FT follows the load, TT follows FT, PT follows TT: one cause, three points."""
    rng = np.random.default_rng(seed)
    load = np.cumsum(rng.normal(scale=0.05, size=n))  # a slow wander
    ft = 30 + 5 * load + rng.normal(scale=0.2, size=n)
    tt = 70 + 0.5 * (ft - 30) + rng.normal(scale=0.1, size=n)
    pt = 0.45 + 0.01 * (tt - 70) + rng.normal(scale=0.002, size=n)
    return np.column_stack([ft, tt, pt])


def record(
    path: Path,
    rows: np.ndarray,
    *,
    tags: tuple[str, ...] = ("FT", "TT", "PT"),
    skip: dict[str, range] | None = None,
) -> Path:
    """A recording of one gateway sending ``rows`` every 10 s (``skip``: a tag's missing
    rows, as when its transmitter is off)."""
    with RecordingWriter(path, RecordingHeader(T0, "test")) as writer:
        for k, row in enumerate(rows):
            ts = T0 + k * INTERVAL_MS
            readings = [
                {"tag": tag, "v": round(float(v), 4)}
                for tag, v in zip(tags, row, strict=True)
                if k not in (skip or {}).get(tag, ())
            ]
            payload = orjson.dumps({"seq": k + 1, "ts": ts, "readings": readings})
            writer.write(RecordedMessage(ts, "hz/v1/E1/gw1/data", payload))
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    registry = write_registry(
        tmp_path / "registry", "E1", ["FT", "TT", "PT"], min="-1000", max="1000", interval_s="10"
    )
    path = tmp_path / "hazwatch.toml"
    path.write_text(f'registry = "{registry}"\n')
    return path


def learn_from(config: Path, *recordings: Path, **options: object) -> bytes:
    from detectors.normal_model import encode  # noqa: PLC0415

    settings = load_settings(config, environ={})
    result = learn(settings, load_registry(settings.registry), recordings, LearnOptions(**options))  # type: ignore[arg-type]
    return encode(result.model_file)


def test_the_same_recordings_give_the_same_model_file(config: Path, tmp_path: Path) -> None:
    recording = record(tmp_path / "normal.jsonl", plant_values(3000))
    first = learn_from(config, recording)
    assert learn_from(config, recording) == first
    doc = orjson.loads(first)
    [model] = doc["models"]
    assert (model["name"], model["period_s"]) == ("U1.normal", 30.0)
    assert [p["tag"] for p in model["points"]] == ["FT", "TT", "PT"]
    assert model["first_ms"] == T0 + 30_000  # the first period's end
    assert model["train_samples"] + model["holdout_samples"] == 999
    [(name, sha)] = [(r["file"], r["sha256"]) for r in doc["recordings"]]
    assert (name, len(sha)) == ("normal.jsonl", 64)
    # another recording, another model
    other = record(tmp_path / "other.jsonl", plant_values(3000, seed=4))
    assert learn_from(config, other) != first


def test_too_few_samples_names_the_installation_and_how_many(config: Path, tmp_path: Path) -> None:
    recording = record(tmp_path / "short.jsonl", plant_values(300))
    with pytest.raises(ModelError) as info:
        learn_from(config, recording)
    assert str(info.value) == (
        "E1/U1: 99 complete samples in 99 periods of 30 s, at least 200 needed — record at "
        "least 1.7 h of normal operation"
    )


def test_a_point_missing_from_the_recording_is_named_with_its_count(
    config: Path, tmp_path: Path
) -> None:
    recording = record(tmp_path / "gaps.jsonl", plant_values(3000), skip={"PT": range(500, 3000)})
    with pytest.raises(ModelError) as info:
        learn_from(config, recording)
    assert str(info.value) == (
        "E1/U1: 167 complete samples in 999 periods of 30 s, at least 200 needed — point PT "
        "was stale, bad or not seen in 832 of 999 periods"
    )


def test_a_constant_point_is_named(config: Path, tmp_path: Path) -> None:
    rows = plant_values(3000)
    rows[:, 2] = 0.45
    with pytest.raises(
        ModelError,
        match=r"^E1/U1: point PT is constant in the training data \(0.45 in all \d+ samples\)",
    ):
        learn_from(config, record(tmp_path / "flat.jsonl", rows))


def test_options_choose_the_points_and_the_period(config: Path, tmp_path: Path) -> None:
    recording = record(tmp_path / "normal.jsonl", plant_values(3000))
    doc = orjson.loads(learn_from(config, recording, exclude=("PT",), period_s=60.0))
    [model] = doc["models"]
    assert ([p["tag"] for p in model["points"]], model["period_s"]) == (["FT", "TT"], 60.0)
    with pytest.raises(ModelError, match="--installation E1/U9: not in the registry"):
        learn_from(config, recording, installations=("E1/U9",))
    with pytest.raises(ModelError, match="E1/U1: 1 point"):
        learn_from(config, recording, installations=("E1/U1",), exclude=("PT", "TT"))


def hazwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HAZWATCH, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )


def test_learn_then_backtest_the_model_on_a_recording_of_a_fault(
    config: Path, tmp_path: Path
) -> None:
    normal = record(tmp_path / "normal.jsonl", plant_values(3000))
    model = tmp_path / "unit1.json"
    done = hazwatch("learn", "--config", str(config), str(normal), "--out", str(model))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "E1/U1 → U1.normal: 3 points (FT, TT, PT)"
    assert "limits at 99.9%" in done.stdout
    assert done.stdout.endswith(f"wrote {model} (1 model(s), from 3,000 messages)\n")
    assert read_model_file(model).models[0].name == "U1.normal"
    again = hazwatch("learn", "--config", str(config), str(normal), "--out", str(model))
    assert (again.returncode, again.stderr) == (
        2,
        f"error: {model}: already exists: choose another file name\n",
    )
    # the pressure transmitter drifts away from what TT says it must read
    rows = plant_values(600, seed=9)
    rows[300:, 2] += np.linspace(0, 0.05, 300)
    fault = record(tmp_path / "fault.jsonl", rows)
    plain = hazwatch("backtest", "--config", str(config), str(fault))
    assert "ANOMALY" not in plain.stdout  # the config has no model
    judged = hazwatch(
        "backtest", "--config", str(config), "--model", str(model), str(fault), "--json"
    )
    assert judged.returncode == 0, judged.stderr
    [alarm] = orjson.loads(judged.stdout)["alarms"]
    assert (alarm["type"], alarm["tag"], alarm["priority"]) == ("ANOMALY", "U1.normal", "medium")
    assert alarm["message"].startswith("Unit 1: abnormal operation — PT ")
    assert alarm["details"]["contributions"][0]["tag"] == "PT"
    bad = tmp_path / "cut.json"
    bad.write_bytes(model.read_bytes()[:100])
    refused = hazwatch("backtest", "--config", str(config), "--model", str(bad), str(fault))
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"error: {bad}: not a complete model file")

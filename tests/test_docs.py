"""The examples of README.md and docs/contract.md, run as a newcomer would run them.

A payload example that the service rejects, a command that does not work as written,
a configuration that does not load: each failed a newcomer once (a ``ts`` from 2025, a
tag not in the example registry, a venv assumed active). These tests read the
examples out of the documents, so the documents cannot drift from the code again.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hazwatch.registry import load_registry
from hazwatch.settings import load_settings
from tests.conftest import EXAMPLE_REGISTRY, RunService
from tests.helpers import eventually
from tests.servers import Mosquitto, find_binary, free_port

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CONTRACT = ROOT / "docs" / "contract.md"
PLACEHOLDERS = {"{enterprise}": "E001", "{gateway}": "MH01-gw", "{tag}": "TK101_LT"}


@dataclass(frozen=True)
class Block:
    heading: str
    lang: str
    text: str


def blocks(path: Path) -> list[Block]:
    """Every fenced code block, with the heading it stands under (indented ones too)."""
    found: list[Block] = []
    heading = ""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        fence = re.match(r"^(\s*)```(\w*)\s*$", line)
        if fence:
            indent, lang = fence.groups()
            body: list[str] = []
            i += 1
            while not lines[i].strip().startswith("```"):
                body.append(lines[i])
                i += 1
            found.append(Block(heading, lang, textwrap.dedent("\n".join(body)) + "\n"))
            del indent
        i += 1
    return found


def under(path: Path, heading: str, lang: str = "") -> list[Block]:
    return [b for b in blocks(path) if b.heading.startswith(heading) and b.lang == lang]


def fill(topic: str) -> str:
    for placeholder, value in PLACEHOLDERS.items():
        topic = topic.replace(placeholder, value)
    return topic


def readme_payloads() -> list[tuple[str, bytes]]:
    """(topic, payload) of each example in README's "Connecting a gateway" table."""
    examples = []
    for row in re.findall(r"^\| `(hz/v1/[^`]+)` \| (.+) \|$", README.read_text(), re.MULTILINE):
        topic, cell = row
        examples += [(fill(topic), p.encode()) for p in re.findall(r"`([^`]+)`", cell)]
    return list(dict.fromkeys(examples))  # "offline" is named twice in its row


# --- payloads --------------------------------------------------------------------------


@pytest.mark.integration
async def test_the_payload_examples_are_accepted_as_written(
    run_service: RunService, mosquitto: Mosquitto
) -> None:
    examples = readme_payloads()
    assert len(examples) == 5  # data, two single values, online, offline
    [contract_example] = under(CONTRACT, "1. MQTT", "json")
    examples.append(("hz/v1/E001/MH01-gw/data", contract_example.text.encode()))
    service = await run_service({"registry": str(EXAMPLE_REGISTRY)})
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="docs-examples")
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    try:
        for topic, payload in examples:
            client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()
    # README's mosquitto_pub line, run as it is written (plus the test broker's port)
    [try_it] = under(README, "Connecting a gateway", "sh")
    command = shlex.split(try_it.text.replace("\\\n", " "))
    assert command[0] == "mosquitto_pub"
    find_binary("mosquitto_pub", "mosquitto-clients")
    subprocess.run([*command, "-p", str(mosquitto.port)], check=True, timeout=30)
    readings = 2 + 1 + 1 + 3 + 1
    await eventually(
        lambda: service.metrics.value("hazwatch_ingest_readings_total") == readings,
        what=f"{readings} readings accepted",
    )
    assert service.rejects.recent() == []
    assert service.validator.unknown_tags() == []


# --- configuration and registry ----------------------------------------------------------


def config_examples() -> list[Block]:
    return [
        b
        for path in (README, CONTRACT)
        for b in blocks(path)
        if b.lang == "toml" and not b.heading.startswith("3. Registry")
    ]


@pytest.mark.parametrize("example", config_examples(), ids=lambda b: b.heading[:30])
def test_the_configuration_examples_load(example: Block, tmp_path: Path) -> None:
    config = tmp_path / "hazwatch.toml"
    config.write_text(example.text)
    load_settings(config, environ={})


def test_the_registry_example_of_the_contract_loads(tmp_path: Path) -> None:
    enterprise, grids = under(CONTRACT, "3. Registry", "toml")
    [points] = under(CONTRACT, "3. Registry", "")
    (tmp_path / "enterprises").mkdir()
    (tmp_path / "points").mkdir()
    (tmp_path / "enterprises" / "E001.toml").write_text(enterprise.text)
    (tmp_path / "points" / "E001.csv").write_text(points.text)
    (tmp_path / "grids.toml").write_text(grids.text)
    registry = load_registry(tmp_path)
    assert [p.tag for p in registry.points()] == ["TK101_LT", "TK101_TT", "GD101"]


# --- "Running the service" ---------------------------------------------------------------


@pytest.mark.integration
def test_running_the_service_works_as_written(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Each line of README's "Running the service" block, in a directory laid out like
    a clone, with the venv's ``hazwatch`` on the PATH (what the activate line does) and
    the broker and console addresses moved to free ports by the documented
    environment overrides."""
    [steps, _more] = under(README, "Running the service", "sh")
    clone = tmp_path / "clone"
    shutil.copytree(ROOT / "simulators" / "examples", clone / "simulators" / "examples")
    console_port = free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HAZWATCH_MQTT__URL": mosquitto.url,
        "HAZWATCH_CONSOLE__LISTEN": f"127.0.0.1:{console_port}",
    }
    lines = [line.split("  #")[0].strip() for line in steps.text.splitlines() if line.strip()]
    assert lines[0] == ". .venv/bin/activate"
    service: subprocess.Popen[bytes] | None = None
    try:
        for line in lines[1:]:
            if line.startswith("hazwatch run"):  # runs until Ctrl-C: in the background
                with (tmp_path / "run.log").open("wb") as log:
                    service = subprocess.Popen(
                        shlex.split(line), cwd=clone, env=env, stdout=log, stderr=log
                    )
                wait_healthy(console_port, service, tmp_path / "run.log")
                continue
            done = subprocess.run(
                line,
                shell=True,
                cwd=clone,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
            if line.startswith("hazwatch check-config"):
                assert done.stdout.endswith("OK\n")
            if line.startswith("hazwatch simulate"):
                assert re.match(r"published \d+ messages", done.stdout)
    finally:
        if service is not None:
            service.terminate()
            assert service.wait(30) == 0
    assert (clone / "my-site" / "var" / "readings.db").exists()


def wait_healthy(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)  # polling another process: there is no event to await
    raise TimeoutError(f"the service did not become healthy: {log.read_text()[-2000:]}")

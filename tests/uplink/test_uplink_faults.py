"""``hazwatch run`` killed while the platform is down: nothing meant for upstream is lost.

The real service as a subprocess (as tests/test_faults.py runs it), a gateway that
keeps publishing through the kills, the HTTP platform down all along; then the
platform comes up and must receive every reading exactly once, each tag in order.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import eventually, write_registry
from tests.receivers import Request, ScriptedReceiver
from tests.servers import Mosquitto, free_port
from tests.test_faults import ENTERPRISE, HAZWATCH, TAGS, Stream
from tests.uplink.platform import HTTP_UPLINK, open_http

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def toml_value(value: object) -> str:
    """TOML for the scalars and tables of an uplink entry (JSON strings are TOML strings)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


class ServiceProcess:
    def __init__(self, workdir: Path, mqtt_url: str, upstream_url: str) -> None:
        self.console_port = free_port()
        self.config = workdir / "hazwatch.toml"
        self.log = workdir / "hazwatch.log"
        write_registry(workdir / "registry", ENTERPRISE, TAGS)
        uplink = {
            "name": "prov",
            "url": upstream_url,
            "rate": 5000.0,
            "batch": 500,
            "retry_max_s": 0.5,
            "readings": {"period_s": 0},  # every reading: exact accounting
            **HTTP_UPLINK,
        }
        self.config.write_text(
            'registry = "registry"\n'
            f'[mqtt]\nurl = "{mqtt_url}"\nclient_id = "hazwatch-uplink-faults"\n'
            f'[console]\nlisten = "127.0.0.1:{self.console_port}"\n'
            "[[uplink]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in uplink.items())
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*HAZWATCH, "run", "--config", str(self.config)], stdout=out, stderr=out
            )

    async def wait_subscribed(self) -> None:
        def subscribed() -> bool:
            assert self.proc is not None
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                health = httpx.get(f"http://127.0.0.1:{self.console_port}/healthz", timeout=2)
            except httpx.HTTPError:
                return False
            return bool(health.json().get("components", {}).get("mqtt") == "ok")

        await eventually(subscribed, 30, "hazwatch subscribed")

    def stop(self, sig: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(30)
        self.proc = None
        return code


async def test_sigkill_while_the_platform_is_down_loses_nothing(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    port = free_port()
    service = ServiceProcess(tmp_path, mosquitto.url, f"http://127.0.0.1:{port}/api")
    service.start()
    try:
        await service.wait_subscribed()
        messages, kills = 2000, 3
        stream = Stream(
            mosquitto.port, "gw1", messages, rate=400, base_ms=int(time.time() * 1000) - 600_000
        )
        stream.start()
        rng = random.Random()
        for _ in range(kills):
            await asyncio.sleep(rng.uniform(0.5, 1.2))
            service.stop(signal.SIGKILL)
            service.start()
            await service.wait_subscribed()
        await asyncio.to_thread(stream.join_ok)
        expected = {(t, seq) for seq in range(1, messages + 1) for t in TAGS}
        opened: list[list[tuple[str, int]]] = []

        def all_arrived(requests: list[Request]) -> bool:
            for r in requests[len(opened) :]:
                records = open_http(r.headers, r.body)["records"] if r.status == 204 else []
                opened.append([(x["tag"], int(x["v"])) for x in records])
            return sum(len(o) for o in opened) >= len(expected)

        async with ScriptedReceiver(port=port) as platform:
            await platform.wait_until(all_arrived, 90)
        got = [record for request in opened for record in request]
        print(
            f"\nhazwatch SIGKILL x{kills} while the platform was down, {messages} messages "
            f"({len(expected)} readings): {len(got)} records arrived when it came back, "
            f"{len(set(got))} distinct, in {len(opened)} requests"
        )
        assert set(got) == expected
        assert len(got) == len(expected), "a reading arrived twice"
        for tag in TAGS:
            seqs = [seq for t, seq in got if t == tag]
            assert seqs == sorted(seqs)
        status = subprocess.run(
            [*HAZWATCH, "uplink", "status", "--config", str(service.config)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert status.returncode == 0, status.stdout + status.stderr
        assert "uplink prov → http://127.0.0.1" in status.stdout
        assert "waiting:      0 readings, 0 alarm changes" in status.stdout
        assert service.stop(signal.SIGTERM) == 0
    finally:
        if service.proc is not None:
            service.stop(signal.SIGKILL)


def test_uplink_status_names_a_failing_platform(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Exit 1 and the last error while the platform refuses."""
    service = ServiceProcess(tmp_path, mosquitto.url, f"http://127.0.0.1:{free_port()}/api")
    queue = tmp_path / "var" / "uplink-prov.db"
    from hazwatch.models import Reading  # noqa: PLC0415
    from uplink.queue import UplinkQueue  # noqa: PLC0415

    async def fill() -> None:
        async with UplinkQueue(queue, 100) as q:
            await q.append_readings([Reading(ENTERPRISE, "gw1", "P00", 1.0, 1)], 1)
            await q.note_failure("POST to http://127.0.0.1:9 failed: ConnectError", 2)

    asyncio.run(fill())
    status = subprocess.run(
        [*HAZWATCH, "uplink", "status", "--config", str(service.config)],
        capture_output=True,
        text=True,
        check=False,
    )
    print(status.stdout)
    assert status.returncode == 1
    assert "prov → http://127.0.0.1" in status.stdout
    assert ": failing" in status.stdout
    assert "waiting:      1 readings" in status.stdout
    assert (
        "last failure: 1970-01-01T00:00:00.002Z: POST to http://127.0.0.1:9 failed" in status.stdout
    )

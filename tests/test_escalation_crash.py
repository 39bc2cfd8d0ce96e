"""``hazwatch run`` SIGKILLed in the middle of an escalation (督办) and started again at
once: every tier fires once — each a single ``escalated`` transition, on time or at
the restart if it fell due while the service was down — and its messages are sent at
least once, never as a second escalation (a repeat carries the same idempotency key).

Real Mosquitto, the real command as a subprocess, a real HTTP SMS gateway. Tiers are
seconds apart (``after_min`` 0.05, 0.15, 0.25: 3 s, 9 s, 15 s); the service is killed
around the second one, repeatedly.
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from hazwatch.models import iso_to_ms
from tests.conftest import EXAMPLE_REGISTRY
from tests.helpers import Gateway, console_login, eventually
from tests.receivers import ScriptedReceiver
from tests.servers import Mosquitto, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HAZWATCH = [sys.executable, "-m", "hazwatch.cli"]
TIERS_S = (3, 9, 15)
OFFICER, REGULATOR = "+86-000-0000-0301", "+86-000-0000-0300"


class Run:
    def __init__(self, workdir: Path, mqtt_url: str, sms_url: str) -> None:
        self.port = free_port()
        self.config = workdir / "hazwatch.toml"
        self.log = workdir / "hazwatch.log"
        tiers = "".join(
            f"[[alerting.routes.escalate]]\nafter_min = {s / 60}\nnotify = [{roles}]\n"
            for s, roles in zip(
                TIERS_S, ('"principal"', '"grid_officer"', '"regulator"'), strict=True
            )
        )
        self.config.write_text(
            f'registry = "{EXAMPLE_REGISTRY}"\n'
            f'[mqtt]\nurl = "{mqtt_url}"\nclient_id = "hazwatch-escalation"\n'
            f'[storage]\npath = "{workdir / "readings.db"}"\n'
            f'[journal]\npath = "{workdir / "journal.db"}"\n'
            f'[ingest]\nspool_path = "{workdir / "spool.db"}"\n'
            f'[console]\nlisten = "127.0.0.1:{self.port}"\n'
            f'[alerting]\nallow_private = ["127.0.0.1"]\n'
            f'[alerting.sms]\nurl = "{sms_url}"\n'
            f'[[alerting.routes]]\nname = "critical"\ntypes = ["HH"]\nnotify = ["duty"]\n'
            f"{tiers}"
            f'[[alerting.routes]]\nname = "quiet"\ntypes = ["H"]\nnotify = ["duty"]\n'
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.session: dict[str, str] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*HAZWATCH, "run", "--config", str(self.config)], stdout=out, stderr=out
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.proc = None

    def api(self, path: str) -> httpx.Response:
        base = f"http://127.0.0.1:{self.port}"
        if path.startswith("/api/") and self.session is None:  # the console db survives kills
            self.session = console_login(base, self.config.parent / "var" / "console.db")
        return httpx.get(f"{base}{path}", headers=self.session, timeout=5)

    async def wait_up(self) -> None:
        def up() -> bool:
            assert self.proc is not None
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                return bool(self.api("/healthz").json()["components"]["mqtt"] == "ok")
            except httpx.HTTPError:
                return False

        await eventually(up, 30, "hazwatch up")


async def test_sigkill_mid_escalation_fires_each_tier_once(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    rng = random.Random(17)
    async with ScriptedReceiver() as sms:
        run = Run(tmp_path, mosquitto.url, sms.url("/sms"))
        run.start()
        try:
            await run.wait_up()
            gateway = Gateway(mosquitto.port, "E001", "MH01-gw")
            gateway.publish([{"tag": "TK101_LT", "v": 11.4}], ts_ms=int(time.time() * 1000))
            alarms: list[dict[str, object]] = []

            def raised() -> bool:
                alarms[:] = [a for a in run.api("/api/alarms").json() if a["type"] == "HH"]
                return bool(alarms)

            await eventually(raised, 15, "HH raised")
            alarm_id = str(alarms[0]["id"])
            t0 = iso_to_ms(run.api(f"/api/alarms/{alarm_id}").json()["transitions"][0]["at"])
            kills = 0
            for around_s in (TIERS_S[1], TIERS_S[1] + 2, TIERS_S[2]):  # around tiers 2 and 3
                kill_at = t0 / 1000 + around_s + rng.uniform(-0.3, 0.3)
                await _sleep_until(kill_at)
                run.kill()
                kills += 1
                run.start()  # at once: whatever fell due meanwhile fires at the restart
                await run.wait_up()
            await _sleep_until(t0 / 1000 + TIERS_S[2] + 2)

            def all_sent() -> bool:
                rows = run.api(f"/api/alarms/{alarm_id}").json()["notifications"]
                return bool(rows) and all(n["status"] == "delivered" for n in rows)

            await eventually(all_sent, 30, "every notification delivered")
            detail = run.api(f"/api/alarms/{alarm_id}").json()
        finally:
            if run.proc is not None:
                run.kill()
    escalations = [t for t in detail["transitions"] if t["kind"] == "escalated"]
    assert [t["comment"].split(":")[0] for t in escalations] == ["tier 1", "tier 2", "tier 3"]
    for tier_s, transition in zip(TIERS_S, escalations, strict=True):
        assert iso_to_ms(transition["at"]) - t0 >= tier_s * 1000  # never early
    assert detail["escalation"] == 3
    to = Counter(
        (r.headers["idempotency-key"], r.json()["to"]) for r in sms.requests if r.status == 204
    )
    keys_to_regulator = {key for key, phone in to if phone == REGULATOR}
    keys_to_officer = {key for key, phone in to if phone == OFFICER}
    assert len(keys_to_regulator) == 1  # one tier-3 notification (maybe sent twice)
    assert len(keys_to_officer) == 1  # one tier-2 notification
    print(
        f"\n{kills} SIGKILLs around the tiers: escalations at "
        f"{[round((iso_to_ms(t['at']) - t0) / 1000, 1) for t in escalations]} s; "
        f"SMS repeats (same key) {sum(n - 1 for n in to.values())}"
    )


async def _sleep_until(epoch_s: float) -> None:
    await asyncio.sleep(max(0.0, epoch_s - time.time()))

"""The registry reload: ``hazwatch run`` (``hazwatch.app.serve``) on a real Mosquitto,
an admin at the console's API. Files that do not load change nothing; files that do
restart the pipeline on them, on the same console port, with the sessions still valid,
and a gateway of a new enterprise is then stored."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path

import httpx
import pytest

from dashboards.users import ConsoleDb
from hazwatch.app import Hazwatch, serve
from hazwatch.registry import load_registry
from tests.conftest import EXAMPLE_REGISTRY, service_settings
from tests.helpers import CONSOLE_PASSWORD, Gateway, console_user, eventually
from tests.servers import Mosquitto

pytestmark = pytest.mark.integration

START_S = 30.0


def _e003(registry: Path, toml: str) -> None:
    (registry / "enterprises" / "E003.toml").write_text(toml, encoding="utf-8")
    shutil.copy(registry / "points" / "E002.csv", registry / "points" / "E003.csv")


E003 = (
    (EXAMPLE_REGISTRY / "enterprises" / "E002.toml")
    .read_text(encoding="utf-8")
    .replace('id = "E002"', 'id = "E003"')
    .replace("Example Logistics Warehouse", "Example Cold Store")
    .replace("points/E002.csv", "points/E003.csv")
)


async def _login(client: httpx.AsyncClient, name: str) -> None:
    answer = await client.post("/api/login", json={"username": name, "password": CONSOLE_PASSWORD})
    assert answer.status_code == 200, answer.text
    client.cookies.clear()
    client.headers["Cookie"] = f"hz_session={answer.cookies['hz_session']}"
    client.headers["X-CSRF-Token"] = answer.json()["csrf"]


async def test_a_reload_restarts_the_pipeline_on_the_new_registry_and_nothing_else(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    registry_dir = tmp_path / "registry"
    shutil.copytree(EXAMPLE_REGISTRY, registry_dir)
    settings = service_settings(tmp_path, mosquitto, {"registry": str(registry_dir)})
    db = ConsoleDb(settings.console.db)
    console_user(db, "admin", "admin")
    console_user(db)  # an operator
    db.close()
    started: asyncio.Queue[Hazwatch] = asyncio.Queue()
    serving = asyncio.create_task(serve(settings, load_registry(registry_dir), started=started))
    first = await asyncio.wait_for(started.get(), START_S)
    gateway = Gateway(mosquitto.port, "E003", "DB01-gw")
    admin = httpx.AsyncClient(base_url=first.console_url, timeout=10)
    operator = httpx.AsyncClient(base_url=first.console_url, timeout=10)
    try:
        await _login(admin, "admin")
        await _login(operator, "operator")
        forbidden = await operator.post("/api/admin/registry/reload")
        assert forbidden.status_code == 403

        _e003(registry_dir, E003.replace('id = "E003"', "id = "))  # not TOML
        refused = await admin.post("/api/admin/registry/reload")
        assert refused.status_code == 422
        assert "E003.toml" in refused.json()["detail"]
        assert started.empty()  # the service goes on with the registry it has
        assert (await admin.get("/api/enterprises")).status_code == 200

        _e003(registry_dir, E003)
        reloaded = await admin.post("/api/admin/registry/reload")
        assert reloaded.status_code == 202, reloaded.text
        assert reloaded.json() == {
            "enterprises": 3,
            "installations": 5,
            "points": len(load_registry(registry_dir).points()),
            "added": ["E003"],
            "removed": [],
        }
        second = await asyncio.wait_for(started.get(), START_S)
        assert second is not first
        assert second.console_port == first.console_port  # the same socket, kept open
        await eventually(lambda: all(s.connected for s in second.sources), what="subscribed")

        # The session survived (it lives in console.db); the new enterprise is served,
        # and its gateway's readings are accepted and stored.
        listed = await admin.get("/api/enterprises")
        assert "E003" in {e["id"] for e in listed.json()}
        gateway.publish([{"tag": "RC01", "v": 42.0}])
        await eventually(lambda: "RC01" in second.latest.enterprise("E003"), what="stored")
        detail = (await admin.get("/api/enterprises/E003")).json()
        [rc01] = [p for i in detail["installations"] for p in i["points"] if p["tag"] == "RC01"]
        assert rc01["last"]["value"] == 42.0
        actions = [row["action"] for row in (await admin.get("/api/audit")).json()]
        assert {"registry_reload_refused", "registry_reload"} <= set(actions)
    finally:
        gateway.close()
        await admin.aclose()
        await operator.aclose()
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
    assert serving.cancelled()  # SIGTERM's path: cancelled, every resource closed

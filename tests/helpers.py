"""Small test helpers: a gateway that publishes like a real one, waiting on conditions,
and registries written to a temporary directory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from dashboards.users import ConsoleDb
from hazwatch.models import AlarmType, Condition, Reading
from ingest.lineprotocol import LineEncoder
from ingest.spool import SpooledMessage

POLL_S = 0.01


async def eventually(check: Callable[[], bool], timeout: float = 15, what: str = "") -> None:
    """Wait until ``check()`` holds — for state in another process or server, where
    there is no event to await. Fails with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached within {timeout}s: {what or check}")
        await asyncio.sleep(POLL_S)


class Gateway:
    """A gateway publishing QoS 1 over paho; ``publish`` returns once the broker acked."""

    def __init__(self, port: int, enterprise: str, gateway: str) -> None:
        self.enterprise = enterprise
        self.gateway = gateway
        self.seq = 0
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"test-{enterprise}-{gateway}"
        )
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()

    @property
    def prefix(self) -> str:
        return f"hz/v1/{self.enterprise}/{self.gateway}"

    def publish_raw(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)

    def publish(self, readings: Iterable[dict[str, Any]], ts_ms: int | None = None) -> None:
        self.seq += 1
        message: dict[str, Any] = {"seq": self.seq, "readings": list(readings)}
        if ts_ms is not None:
            message["ts"] = ts_ms
        self.publish_raw(f"{self.prefix}/data", orjson.dumps(message))

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def write_registry(root: Path, enterprise: str, tags: Iterable[str], **limits: str) -> Path:
    """A one-enterprise registry with points of kind ``other`` (limits as given)."""
    (root / "enterprises").mkdir(parents=True)
    (root / "points").mkdir()
    (root / "enterprises" / f"{enterprise}.toml").write_text(
        f'id = "{enterprise}"\nname = "Test {enterprise}"\ngrid = "G1"\n'
        f'[[installations]]\nid = "U1"\nname = "Unit 1"\ngrade = 3\n'
        f'points = "points/{enterprise}.csv"\n'
    )
    columns = ["installation", "tag", "name", "kind", *limits]
    rows = [",".join(columns)]
    rows += [",".join(["U1", t, f"Point {t}", "other", *limits.values()]) for t in tags]
    (root / "points" / f"{enterprise}.csv").write_text("\n".join(rows) + "\n")
    return root


def spooled(
    encoder: LineEncoder, readings: Sequence[Reading], received_ms: int = 1_763_820_000_000
) -> SpooledMessage:
    """One message's readings as the pipeline spools them (line protocol + gateway)."""
    stamped = received_ms if any(r.receive_time for r in readings) else None
    gateway = readings[0].gateway if readings else "gw1"
    return SpooledMessage(received_ms, gateway, len(readings), stamped, encoder.body(readings))


CONSOLE_PASSWORD = "integration test password"


def console_user(
    db: ConsoleDb | Path,
    name: str = "operator",
    role: str = "operator",
    enterprises: tuple[str, ...] = (),
) -> None:
    """A console user in the service's ``console.db`` (a path: a service in another
    process; its ``[console] db``, by default ``var/console.db`` next to the config)."""
    opened = ConsoleDb(db) if isinstance(db, Path) else db
    try:
        if opened.get(name) is None:
            opened.add(
                name,
                CONSOLE_PASSWORD,
                role,
                enterprises=enterprises,
                now_ms=int(time.time() * 1000),
            )
    finally:
        if isinstance(db, Path):
            opened.close()


def _session_headers(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 200, response.text
    return {
        "Cookie": f"hz_session={response.cookies['hz_session']}",
        "X-CSRF-Token": response.json()["csrf"],
    }


def console_login(base_url: str, db: Path, name: str = "operator") -> dict[str, str]:
    """Log in to a console in another process; the headers every request then sends."""
    console_user(db, name, name)
    login = {"username": name, "password": CONSOLE_PASSWORD}
    return _session_headers(httpx.post(f"{base_url.rstrip('/')}/api/login", json=login))


async def console_login_async(
    client: httpx.AsyncClient, db: ConsoleDb, enterprise: str | None = None
) -> None:
    """Log ``client`` in to a console in this process (``db`` is
    ``service.console.users``) as ``operator``, or as the user of ``enterprise``: its
    requests then carry the session and the CSRF token."""
    name = "operator" if enterprise is None else f"user-{enterprise}"
    if enterprise is None:
        console_user(db)
    else:
        console_user(db, name, "enterprise", (enterprise,))
    login = {"username": name, "password": CONSOLE_PASSWORD}
    client.cookies.clear()
    client.headers.pop("Cookie", None)
    headers = _session_headers(await client.post("/api/login", json=login))
    client.cookies.clear()
    client.headers.update(headers)


def condition(
    alarm_type: AlarmType = AlarmType.HH,
    *,
    active: bool = True,
    enterprise: str = "E001",
    installation: str = "MH01",
    tag: str = "TK101_LT",
    value: float = 11.2,
    limit: float = 11.0,
    ts_ms: int | None = None,
    message: str | None = None,
) -> Condition:
    """A detector's condition on the example registry's TK101_LT unless told otherwise, as the
    console's tests feed it; ``ts_ms`` now and a terse message unless given."""
    return Condition(
        enterprise=enterprise,
        installation=installation,
        tag=tag,
        type=alarm_type,
        active=active,
        value=value,
        limit=limit,
        ts_ms=round(time.time() * 1000) if ts_ms is None else ts_ms,
        message=f"{tag} {value} {alarm_type.value} {limit}" if message is None else message,
    )

"""Did the broker keep our session? A lost one is a SYSTEM alarm, never an info line.

The ingest connects with a persistent session (``clean_session=0``, a fixed client
id), so what gateways publish while hazwatch is away waits in the broker. The CONNACK
says whether the broker still had that session (``session_present``). When it did
not — the broker restarted without persistence, was killed before its autosave, or
expired the session — every message it held for hazwatch is gone, and only the
gateways' ``seq`` gaps would tell. So a connection without a session, where one
existed before, raises the ``mqtt_session_lost`` SYSTEM alarm ("the broker lost this
session...") and counts ``hazwatch_mqtt_sessions_lost_total``.

"Existed before" survives restarts: the spool keeps a marker of the broker and client
id it last had a session with. The very first connection — or one to another broker
or with another client id — has no session to lose, and raises nothing.

The alarm is an event: it is raised and cleared at once, so it stays on the alarm
list (``cleared_unack``) until an operator acknowledges it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import structlog

from hazwatch.metrics import Metrics
from hazwatch.models import Condition, system_condition
from hazwatch.settings import MqttSettings
from ingest.spool import Spool

log = structlog.get_logger(__name__)

SESSION_LOST_TAG = "mqtt_session_lost"
LOST_MESSAGE = "the broker lost this session: messages held for hazwatch while it was away are gone"


def session_marker(mqtt: MqttSettings) -> int:
    """A number for (broker, client id): a session belongs to both. Never 0 (none)."""
    return zlib.crc32(f"{mqtt.host}:{mqtt.port}/{mqtt.client_id}".encode()) or 1


class SessionWatch:
    """``await watch.connected(session_present)`` after every CONNACK that accepted."""

    def __init__(
        self,
        mqtt: MqttSettings,
        spool: Spool,
        metrics: Metrics,
        now_ms: Callable[[], int],
        on_system: Callable[[list[Condition]], object] | None = None,
    ) -> None:
        self._mqtt = mqtt
        self._marker = session_marker(mqtt)
        self._spool = spool
        self._metrics = metrics
        self._now_ms = now_ms
        self._on_system = on_system

    async def connected(self, session_present: bool) -> None:
        known = await self._spool.mqtt_session()
        if session_present or known != self._marker:
            if known != self._marker:
                await self._spool.set_mqtt_session(self._marker)
            return
        self._metrics.sessions_lost.inc()
        broker = f"{self._mqtt.host}:{self._mqtt.port}"
        log.error(
            "mqtt_session_lost",
            broker=broker,
            client_id=self._mqtt.client_id,
            detail=LOST_MESSAGE,
        )
        if self._on_system is None:
            return
        now_ms = self._now_ms()
        lost = f"{LOST_MESSAGE} (broker {broker}, client id {self._mqtt.client_id})"
        self._on_system(
            [
                system_condition(
                    SESSION_LOST_TAG, active=True, ts_ms=now_ms, message=lost, value=0, limit=None
                ),
                system_condition(
                    SESSION_LOST_TAG,
                    active=False,
                    ts_ms=now_ms,
                    message=f"a new session is established; {lost}",
                    value=0,
                    limit=None,
                ),
            ]
        )

"""The Sparkplug B host application's session duties: its STATE, and rebirth requests.

On every connection (:mod:`ingest.session`):

- the CONNECT carries the will ``spBv1.0/STATE/{host_id}``
  ``{"online": false, "timestamp": T}`` (QoS 1, retained), T = the time of that CONNECT,
  and asks for a clean session (Sparkplug 3.0 requires both);
- once subscribed (the Sparkplug topics and its own STATE topic),
  ``{"online": true, "timestamp": T}`` is published (QoS 1, retained, the same T);
- should an ``online: false`` for its own host id arrive while connected (a late will of
  an earlier connection, or another client), the online STATE is published again;
- before a clean disconnect, ``{"online": false, "timestamp": T}``.

Rebirth requests (``spBv1.0/{group}/NCMD/{edge_node}``, metric ``Node Control/Rebirth`` =
true, QoS 0) are asked for by the codec — a seq gap not filled within the reorder
timeout, DATA before BIRTH, an unknown alias, a BIRTH with duplicate aliases — and
rate-limited so that a misbehaving node cannot cause a rebirth storm: one node is
asked at most once per ``rebirth_interval_s`` (further asks are counted in
``hazwatch_sparkplug_rebirth_requests_held_total``), and all nodes together at most
``rebirths_per_s`` a second (the rest wait their turn, oldest first).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
import structlog

from hazwatch.clock import Clock
from hazwatch.metrics import Metrics
from ingest.packets import Will
from ingest.session import SessionLink
from ingest.sparkplug import sparkplug_b_pb2 as pb

log = structlog.get_logger(__name__)

TICK_S = 1.0
"""How often the reorder windows are checked while nothing else happens."""
MAX_PENDING = 10_000
"""Edge nodes waiting for a rebirth request at most (beyond: held, counted)."""
REBIRTH = "Node Control/Rebirth"
BOOLEAN = 11


def rebirth_request(now_ms: int) -> bytes:
    """The NCMD payload that asks an edge node for a rebirth."""
    payload = pb.Payload(timestamp=now_ms)
    metric = payload.metrics.add()
    metric.name = REBIRTH
    metric.timestamp = now_ms
    metric.datatype = BOOLEAN
    metric.boolean_value = True
    return payload.SerializeToString()


def state_payload(*, online: bool, timestamp: int) -> bytes:
    """The 3.0 STATE JSON.

    >>> state_payload(online=True, timestamp=1763820000000)
    b'{"online":true,"timestamp":1763820000000}'
    """
    return orjson.dumps({"online": online, "timestamp": timestamp})


class SparkplugHost:
    """Session duties of one host id (see the module docstring)."""

    clean_session = True

    def __init__(  # noqa: PLR0917 - the options of the [[ingest.codecs]] entry
        self,
        name: str,
        host_id: str,
        clock: Clock,
        metrics: Metrics,
        rebirth_interval_s: float,
        rebirths_per_s: float,
    ) -> None:
        self.name = name
        self.host_id = host_id
        self.state_topic = f"spBv1.0/STATE/{host_id}"
        self.online = False
        self.on_tick: Callable[[int], None] = lambda _now_ms: None
        """Set by the codec: checks its reorder windows (and asks for rebirths)."""
        self._clock = clock
        self._metrics = metrics
        self._interval_ms = round(rebirth_interval_s * 1000)
        self._rate = rebirths_per_s
        self._session_ts = clock.now_ms()
        self._pending: dict[tuple[str, str], str] = {}
        self._asked: dict[tuple[str, str], int] = {}
        self._wake = asyncio.Event()
        self._republish = False
        self._tokens = 1.0
        self._tokens_ms = 0

    # --- the session (ingest.session.SessionDuties) ---------------------------------------

    def will(self) -> Will:
        self._session_ts = self._clock.now_ms()
        return Will(self.state_topic, self._state(online=False), qos=1, retain=True)

    async def run(self, link: SessionLink) -> None:
        await link.publish(self.state_topic, self._state(online=True), qos=1, retain=True)
        self.online = True
        log.info("sparkplug_host_online", host_id=self.host_id, timestamp=self._session_ts)
        try:
            while True:
                try:
                    async with asyncio.timeout(self._next_wake_s()):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                self._wake.clear()
                now_ms = self._clock.now_ms()
                self.on_tick(now_ms)
                if self._republish:
                    self._republish = False
                    await link.publish(
                        self.state_topic, self._state(online=True), qos=1, retain=True
                    )
                await self._send_due(link, now_ms)
        finally:
            self.online = False

    async def leave(self, link: SessionLink) -> None:
        await link.publish(self.state_topic, self._state(online=False), qos=1, retain=True)

    # --- asked by the codec ---------------------------------------------------------------

    def own_state(self, *, online: bool) -> None:
        """Our own STATE came back; ``online: false`` while connected: say it again."""
        if not online and self.online:
            log.warning("sparkplug_host_state_offline_seen", host_id=self.host_id)
            self._republish = True
            self._wake.set()

    def request_rebirth(self, group: str, edge_node: str, reason: str, now_ms: int) -> None:
        key = (group, edge_node)
        if key in self._pending:
            return
        asked = self._asked.get(key)
        if (asked is not None and now_ms - asked < self._interval_ms) or len(
            self._pending
        ) >= MAX_PENDING:
            self._metrics.sparkplug_rebirths_held.inc()
            return
        self._pending[key] = reason
        self._wake.set()

    # --- internals ------------------------------------------------------------------------

    def _state(self, *, online: bool) -> bytes:
        return state_payload(online=online, timestamp=self._session_ts)

    def _next_wake_s(self) -> float:
        return min(TICK_S, 1 / self._rate) if self._pending else TICK_S

    async def _send_due(self, link: SessionLink, now_ms: int) -> None:
        elapsed_s = max(0, now_ms - self._tokens_ms) / 1000
        self._tokens = min(max(1.0, self._rate), self._tokens + elapsed_s * self._rate)
        self._tokens_ms = now_ms
        while self._pending and self._tokens >= 1:
            (group, edge_node), reason = next(iter(self._pending.items()))
            await link.publish(f"spBv1.0/{group}/NCMD/{edge_node}", rebirth_request(now_ms), qos=0)
            del self._pending[group, edge_node]
            self._tokens -= 1
            self._asked[group, edge_node] = now_ms
            self._metrics.sparkplug_rebirths.labels(reason).inc()
            log.info("sparkplug_rebirth_requested", group=group, edge_node=edge_node, reason=reason)
        if len(self._asked) > MAX_PENDING:  # forget nodes asked longer ago than the interval
            self._asked = {k: t for k, t in self._asked.items() if now_ms - t < self._interval_ms}

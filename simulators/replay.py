"""``hazwatch replay``: publish a recording's gateway messages again, on their schedule.

Only gateway topics are replayed (data, tag, status: what the service subscribes
to); the platform's own alarm messages in a recording are what a live run raised, not
input. Each message is published with QoS 1 and its recorded retain flag when a
replay clock — a :class:`~hazwatch.clock.ScaledClock` started at the first message's
receive time, running ``speed`` times as fast — reaches the message's receive time: the
original spacing divided by ``speed``. Behind schedule (a slow broker), messages go out
as fast as the window allows, in order.

At most ``window`` messages are unacknowledged at a time (per connection); the replay
ends when every PUBACK has come back, and counts what the broker refused (MQTT 5 reason codes: e.g.
"not authorized" under an ACL). A lost connection ends the replay with an error:
replaying again is safe, because storage is idempotent.

With ``logins`` (``--logins FILE``, :mod:`simulators.logins`), for a broker running the
gateway ACL, each message goes out over a connection of the login that may write its
topic — one connection per login, opened when first needed — so one gateway's messages
keep their order; a message no login may write is counted in ``no_login``.

Timestamps stay as recorded, so a fresh service on a clock that starts at the
recording's first receive time stores exactly the recorded points. ``rewrite_ts``
maps every hz-json ``ts`` (message and reading level, epoch ms or RFC 3339) onto the
replay's wall time instead (:class:`TimestampShift`), for a service on the real clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
from collections.abc import Iterable
from contextlib import AsyncExitStack
from typing import Any, Protocol

import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

from hazwatch.clock import ScaledClock, SystemClock
from hazwatch.errors import BrokerError
from hazwatch.models import ms_to_iso
from hazwatch.settings import IngestSettings
from ingest.codecs import build_routes
from ingest.jsonpayload import rfc3339_ms  # the codecs' own parser: the same forms
from ingest.routes import CodecRoutes
from simulators.broker import Broker, BrokerConnection
from simulators.logins import GatewayLogins
from simulators.recording import RecordedMessage

DEFAULT_WINDOW = 1000


class TimestampShift:
    """Maps recorded time onto the replay's wall time: ``now + (ts − first) / speed``.

    ``first`` is the first replayed message's receive time and ``now`` the wall clock
    when it is published, so readings keep their spacing as the replay compresses it.

    >>> shift = TimestampShift(first_ms=1_000_000, now_ms=5_000_000, speed=10)
    >>> shift.ms(1_000_000), shift.ms(1_010_000)
    (5000000, 5001000)
    >>> shift.payload("hz/v1/E001/gw/data", b'{"ts":"1970-01-01T00:16:50Z","readings":[]}')
    b'{"ts":"1970-01-01T01:23:21.000Z","readings":[]}'
    """

    def __init__(self, first_ms: int, now_ms: int, speed: float) -> None:
        self.first_ms = first_ms
        self.now_ms = now_ms
        self.speed = speed

    def ms(self, ts_ms: int) -> int:
        return self.now_ms + round((ts_ms - self.first_ms) / self.speed)

    def payload(self, topic: str, payload: bytes) -> bytes:
        """``payload`` with its timestamps moved; unchanged (byte for byte) if it has none
        or is not JSON that the codec would accept — it is rejected as before."""
        parts = topic.split("/")
        if len(parts) < 5 or parts[4] not in ("data", "tag"):
            return payload
        try:
            doc = json.loads(payload.decode("utf-8"), object_pairs_hook=_unique_keys)
        except (ValueError, RecursionError):  # not UTF-8, not JSON, a repeated key
            return payload
        if not isinstance(doc, dict):
            return payload
        changed = self._move(doc)
        if parts[4] == "data" and isinstance(doc.get("readings"), list):
            for item in doc["readings"]:
                if isinstance(item, dict):
                    changed |= self._move(item)
        if not changed:
            return payload
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def _move(self, obj: dict[str, Any]) -> bool:
        ts = obj.get("ts")
        if type(ts) is int:
            obj["ts"] = self.ms(ts)
            return True
        if type(ts) is str and (parsed := rfc3339_ms(ts)) is not None:
            try:
                obj["ts"] = ms_to_iso(self.ms(parsed))
            except (OverflowError, OSError, ValueError):  # beyond what datetime can show
                return False
            return True
        return False


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("repeated key")  # the codec rejects it: keep it as it was
    return obj


class ReplayClock(Protocol):
    """What a replay follows: a :class:`~hazwatch.clock.ScaledClock`, or in tests a clock
    shared with the service replayed into."""

    def wall_s_until(self, ms: int) -> float:
        """Wall-clock seconds until the clock reads ``ms`` (<= 0: already past)."""
        ...


class Replayer:
    """Publishes recorded gateway messages on their recorded schedule (see the module).

    Counts as it goes (also what an interrupted replay got to): ``published``,
    ``acknowledged`` (PUBACKs), ``refused`` (acknowledged with an MQTT 5 failure
    reason: not stored by the broker) and ``skipped`` (not a gateway topic: one no codec
    of ``routes`` decodes — by default the hz-json topics).
    """

    def __init__(
        self,
        broker: Broker,
        *,
        speed: float = 1.0,
        rewrite_ts: bool = False,
        window: int = DEFAULT_WINDOW,
        routes: CodecRoutes | None = None,
        logins: GatewayLogins | None = None,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.broker = broker
        self.speed = speed
        self.rewrite_ts = rewrite_ts
        self.window = window
        self.published = 0
        self.acknowledged = 0
        self.refused = 0
        self.skipped = 0
        self.no_login = 0
        self._routes = routes or build_routes(IngestSettings())
        self._logins = logins
        self._client_id = f"hazwatch-replay-{secrets.token_hex(4)}"

    async def run(
        self, messages: Iterable[RecordedMessage], *, clock: ReplayClock | None = None
    ) -> None:
        """Replay ``messages`` (in recorded order). ``clock``: the replay clock to follow
        (default: one started at the first gateway message, at ``speed``); a test passes
        the clock of the service it replays into, so both agree on "now"."""
        async with AsyncExitStack() as stack:
            lanes: dict[str, _Lane] = {}
            if self._logins is None:  # one connection, made before anything is read
                lanes[""] = await self._open(stack, self.broker, self._client_id)
            shift: TimestampShift | None = None
            for message in messages:
                if not self._routes.is_gateway_topic(message.topic):
                    self.skipped += 1
                    continue
                lane = lanes.get("")
                if self._logins is not None:
                    login = self._logins.for_topic(message.topic)
                    if login is None:
                        self.no_login += 1
                        continue
                    lane = lanes.get(login.username)
                    if lane is None:
                        broker = dataclasses.replace(
                            self.broker, username=login.username, password=login.password
                        )
                        client_id = f"{self._client_id}-{len(lanes)}"
                        lane = lanes[login.username] = await self._open(stack, broker, client_id)
                assert lane is not None
                if clock is None:
                    clock = ScaledClock(self.speed, start_ms=message.t)
                if self.rewrite_ts and shift is None:
                    shift = TimestampShift(message.t, SystemClock().now_ms(), self.speed)
                delay_s = clock.wall_s_until(message.t)
                if delay_s > 0:
                    await asyncio.sleep(delay_s)  # the schedule itself
                payload = message.payload
                if shift is not None:
                    payload = shift.payload(message.topic, payload)
                await lane.publish(message.topic, payload, message.retain)
                self.published += 1
            for lane in lanes.values():
                await lane.drained()

    async def _open(self, stack: AsyncExitStack, broker: Broker, client_id: str) -> _Lane:
        connection = BrokerConnection(broker, client_id, reconnect=False)
        lane = _Lane(connection, self)
        connection.client.max_inflight_messages_set(self.window)
        connection.client.on_publish = lane.on_publish
        await stack.enter_async_context(connection)
        return lane


class _Lane:
    """One connection of a replay and its window of unacknowledged messages."""

    def __init__(self, connection: BrokerConnection, replayer: Replayer) -> None:
        self.connection = connection
        self.replayer = replayer
        self.published = 0
        self.acknowledged = 0

    async def publish(self, topic: str, payload: bytes, retain: bool) -> None:
        window = self.replayer.window
        await self.connection.wait_for(lambda: self.published - self.acknowledged < window)
        info = self.connection.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise BrokerError(
                f"publishing to {self.connection.broker.url} failed after "
                f"{self.replayer.published} messages: {paho.error_string(info.rc)}"
            )
        self.published += 1

    async def drained(self) -> None:
        await self.connection.wait_for(lambda: self.acknowledged >= self.published)

    def on_publish(
        self,
        _client: paho.Client,
        _userdata: object,
        _mid: int,
        reason: ReasonCode,
        _properties: object,
    ) -> None:
        # paho's thread; the counters are read on the loop after notify() (the GIL
        # makes each += visible whole).
        if reason.is_failure:
            self.replayer.refused += 1
        self.acknowledged += 1
        self.replayer.acknowledged += 1
        self.connection.notify()

"""Notifiers: the channels an alarm event leaves the platform through.

A notifier is one method, ``send(notice)``, that either delivers or raises
``NotifierError`` (``permanent`` when retrying cannot help). It never retries and
never buffers: the journal's outbox owns retries, backoff, flood control and
at-least-once delivery (``alerting/dispatch.py``), the same split Telegraf makes
between an output and its running wrapper. A receiver may see a notice twice;
``notice.key`` names it, so it can deduplicate.

Feeds get every event (``notice.event``):

- :class:`WebhookNotifier`: HTTP POST of the :class:`~hazwatch.models.AlarmEvent` JSON,
  signed with HMAC-SHA256 when a secret is set.
- :class:`MqttAlarmNotifier`: the alarm JSON (docs/contract.md §5) on
  ``hz/v1/{enterprise}/alarms`` at QoS 1 (§3.2).
- :class:`HistorianNotifier`: a point of measurement ``alarm`` in InfluxDB (§8).

Channels for people get what routing sent them (``notice.people``, the rendered
``notice.message``): :class:`ConsoleNotifier` here (prints), DingTalk and WeCom group
robots (``alerting/robots.py``), e-mail (``alerting/email.py``), an SMS gateway
(``alerting/sms.py``). ``alerting/channels.py`` builds them all from the config.
URLs often carry a token: only ``scheme://host[:port]`` ever reaches a log line or an
error message.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Protocol, Self, TextIO
from urllib.parse import urlsplit

import aiomqtt
import httpx
import structlog

from alerting.messages import Message
from alerting.recipients import Person
from alerting.targets import TargetGuard
from hazwatch.errors import NotifierError
from hazwatch.models import AlarmEvent
from hazwatch.settings import MqttSettings
from hazwatch.tls import mqtt_ssl_context

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "x-hazwatch-signature"
TIMESTAMP_HEADER = "x-hazwatch-timestamp"


@dataclass(frozen=True, slots=True)
class Notice:
    """One notification as a notifier receives it."""

    event: AlarmEvent
    """The event (a digest's latest)."""
    key: str
    """The idempotency key: the same for every attempt of this notification."""
    purpose: str = "event"
    """``event``, ``reminder`` or ``digest``."""
    recipient: str = ""
    """'' for a feed; a person's key; a group robot's organisation."""
    people: tuple[Person, ...] = ()
    """Who it is for (a group robot @mentions them)."""
    message: Message | None = None
    """The text for people (``alerting/messages.py``)."""
    events: tuple[AlarmEvent, ...] = ()
    """A digest's events listed (the first ones), oldest first."""
    count: int = 1
    """How many notifications this one carries (a digest: all it stands for)."""

    @classmethod
    def of(cls, event: AlarmEvent) -> Notice:
        """A feed's notice of one event (key ``<alarm id>:<seq>``)."""
        return cls(event=event, key=idempotency_key(event))

    def text(self) -> Message:
        if self.message is None:
            raise NotifierError(f"notice {self.key} has no message for people")
        return self.message


class Notifier(Protocol):
    name: str
    """The channel name: outbox rows, metrics and the console refer to it."""

    async def send(self, notice: Notice) -> None:
        """Deliver one notice or raise ``NotifierError``."""
        ...


def http_failure(channel: str, origin: str, response: httpx.Response) -> NotifierError:
    """A non-2xx answer: permanent for 4xx (but 408 and 429), to be retried otherwise."""
    status = response.status_code
    permanent = 400 <= status < 500 and status not in {408, 429}
    return NotifierError(
        f"{channel}: {origin} answered {status}, expected 2xx", permanent=permanent
    )


def transport_failure(channel: str, url: str, origin: str, exc: httpx.HTTPError) -> NotifierError:
    detail = str(exc).replace(url, origin) or "no detail"
    return NotifierError(f"{channel}: POST to {origin} failed: {type(exc).__name__}: {detail}")


def idempotency_key(event: AlarmEvent) -> str:
    """``<alarm id>:<seq>``: the same for every delivery attempt of one event."""
    return f"{event.alarm.id}:{event.seq}"


def url_origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL — the only part of a webhook URL fit to log."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


class WebhookNotifier:
    """POSTs each event as JSON with an ``Idempotency-Key`` header; 2xx is success.

    With a ``secret``, ``X-Hazwatch-Timestamp`` (epoch ms) and ``X-Hazwatch-Signature``
    (``sha256=`` + hex HMAC-SHA256 of ``<timestamp>.<body>`` under the secret) let the
    receiver check where it came from and refuse replays. The HTTP client is injected
    (one shared ``httpx.AsyncClient`` with the configured timeout), and so is the SSRF
    ``guard`` (default: refuse internal targets). Without ``name``, the channel is
    named from the URL's origin and a short hash of the whole URL: stable across
    restarts, unique per URL, free of secrets.
    """

    def __init__(
        self,
        url: str,
        client: httpx.AsyncClient,
        name: str | None = None,
        *,
        secret: str = "",
        guard: TargetGuard | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(
                f"a webhook URL must be http(s)://host/..., got one starting {parts.scheme!r}"
            )
        self._url = url
        self._client = client
        self._secret = secret.encode()
        self._guard = guard or TargetGuard()
        self.origin = url_origin(url)
        digest = hashlib.sha256(url.encode()).hexdigest()[:8]
        self.name = name or f"webhook:{parts.hostname}:{digest}"

    async def send(self, notice: Notice) -> None:
        await self._guard.check(self._url)
        body = notice.event.model_dump_json().encode()
        headers = {"content-type": "application/json", "idempotency-key": notice.key}
        if self._secret:
            headers.update(sign(self._secret, body, time.time_ns() // 1_000_000))
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise transport_failure(f"webhook {self.name}", self._url, self.origin, exc) from exc
        if not response.is_success:
            raise http_failure(f"webhook {self.name}", self.origin, response)


def sign(secret: bytes, body: bytes, timestamp_ms: int) -> dict[str, str]:
    """The signature headers of a webhook body.

    >>> sign(b"k", b"{}", 1)["x-hazwatch-signature"][:15]
    'sha256=3dd49b25'
    """
    mac = hmac.new(secret, f"{timestamp_ms}.".encode() + body, hashlib.sha256).hexdigest()
    return {TIMESTAMP_HEADER: str(timestamp_ms), SIGNATURE_HEADER: f"sha256={mac}"}


class ConsoleNotifier:
    """Prints each message for people to a stream (standard output): the demo's way to
    show who would be told what, with no mail server or group robot."""

    name = "console"

    def __init__(self, out: TextIO | None = None, language: str = "en") -> None:
        self._out = out
        self._language = language

    async def send(self, notice: Notice) -> None:
        message = notice.text()
        who = ", ".join(p.label(self._language) for p in notice.people) or notice.recipient
        out = self._out or sys.stdout
        rule = "─" * 8
        out.write(f"\n{rule} hazwatch → {who} [{notice.purpose}]\n{message.text}\n")
        out.flush()


class HistorianNotifier:
    """Every alarm event into the historian — InfluxDB's measurement ``alarm``
    (docs/contract.md §8), which Grafana's annotations and long-range queries read.

    A feed like the MQTT topic: the outbox keeps and retries its rows, a historian down
    for ``channel_alarm_s`` raises ``channel:historian``, and a repeated write changes
    nothing (the same series at the same time is the same point). ``write`` is the
    wiring's (the sink's line protocol; a refusal raises ``NotifierError``)."""

    name = "historian"

    def __init__(self, write: Callable[[AlarmEvent], Awaitable[None]]) -> None:
        self._write = write

    async def send(self, notice: Notice) -> None:
        await self._write(notice.event)


ALARMS_FILTER = "hz/v1/+/alarms"
"""What a subscriber to every enterprise's alarm events subscribes to (§3.2)."""


class MqttAlarmNotifier:
    """Publishes the alarm JSON on ``hz/v1/{enterprise}/alarms`` with QoS 1.

    Its own MQTT connection (client id ``{client_id}-alarms``), so alarm output never
    competes with the ingest's session. An async context manager: entering tries to
    connect but does not fail when the broker is away — alarms are journaled first,
    and ``send`` raises ``NotifierError`` until a connection works again (each ``send``
    tries to reconnect; the outbox's backoff paces the attempts).
    """

    name = "mqtt"

    def __init__(self, mqtt: MqttSettings, *, timeout_s: float = 10.0) -> None:
        self._settings = mqtt
        self._timeout_s = timeout_s
        self.identifier = f"{mqtt.client_id}-alarms"
        self._client: aiomqtt.Client | None = None
        self._stack: AsyncExitStack | None = None
        self._connecting = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def __aenter__(self) -> Self:
        try:
            await self._connect()
        except NotifierError as exc:
            log.warning("mqtt_alarms_not_connected", error=str(exc))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._disconnect()

    async def send(self, notice: Notice) -> None:
        event = notice.event
        client = self._client
        if client is None:
            async with self._connecting:
                client = self._client if self._client is not None else await self._connect()
        topic = f"hz/v1/{event.alarm.enterprise}/alarms"
        try:
            await client.publish(
                topic, event.alarm.model_dump_json(), qos=1, timeout=self._timeout_s
            )
        except aiomqtt.MqttError as exc:
            await self._disconnect()
            raise NotifierError(
                f"MQTT broker {self._broker}: publishing on {topic} failed: {exc}"
            ) from exc

    @property
    def _broker(self) -> str:
        return f"{self._settings.host}:{self._settings.port}"

    async def _connect(self) -> aiomqtt.Client:
        s = self._settings
        client = aiomqtt.Client(
            s.host,
            s.port,
            identifier=self.identifier,
            username=s.username or None,
            password=s.password.get_secret_value() or None,
            keepalive=s.keepalive_s,
            timeout=self._timeout_s,
            tls_context=mqtt_ssl_context(s),
        )
        stack = AsyncExitStack()
        try:
            await stack.enter_async_context(client)
        except aiomqtt.MqttError as exc:
            raise NotifierError(f"MQTT broker {self._broker}: cannot connect: {exc}") from exc
        self._client, self._stack = client, stack
        log.info("mqtt_alarms_connected", broker=self._broker, client_id=self.identifier)
        return client

    async def _disconnect(self) -> None:
        stack, self._client, self._stack = self._stack, None, None
        if stack is None:
            return
        try:
            await stack.aclose()
        except aiomqtt.MqttError as exc:
            log.info("mqtt_alarms_disconnect_unclean", broker=self._broker, error=str(exc))

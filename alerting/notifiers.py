"""Notifiers: the channels an alarm event leaves the platform through.

A notifier is one method, ``send(event)``, that either delivers or raises
``NotifierError``. It never retries and never buffers: the journal's outbox owns
retries, backoff and at-least-once delivery (``AlarmService.run_outbox``), the same
split Telegraf makes between an output and its running wrapper. A receiver may see an
event twice; ``alarm.id`` + ``seq`` name it, so it can deduplicate.

- :class:`WebhookNotifier`: HTTP POST of the :class:`~hazwatch.models.AlarmEvent` JSON.
- :class:`MqttAlarmNotifier`: the alarm JSON (DESIGN.md §3.5) on
  ``hz/v1/{enterprise}/alarms`` at QoS 1 (§3.2).

DingTalk, WeCom, e-mail and SMS follow the same shape. Webhook URLs often carry a
token: only ``scheme://host[:port]`` ever reaches a log line or an error message.
"""

from __future__ import annotations

import asyncio
import hashlib
from contextlib import AsyncExitStack
from typing import Protocol, Self
from urllib.parse import urlsplit

import aiomqtt
import httpx
import structlog

from hazwatch.errors import NotifierError
from hazwatch.models import AlarmEvent
from hazwatch.settings import MqttSettings
from hazwatch.tls import mqtt_ssl_context

log = structlog.get_logger(__name__)


class Notifier(Protocol):
    name: str
    """The channel name: outbox rows, metrics and the console refer to it."""

    async def send(self, event: AlarmEvent) -> None:
        """Deliver one event or raise ``NotifierError``."""
        ...


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

    The HTTP client is injected (one shared ``httpx.AsyncClient`` with the configured
    timeout). Without ``name``, the channel is named from the URL's origin and a short
    hash of the whole URL: stable across restarts, unique per URL, free of secrets.
    """

    def __init__(self, url: str, client: httpx.AsyncClient, name: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(
                f"a webhook URL must be http(s)://host/..., got one starting {parts.scheme!r}"
            )
        self._url = url
        self._client = client
        self.origin = url_origin(url)
        digest = hashlib.sha256(url.encode()).hexdigest()[:8]
        self.name = name or f"webhook:{parts.hostname}:{digest}"

    async def send(self, event: AlarmEvent) -> None:
        try:
            response = await self._client.post(
                self._url,
                content=event.model_dump_json(),
                headers={
                    "content-type": "application/json",
                    "idempotency-key": idempotency_key(event),
                },
            )
        except httpx.HTTPError as exc:
            detail = str(exc).replace(self._url, self.origin) or "no detail"
            raise NotifierError(
                f"webhook {self.name}: POST to {self.origin} failed: {type(exc).__name__}: {detail}"
            ) from exc
        if not response.is_success:
            raise NotifierError(
                f"webhook {self.name}: {self.origin} answered {response.status_code}, expected 2xx"
            )


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

    async def send(self, event: AlarmEvent) -> None:
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

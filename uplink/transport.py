"""How a request reaches the platform: HTTP POST or MQTT QoS 1.

An upstream is one method, ``send(request)``, that returns once the platform took
the request or raises ``UpstreamError``. It never retries and never buffers: the
forwarder owns the queue, the order, the retries and the pace (the split the alarm
notifiers and Telegraf's outputs make too).

- :class:`HttpUpstream` — ``POST <url><path>`` with an ``Idempotency-Key`` header
  (the batch id: the same for every attempt of the same records), the signature
  headers and any static headers. Success is a 2xx answer, and — for platforms that
  answer 200 with ``{"code": 500, "msg": ...}`` — optionally a JSON field holding
  one of the configured values.
- :class:`MqttUpstream` — one message per request, QoS 1, on the request's topic;
  success is the broker's PUBACK. Its own connection, made on first use and again
  after any failure.

Only ``scheme://host[:port]`` of an upstream URL ever reaches a log line or an error.
"""

from __future__ import annotations

import asyncio
import ssl
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Protocol, Self

import aiomqtt
import httpx
import orjson
import structlog

from hazwatch.errors import UpstreamError
from hazwatch.uplink_settings import UplinkSettings
from uplink.sealing import SealedBody

log = structlog.get_logger(__name__)

ANSWER_HEAD = 200


@dataclass(frozen=True, slots=True)
class UplinkRequest:
    target: str
    """HTTP: the path after the uplink's URL; MQTT: the topic."""
    sealed: SealedBody
    key: str
    """Names the records it carries: the same on every attempt (idempotency)."""


class Upstream(Protocol):
    async def send(self, request: UplinkRequest) -> None:
        """Deliver, or raise ``UpstreamError``."""
        ...


class HttpUpstream:
    def __init__(self, settings: UplinkSettings, client: httpx.AsyncClient) -> None:
        self._base = settings.url.rstrip("/")
        self._origin = settings.origin
        self._client = client
        self._static = {k: v.get_secret_value() for k, v in settings.headers.items()}
        self._field = settings.success_field
        self._accepted = {str(v) for v in settings.success_values}

    async def send(self, request: UplinkRequest) -> None:
        sealed = request.sealed
        headers = {
            **self._static,
            "content-type": sealed.content_type,
            "idempotency-key": request.key,
            **sealed.headers,
        }
        url = self._base + request.target
        try:
            response = await self._client.post(url, content=sealed.body, headers=headers)
        except httpx.HTTPError as exc:
            detail = str(exc).replace(url, self._origin) or "no detail"
            raise UpstreamError(
                f"POST to {self._origin} failed: {type(exc).__name__}: {detail}"
            ) from exc
        if not response.is_success:
            raise UpstreamError(
                f"{self._origin} answered {response.status_code}, expected 2xx: "
                f"{_head(response.content)}",
                status=response.status_code,
            )
        if self._field:
            self._check_answer(response)

    def _check_answer(self, response: httpx.Response) -> None:
        try:
            answer: Any = orjson.loads(response.content)
            for part in self._field.split("."):
                answer = answer[part]
        except (orjson.JSONDecodeError, KeyError, TypeError, IndexError) as exc:
            raise UpstreamError(
                f"{self._origin} answered {response.status_code} without the field "
                f"{self._field!r}: {_head(response.content)}",
                status=response.status_code,
            ) from exc
        if str(answer) not in self._accepted:
            raise UpstreamError(
                f"{self._origin} refused the request ({self._field} = {answer!r}, expected "
                f"one of {sorted(self._accepted)}): {_head(response.content)}",
                status=response.status_code,
            )


class MqttUpstream:
    """``async with MqttUpstream(settings) as upstream: await upstream.send(...)``"""

    def __init__(self, settings: UplinkSettings) -> None:
        self._settings = settings
        self._origin = settings.origin
        self.identifier = settings.client_id or f"hazwatch-uplink-{settings.name}"
        self._client: aiomqtt.Client | None = None
        self._stack: AsyncExitStack | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._disconnect()

    async def send(self, request: UplinkRequest) -> None:
        client = self._client if self._client is not None else await self._connect()
        try:
            await client.publish(
                request.target, request.sealed.body, qos=1, timeout=self._settings.timeout_s
            )
        except aiomqtt.MqttError as exc:
            await self._disconnect()
            raise UpstreamError(
                f"MQTT broker {self._origin}: publishing on {request.target} failed: {exc}"
            ) from exc

    async def _connect(self) -> aiomqtt.Client:
        s = self._settings
        host, port = _host_port(s)
        client = aiomqtt.Client(
            host,
            port,
            identifier=self.identifier,
            username=s.username or None,
            password=s.password.get_secret_value() or None,
            timeout=s.timeout_s,
            tls_context=ssl.create_default_context() if s.url.startswith("mqtts") else None,
        )
        stack = AsyncExitStack()
        try:
            await stack.enter_async_context(client)
        except aiomqtt.MqttError as exc:
            raise UpstreamError(f"MQTT broker {self._origin}: cannot connect: {exc}") from exc
        self._client, self._stack = client, stack
        log.info("uplink_mqtt_connected", broker=self._origin, client_id=self.identifier)
        return client

    async def _disconnect(self) -> None:
        client, stack, self._client, self._stack = self._client, self._stack, None, None
        if stack is None:
            return
        try:
            await stack.aclose()
        except aiomqtt.MqttError as exc:
            log.info("uplink_mqtt_disconnect_unclean", broker=self._origin, error=str(exc))
        # aiomqtt 2.5 leaves a lost connection's error in a future nobody reads: read
        # it, or asyncio reports "exception was never retrieved" when it is collected.
        lost = getattr(client, "_disconnected", None)
        if isinstance(lost, asyncio.Future) and lost.done() and not lost.cancelled():
            lost.exception()


def _host_port(settings: UplinkSettings) -> tuple[str, int]:
    from urllib.parse import urlsplit  # noqa: PLC0415

    parts = urlsplit(settings.url)
    return parts.hostname or "", parts.port or (8883 if parts.scheme == "mqtts" else 1883)


def _head(content: bytes) -> str:
    """The start of an answer, printable, for an error message."""
    text = content[:ANSWER_HEAD].decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else " " for c in text) or "(empty)"

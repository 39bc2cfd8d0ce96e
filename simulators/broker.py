"""A broker to record from or replay to: ``--broker URL``, credentials, one paho client.

``mqtt://host[:port]`` or ``mqtts://host[:port]`` (TLS). Credentials come from the URL
(``mqtt://user:secret@host``) or, when it has none, from ``HAZWATCH_MQTT__USERNAME`` /
``HAZWATCH_MQTT__PASSWORD`` — the variables the service reads; so do TLS's
(``HAZWATCH_MQTT__CA_FILE``, ``__CERT_FILE``, ``__KEY_FILE``, ``__TLS_INSECURE``).
:attr:`Broker.url` is
the address without them: the only form that is printed, logged or written to a
recording's header.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Self
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
import structlog
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import ValidationError

from hazwatch.errors import BrokerError, ConfigError, HazwatchError
from hazwatch.settings import MqttSettings, url_without_userinfo
from hazwatch.tls import mqtt_ssl_context

log = structlog.get_logger(__name__)

ENV_USERNAME = "HAZWATCH_MQTT__USERNAME"
ENV_PASSWORD = "HAZWATCH_MQTT__PASSWORD"  # noqa: S105 - the variable's name, not a secret
ENV_TLS = "HAZWATCH_MQTT__"
_TLS_FILES = ("ca_file", "cert_file", "key_file")
KEEPALIVE_S = 30
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    tls: bool
    username: str = ""
    password: str = field(default="", repr=False)
    tls_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)
    """From ``[mqtt] ca_file``/``cert_file``/... (:func:`hazwatch.tls.mqtt_ssl_context`);
    ``None`` with ``tls``: the system's CAs."""

    def use_tls(self, client: paho.Client) -> None:
        """Set up ``client`` for this broker's TLS (nothing for plain MQTT)."""
        if self.tls_context is not None:
            client.tls_set_context(self.tls_context)
        elif self.tls:
            client.tls_set()

    @property
    def url(self) -> str:
        """The address, without credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{host}:{self.port}"

    @classmethod
    def from_settings(cls, mqtt: MqttSettings) -> Broker:
        """The broker of a configuration, with its credentials and TLS."""
        return cls(
            mqtt.host,
            mqtt.port,
            mqtt.tls,
            mqtt.username,
            mqtt.password.get_secret_value(),
            mqtt_ssl_context(mqtt),
        )

    @classmethod
    def from_url(cls, url: str, environ: Mapping[str, str] | None = None) -> Broker:
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme not in {"mqtt", "mqtts"} or not parts.hostname or port == -1:
            raise ConfigError(
                f"--broker: expected mqtt://host[:port] or mqtts://host[:port], "
                f"got {url_without_userinfo(url)!r}"
            )
        env = os.environ if environ is None else environ
        username, password = unquote(parts.username or ""), unquote(parts.password or "")
        if not username:
            username, password = env.get(ENV_USERNAME, ""), env.get(ENV_PASSWORD, "")
        tls = parts.scheme == "mqtts"
        context = None
        if tls:  # the service's TLS settings, from the same variables
            files = {k: env.get(f"{ENV_TLS}{k.upper()}") or None for k in _TLS_FILES}
            insecure = env.get(f"{ENV_TLS}TLS_INSECURE", "").lower() in {"1", "true", "yes"}
            try:
                mqtt = MqttSettings(url=url, tls_insecure=insecure, **files)  # type: ignore[arg-type]
            except ValidationError as exc:
                raise ConfigError(f"{ENV_TLS}*: {exc.errors()[0]['msg']}") from exc
            context = mqtt_ssl_context(mqtt)
        return cls(
            parts.hostname, port or (8883 if tls else 1883), tls, username, password, context
        )


class BrokerConnection:
    """One paho client (MQTT 5, VERSION2 callbacks), connected, its network thread
    running: set the callbacks you need on ``client``, then ``async with`` it.

    paho calls back on its own thread; :meth:`notify` wakes the event loop from there
    (``call_soon_threadsafe``), and the loop waits with :meth:`wait_for`. A refused or
    lost connection becomes ``failure`` (a :class:`BrokerError`; a callback may
    :meth:`fail` with its own error), which every wait raises — unless ``reconnect``
    is set: then a lost connection is only counted in ``disconnects``, and paho
    connects again (``on_connected`` runs again, e.g. to subscribe).
    """

    def __init__(
        self,
        broker: Broker,
        client_id: str,
        *,
        reconnect: bool,
        on_connected: Callable[[paho.Client], None] | None = None,
    ) -> None:
        self.broker = broker
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            reconnect_on_failure=reconnect,
        )
        if broker.username:
            self.client.username_pw_set(broker.username, broker.password or None)
        broker.use_tls(self.client)
        self.failure: HazwatchError | None = None
        self.disconnects = 0
        self._reconnect = reconnect
        self._on_connected = on_connected
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed = asyncio.Event()
        self._connected = False

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        try:
            await asyncio.to_thread(
                self.client.connect, self.broker.host, self.broker.port, KEEPALIVE_S
            )
        except (OSError, ValueError) as exc:
            raise BrokerError(f"cannot connect to {self.broker.url}: {exc}") from exc
        self.client.loop_start()
        try:
            await self.wait_until(lambda: self._connected, "connected", CONNECT_TIMEOUT_S)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing = True
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)

    def notify(self) -> None:
        """Wake :meth:`wait_for` (callable from paho's thread)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._changed.set)

    def fail(self, failure: HazwatchError) -> None:
        """Record the first failure and wake the waiters (callable from paho's thread)."""
        if self.failure is None:
            self.failure = failure
        self.notify()

    async def wait_for(self, done: Callable[[], bool], timeout_s: float | None = None) -> bool:
        """Until ``done()`` holds (true) or ``timeout_s`` passed (false); raises ``failure``."""
        try:
            async with asyncio.timeout(timeout_s):
                while self.failure is None and not done():
                    self._changed.clear()
                    if self.failure is None and not done():
                        await self._changed.wait()
        except TimeoutError:
            pass
        if self.failure is not None:
            raise self.failure
        return done()

    async def wait_until(self, done: Callable[[], bool], what: str, timeout_s: float) -> None:
        """:meth:`wait_for` that fails with ``BrokerError`` on a timeout."""
        if not await self.wait_for(done, timeout_s):
            raise BrokerError(f"{self.broker.url}: not {what} within {timeout_s} s")

    def _on_connect(
        self,
        client: paho.Client,
        _userdata: object,
        _flags: object,
        reason: ReasonCode,
        _properties: object,
    ) -> None:
        if reason.is_failure:
            self.fail(BrokerError(f"{self.broker.url} refused the connection: {reason}"))
            return
        if self._on_connected is not None:
            self._on_connected(client)
        self._connected = True
        self.notify()

    def _on_disconnect(
        self,
        _client: paho.Client,
        _userdata: object,
        _flags: object,
        reason: ReasonCode,
        _properties: object,
    ) -> None:
        if self._closing:
            return
        self._connected = False
        self.disconnects += 1
        if self._reconnect:
            log.warning("mqtt_disconnected", broker=self.broker.url, reason=str(reason))
            return
        self.fail(BrokerError(f"lost the connection to {self.broker.url}: {reason}"))

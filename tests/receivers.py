"""Real receivers for what hazwatch sends out, each recording what arrived and letting
a test await a condition: an HTTP endpoint (webhooks, group robots, an SMS gateway:
answers a scripted list of statuses, records every attempt), an MQTT subscriber, and
an SMTP server (aiosmtpd, STARTTLS)."""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import json
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    """What the receiver answered."""
    at: float
    """``time.monotonic()`` on arrival."""

    def json(self) -> Any:
        return json.loads(self.body)


class ScriptedReceiver:
    """HTTP/1.1 on 127.0.0.1: answers ``statuses`` in turn, then ``then`` for ever, each
    with ``answer`` as a JSON body (a group robot's ``{"errcode": 0}``).

    ``port``: a fixed one (a receiver that goes down and comes back on the same port);
    default a free one."""

    def __init__(
        self, statuses: tuple[int, ...] = (), then: int = 204, port: int = 0, *, answer: bytes = b""
    ) -> None:
        self.requests: list[Request] = []
        self._statuses = list(statuses)
        self._then = then
        self._answer = answer
        self._arrived = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self.port = port

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def wait_for_requests(self, count: int, timeout: float = 10) -> list[Request]:
        await self.wait_until(lambda requests: len(requests) >= count, timeout)
        return self.requests

    async def wait_until(
        self, predicate: Callable[[list[Request]], bool], timeout: float = 15
    ) -> None:
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: predicate(self.requests))

    def delivered(self) -> list[Any]:
        """JSON bodies of the requests answered with a 2xx status."""
        return [r.json() for r in self.requests if 200 <= r.status < 300]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                method, path, _ = head[0].split(" ", 2)
                headers = {
                    name.strip().lower(): value.strip()
                    for name, _, value in (line.partition(":") for line in head[1:] if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status = self._statuses.pop(0) if self._statuses else self._then
                request = Request(method, path, headers, body, status, time.monotonic())
                head_out = f"HTTP/1.1 {status} X\r\ncontent-length: {len(self._answer)}\r\n"
                if self._answer:
                    head_out += "content-type: application/json\r\n"
                writer.write(head_out.encode() + b"\r\n" + self._answer)
                await writer.drain()
                async with self._arrived:
                    self.requests.append(request)
                    self._arrived.notify_all()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@dataclass(frozen=True)
class Arrival:
    topic: str
    payload: bytes
    retain: bool
    """As published (MQTT 5 "retain as published")."""
    at: float
    """``time.monotonic()`` on arrival."""


class MqttRecorder:
    """Subscribes (paho, MQTT 5, QoS 1, retain as published) and records ``(topic,
    payload)``, and in ``arrivals`` also the retain flag and the arrival time;
    thread-safe waiting. ``session_expiry_s`` > 0: a persistent session, so what is
    published while the recorder is away (its broker restarting) waits for it."""

    def __init__(self, url_port: int, topic: str, session_expiry_s: int = 0) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.arrivals: list[Arrival] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"recorder-{id(self)}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        options = SubscribeOptions(qos=1, retainAsPublished=True)
        self._client.on_connect = lambda c, *_: c.subscribe(topic, options=options)
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(1, 2)
        self._port = url_port
        self._session_expiry_s = session_expiry_s

    def _on_message(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        with self._cond:
            self.messages.append((msg.topic, bytes(msg.payload)))
            self.arrivals.append(
                Arrival(msg.topic, bytes(msg.payload), msg.retain, time.monotonic())
            )
            self._cond.notify_all()

    def count(self) -> int:
        with self._cond:
            return len(self.messages)

    def json(self) -> list[dict[str, Any]]:
        with self._cond:
            return [json.loads(p) for _, p in self.messages]

    def __enter__(self) -> Self:
        if self._session_expiry_s:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = self._session_expiry_s
            self._client.connect("127.0.0.1", self._port, clean_start=False, properties=properties)
        else:
            self._client.connect("127.0.0.1", self._port)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("MQTT recorder could not subscribe")
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    async def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 15
    ) -> None:
        def wait() -> bool:
            with self._cond:
                return self._cond.wait_for(
                    lambda: predicate([json.loads(p) for _, p in self.messages]), timeout
                )

        if not await asyncio.to_thread(wait):
            got = self.json()
            brief = "\n".join(_brief(m) for m in got[-20:])
            raise TimeoutError(f"condition not met; {len(got)} messages, the last 20:\n{brief}")


def _brief(message: dict[str, Any]) -> str:
    """One line per message, short enough that a CI log keeps the whole list."""
    keys = ("id", "type", "tag", "gateway", "state", "disposal", "escalation")
    fields = [f"{k}={message[k]}" for k in keys if k in message]
    return " ".join(fields) if fields else json.dumps(message)[:160]


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (openssl, Debian package ``openssl``)."""
    from tests.servers import find_binary  # noqa: PLC0415 - only the SMTP tests need it

    openssl = find_binary("openssl", "openssl")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@dataclass(frozen=True)
class Mail:
    sender: str
    recipients: list[str]
    message: email.message.EmailMessage


class SmtpReceiver:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that requires STARTTLS, refuses the
    ``refuse`` addresses at RCPT TO with 550, and keeps what it accepted."""

    def __init__(self, cert: Path, key: Path, refuse: tuple[str, ...] = ()) -> None:
        from aiosmtpd.controller import Controller  # noqa: PLC0415

        from tests.servers import free_port  # noqa: PLC0415

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self.mails: list[Mail] = []
        self.refused: list[str] = []
        self._refuse = set(refuse)
        self._cond = threading.Condition()
        self.port = free_port()
        self._controller = Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            tls_context=context,
            require_starttls=True,
        )

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: object, session: object, envelope: Any, address: str, options: object
    ) -> str:
        if address in self._refuse:
            self.refused.append(address)
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        with self._cond:
            self.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), message))
            self._cond.notify_all()
        return "250 Message accepted for delivery"

    def __enter__(self) -> Self:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    async def wait_for(self, count: int, timeout: float = 15) -> list[Mail]:
        def wait() -> bool:
            with self._cond:
                return self._cond.wait_for(lambda: len(self.mails) >= count, timeout)

        if not await asyncio.to_thread(wait):
            raise TimeoutError(f"{count} mails expected, got {len(self.mails)}")
        return self.mails

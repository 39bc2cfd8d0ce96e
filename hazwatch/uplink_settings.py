"""Settings of the uplinks to supervising platforms: the ``[[uplink]]`` entries.

Each entry forwards readings (thinned by period and deadband) and alarm changes to
one upstream MQTT broker or HTTP endpoint, store-and-forward; what each key does is
in docs/uplink.md. The stage itself is the ``uplink`` package; these models live in
the kernel because :class:`hazwatch.settings.Settings` holds them, and the kernel
imports no stage.

Secrets (the signature secret, the SM4 key and IV, an MQTT password, header values)
are ``SecretStr``: never printed, never logged.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from hazwatch.models import ID_PATTERN, AlarmType, PointKind

SIGNED_FIELDS = frozenset({"appid", "timestamp", "nonce", "data", "plain", "secret"})
"""What a signature's ``message`` may hold (docs/uplink.md, "Signature")."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def key_bytes(text: str, what: str) -> bytes:
    """An SM4 key or IV as configured: 32 hex digits, or 16 characters (UTF-8).

    >>> key_bytes("0123456789abcdeffedcba9876543210", "key").hex()
    '0123456789abcdeffedcba9876543210'
    >>> key_bytes("3ExYW0tVEHuQecgz", "key")
    b'3ExYW0tVEHuQecgz'
    """
    if len(text) == 32 and all(c in string.hexdigits for c in text):
        return bytes.fromhex(text)
    raw = text.encode()
    if len(raw) != 16:
        raise ValueError(
            f"the SM4 {what} must be 32 hex digits or 16 characters, got {len(raw)} bytes"
        )
    return raw


class SignatureNames(_Section):
    """Where the signature's parts go: header names, or JSON keys with ``placement = "body"``."""

    appid: str = "appId"
    timestamp: str = "timestamp"
    nonce: str = "nonce"
    signature: str = "sign"


class UplinkSignature(_Section):
    """The appid/appsecret signature: ``kind`` over ``message`` (a template of
    ``{appid}{timestamp}{nonce}{data}{plain}{secret}``), encoded as ``encoding``."""

    kind: Literal["none", "hmac-sha256", "hmac-sm3", "sha256", "sm3"] = "none"
    appid: str = ""
    secret: SecretStr = SecretStr("")
    message: str = "{appid}{timestamp}{nonce}{data}"
    encoding: Literal["hex", "hex-upper", "base64"] = "hex"
    timestamp_unit: Literal["ms", "s"] = "ms"
    placement: Literal["headers", "body"] = "headers"
    names: SignatureNames = SignatureNames()

    @model_validator(mode="after")
    def _consistent(self) -> UplinkSignature:
        if self.kind == "none":
            return self
        fields = {name for _, name, _, _ in string.Formatter().parse(self.message) if name}
        unknown = fields - SIGNED_FIELDS
        if unknown:
            raise ValueError(
                f"message: unknown field(s) {sorted(unknown)}; known: {sorted(SIGNED_FIELDS)}"
            )
        if not self.secret.get_secret_value():
            raise ValueError(f"secret: a {self.kind} signature needs the appsecret")
        if self.kind in {"sha256", "sm3"} and "secret" not in fields:
            raise ValueError(
                f"message: a plain {self.kind} digest without {{secret}} in it proves nothing; "
                "add {secret} or use an hmac kind"
            )
        return self


class UplinkEncryption(_Section):
    """The body encrypted with SM4 (PKCS#7 padding, base64), in ``{"<field>": "..."}``
    or, with ``field = ""``, as the bare base64 text."""

    kind: Literal["none", "sm4-ecb", "sm4-cbc"] = "none"
    key: SecretStr = SecretStr("")
    iv: SecretStr = SecretStr("")
    field: str = "data"

    @model_validator(mode="after")
    def _keys(self) -> UplinkEncryption:
        if self.kind == "none":
            return self
        key_bytes(self.key.get_secret_value(), "key")
        if self.kind == "sm4-cbc":
            key_bytes(self.iv.get_secret_value(), "iv")
        return self


class UplinkStream(_Section):
    """What one kind of record (readings or alarm changes) becomes upstream."""

    enabled: bool = True
    path: str = ""
    """HTTP: appended to the uplink's URL; MQTT: the topic. ``{enterprise}`` may appear."""
    record: dict[str, Any] | None = None
    """JSON template of one record (docs/uplink.md); the default when not set."""
    body: dict[str, Any] | None = None
    """JSON template of one request around its ``"{records}"``."""


class UplinkReadings(UplinkStream):
    tags: tuple[str, ...] = ()
    """Shell-style patterns (``TK*_LT``); empty: every tag."""
    kinds: tuple[PointKind, ...] = ()
    """Point kinds; empty: every kind."""
    period_s: float = Field(default=60.0, ge=0)
    """One reading per point per period at most (0: no period)."""
    deadband: float | None = Field(default=None, ge=0)
    """Also forwarded when the value moved more than this from the last one forwarded.
    With ``period_s = 0`` and no deadband, every reading is forwarded."""


class UplinkAlarms(UplinkStream):
    types: tuple[AlarmType, ...] = ()
    """Alarm types forwarded; empty: every type."""
    include_system: bool = False
    """Forward hazwatch's own SYSTEM alarms too (enterprise ``_system``)."""


class UplinkSettings(_Section):
    """One ``[[uplink]]`` entry."""

    name: str = Field(pattern=ID_PATTERN)
    url: str
    """``http(s)://host[:port]/base`` (POST) or ``mqtt(s)://host[:port]`` (QoS 1)."""
    enterprises: tuple[str, ...] = ()
    """Enterprises forwarded (readings and alarms); empty: every enterprise."""
    queue_path: Path | None = None
    """The uplink's durable queue (SQLite WAL); default ``var/uplink-<name>.db``."""
    queue_max_records: int = Field(default=2_000_000, gt=0)
    """Records kept at most; when full the oldest readings go first (counted, alarmed)."""
    rate: float = Field(default=200.0, gt=0)
    """Records sent per second at most: the catch-up pace after an outage."""
    batch: int = Field(default=200, gt=0, le=10_000)
    """Records per request (HTTP) or message (MQTT) at most."""
    per_enterprise: bool = True
    """A request holds one enterprise's records (``{enterprise}`` in the body and path)."""
    timeout_s: float = Field(default=10.0, gt=0)
    retry_max_s: float = Field(default=60.0, gt=0)
    """Failed sends are retried with jittered backoff from 1 s up to this."""
    lag_alarm_s: float = Field(default=300.0, gt=0)
    """A SYSTEM alarm when the oldest unsent record waited this long."""
    fail_alarm_s: float = Field(default=60.0, gt=0)
    """A SYSTEM alarm when every send failed for this long."""
    time_format: str = "%Y-%m-%d %H:%M:%S"
    """How ``{local_time}`` fields are written."""
    timezone: str = "Asia/Shanghai"
    """The zone of ``{local_time}``: an IANA name or ``+08:00``."""
    success_field: str = ""
    """HTTP: a field of the JSON answer that must hold one of ``success_values``
    (platforms that answer 200 with ``{"code": 500, ...}``); empty: any 2xx is success."""
    success_values: tuple[int | str, ...] = (0, 200)
    headers: dict[str, SecretStr] = {}
    """HTTP: extra request headers (a static token); values are never logged."""
    client_id: str = ""
    """MQTT: default ``hazwatch-uplink-<name>``."""
    username: str = ""
    password: SecretStr = SecretStr("")
    readings: UplinkReadings = UplinkReadings()
    alarms: UplinkAlarms = UplinkAlarms()
    signature: UplinkSignature = UplinkSignature()
    encryption: UplinkEncryption = UplinkEncryption()

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https", "mqtt", "mqtts"} or not parts.hostname:
            raise ValueError(
                "expected http(s)://host[:port][/path] or mqtt(s)://host[:port], "
                f"got one starting {parts.scheme!r}"
            )
        return url

    @field_validator("timezone")
    @classmethod
    def _zone(cls, zone: str) -> str:
        if re.fullmatch(r"[+-]\d{2}:\d{2}", zone):
            return zone
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # noqa: PLC0415

        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"expected an IANA zone such as Asia/Shanghai or +08:00, got {zone!r}"
            ) from exc
        return zone

    @model_validator(mode="after")
    def _transport_fits(self) -> UplinkSettings:
        if self.mqtt and self.signature.kind != "none" and self.signature.placement == "headers":
            raise ValueError(
                'signature.placement: MQTT messages have no headers; use placement = "body"'
            )
        if (
            self.signature.kind != "none"
            and self.signature.placement == "body"
            and self.encryption.kind != "none"
            and not self.encryption.field
        ):
            raise ValueError('signature.placement = "body" needs a JSON body: set encryption.field')
        return self

    @property
    def mqtt(self) -> bool:
        return urlsplit(self.url).scheme in {"mqtt", "mqtts"}

    @property
    def origin(self) -> str:
        """``scheme://host[:port]``: what of the URL may be shown or logged."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}"


def unique_names(uplinks: tuple[UplinkSettings, ...]) -> tuple[UplinkSettings, ...]:
    """Uplink names name metrics, alarms and queue files: they must be unique."""
    seen: set[str] = set()
    for uplink in uplinks:
        if uplink.name in seen:
            raise ValueError(f"two [[uplink]] entries are named {uplink.name!r}")
        seen.add(uplink.name)
    return uplinks


def resolve_queue_paths(
    uplinks: tuple[UplinkSettings, ...], resolve: Any
) -> tuple[UplinkSettings, ...]:
    """Queue paths relative to the config file; ``var/uplink-<name>.db`` by default."""
    return tuple(
        u.model_copy(
            update={"queue_path": resolve(u.queue_path or Path(f"var/uplink-{u.name}.db"))}
        )
        for u in uplinks
    )

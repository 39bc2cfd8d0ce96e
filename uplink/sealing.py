"""Authentication and encryption of uplink requests: the seams provincial data-access
specifications fill in (docs/uplink.md, "Signature and encryption").

The shape those specifications share: the platform issues an **appid** and an
**appsecret** (and an SM4 key); each request carries the appid, a timestamp, a
nonce and a signature — HMAC-SHA256 or HMAC-SM3 (or a plain SM3/SHA-256 digest with
the secret inside) over those and the payload — in headers or beside the payload;
the payload itself is the JSON encrypted with **SM4** (ECB or CBC, PKCS#7 padding)
and base64-encoded, often inside ``{"data": "..."}``. Which parts, in what order,
under which names, differ per province: all of them are settings
(:class:`hazwatch.uplink_settings.UplinkSignature`, ``UplinkEncryption``).

Two small protocols, one implementation each so far (the cryptography comes from the
``cryptography`` package, which has SM3 and SM4):

- :class:`BodyCipher` — plain bytes → text: :class:`Sm4Cipher`;
- :class:`RequestSigner` — payload → the appid/timestamp/nonce/signature fields:
  :class:`AppSecretSigner`.

:class:`RequestSealer` puts them together: plain JSON in, the bytes to send and the
headers out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import orjson
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from hazwatch.clock import Clock
from hazwatch.uplink_settings import UplinkEncryption, UplinkSignature, key_bytes

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


class BodyCipher(Protocol):
    def encrypt(self, plain: bytes) -> str:
        """The request payload as text (base64)."""
        ...


class RequestSigner(Protocol):
    def sign(self, *, data: str, plain: str) -> dict[str, str]:
        """The fields to send (names as configured): appid, timestamp, nonce, signature.
        ``data`` is the payload as sent (the ciphertext if encrypted), ``plain`` the
        JSON before encryption."""
        ...


class Sm4Cipher:
    """SM4 (GB/T 32907) in ECB or CBC mode, PKCS#7 padding, base64 text.

    >>> c = Sm4Cipher(bytes.fromhex("0123456789abcdeffedcba9876543210"), "ecb")
    >>> c.decrypt(c.encrypt(b'{"v": 1}'))
    b'{"v": 1}'
    """

    def __init__(self, key: bytes, mode: Literal["ecb", "cbc"], iv: bytes | None = None) -> None:
        if mode == "cbc" and iv is None:
            raise ValueError("SM4-CBC needs an IV")
        self._cipher = Cipher(
            algorithms.SM4(key),
            # ECB: what several provincial specifications prescribe; CBC is offered
            modes.CBC(iv) if mode == "cbc" and iv else modes.ECB(),  # noqa: S305
        )

    def encrypt(self, plain: bytes) -> str:
        padder = padding.PKCS7(128).padder()
        padded = padder.update(plain) + padder.finalize()
        encryptor = self._cipher.encryptor()
        return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode()

    def decrypt(self, text: str) -> bytes:
        decryptor = self._cipher.decryptor()
        padded = decryptor.update(base64.b64decode(text)) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return unpadder.update(padded) + unpadder.finalize()


def digest(kind: str, secret: bytes, message: bytes) -> bytes:
    """The signature's bytes: an HMAC keyed with the secret, or a plain digest.

    >>> digest("sm3", b"", b"abc").hex()[:16]  # GB/T 32905 example 1
    '66c7f0f462eeedd9'
    """
    if kind == "hmac-sha256":
        return hmac.new(secret, message, hashlib.sha256).digest()
    if kind == "hmac-sm3":
        mac = crypto_hmac.HMAC(secret, hashes.SM3())
        mac.update(message)
        return mac.finalize()
    if kind == "sha256":
        return hashlib.sha256(message).digest()
    if kind == "sm3":
        hash_ = hashes.Hash(hashes.SM3())
        hash_.update(message)
        return hash_.finalize()
    raise ValueError(f"unknown signature kind {kind!r}")


def encode(raw: bytes, encoding: str) -> str:
    if encoding == "hex-upper":
        return raw.hex().upper()
    if encoding == "base64":
        return base64.b64encode(raw).decode()
    return raw.hex()


def _nonce() -> str:
    return secrets.token_hex(16)


class AppSecretSigner:
    """appid + timestamp + nonce + a signature over ``message`` (a format string of
    ``{appid}{timestamp}{nonce}{data}{plain}{secret}``)."""

    def __init__(
        self, settings: UplinkSignature, clock: Clock, nonce: Callable[[], str] = _nonce
    ) -> None:
        self._settings = settings
        self._secret = settings.secret.get_secret_value()
        self._clock = clock
        self._nonce = nonce

    def sign(self, *, data: str, plain: str) -> dict[str, str]:
        s = self._settings
        now_ms = self._clock.now_ms()
        timestamp = str(now_ms if s.timestamp_unit == "ms" else now_ms // 1000)
        nonce = self._nonce()
        message = s.message.format(
            appid=s.appid, timestamp=timestamp, nonce=nonce, data=data, plain=plain,
            secret=self._secret,
        )  # fmt: skip
        raw = digest(s.kind, self._secret.encode(), message.encode())
        names = s.names
        return {
            names.appid: s.appid,
            names.timestamp: timestamp,
            names.nonce: nonce,
            names.signature: encode(raw, s.encoding),
        }


@dataclass(frozen=True, slots=True)
class SealedBody:
    """What goes on the wire for one request."""

    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


class RequestSealer:
    """Plain JSON body → encrypted, enveloped, signed (each step optional)."""

    def __init__(
        self,
        cipher: BodyCipher | None = None,
        envelope_field: str = "data",
        signer: RequestSigner | None = None,
        placement: Literal["headers", "body"] = "headers",
    ) -> None:
        self._cipher = cipher
        self._field = envelope_field
        self._signer = signer
        self._placement = placement

    def seal(self, plain: bytes) -> SealedBody:
        plain_text = plain.decode()
        if self._cipher is None:
            data = plain_text
            envelope: dict[str, object] | None = None
        else:
            data = self._cipher.encrypt(plain)
            envelope = {self._field: data} if self._field else None
        signed = self._signer.sign(data=data, plain=plain_text) if self._signer else {}
        if self._placement == "body" and signed:
            obj = envelope if envelope is not None else orjson.loads(plain)
            return SealedBody(orjson.dumps({**obj, **signed}), JSON)
        if envelope is not None:
            return SealedBody(orjson.dumps(envelope), JSON, signed)
        if self._cipher is not None:
            return SealedBody(data.encode(), TEXT, signed)
        return SealedBody(plain, JSON, signed)


def build_sealer(
    signature: UplinkSignature, encryption: UplinkEncryption, clock: Clock
) -> RequestSealer:
    """The sealer an uplink's settings describe."""
    cipher: BodyCipher | None = None
    if encryption.kind != "none":
        key = key_bytes(encryption.key.get_secret_value(), "key")
        if encryption.kind == "sm4-cbc":
            cipher = Sm4Cipher(key, "cbc", key_bytes(encryption.iv.get_secret_value(), "iv"))
        else:
            cipher = Sm4Cipher(key, "ecb")
    signer = AppSecretSigner(signature, clock) if signature.kind != "none" else None
    return RequestSealer(cipher, encryption.field, signer, signature.placement)

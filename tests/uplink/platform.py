"""The supervising platform's side of an uplink, written independently of ``uplink/``:
SM3 and SM4 from gmssl (pure Python), HMAC by RFC 2104. It checks what hazwatch
signed and opens what it encrypted, as the provincial platform would."""

from __future__ import annotations

import base64
import json
from typing import Any

from gmssl import func, sm3, sm4

APPID = "hz-test-app"
SECRET = "test-appsecret-0123456789"
KEY_HEX = "0123456789abcdeffedcba9876543210"
IV_TEXT = "hazwatch-iv-0001"


def sm3_digest(data: bytes) -> bytes:
    return bytes.fromhex(sm3.sm3_hash(func.bytes_to_list(data)))


def hmac_sm3(key: bytes, message: bytes) -> bytes:
    """RFC 2104 with SM3 (64-byte blocks)."""
    key = (sm3_digest(key) if len(key) > 64 else key).ljust(64, b"\0")
    inner = sm3_digest(bytes(k ^ 0x36 for k in key) + message)
    return sm3_digest(bytes(k ^ 0x5C for k in key) + inner)


def sm4_open(text: str, *, iv: bytes | None = None) -> bytes:
    """base64 → SM4 (ECB, or CBC with ``iv``) → PKCS#7 removed (gmssl does that)."""
    crypt = sm4.CryptSM4()
    crypt.set_key(bytes.fromhex(KEY_HEX), sm4.SM4_DECRYPT)
    raw = base64.b64decode(text)
    return bytes(crypt.crypt_cbc(iv, raw) if iv is not None else crypt.crypt_ecb(raw))


def open_http(headers: dict[str, str], body: bytes) -> Any:
    """An HTTP request of the ``HTTP_UPLINK`` shape: HMAC-SM3 over appId, timestamp,
    nonce and the ciphertext in headers; the JSON SM4-ECB encrypted in ``data``."""
    assert headers["appid"] == APPID
    envelope = json.loads(body)
    data = envelope["data"]
    message = f"{APPID}{headers['timestamp']}{headers['nonce']}{data}".encode()
    expected = hmac_sm3(SECRET.encode(), message).hex().upper()
    assert headers["sign"] == expected, "signature does not verify"
    return json.loads(sm4_open(data))


def open_mqtt(payload: bytes) -> Any:
    """An MQTT message of the ``MQTT_UPLINK`` shape: SM3(data + secret) beside the
    SM4-CBC ciphertext in the JSON envelope."""
    envelope = json.loads(payload)
    assert envelope["appId"] == APPID
    data = envelope["payload"]
    assert envelope["sign"] == sm3_digest(f"{data}{SECRET}".encode()).hex()
    return json.loads(sm4_open(data, iv=IV_TEXT.encode()))


HTTP_UPLINK: dict[str, Any] = {
    "signature": {
        "kind": "hmac-sm3",
        "appid": APPID,
        "secret": SECRET,
        "encoding": "hex-upper",
        "names": {
            "appid": "appId",
            "timestamp": "timestamp",
            "nonce": "nonce",
            "signature": "sign",
        },
    },
    "encryption": {"kind": "sm4-ecb", "key": KEY_HEX, "field": "data"},
}
MQTT_UPLINK: dict[str, Any] = {
    "signature": {
        "kind": "sm3",
        "appid": APPID,
        "secret": SECRET,
        "message": "{data}{secret}",
        "placement": "body",
    },
    "encryption": {"kind": "sm4-cbc", "key": KEY_HEX, "iv": IV_TEXT, "field": "payload"},
}
